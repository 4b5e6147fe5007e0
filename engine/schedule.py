"""Which nodes of a run may start: dependency counts, not a precomputed order.

A node waits on the nodes its (evaluated) inputs link to and becomes ready when the count
reaches zero, so a run costs time linear in the nodes it touches. Lazy inputs, node
expansion and async nodes all reduce to "wait on more nodes": a lazy input that a node asks
for, the sub-graph an expanding node returns, a coroutine still in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .cache import CacheEntry, OutputCache
from .prompt import is_link
from .schema import NodeDefinition, NodeResult, NodeSchema, own_schema

NEW, WAITING, RUNNING, EXPANDING, DONE = range(5)


@dataclass(slots=True)
class RunNode:
    """One node of one run, with its place in the schedule."""

    id: str
    raw: dict[str, Any]
    definition: NodeDefinition
    #: read once per run: a schema with a file-list combo is rebuilt (a folder scan) per access;
    #: the node's own where its inputs depend on its values (:func:`engine.schema.own_schema`)
    schema: NodeSchema
    display: str
    parent: str | None = None
    state: int = NEW
    waiting: int = 0
    dependents: list[str] = field(default_factory=list)
    outputs: list[list[Any]] | None = None
    evaluated_lazy: set[str] = field(default_factory=set)
    instance: Any = None
    pending_result: list[NodeResult] | None = None


class Schedule:
    """The run's nodes, the queue of those ready to start, and who waits on whom.

    ``on_cached`` finishes a node whose signature hits the cache: it never runs, but its
    dependents are released and clients are told, as for a node that ran.
    """

    def __init__(
        self,
        registry: Mapping[str, NodeDefinition],
        cache: OutputCache,
        signatures: dict[str, bytes],
        on_cached: Callable[[RunNode, CacheEntry], None],
    ) -> None:
        self.registry = registry
        self.cache = cache
        self.signatures = signatures
        self.on_cached = on_cached
        self.nodes: dict[str, RunNode] = {}
        self.ready: deque[str] = deque()

    def add(self, node_id: str, raw: dict[str, Any], display: str, parent: str | None = None) -> RunNode:
        definition = self.registry[raw["class_type"]]
        schema = own_schema(definition, raw["inputs"])
        node = RunNode(node_id, raw, definition, definition.schema if schema is None else schema, display, parent)
        self.nodes[node_id] = node
        return node

    def request(self, root: str) -> None:
        """Make ``root`` and everything it needs run (or come from the cache)."""
        nodes, signatures, cache = self.nodes, self.signatures, self.cache
        stack = [root]
        while stack:
            node_id = stack.pop()
            node = nodes[node_id]
            if node.state != NEW:
                continue
            signature = signatures.get(node_id)
            entry = cache.get(signature) if signature is not None else None
            if entry is not None:
                self.on_cached(node, entry)
                continue
            node.state = WAITING
            lazy = node.schema.lazy_inputs
            for name, value in node.raw["inputs"].items():
                if is_link(value) and (name not in lazy or name in node.evaluated_lazy):
                    self.wait_on(node, value[0], stack)
            if node.waiting == 0:
                self.ready.append(node_id)

    def wait_on(self, node: RunNode, source_id: str, stack: list[str]) -> None:
        """Make ``node`` wait for ``source_id``; a source not yet requested goes on ``stack``."""
        source = self.nodes[source_id]
        if source.state == DONE:
            return
        node.waiting += 1
        source.dependents.append(node.id)
        if source.state == NEW:
            stack.append(source_id)

    def done(self, node: RunNode, outputs: list[list[Any]]) -> None:
        """Store the node's outputs; its dependents wait on one node fewer."""
        node.state = DONE
        node.outputs = outputs
        nodes, ready = self.nodes, self.ready
        for dependent_id in node.dependents:
            dependent = nodes[dependent_id]
            dependent.waiting -= 1
            if dependent.waiting == 0:
                ready.append(dependent_id)
        node.dependents = []

    def unevaluated(self, node: RunNode) -> frozenset[str]:
        """Lazy inputs whose value is not available yet (their source has not run)."""
        inputs = node.raw["inputs"]
        return frozenset(
            name
            for name in node.schema.lazy_inputs
            if name not in node.schema.raw_link_inputs
            and is_link(inputs.get(name))
            and self.nodes[inputs[name][0]].state != DONE
        )

    def request_lazy(self, node: RunNode, wanted: set[str]) -> bool:
        """Evaluate the lazy inputs the node asked for; ``True`` when it must wait for them.

        ``False`` means they were all available at once (from the cache, or already run for
        another node): the caller gathers again and asks the node again with the values.
        """
        stack: list[str] = []
        for name in sorted(wanted):
            node.evaluated_lazy.add(name)
            self.wait_on(node, node.raw["inputs"][name][0], stack)
        for source_id in stack:
            self.request(source_id)
        if node.waiting == 0:
            return False
        node.state = WAITING
        return True

    def depth(self, node: RunNode) -> int:
        """How many expansions deep ``node`` was made (1 for a node of the prompt itself)."""
        depth, parent = 1, node.parent
        while parent is not None and parent in self.nodes:
            depth += 1
            parent = self.nodes[parent].parent
        return depth

    def root_of(self, node_id: str) -> str:
        """The node of the prompt that ``node_id`` was expanded from (itself if none)."""
        shown = self.nodes.get(node_id)
        real, parent = node_id, shown.parent if shown is not None else None
        while parent is not None:
            real = parent
            above = self.nodes.get(parent)
            parent = above.parent if above is not None else None
        return real

    def unfinished(self, node_ids: list[str]) -> list[str]:
        return [n for n in node_ids if self.nodes[n].state != DONE]
