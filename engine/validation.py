"""Check a whole prompt before anything runs, and report every problem at once.

Errors use ComfyUI's ``node_errors`` shape so existing clients can show them:
``{node_id: {"errors": [{type, message, details, extra_info}], "dependent_outputs": [...],
"class_type": ...}}``. Values are normalised on the way (``"7"`` for an INT becomes ``7``),
and the checked prompt comes back together with the output nodes and a dependency order
that the executor and the signature pass reuse.

As in ComfyUI, one invalid output does not reject the prompt: the outputs whose
upstream nodes are all valid run, and ``node_errors`` names the problems of the others
(the server answers 200 with them). A prompt is refused only when no output is valid, when
a node's class is unknown, or when there is no output at all.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .node_types import NodeTypes, cached_definition, cached_schema
from .prompt import Prompt, is_link
from .resources import estimate_prompt
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


def _convert(kind: str, value: Any) -> Any:
    """``value`` as a ``kind`` widget value; ``ValueError`` or ``TypeError`` when it is not one."""
    value_type = type(value)
    if kind == "INT":
        if value_type is not int:
            if value_type is bool:
                raise ValueError
            if value_type is float:
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(str(value).strip())
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
                return value.lower() == "true"
            raise ValueError
    elif kind == "STRING":
        if value_type is not str:
            raise ValueError
    return value


def _limit_problem(spec: InputSpec, value: Any) -> tuple[str, str, str] | None:
    """``(type, message, details)`` when a converted value is out of range or not a choice."""
    kind, opts, name = spec.type, spec.options, spec.name
    if kind == "INT" or kind == "FLOAT":
        lo, hi = opts.get("min"), opts.get("max")
        if lo is not None and value < lo:
            return "value_smaller_than_min", f"Value {value} smaller than min of {lo}", name
        if hi is not None and value > hi:
            return "value_bigger_than_max", f"Value {value} bigger than max of {hi}", name
    elif kind == "COMBO":
        choices = opts.get("choices") or ()
        if value not in choices:
            shown = list(choices) if len(choices) <= 20 else list(choices[:20]) + ["..."]
            return "value_not_in_list", "Value not in list", f"{name}: {value!r} not in {shown}"
    return None


def check_constant(spec: InputSpec, value: Any, check_limits: bool = True) -> tuple[Any, dict[str, Any] | None]:
    """Coerce a constant to the input's type and check its range; returns (value, error).

    ``check_limits=False`` converts only: ComfyUI leaves min/max and the choice list to a
    ``VALIDATE_INPUTS`` that names the input, but still converts ``"7"`` to ``7``.
    """
    try:
        converted = _convert(spec.type, value)
    except (TypeError, ValueError):
        problem: tuple[str, str, str] | None = (
            "invalid_input_type",
            f"Failed to convert an input value to a {spec.type} value",
            f"{spec.name}, {value!r}: expected {spec.type}",
        )
        converted = value
    else:
        problem = _limit_problem(spec, converted) if check_limits else None
    if problem is None:
        return converted, None
    kind, message, details = problem
    return converted, _err(
        kind, message, details, input_name=spec.name, input_config=_spec_config(spec), received_value=value
    )


_SEQUENCES = frozenset({list, tuple})


def _reachable(prompt: Prompt, roots: Iterable[str], sources: dict[str, list[str]] | None = None) -> set[str]:
    """The nodes ``roots`` depend on (themselves included). ``sources``, when given, is filled
    with each reached node's linked source ids that exist in ``prompt``, for
    :func:`dependency_order`: one walk over the inputs instead of two."""
    seen: set[str] = set()
    stack = [r for r in roots if r in prompt]
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        linked = [
            v[0]
            for v in prompt[node_id]["inputs"].values()
            if type(v) in _SEQUENCES and len(v) == 2 and type(v[0]) is str and type(v[1]) is int and v[0] in prompt
        ]  # is_link inlined: this runs for every input of every node of a prompt
        if sources is not None:
            sources[node_id] = linked
        stack.extend(source for source in linked if source not in seen)
    return seen


def dependency_order(
    prompt: Prompt, nodes: set[str], sources: dict[str, list[str]] | None = None
) -> tuple[list[str], set[str]]:
    """Iterative depth-first post-order; returns the order and the nodes found on cycles.

    ``sources`` (from :func:`_reachable`) saves reading the links of ``nodes`` again."""
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
                linked = sources.get(node_id) if sources is not None else None
                if linked is None:
                    linked = [v[0] for v in prompt[node_id]["inputs"].values() if is_link(v)]
                it = iter([source for source in linked if source in nodes])
                stack[-1] = (node_id, it)
            child = next(it, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node_id] = 2
                order.append(node_id)
            elif state.get(child) == 1:
                on_cycle.update(path[path.index(child) :])
            elif child not in state:
                stack.append((child, None))
    return order, on_cycle


def _verdict_error(verdict: Any) -> dict[str, Any] | None:
    if verdict is True:
        return None
    if isinstance(verdict, BaseException):
        return _err(
            "exception_during_inner_validation",
            "Exception when validating node",
            f"validation raised {type(verdict).__name__}: {verdict}",
        )
    return _err("custom_validation_failed", "Custom validation failed for node", str(verdict))


def _missing_type(node_id: str, class_type: Any) -> dict[str, Any]:
    return _err(
        "missing_node_type",
        f"Node '{class_type}' not found. The custom node may not be installed.",
        f"Node ID '#{node_id}'",
        node_id=node_id,
        class_type=class_type,
    )


def _no_outputs() -> dict[str, Any]:
    return _err("prompt_no_outputs", "Prompt has no outputs", "Add an output node such as PreviewAny or SaveImage.")


#: how :meth:`_Check.check_value` treats a constant: passed as given (not a widget type),
#: converted and range-checked, or converted only (a ``VALIDATE_INPUTS`` names the input)
_PASS, _LIMITS, _CONVERT = 0, 1, 2


class _Check:
    """One validation pass, split so that node validators may be coroutines.

    :meth:`run` does everything that needs no awaiting and collects the validators'
    awaitable verdicts; :meth:`finish` folds their results in and decides which outputs
    may run. :func:`validate_prompt` and :func:`validate_prompt_async` differ only in how
    they wait for those awaitables.
    """

    def __init__(
        self,
        prompt: Prompt,
        registry: Mapping[str, NodeDefinition],
        targets: list[str] | None,
        memory_budget: int | None = None,
    ) -> None:
        self.prompt = prompt
        self.registry = registry
        self.targets = targets
        #: bytes one node may be estimated to allocate (engine/resources.py); None: not checked
        self.memory_budget = memory_budget
        self.node_errors: dict[str, dict[str, Any]] = {}
        # one definition and schema per class for this call: a schema with a file-list combo is
        # rebuilt (a folder scan) on each access, a registry may be a slow Mapping, and a node is
        # looked at again as the source of every link
        self.definitions: dict[str, NodeDefinition | None] = {}
        self.schemas: dict[str, NodeSchema] = {}
        self.plans: dict[str, tuple[tuple[str, bool, InputSpec, int], ...]] = {}
        self.pending: list[tuple[str, Awaitable[Any]]] = []
        self.early: ValidationResult | None = None
        self.missing_types: list[str] = []
        self.outputs: list[str] = []
        self.reachable: set[str] = set()
        #: linked source ids per reachable node (checking values never changes a link)
        self.sources: dict[str, list[str]] = {}
        self.normalised: Prompt = {}
        #: the registered definition of a class (``None`` for an unknown or non-string one) and
        #: its schema, looked up once per call. Functions over the two dicts, not methods: given
        #: to ``types`` as bound methods they made a reference cycle that kept the whole prompt
        #: alive until the cycle collector found it
        self.definition_of: Callable[[Any], NodeDefinition | None] = functools.partial(
            cached_definition, self.definitions, registry
        )
        self.schema_of: Callable[[str], NodeSchema] = functools.partial(cached_schema, self.schemas, registry)
        #: each node's own schema (dynamic inputs) and its templates' bindings
        self.types = NodeTypes(prompt, self.definition_of, self.schema_of)

    def add(self, node_id: str, error: dict[str, Any]) -> None:
        entry = self.node_errors.setdefault(
            node_id,
            {"errors": [], "dependent_outputs": [], "class_type": self.prompt.get(node_id, {}).get("class_type")},
        )
        entry["errors"].append(error)

    # -- the synchronous pass ---------------------------------------------------------------
    def run(self) -> None:
        self.find_missing_types()
        self.outputs = self.select_outputs()
        if not self.outputs and not self.node_errors:
            self.early = ValidationResult(self.prompt, [], [], _no_outputs())
            return
        self.reachable = _reachable(self.prompt, self.outputs, self.sources)
        for node_id in self.reachable:
            self.check_node(node_id)
        for node_id, node in self.prompt.items():
            self.normalised.setdefault(node_id, node)

    def find_missing_types(self) -> None:
        for node_id, node in self.prompt.items():
            class_type = node.get("class_type")
            if self.definition_of(class_type) is None:
                self.missing_types.append(node_id)
                self.add(node_id, _missing_type(node_id, class_type))

    def select_outputs(self) -> list[str]:
        if self.targets is not None:
            # ComfyUI's partial execution: only the listed nodes are outputs (unknown ids are
            # ignored), and an empty list selects nothing, which is an error. Weft also lets a
            # non-output node be a target ("run up to here").
            return [t for t in dict.fromkeys(self.targets) if t in self.prompt]
        return [
            node_id
            for node_id, node in self.prompt.items()
            if self.definition_of(node.get("class_type")) is not None and self.schema_of(node["class_type"]).output_node
        ]

    def plan_of(self, class_type: str, definition: NodeDefinition) -> tuple[tuple[str, bool, InputSpec, int], ...]:
        """``(name, required, spec, constant_check)`` per declared input of a class, once per
        call: hidden inputs and repeated names are dropped here, not for every node of a
        thousand-node prompt. ``constant_check`` is one of the ``_PASS``/``_LIMITS``/``_CONVERT``."""
        plan = self.plans.get(class_type)
        if plan is None:
            plan = self.plans[class_type] = _plan(self.schema_of(class_type), definition)
        return plan

    def check_node(self, node_id: str) -> None:
        """Check every declared input of one node, then ask the node's own validator."""
        node = self.prompt[node_id]
        class_type = node.get("class_type")
        definition = self.definition_of(class_type)
        if definition is None:
            self.normalised[node_id] = node
            return
        inputs = dict(node["inputs"])
        constants: dict[str, Any] = {}
        input_types: dict[str, str] = {}
        failed = False
        own = self.types.own_schema(node_id) if self.types.per_node.get(class_type, True) else None
        plan = self.plan_of(class_type, definition) if own is None else _plan(own, definition)
        for name, required, spec, check in plan:
            if name not in inputs:
                if required:
                    self.add(
                        node_id,
                        _err("required_input_missing", "Required input is missing", name, input_name=name),
                    )
                    failed = True
                continue
            value = inputs[name]
            if is_link(value):
                failed = not self.check_link(node_id, definition, spec, value, input_types) or failed
                continue
            ok, value = self.check_value(node_id, spec, value, check)
            if not ok:
                failed = True
                continue
            inputs[name] = constants[name] = value
        self.normalised[node_id] = {**node, "inputs": inputs}
        if not failed:
            self.ask_validator(node_id, definition, constants, input_types)

    def check_link(
        self, node_id: str, definition: NodeDefinition, spec: InputSpec, link: list[Any], input_types: dict[str, str]
    ) -> bool:
        """Whether ``link`` names an existing output of a type ``spec`` accepts (recorded in
        ``input_types``). A link to a node of unknown class fails without an error of its
        own: that node already has one."""
        source_id, index = link
        source = self.prompt.get(source_id)
        if source is None:
            self.add(
                node_id,
                _err(
                    "bad_linked_input",
                    "Linked node does not exist",
                    f"{spec.name}: node '{source_id}' is not in the prompt",
                    input_name=spec.name,
                    received_value=link,
                ),
            )
            return False
        if self.definition_of(source.get("class_type")) is None:
            return False
        source_outputs = self.schema_of(source["class_type"]).outputs
        if not 0 <= index < len(source_outputs):
            self.add(
                node_id,
                _err(
                    "bad_linked_input",
                    "Linked output does not exist",
                    f"{spec.name}: node '{source_id}' ({source['class_type']}) has "
                    f"{len(source_outputs)} outputs, index {index} requested",
                    input_name=spec.name,
                    received_value=link,
                ),
            )
            return False
        output = source_outputs[index]
        produced = output.type if output.template is None else self.types.produced(source_id, output)
        input_types[spec.name] = produced
        if types_compatible(produced, spec.type):
            bound = None if spec.template is None else self.types.disagreement(node_id, spec, produced)
            if bound is None:
                return True
            self.add(node_id, _template_mismatch(spec, produced, *bound))
            return False
        skips_links = getattr(definition, "skips_link_type_check", None)
        if skips_links and skips_links(spec.name):
            return True
        self.add(
            node_id,
            _err(
                "return_type_mismatch",
                "Return type mismatch between linked nodes",
                f"{spec.name}, received_type({produced}) mismatch input_type({spec.type})",
                input_name=spec.name,
                received_type=produced,
                input_type=spec.type,
            ),
        )
        return False

    def check_value(self, node_id: str, spec: InputSpec, value: Any, check: int) -> tuple[bool, Any]:
        """``(ok, value)`` for a constant input: widget values converted and range-checked."""
        if isinstance(value, dict) and "__value__" in value:
            # ComfyUI's wrapper for a constant that is itself a list (a bare list is a link)
            value = value["__value__"]
        if check == _PASS:
            # a constant for any other type (BOOL, "IMAGE,FLOAT", a custom type) is passed as
            # given, as ComfyUI does; the node's own validation may still refuse it
            return True, value
        value, error = check_constant(spec, value, check == _LIMITS)
        if error is not None:
            self.add(node_id, error)
            return False, value
        return True, value

    def ask_validator(
        self, node_id: str, definition: NodeDefinition, constants: dict[str, Any], input_types: dict[str, str]
    ) -> None:
        """The node's own validation; an awaitable verdict is kept for :meth:`finish`."""
        try:
            verdict = definition.validate(constants, input_types)
        except Exception as exc:  # a buggy validator must not take the request down
            verdict = exc
        if verdict is True:
            return
        if inspect.isawaitable(verdict):
            self.pending.append((node_id, verdict))
            return
        error = _verdict_error(verdict)
        if error is not None:
            self.add(node_id, error)

    # -- after the awaitable verdicts --------------------------------------------------------
    def finish(self, verdicts: list[Any]) -> ValidationResult:
        if self.early is not None:
            return self.early
        for (node_id, _), verdict in zip(self.pending, verdicts, strict=True):
            error = _verdict_error(verdict)
            if error is not None:
                self.add(node_id, error)
        order = self.check_graph()
        if not self.node_errors:  # the common case: no per-output walk (a thousand outputs share upstreams)
            return ValidationResult(self.normalised, self.outputs, order, None, self.node_errors)
        good = self.valid_outputs()
        if good and not self.missing_types:
            needed = _reachable(self.normalised, good)
            return ValidationResult(self.normalised, good, [n for n in order if n in needed], None, self.node_errors)
        return ValidationResult(self.normalised, self.outputs, order, self.refusal(), self.node_errors)

    def check_graph(self) -> list[str]:
        """The dependency order; cycles and nodes over the memory budget become node errors."""
        order, on_cycle = dependency_order(self.normalised, self.reachable, self.sources)
        for node_id in sorted(on_cycle):
            self.add(
                node_id,
                _err(
                    "dependency_cycle",
                    "Dependency cycle detected",
                    f"node {node_id} depends on itself through its inputs",
                ),
            )
        if self.memory_budget and not on_cycle:
            valid = [n for n in order if n not in self.node_errors]
            for node_id, error in estimate_prompt(self.normalised, valid, self.registry, self.memory_budget).items():
                self.add(node_id, error)
        return order

    def valid_outputs(self) -> list[str]:
        """The outputs with no error upstream; each error learns which outputs it stops."""
        good: list[str] = []
        for output_id in self.outputs:
            bad = [node_id for node_id in _reachable(self.normalised, [output_id]) if node_id in self.node_errors]
            for node_id in bad:
                self.node_errors[node_id]["dependent_outputs"].append(output_id)
            if not bad:
                good.append(output_id)
        return good

    def refusal(self) -> dict[str, Any]:
        """The prompt-level error when nothing may run."""
        if self.missing_types:
            first = self.missing_types[0]
            return _missing_type(first, self.prompt[first].get("class_type"))
        if not self.outputs:
            return _no_outputs()
        count = sum(len(e["errors"]) for e in self.node_errors.values())
        return _err(
            "prompt_outputs_failed_validation",
            "Prompt outputs failed validation",
            f"{count} problem(s) in {len(self.node_errors)} node(s)",
        )


def _plan(schema: NodeSchema, definition: NodeDefinition) -> tuple[tuple[str, bool, InputSpec, int], ...]:
    entries = []
    seen: set[str] = set()
    for spec in schema.inputs:
        if spec.kind == "hidden" or spec.name in seen:
            continue
        seen.add(spec.name)
        if spec.type not in WIDGET_TYPES:
            check = _PASS
        else:
            check = _CONVERT if definition.skips_default_validation(spec.name) else _LIMITS
        entries.append((spec.name, spec.kind == "required", spec, check))
    return tuple(entries)


def _template_mismatch(spec: InputSpec, produced: str, bound: str, by: str) -> dict[str, Any]:
    return _err(
        "return_type_mismatch",
        "Return type mismatch between linked nodes",
        f"{spec.name}, received_type({produced}) mismatch input_type({bound}): "
        f"template '{spec.template}' is bound to {bound} by input '{by}'",
        input_name=spec.name,
        received_type=produced,
        input_type=bound,
    )


async def _gather(awaitables: list[Awaitable[Any]]) -> list[Any]:
    return list(await asyncio.gather(*awaitables, return_exceptions=True))


def validate_prompt(
    prompt: Prompt,
    registry: Mapping[str, NodeDefinition],
    targets: list[str] | None = None,
    *,
    memory_budget: int | None = None,
) -> ValidationResult:
    """Validate ``prompt`` (already normalised) for the given output targets or all outputs.

    ``targets=None`` means every output node; ``[]`` selects nothing (an error, as in
    ComfyUI). Validators that return awaitables are run to completion here, on a private
    event loop (on a helper thread when this thread already runs one); code on an event
    loop should call :func:`validate_prompt_async` instead.
    """
    check = _Check(prompt, registry, targets, memory_budget)
    check.run()
    verdicts: list[Any] = []
    if check.pending:
        awaitables = [a for _, a in check.pending]
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            verdicts = asyncio.run(_gather(awaitables))
        else:
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="weft-validate") as pool:
                verdicts = pool.submit(asyncio.run, _gather(awaitables)).result()
    return check.finish(verdicts)


#: prompts with more nodes than this are checked on a worker thread, not on the event loop
OFFLOAD_NODES = 2000


async def validate_prompt_async(
    prompt: Prompt,
    registry: Mapping[str, NodeDefinition],
    targets: list[str] | None = None,
    *,
    memory_budget: int | None = None,
) -> ValidationResult:
    """:func:`validate_prompt` for code running on an event loop (the server's /prompt).

    Async validators are awaited on the calling loop, as ComfyUI awaits an async
    ``VALIDATE_INPUTS``; a large prompt's synchronous part runs on a worker thread so the
    loop keeps serving other clients.
    """
    check = _Check(prompt, registry, targets, memory_budget)
    if len(prompt) > OFFLOAD_NODES:
        await asyncio.get_running_loop().run_in_executor(None, check.run)
    else:
        check.run()
    verdicts = await _gather([a for _, a in check.pending]) if check.pending else []
    return check.finish(verdicts)
