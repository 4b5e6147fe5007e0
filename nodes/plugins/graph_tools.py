"""Node expansion helpers in ComfyUI's shape: ``GraphBuilder`` and ``DynamicPrompt``.

A classic node that expands returns ``{"result": (links...), "expand": graph}`` where the
graph was built with ``GraphBuilder``. The adapter sets the builder's default prefix from
the node id and call index before every call, as ComfyUI does, so the ids are unique in
the whole prompt and Weft's executor splices the sub-graph in under those ids unchanged
(``NodeResult.expand_ids_global``): a loop that re-expands itself keeps ids of one prefix
per level instead of growing a second copy of it each time.

These live here, not in ``compat/``, because the classic adapter needs them even when a
test drives it without the compatibility folder on ``sys.path``; ``compat`` re-exports them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from engine.prompt import is_link as _engine_is_link


def is_link(obj: Any) -> bool:
    """``["node id", output index]``; ComfyUI also accepts a float index, so do we."""
    if isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], str) and isinstance(obj[1], float):
        return obj[1].is_integer()
    return _engine_is_link(obj)


class GraphNode:
    """One node of a graph under construction; ``out(i)`` is a link to its i-th output."""

    def __init__(self, node_id: str, class_type: str, inputs: dict[str, Any]) -> None:
        self.id = node_id
        self.class_type = class_type
        self.inputs = inputs
        self.override_display_id: str | None = None

    def out(self, index: int) -> list[Any]:
        return [self.id, index]

    def set_input(self, key: str, value: Any) -> None:
        """Set an input; ``None`` removes it (ComfyUI's convention for "unconnected")."""
        if value is None:
            self.inputs.pop(key, None)
        else:
            self.inputs[key] = value

    def get_input(self, key: str) -> Any:
        return self.inputs.get(key)

    def set_override_display_id(self, override_display_id: str) -> None:
        self.override_display_id = override_display_id

    def serialize(self) -> dict[str, Any]:
        data: dict[str, Any] = {"class_type": self.class_type, "inputs": dict(self.inputs)}
        if self.override_display_id is not None:
            data["override_display_id"] = self.override_display_id
        return data


class GraphBuilder:
    """Build an API-format sub-graph for node expansion.

    ``node(class_type, id=None, **inputs)`` adds (or returns the existing) node; inputs may be
    constants or links from ``other.out(i)``. ``finalize()`` returns the dict to put under
    ``"expand"``.
    """

    _default_prefix_root = ""
    _default_prefix_call_index = 0
    _default_prefix_graph_index = 0

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix if prefix is not None else GraphBuilder.alloc_prefix()
        self.nodes: dict[str, GraphNode] = {}
        self.id_gen = 1

    @classmethod
    def set_default_prefix(cls, prefix_root: str, call_index: int, graph_index: int = 0) -> None:
        cls._default_prefix_root = prefix_root
        cls._default_prefix_call_index = call_index
        cls._default_prefix_graph_index = graph_index

    @classmethod
    def alloc_prefix(
        cls, root: str | None = None, call_index: int | None = None, graph_index: int | None = None
    ) -> str:
        """A prefix unique per (node, call, builder): several builders in one call never clash."""
        if root is None:
            root = cls._default_prefix_root
        if call_index is None:
            call_index = cls._default_prefix_call_index
        if graph_index is None:
            graph_index = cls._default_prefix_graph_index
        cls._default_prefix_graph_index += 1
        return f"{root}.{call_index}.{graph_index}."

    def node(self, class_type: str, id: str | None = None, **kwargs: Any) -> GraphNode:
        if id is None:
            id = str(self.id_gen)
            self.id_gen += 1
        node_id = self.prefix + str(id)
        existing = self.nodes.get(node_id)
        if existing is not None:
            return existing
        node = GraphNode(node_id, class_type, {k: v for k, v in kwargs.items() if v is not None})
        self.nodes[node_id] = node
        return node

    def lookup_node(self, id: str) -> GraphNode | None:
        return self.nodes.get(self.prefix + str(id))

    def finalize(self) -> dict[str, dict[str, Any]]:
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}

    def replace_node_output(self, node_id: str, index: int, new_value: Any) -> None:
        """Re-point every input linked to ``node_id``'s output ``index`` at ``new_value``."""
        full_id = self.prefix + str(node_id)
        for node in self.nodes.values():
            for key, value in list(node.inputs.items()):
                if is_link(value) and value[0] == full_id and value[1] == index:
                    node.set_input(key, new_value)

    def remove_node(self, id: str) -> None:
        self.nodes.pop(self.prefix + str(id), None)


def add_graph_prefix(
    graph: Mapping[str, Any], outputs: tuple[Any, ...], prefix: str
) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """Prefix every id of an API-format graph (and links to it in ``outputs``)."""
    mapping = {node_id: prefix + node_id for node_id in graph}

    def fix(value: Any) -> Any:
        return [mapping[value[0]], value[1]] if is_link(value) and value[0] in mapping else value

    new_graph = {
        mapping[node_id]: {**node, "inputs": {k: fix(v) for k, v in node.get("inputs", {}).items()}}
        for node_id, node in graph.items()
    }
    return new_graph, tuple(fix(v) for v in outputs)


class NodeNotFoundError(KeyError):
    pass


class DynamicPrompt:
    """The running prompt, expanded nodes included, as ComfyUI's ``DYNPROMPT`` hidden input.

    Weft's executor hands nodes a plain ``{id: node}`` snapshot; this wraps it with the
    methods loop and flow-control packs call (``get_node``, ``has_node``, ...). Ephemeral
    nodes added through it are visible to the caller only: the engine learns about new
    nodes from the ``expand`` result, never from this object.
    """

    def __init__(self, nodes: Mapping[str, Any] | None) -> None:
        self._original: dict[str, Any] = dict(nodes or {})
        self._ephemeral: dict[str, Any] = {}
        self._parents: dict[str, str] = {}
        self._display: dict[str, str] = {}

    def get_node(self, node_id: str) -> dict[str, Any]:
        if node_id in self._ephemeral:
            return self._ephemeral[node_id]
        if node_id in self._original:
            return self._original[node_id]
        raise NodeNotFoundError(f"node {node_id} not found")

    def has_node(self, node_id: str) -> bool:
        return node_id in self._original or node_id in self._ephemeral

    def add_ephemeral_node(self, node_id: str, node_info: dict[str, Any], parent_id: str, display_id: str) -> None:
        self._ephemeral[node_id] = node_info
        self._parents[node_id] = parent_id
        self._display[node_id] = display_id

    def get_real_node_id(self, node_id: str) -> str:
        while node_id in self._parents:
            node_id = self._parents[node_id]
        return node_id

    def get_parent_node_id(self, node_id: str) -> str | None:
        return self._parents.get(node_id)

    def get_display_node_id(self, node_id: str) -> str:
        while node_id in self._display and self._display[node_id] != node_id:
            node_id = self._display[node_id]
        return node_id

    def all_node_ids(self) -> set[str]:
        return set(self._original) | set(self._ephemeral)

    def get_original_prompt(self) -> dict[str, Any]:
        return self._original

    def __iter__(self) -> Iterator[str]:
        return iter(self.all_node_ids())
