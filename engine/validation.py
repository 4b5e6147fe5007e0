"""Check a whole prompt before anything runs, and report every problem at once.

Errors use ComfyUI's ``node_errors`` shape so existing clients can show them:
``{node_id: {"errors": [{type, message, details, extra_info}], "dependent_outputs": [...],
"class_type": ...}}``. Values are normalised on the way (``"7"`` for an INT becomes ``7``),
and the checked prompt comes back together with the output nodes and a dependency order
that the executor and the signature pass reuse.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .prompt import Prompt, is_link
from .schema import WIDGET_TYPES, InputSpec, NodeDefinition, NodeSchema, types_compatible


@dataclass
class ValidationResult:
    prompt: Prompt
    outputs: list[str]
    #: nodes reachable from the outputs, each after everything it links to
    order: list[str]
    error: dict[str, Any] | None = None
    node_errors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


def _err(kind: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def _spec_config(spec: InputSpec) -> list[Any]:
    if spec.type == "COMBO":
        return [list(spec.options.get("choices", [])), {k: v for k, v in spec.options.items() if k != "choices"}]
    return [spec.type, dict(spec.options)]


def check_constant(spec: InputSpec, value: Any) -> tuple[Any, dict[str, Any] | None]:
    """Coerce a constant to the input's type and check its range; returns (value, error)."""
    name, opts, kind = spec.name, spec.options, spec.type
    received = value

    def fail(kind_: str, message: str, details: str) -> tuple[Any, dict[str, Any]]:
        return value, _err(kind_, message, details, input_name=name, input_config=_spec_config(spec),
                           received_value=received)

    value_type = type(value)
    try:
        if kind == "INT":
            if value_type is not int:
                if value_type is bool:
                    raise ValueError
                if value_type is float:
                    if not value.is_integer():
                        raise ValueError
                    value = int(value)
                else:
                    value = int(str(value).strip())
        elif kind == "FLOAT":
            if value_type is not float:
                if value_type is bool:
                    raise ValueError
                value = float(value)
            if math.isnan(value):
                raise ValueError
        elif kind == "BOOLEAN":
            if value_type is not bool:
                if isinstance(value, str) and value.lower() in ("true", "false"):
                    value = value.lower() == "true"
                else:
                    raise ValueError
        elif kind == "STRING":
            if value_type is not str:
                raise ValueError
    except (TypeError, ValueError):
        return fail("invalid_input_type", f"Failed to convert an input value to a {kind} value", f"{name}, {received!r}: expected {kind}")
    if kind == "INT" or kind == "FLOAT":
        lo, hi = opts.get("min"), opts.get("max")
        if lo is not None and value < lo:
            return fail("value_smaller_than_min", f"Value {value} smaller than min of {lo}", name)
        if hi is not None and value > hi:
            return fail("value_bigger_than_max", f"Value {value} bigger than max of {hi}", name)
    elif kind == "COMBO":
        choices = opts.get("choices") or ()
        if value not in choices:
            shown = list(choices) if len(choices) <= 20 else list(choices[:20]) + ["..."]
            return fail("value_not_in_list", "Value not in list", f"{name}: {value!r} not in {shown}")
    return value, None


def _reachable(prompt: Prompt, roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    stack = [r for r in roots if r in prompt]
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        for value in prompt[node_id]["inputs"].values():
            if is_link(value) and value[0] in prompt and value[0] not in seen:
                stack.append(value[0])
    return seen


def dependency_order(prompt: Prompt, nodes: set[str]) -> tuple[list[str], set[str]]:
    """Iterative depth-first post-order; returns the order and the nodes found on cycles."""
    state: dict[str, int] = {}  # 1 = on the path, 2 = finished
    order: list[str] = []
    on_cycle: set[str] = set()
    for root in sorted(nodes):
        if root in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, Any]] = [(root, None)]
        while stack:
            node_id, it = stack[-1]
            if it is None:
                state[node_id] = 1
                path.append(node_id)
                it = iter(
                    [v[0] for v in prompt[node_id]["inputs"].values() if is_link(v) and v[0] in nodes]
                )
                stack[-1] = (node_id, it)
            child = next(it, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node_id] = 2
                order.append(node_id)
            elif state.get(child) == 1:
                on_cycle.update(path[path.index(child):])
            elif child not in state:
                stack.append((child, None))
    return order, on_cycle


def validate_prompt(
    prompt: Prompt,
    registry: Mapping[str, NodeDefinition],
    targets: list[str] | None = None,
) -> ValidationResult:
    """Validate ``prompt`` (already normalised) for the given output targets or all outputs."""
    node_errors: dict[str, dict[str, Any]] = {}
    # one schema per class for this call: a schema with a file-list combo is rebuilt (a folder
    # scan) on each access, and a node is looked at again as the source of every link
    schemas: dict[str, NodeSchema] = {}

    def schema_of(class_type: str) -> NodeSchema:
        schema = schemas.get(class_type)
        if schema is None:
            schema = schemas[class_type] = registry[class_type].schema
        return schema

    def add(node_id: str, error: dict[str, Any]) -> None:
        entry = node_errors.setdefault(
            node_id,
            {"errors": [], "dependent_outputs": [], "class_type": prompt.get(node_id, {}).get("class_type")},
        )
        entry["errors"].append(error)

    missing_types: list[str] = []
    for node_id, node in prompt.items():
        class_type = node.get("class_type")
        if not isinstance(class_type, str) or class_type not in registry:
            missing_types.append(node_id)
            add(
                node_id,
                _err(
                    "missing_node_type",
                    f"Node '{class_type}' not found. The custom node may not be installed.",
                    f"Node ID '#{node_id}'",
                    node_id=node_id,
                    class_type=class_type,
                ),
            )

    if targets:
        outputs = [t for t in targets if t in prompt]
        for t in targets:
            if t not in prompt:
                add(t, _err("invalid_target", "Requested output node does not exist", f"{t}"))
    else:
        outputs = [
            node_id
            for node_id, node in prompt.items()
            if node.get("class_type") in registry and schema_of(node["class_type"]).output_node
        ]
    if not outputs and not node_errors:
        return ValidationResult(
            prompt, [], [], _err("prompt_no_outputs", "Prompt has no outputs", "Add an output node such as PreviewAny or SaveImage.")
        )

    reachable = _reachable(prompt, outputs)
    normalised: Prompt = {}
    for node_id in reachable:
        node = prompt[node_id]
        definition = registry.get(node.get("class_type"))
        if definition is None:
            normalised[node_id] = node
            continue
        schema = schema_of(node["class_type"])
        inputs = dict(node["inputs"])
        constants: dict[str, Any] = {}
        failed = False
        for spec in schema.inputs:
            if spec.kind == "hidden":
                continue
            if spec.name not in inputs:
                if spec.kind == "required":
                    add(
                        node_id,
                        _err("required_input_missing", "Required input is missing", spec.name, input_name=spec.name),
                    )
                    failed = True
                continue
            value = inputs[spec.name]
            if is_link(value):
                source_id, index = value
                source = prompt.get(source_id)
                if source is None:
                    add(node_id, _err("bad_linked_input", "Linked node does not exist", f"{spec.name}: node '{source_id}' is not in the prompt", input_name=spec.name, received_value=value))
                    failed = True
                    continue
                source_def = registry.get(source.get("class_type"))
                if source_def is None:
                    failed = True
                    continue
                source_outputs = schema_of(source["class_type"]).outputs
                if not 0 <= index < len(source_outputs):
                    add(node_id, _err("bad_linked_input", "Linked output does not exist", f"{spec.name}: node '{source_id}' ({source['class_type']}) has {len(source_outputs)} outputs, index {index} requested", input_name=spec.name, received_value=value))
                    failed = True
                    continue
                produced = source_outputs[index].type
                if not types_compatible(produced, spec.type) and not definition.skips_default_validation(spec.name):
                    add(node_id, _err("return_type_mismatch", "Return type mismatch between linked nodes", f"{spec.name}, received_type({produced}) mismatch input_type({spec.type})", input_name=spec.name, received_type=produced, input_type=spec.type))
                    failed = True
                continue
            if definition.skips_default_validation(spec.name):
                pass
            elif spec.type in WIDGET_TYPES:
                value, error = check_constant(spec, value)
                if error is not None:
                    add(node_id, error)
                    failed = True
                    continue
            elif spec.type != "*":
                add(node_id, _err("bad_linked_input", f"Input must be linked to a {spec.type} output", f"{spec.name}: got a constant {type(value).__name__}", input_name=spec.name, received_value=value))
                failed = True
                continue
            inputs[spec.name] = value
            constants[spec.name] = value
        normalised[node_id] = {**node, "inputs": inputs}
        if not failed:
            try:
                verdict = definition.validate(constants)
            except Exception as exc:  # a buggy validator must not take the request down
                verdict = f"validation raised {type(exc).__name__}: {exc}"
                add(node_id, _err("exception_during_inner_validation", "Exception when validating node", verdict))
            else:
                if verdict is not True:
                    add(node_id, _err("custom_validation_failed", "Custom validation failed for node", str(verdict)))

    for node_id, node in prompt.items():
        normalised.setdefault(node_id, node)

    order, on_cycle = dependency_order(normalised, reachable)
    for node_id in sorted(on_cycle):
        add(node_id, _err("dependency_cycle", "Dependency cycle detected", f"node {node_id} depends on itself through its inputs"))

    result = ValidationResult(normalised, outputs, order, None, node_errors)
    if node_errors:
        for output_id in outputs:
            for node_id in _reachable(normalised, [output_id]):
                if node_id in node_errors:
                    node_errors[node_id]["dependent_outputs"].append(output_id)
        if missing_types:
            first = missing_types[0]
            result.error = _err(
                "missing_node_type",
                f"Node '{prompt[first].get('class_type')}' not found. The custom node may not be installed.",
                f"Node ID '#{first}'",
                node_id=first,
                class_type=prompt[first].get("class_type"),
            )
        else:
            count = sum(len(e["errors"]) for e in node_errors.values())
            result.error = _err(
                "prompt_outputs_failed_validation",
                "Prompt outputs failed validation",
                f"{count} problem(s) in {len(node_errors)} node(s)",
            )
    return result
