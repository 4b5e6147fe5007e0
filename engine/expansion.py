"""Node expansion: a node returns a sub-graph that runs in its place.

The sub-graph's nodes join the run (their ids prefixed with the expanding node's, unless the
node says they are already unique), get signatures like any node, and the expanding node
finishes when the sub-graph's outputs it links to (and its output nodes) are done.
"""

from __future__ import annotations

from typing import Any

from .prompt import is_link
from .schedule import EXPANDING, RunNode, Schedule
from .schema import NodeResult
from .signature import compute_signatures
from .validation import dependency_order


class ExpansionLimitError(RuntimeError):
    """A node's expansion went past the executor's depth or size limit."""


def merge_ui(target: dict[str, Any], ui: dict[str, Any]) -> None:
    """Fold one call's UI output into ``target``: lists are concatenated, other values replaced."""
    for key, value in ui.items():
        if key in target and isinstance(target[key], list) and isinstance(value, list):
            target[key] = target[key] + value
        else:
            target[key] = value


def check_limits(schedule: Schedule, node: RunNode, results: list[NodeResult], max_depth: int, max_nodes: int) -> None:
    """Refuse an expansion past ``max_depth`` nested expansions or ``max_nodes`` nodes in the run:
    a node that expands into itself, or into ever larger graphs, would otherwise run until
    memory is gone."""
    depth = schedule.depth(node)
    if depth > max_depth:
        raise ExpansionLimitError(
            f"node expansion nested {depth} levels deep; the limit is {max_depth} (does the node expand into itself?)"
        )
    size = len(schedule.nodes) + sum(len(r.expand) for r in results if r.expand)
    if size > max_nodes:
        raise ExpansionLimitError(f"node expansion would make the run {size} nodes; the limit is {max_nodes}")


def _id_mapping(schedule: Schedule, node: RunNode, result: NodeResult, call_index: int, calls: int) -> dict[str, str]:
    assert result.expand is not None
    if result.expand_ids_global and not any(str(child) in schedule.nodes for child in result.expand):
        return {str(child): str(child) for child in result.expand}
    prefix = f"{node.id}." if calls == 1 else f"{node.id}.{call_index}."
    return {str(child): prefix + str(child) for child in result.expand}


def splice(schedule: Schedule, node: RunNode, results: list[NodeResult]) -> list[str]:
    """Add every call's sub-graph to the run and point the results' output links at it.

    Returns the new node ids. Raises ``LookupError`` for a sub-graph node of an unknown
    class and ``RuntimeError`` for a sub-graph with a cycle.
    """
    added: list[str] = []
    for call_index, result in enumerate(results):
        if not result.expand:
            continue
        mapping = _id_mapping(schedule, node, result, call_index, len(results))

        def remap(value: Any, mapping: dict[str, str] = mapping) -> Any:
            if is_link(value) and value[0] in mapping:
                return [mapping[value[0]], value[1]]
            return value

        for child, raw in result.expand.items():
            if raw.get("class_type") not in schedule.registry:
                raise LookupError(f"expanded node {child!r} has unknown class {raw.get('class_type')!r}")
            new_id = mapping[str(child)]
            inputs = {name: remap(v) for name, v in raw.get("inputs", {}).items()}
            shown = raw.get("override_display_id")
            display = (
                schedule.nodes[shown].display if isinstance(shown, str) and shown in schedule.nodes else node.display
            )
            schedule.add(new_id, {**raw, "inputs": inputs}, display, node.id)
            added.append(new_id)
        if result.outputs is not None:
            result.outputs = tuple(remap(v) for v in result.outputs)
    raw_nodes = {nid: n.raw for nid, n in schedule.nodes.items()}
    order, on_cycle = dependency_order(raw_nodes, set(added))
    if on_cycle:
        raise RuntimeError(f"expanded graph has a cycle through {sorted(on_cycle)}")
    schedule.signatures.update(compute_signatures(raw_nodes, order, schedule.registry, schedule.signatures))
    return added


def await_subgraph(schedule: Schedule, node: RunNode, results: list[NodeResult], added: list[str]) -> None:
    """Make ``node`` wait for the sub-graph nodes its outputs link to and for its output nodes.

    The results (their UI output included) are kept for :func:`expanded_result`."""
    node.state = EXPANDING
    node.pending_result = results
    node.outputs = None
    stack: list[str] = []
    for result in results:
        for value in result.outputs or ():
            if is_link(value) and value[0] in schedule.nodes:
                schedule.wait_on(node, value[0], stack)
    for new_id in added:
        if schedule.nodes[new_id].schema.output_node:
            schedule.wait_on(node, new_id, stack)
    for source_id in stack:
        schedule.request(source_id)
    if node.waiting == 0 and node.state == EXPANDING:
        schedule.ready.append(node.id)


def expanded_result(schedule: Schedule, node: RunNode) -> tuple[list[list[Any]], dict[str, Any] | None]:
    """The expanding node's outputs (looked up through its links into the sub-graph) and UI."""
    outputs: list[list[Any]] = [[] for _ in node.schema.outputs]
    ui: dict[str, Any] = {}
    for result in node.pending_result or []:
        if result.ui:
            merge_ui(ui, result.ui)
        for index, value in enumerate(result.outputs or ()):
            if index >= len(outputs):
                break
            if is_link(value) and value[0] in schedule.nodes:
                outputs[index].extend(schedule.nodes[value[0]].outputs[value[1]])  # type: ignore[index]
            elif node.schema.outputs[index].is_list and isinstance(value, (list, tuple)):
                outputs[index].extend(value)
            else:
                outputs[index].append(value)
    node.pending_result = None
    return outputs, ui or None
