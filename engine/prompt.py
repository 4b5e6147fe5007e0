"""The API-format prompt: ``{"id": {"class_type": ..., "inputs": {name: value | link}}}``."""

from __future__ import annotations

from typing import Any

Prompt = dict[str, dict[str, Any]]


def is_link(value: Any) -> bool:
    """A link is ``[source_id, output_index]`` with a string id and an int index."""
    return (
        (type(value) is list or type(value) is tuple)
        and len(value) == 2
        and type(value[0]) is str
        and type(value[1]) is int
    )


#: deepest nesting of one input value (a list of dicts of lists...); widget values are scalars,
#: so this only stops values that would break whoever serialises the prompt later (history)
MAX_INPUT_DEPTH = 32


def value_depth(value: Any, limit: int = MAX_INPUT_DEPTH) -> int:
    """How deeply ``value`` nests lists and dicts (a scalar is 0), counted no further than
    ``limit + 1``; iterative, so a pathological value cannot exhaust the stack."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, (list, tuple)) else None
        if children is None:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
        stack.extend((child, depth) for child in children if isinstance(child, (dict, list, tuple)))
    return deepest


def normalise_prompt(raw: Any) -> Prompt:
    """Return the prompt with string ids, or raise ``ValueError`` with a client-facing reason.

    ComfyUI clients sometimes send numeric link ids (``[5, 0]``); they are accepted and turned
    into strings so the rest of the engine sees one form. A ``class_type`` that is not a string
    (a list is not even hashable) and input values nested deeper than :data:`MAX_INPUT_DEPTH`
    are refused here, naming the node and the input.
    """
    if not isinstance(raw, dict):
        raise ValueError("the prompt must be a JSON object mapping node ids to nodes")
    prompt: Prompt = {}
    for node_id, node in raw.items():
        if not isinstance(node, dict):
            raise ValueError(f"node {node_id!r} must be an object with class_type and inputs")
        class_type = node.get("class_type")
        if class_type is not None and not isinstance(class_type, str):
            raise ValueError(
                f"node {node_id!r}: 'class_type' must be a string naming a node class, got {type(class_type).__name__}"
            )
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            raise ValueError(f"node {node_id!r}: 'inputs' must be an object")
        fixed = dict(inputs)
        for name, value in inputs.items():
            kind = type(value)
            if kind in _PLAIN or (kind is list and len(value) == 2 and type(value[0]) is str and type(value[1]) is int):
                continue  # a widget value or a link: nearly every input, so no call for them
            fixed[name] = _input_value(node_id, name, value)
        prompt[str(node_id)] = {**node, "inputs": fixed}
    return prompt


#: input values that need neither a depth check nor an id fix
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _input_value(node_id: Any, name: str, value: Any) -> Any:
    """One input value as the engine takes it: a numeric link id as a string, depth checked."""
    if type(value) is list and len(value) == 2 and type(value[1]) is int:
        first = type(value[0])
        if first is str:  # a link, the common case: nothing to walk
            return value
        if first is int:
            return [str(value[0]), value[1]]
    if isinstance(value, (dict, list)) and value_depth(value) > MAX_INPUT_DEPTH:
        raise ValueError(
            f"node {node_id!r}: input {name!r} is nested more than {MAX_INPUT_DEPTH} "
            "levels deep; input values are numbers, strings, links or small lists"
        )
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    ):
        return [str(value[0]), value[1]]
    return value
