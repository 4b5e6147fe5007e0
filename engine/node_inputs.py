"""What a node is called with: its input values, hidden inputs, and one call per list element.

List semantics follow ComfyUI: a node is called once per list element (inputs shorter than
the longest repeat their last item), unless it takes whole lists (``input_is_list``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .blocker import ExecutionBlocker
from .prompt import Prompt, is_link
from .schedule import DONE, RunNode

#: hidden inputs the engine fills in; others (a pack may declare any name hidden) are read
#: from the prompt like ordinary inputs, as ComfyUI does
HIDDEN_KINDS = frozenset(
    {"UNIQUE_ID", "PROMPT", "EXTRA_PNGINFO", "DYNPROMPT", "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG"}
)


def gather(
    node: RunNode, nodes: Mapping[str, RunNode], prompt: Prompt, extra_data: Mapping[str, Any]
) -> dict[str, list[Any]]:
    """Every input as a list of values (ComfyUI's list semantics).

    A lazy input whose source has not run is ``[None]``; a ``rawLink`` input is the link
    itself. Linked inputs the node does not declare are passed (variadic nodes read them
    from ``**kwargs``); constants it does not declare are not, as in ComfyUI.
    """
    values: dict[str, list[Any]] = {}
    schema = node.schema
    lazy, raw_links, declared = schema.lazy_inputs, schema.raw_link_inputs, schema.input_names
    for name, value in node.raw["inputs"].items():
        if is_link(value):
            if name in raw_links:
                values[name] = [value]
                continue
            source = nodes[value[0]]
            if source.state != DONE:
                if name in lazy:
                    values[name] = [None]
                    continue
                raise RuntimeError(f"input {name} of node {node.id} is not ready")
            values[name] = source.outputs[value[1]]  # type: ignore[index]
        elif name in declared:
            values[name] = [value]
    for spec in schema.inputs:
        if spec.kind == "hidden" and spec.type in HIDDEN_KINDS:
            values[spec.name] = [hidden_value(spec.type, node, nodes, prompt, extra_data)]
    return values


def hidden_value(
    kind: str, node: RunNode, nodes: Mapping[str, RunNode], prompt: Prompt, extra_data: Mapping[str, Any]
) -> Any:
    if kind == "UNIQUE_ID":
        return node.id
    if kind == "PROMPT":
        return prompt
    if kind == "EXTRA_PNGINFO":
        return extra_data.get("extra_pnginfo")
    if kind == "DYNPROMPT":
        return {nid: n.raw for nid, n in nodes.items()}
    return extra_data.get(kind.lower())  # AUTH_TOKEN_COMFY_ORG, API_KEY_COMFY_ORG


def call_args(node: RunNode, values: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The arguments of each call: one call per element of the longest input list."""
    if node.schema.input_is_list:
        return [values]
    if not values:
        return [{}]
    lengths = [len(v) for v in values.values()]
    if min(lengths) == 0:
        return []
    count = max(lengths)
    if count == 1:
        return [{k: v[0] for k, v in values.items()}]
    return [{k: v[min(i, len(v) - 1)] for k, v in values.items()} for i in range(count)]


def blocker_in(args: Mapping[str, Any], input_is_list: bool) -> ExecutionBlocker | None:
    """The blocker among one call's arguments (among the list items for a list node)."""
    for value in args.values():
        if isinstance(value, ExecutionBlocker):
            return value
        if input_is_list and isinstance(value, list):
            for item in value:
                if isinstance(item, ExecutionBlocker):
                    return item
    return None
