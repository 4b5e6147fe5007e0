"""Run a validated prompt: demand-driven, each node at most once, cache first.

Scheduling is by dependency counts: a node waits on the nodes its (evaluated) inputs link
to and becomes ready when the count reaches zero, so a run costs time linear in the nodes
it touches. Lazy inputs, node expansion and async nodes all reduce to "wait on more nodes":
a lazy input that a node asks for, the sub-graph an expanding node returns, a coroutine
still in flight.

List semantics follow ComfyUI: a node is called once per list element (inputs shorter than
the longest repeat their last item), and an :class:`ExecutionBlocker` among the elements
blocks only the calls that receive it; the blocked calls contribute a blocker to each
output in their place.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import time
import traceback
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .blocker import ExecutionBlocker
from .cache import OutputCache
from .context import EventSink, ExecutionContext, Interrupted, InterruptFlag, reset_current, set_current
from .prompt import Prompt, is_link
from .schema import NodeDefinition, NodeResult, NodeSchema
from .signature import compute_signatures
from .validation import dependency_order, validate_prompt

NEW, WAITING, RUNNING, EXPANDING, DONE = range(5)

#: hidden inputs the engine fills in; others (a pack may declare any name hidden) are read
#: from the prompt like ordinary inputs, as ComfyUI does
HIDDEN_KINDS = frozenset({"UNIQUE_ID", "PROMPT", "EXTRA_PNGINFO", "DYNPROMPT", "AUTH_TOKEN_COMFY_ORG",
                          "API_KEY_COMFY_ORG"})


def now_ms() -> int:
    return int(time.time() * 1000)


class ExpansionLimitError(RuntimeError):
    """A node's expansion went past the executor's depth or size limit."""


class NodeError(Exception):
    """A node failed; carries the ComfyUI-shaped ``execution_error`` payload."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("exception_message", "node failed"))
        self.payload = payload


@dataclass
class RunResult:
    prompt_id: str
    status_str: str  # "success" | "error"
    completed: bool
    #: ui outputs per node id, as in ComfyUI's history ``outputs``
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: list[list[Any]] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    interrupted: bool = False
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class _Node:
    id: str
    raw: dict[str, Any]
    definition: NodeDefinition
    #: read once per run: a schema with a file-list combo is rebuilt (a folder scan) per access
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


def _merge_ui(target: dict[str, Any], ui: Mapping[str, Any]) -> None:
    for key, value in ui.items():
        if key in target and isinstance(target[key], list) and isinstance(value, list):
            target[key] = target[key] + value
        else:
            target[key] = value


class _Run:
    def __init__(
        self,
        executor: Executor,
        prompt_id: str,
        prompt: Prompt,
        emit: EventSink,
        interrupt: InterruptFlag,
        extra_data: dict[str, Any],
    ) -> None:
        self.ex = executor
        self.prompt_id = prompt_id
        self.prompt = prompt
        self.emit_raw = emit
        self.interrupt = interrupt
        self.extra_data = extra_data
        self.nodes: dict[str, _Node] = {}
        self.signatures: dict[str, bytes] = {}
        self.ready: deque[str] = deque()
        self.tasks: dict[asyncio.Task, str] = {}
        self.result = RunResult(prompt_id, "success", True)
        self.executing_shown = False
        #: ComfyUI's ``progress_state``: every node that started, with its state and progress.
        #: One live dict: each event carries it, and a consumer that queues events (the server)
        #: sends its state at the time of sending, so a long run is not quadratic in nodes.
        self.progress_nodes: dict[str, dict[str, Any]] = {}
        self.progress_payload = {"prompt_id": prompt_id, "nodes": self.progress_nodes}
        self.reported_blocks: set[tuple[str, str]] = set()

    # -- events -------------------------------------------------------------------------
    def emit(self, event: str, data: dict[str, Any], record: bool = False) -> None:
        if record:
            self.result.messages.append([event, data])
        self.emit_raw(event, data)

    def track(self, node_id: str, value: float | None, maximum: float | None, state: str = "running") -> None:
        """Record a node's progress state and send ``progress_state`` (ComfyUI's payload).

        ``None`` keeps the recorded maximum: a finished node shows ``value == max``."""
        entry = self.progress_nodes.get(node_id)
        if entry is None:
            entry = self.progress_nodes[node_id] = self.progress_entry(node_id)
        entry["state"] = state
        if maximum is not None:
            entry["max"] = maximum
        entry["value"] = entry["max"] if value is None else value
        self.emit_raw("progress_state", self.progress_payload)

    def progress_entry(self, node_id: str) -> dict[str, Any]:
        shown = self.nodes.get(node_id)
        real, parent = node_id, shown.parent if shown is not None else None
        while parent is not None:
            real = parent
            above = self.nodes.get(parent)
            parent = above.parent if above is not None else None
        return {"value": 0.0, "max": 1.0, "state": "running", "node_id": node_id, "prompt_id": self.prompt_id,
                "display_node_id": shown.display if shown is not None else node_id,
                "parent_node_id": shown.parent if shown is not None else None, "real_node_id": real}

    # -- graph --------------------------------------------------------------------------
    def add_node(self, node_id: str, raw: dict[str, Any], display: str, parent: str | None = None) -> _Node:
        definition = self.ex.registry[raw["class_type"]]
        node = _Node(node_id, raw, definition, definition.schema, display, parent)
        self.nodes[node_id] = node
        return node

    def request(self, root: str) -> None:
        """Make ``root`` and everything it needs run (or come from the cache)."""
        stack = [root]
        while stack:
            node_id = stack.pop()
            node = self.nodes[node_id]
            if node.state != NEW:
                continue
            signature = self.signatures.get(node_id)
            entry = self.ex.cache.get(signature) if signature is not None else None
            if entry is not None:
                self.finish(node, entry.outputs, entry.ui, from_cache=True)
                continue
            node.state = WAITING
            lazy = node.schema.lazy_inputs
            for name, value in node.raw["inputs"].items():
                if is_link(value) and (name not in lazy or name in node.evaluated_lazy):
                    self.wait_on(node, value[0], stack)
            if node.waiting == 0:
                self.ready.append(node_id)

    def wait_on(self, node: _Node, source_id: str, stack: list[str]) -> None:
        source = self.nodes[source_id]
        if source.state == DONE:
            return
        node.waiting += 1
        source.dependents.append(node.id)
        if source.state == NEW:
            stack.append(source_id)

    def finish(
        self, node: _Node, outputs: list[list[Any]], ui: dict[str, Any] | None, from_cache: bool = False
    ) -> None:
        node.state = DONE
        node.outputs = outputs
        if from_cache:
            self.result.cached.append(node.id)
        self.track(node.id, None, None, "finished")
        if ui:
            _merge_ui(self.result.outputs.setdefault(node.display, {}), ui)
            self.result.meta[node.display] = {
                "node_id": node.display,
                "display_node": node.display,
                "parent_node": node.parent,
                "real_node_id": node.id,
            }
            self.emit(
                "executed",
                {"node": node.id, "display_node": node.display, "output": ui, "prompt_id": self.prompt_id},
            )
        for dependent_id in node.dependents:
            dependent = self.nodes[dependent_id]
            dependent.waiting -= 1
            if dependent.waiting == 0:
                self.ready.append(dependent_id)
        node.dependents = []

    # -- inputs -------------------------------------------------------------------------
    def gather(self, node: _Node) -> dict[str, list[Any]]:
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
                source = self.nodes[value[0]]
                if source.state != DONE:
                    if name in lazy:
                        values[name] = [None]
                        continue
                    raise RuntimeError(f"input {name} of node {node.id} is not ready")
                values[name] = source.outputs[value[1]]
            elif name in declared:
                values[name] = [value]
        for spec in schema.inputs:
            if spec.kind == "hidden" and spec.type in HIDDEN_KINDS:
                values[spec.name] = [self.hidden_value(node, spec.type)]
        return values

    def hidden_value(self, node: _Node, kind: str) -> Any:
        if kind == "UNIQUE_ID":
            return node.id
        if kind == "PROMPT":
            return self.prompt
        if kind == "EXTRA_PNGINFO":
            return self.extra_data.get("extra_pnginfo")
        if kind == "DYNPROMPT":
            return {nid: n.raw for nid, n in self.nodes.items()}
        return self.extra_data.get(kind.lower())  # AUTH_TOKEN_COMFY_ORG, API_KEY_COMFY_ORG

    # -- running ------------------------------------------------------------------------
    def context(self, node: _Node) -> ExecutionContext:
        return ExecutionContext(
            prompt_id=self.prompt_id,
            node_id=node.id,
            display_node=node.display,
            class_type=node.raw["class_type"],
            emit=self.emit_raw,
            interrupt=self.interrupt,
            extra=self.extra_data,
            track=self.track,
        )

    @staticmethod
    def blocker_in(args: dict[str, Any], input_is_list: bool) -> ExecutionBlocker | None:
        """The blocker among one call's arguments (among the list items for a list node)."""
        for value in args.values():
            if isinstance(value, ExecutionBlocker):
                return value
            if input_is_list and isinstance(value, list):
                for item in value:
                    if isinstance(item, ExecutionBlocker):
                        return item
        return None

    def blockers(self, node: _Node, call_args: list[dict[str, Any]]) -> list[ExecutionBlocker | None]:
        """Per call, the blocker that stops it, if any.

        A blocker with a message is recorded once, at the first node it stops, and passed on
        silent (ComfyUI reports it once too).
        """
        found = [self.blocker_in(args, node.schema.input_is_list) for args in call_args]
        silent: dict[int, ExecutionBlocker] = {}
        for index, blocker in enumerate(found):
            if blocker is None or not blocker.message:
                continue
            if id(blocker) not in silent:
                silent[id(blocker)] = ExecutionBlocker(None)
                if (node.id, blocker.message) not in self.reported_blocks:  # a lazy re-check asks again
                    self.reported_blocks.add((node.id, blocker.message))
                    self.result.messages.append(
                        ["execution_blocked", {"prompt_id": self.prompt_id, "node_id": node.id, "message": blocker.message}]
                    )
            found[index] = silent[id(blocker)]
        return found

    def calls(self, node: _Node, values: dict[str, list[Any]]) -> list[dict[str, Any]]:
        if node.schema.input_is_list:
            return [values]
        if not values:
            return [{}]
        lengths = [len(v) for v in values.values()]
        if min(lengths) == 0:
            return []
        count = max(lengths)
        return [{k: v[min(i, len(v) - 1)] for k, v in values.items()} for i in range(count)]

    def unevaluated(self, node: _Node) -> frozenset[str]:
        """Lazy inputs whose value is not available yet (their source has not run)."""
        inputs = node.raw["inputs"]
        return frozenset(
            name
            for name in node.schema.lazy_inputs
            if name not in node.schema.raw_link_inputs
            and is_link(inputs.get(name))
            and self.nodes[inputs[name][0]].state != DONE
        )

    async def lazy_wanted(
        self, node: _Node, call_args: list[dict[str, Any]], blocked: list[ExecutionBlocker | None]
    ) -> set[str]:
        """Ask the node (once per unblocked call) which unevaluated lazy inputs it needs."""
        unevaluated = self.unevaluated(node)
        if not unevaluated:
            return set()
        wanted: set[str] = set()
        token = set_current(self.context(node))
        try:
            for args, blocker in zip(call_args, blocked, strict=True):
                if blocker is not None:
                    continue
                answer = node.instance.check_lazy(args, unevaluated)
                if inspect.isawaitable(answer):
                    answer = await answer
                wanted.update(answer or ())
        except Interrupted:
            raise
        except Exception as exc:
            raise NodeError(self.error_payload(node, exc, {k: [v] for k, v in (call_args or [{}])[0].items()})) from exc
        finally:
            reset_current(token)
        return wanted & unevaluated

    def request_lazy(self, node: _Node, wanted: set[str]) -> bool:
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

    async def start(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.state == EXPANDING:
            self.resolve_expansion(node)
            return
        if node.state != WAITING:
            return  # queued twice: a lazy or expansion wait resolved at once
        if self.interrupt.is_set():
            raise Interrupted()
        if node.instance is None:
            node.instance = node.definition.create()
        outputs_count = len(node.schema.outputs)
        while True:
            values = self.gather(node)
            call_args = self.calls(node, values)
            blocked = self.blockers(node, call_args)
            if call_args and all(b is not None for b in blocked):
                self.finish(node, [list(blocked) for _ in range(outputs_count)], None)
                return
            wanted = await self.lazy_wanted(node, call_args, blocked)
            if not wanted:
                break
            if self.request_lazy(node, wanted):
                return
        node.state = RUNNING
        self.emit("executing", {"node": node.id, "display_node": node.display, "prompt_id": self.prompt_id})
        self.track(node.id, 0.0, 1.0)
        self.result.executed.append(node.id)
        if node.schema.is_async:
            task = asyncio.ensure_future(self.call(node, values, call_args, blocked))
            self.tasks[task] = node.id
            return
        self.complete(node, await self.call(node, values, call_args, blocked))

    async def call(
        self,
        node: _Node,
        values: dict[str, list[Any]],
        call_args: list[dict[str, Any]],
        blocked: list[ExecutionBlocker | None],
    ) -> list[NodeResult]:
        """Call the node once per list element; async calls of one node run concurrently."""
        count = len(node.schema.outputs)
        results: list[NodeResult | None] = [None] * len(call_args)
        pending: list[tuple[int, Any]] = []
        token = set_current(self.context(node))
        try:
            for index, args in enumerate(call_args):
                blocker = blocked[index]
                if blocker is not None:
                    results[index] = NodeResult((blocker,) * count)
                    continue
                outcome = node.instance.call(args)
                if type(outcome) is not NodeResult and inspect.isawaitable(outcome):
                    pending.append((index, outcome))
                else:
                    results[index] = outcome
            if len(pending) == 1:
                results[pending[0][0]] = await pending[0][1]
            elif pending:
                done = await asyncio.gather(*(p for _, p in pending), return_exceptions=True)
                for (index, _), outcome in zip(pending, done, strict=True):
                    if isinstance(outcome, BaseException):
                        raise outcome
                    results[index] = outcome
        except Interrupted:
            raise
        except Exception as exc:
            raise NodeError(self.error_payload(node, exc, values)) from exc
        finally:
            reset_current(token)
        return [r if r is not None else NodeResult(None) for r in results]

    def complete(self, node: _Node, results: list[NodeResult]) -> None:
        schema = node.schema
        expansions = [r for r in results if r.expand]
        outputs: list[list[Any]] = [[] for _ in schema.outputs]
        ui: dict[str, Any] = {}
        for r in results:
            if r.ui:
                _merge_ui(ui, r.ui)
        if expansions:
            self.expand(node, results, ui)
            return
        for r in results:
            produced = r.outputs or ()
            for index, spec in enumerate(schema.outputs):
                if index >= len(produced):
                    continue
                value = produced[index]
                if spec.is_list:
                    outputs[index].extend(value if isinstance(value, (list, tuple)) else [value])
                else:
                    outputs[index].append(value)
        self.store(node, outputs, ui or None)

    def store(self, node: _Node, outputs: list[list[Any]], ui: dict[str, Any] | None) -> None:
        signature = self.signatures.get(node.id)
        if signature is not None:
            self.ex.cache.put(signature, outputs, ui)
        self.finish(node, outputs, ui)

    # -- expansion ----------------------------------------------------------------------
    def check_expansion(self, node: _Node, results: list[NodeResult]) -> None:
        """Refuse an expansion past :attr:`Executor.max_expansion_depth` nested expansions or
        :attr:`Executor.max_run_nodes` nodes in the run: a node that expands into itself, or
        into ever larger graphs, would otherwise run until memory is gone."""
        depth, parent = 1, node.parent
        while parent is not None and parent in self.nodes:
            depth += 1
            parent = self.nodes[parent].parent
        if depth > self.ex.max_expansion_depth:
            raise NodeError(self.error_payload(node, ExpansionLimitError(
                f"node expansion nested {depth} levels deep; the limit is {self.ex.max_expansion_depth} "
                "(does the node expand into itself?)"), {}))
        size = len(self.nodes) + sum(len(r.expand) for r in results if r.expand)
        if size > self.ex.max_run_nodes:
            raise NodeError(self.error_payload(node, ExpansionLimitError(
                f"node expansion would make the run {size} nodes; the limit is {self.ex.max_run_nodes}"), {}))

    def expand(self, node: _Node, results: list[NodeResult], ui: dict[str, Any]) -> None:
        """Splice the returned sub-graphs in; the node finishes when their results are in."""
        self.check_expansion(node, results)
        added: list[str] = []
        for call_index, r in enumerate(results):
            if not r.expand:
                continue
            if r.expand_ids_global and not any(str(child) in self.nodes for child in r.expand):
                mapping = {str(child): str(child) for child in r.expand}
            else:
                prefix = f"{node.id}." if len(results) == 1 else f"{node.id}.{call_index}."
                mapping = {str(child): prefix + str(child) for child in r.expand}

            def remap(value: Any, mapping: dict[str, str] = mapping) -> Any:
                if is_link(value) and value[0] in mapping:
                    return [mapping[value[0]], value[1]]
                return value

            for child, raw in r.expand.items():
                if raw.get("class_type") not in self.ex.registry:
                    raise NodeError(
                        self.error_payload(
                            node,
                            LookupError(f"expanded node {child!r} has unknown class {raw.get('class_type')!r}"),
                            {},
                        )
                    )
                new_id = mapping[str(child)]
                inputs = {name: remap(v) for name, v in raw.get("inputs", {}).items()}
                shown = raw.get("override_display_id")
                display = self.nodes[shown].display if isinstance(shown, str) and shown in self.nodes else node.display
                self.add_node(new_id, {**raw, "inputs": inputs}, display, node.id)
                added.append(new_id)
            if r.outputs is not None:
                r.outputs = tuple(remap(v) for v in r.outputs)
        raw_nodes = {nid: self.nodes[nid].raw for nid in self.nodes}
        order, on_cycle = dependency_order(raw_nodes, set(added))
        if on_cycle:
            raise NodeError(
                self.error_payload(node, RuntimeError(f"expanded graph has a cycle through {sorted(on_cycle)}"), {})
            )
        self.signatures.update(compute_signatures(raw_nodes, order, self.ex.registry, self.signatures))
        node.state = EXPANDING
        node.pending_result = results
        node.outputs = None
        stack: list[str] = []
        for r in results:
            for v in r.outputs or ():
                if is_link(v) and v[0] in self.nodes:
                    self.wait_on(node, v[0], stack)
        for new_id in added:
            if self.nodes[new_id].schema.output_node:
                self.wait_on(node, new_id, stack)
        if ui:
            node.pending_result.append(NodeResult(None, ui))
        for source_id in stack:
            self.request(source_id)
        if node.waiting == 0 and node.state == EXPANDING:
            self.ready.append(node.id)

    def resolve_expansion(self, node: _Node) -> None:
        schema = node.schema
        outputs: list[list[Any]] = [[] for _ in schema.outputs]
        ui: dict[str, Any] = {}
        for r in node.pending_result or []:
            if r.ui:
                _merge_ui(ui, r.ui)
            for index, value in enumerate(r.outputs or ()):
                if index >= len(outputs):
                    break
                if is_link(value) and value[0] in self.nodes:
                    outputs[index].extend(self.nodes[value[0]].outputs[value[1]])
                elif schema.outputs[index].is_list and isinstance(value, (list, tuple)):
                    outputs[index].extend(value)
                else:
                    outputs[index].append(value)
        node.pending_result = None
        self.store(node, outputs, ui or None)

    # -- errors -------------------------------------------------------------------------
    def error_payload(self, node: _Node, exc: BaseException, values: Mapping[str, Any]) -> dict[str, Any]:
        def short(v: Any) -> Any:
            text = repr(v)
            return text if len(text) <= 200 else text[:197] + "..."

        return {
            "prompt_id": self.prompt_id,
            "node_id": node.id,
            "display_node": node.display,
            "node_type": node.raw["class_type"],
            "executed": list(self.result.executed),
            "exception_message": str(exc) or type(exc).__name__,
            "exception_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__),
            "current_inputs": {k: [short(x) for x in v] if isinstance(v, list) else short(v) for k, v in values.items()},
            "current_outputs": {},
        }

    # -- main loop ----------------------------------------------------------------------
    async def run(self, outputs: list[str], signatures: dict[str, bytes], announce_end: bool = True) -> RunResult:
        self.signatures = signatures
        for node_id, raw in self.prompt.items():
            self.add_node(node_id, raw, node_id)
        self.emit("execution_start", {"prompt_id": self.prompt_id, "timestamp": now_ms()}, record=True)
        cached = [nid for nid, sig in signatures.items() if sig in self.ex.cache]
        self.emit(
            "execution_cached", {"nodes": cached, "prompt_id": self.prompt_id, "timestamp": now_ms()}, record=True
        )
        current: str | None = None
        try:
            for output_id in outputs:
                self.request(output_id)
            while self.ready or self.tasks:
                if self.interrupt.is_set():
                    raise Interrupted()
                if self.ready:
                    current = self.ready.popleft()
                    await self.start(current)
                    continue
                done, _ = await asyncio.wait(list(self.tasks), return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    current = self.tasks.pop(task)
                    self.complete(self.nodes[current], task.result())
            stuck = [o for o in outputs if self.nodes[o].state != DONE]
            if stuck:
                raise RuntimeError(f"output nodes {stuck} could not run: their inputs form a cycle")
        except Interrupted:
            await self.cancel_tasks()
            node = self.nodes.get(current) if current else None
            self.result.status_str, self.result.completed, self.result.interrupted = "error", False, True
            self.emit(
                "execution_interrupted",
                {
                    "prompt_id": self.prompt_id,
                    "node_id": node.id if node else None,
                    "node_type": node.raw["class_type"] if node else None,
                    "executed": list(self.result.executed),
                    "timestamp": now_ms(),
                },
                record=True,
            )
        except NodeError as exc:
            await self.cancel_tasks()
            self.fail(dict(exc.payload, executed=list(self.result.executed)))
        except Exception as exc:  # an engine-level failure still ends the run cleanly
            await self.cancel_tasks()
            node = self.nodes.get(current) if current else None
            if node is not None:
                self.fail(self.error_payload(node, exc, {}))
            else:
                self.fail(
                    {
                        "prompt_id": self.prompt_id,
                        "node_id": None,
                        "node_type": None,
                        "executed": list(self.result.executed),
                        "exception_message": str(exc),
                        "exception_type": type(exc).__name__,
                        "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__),
                        "current_inputs": {},
                        "current_outputs": {},
                    }
                )
        else:
            self.emit("execution_success", {"prompt_id": self.prompt_id, "timestamp": now_ms()}, record=True)
        if announce_end:
            self.emit("executing", {"node": None, "prompt_id": self.prompt_id})
        return self.result

    def fail(self, payload: dict[str, Any]) -> None:
        payload["timestamp"] = now_ms()
        self.result.status_str, self.result.completed, self.result.error = "error", False, payload
        self.emit("execution_error", payload, record=True)

    async def cancel_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()


class Executor:
    """Runs prompts against a registry, sharing one output cache across runs."""

    #: most nested node expansions (an expanded node that expands, ...) in one run
    max_expansion_depth = 64
    #: most nodes one run may grow to through expansion
    max_run_nodes = 100_000

    def __init__(self, registry: Mapping[str, NodeDefinition], cache: OutputCache | None = None) -> None:
        self.registry = registry
        self.cache = cache if cache is not None else OutputCache()

    async def execute(
        self,
        prompt_id: str,
        prompt: Prompt,
        outputs: list[str],
        emit: EventSink | None = None,
        interrupt: InterruptFlag | None = None,
        extra_data: dict[str, Any] | None = None,
        order: list[str] | None = None,
        announce_end: bool = True,
    ) -> RunResult:
        """Execute a prompt that passed :func:`validate_prompt`.

        ``order`` is the validator's dependency order; it is recomputed when not given.
        The run ends with ``executing`` for node ``None``, ComfyUI's "done" signal; a caller
        that stores the result first (the server's history) passes ``announce_end=False``
        and sends that event itself afterwards, so a client that reads ``/history`` on the
        signal finds the entry.
        """
        if order is None:
            order = validate_prompt(prompt, self.registry, outputs).order
        signatures = compute_signatures(prompt, order, self.registry) if self.cache.enabled else {}
        run = _Run(self, prompt_id, prompt, emit or (lambda e, d: None), interrupt or InterruptFlag(), extra_data or {})
        return await run.run(outputs, signatures, announce_end)

    def execute_sync(self, prompt_id: str, prompt: Prompt, outputs: list[str], **kwargs: Any) -> RunResult:
        """Run to completion from synchronous code.

        Where this thread already runs an event loop (a notebook, a test harness) the run
        gets its own loop on a helper thread, since a loop cannot be nested.
        """
        def run() -> RunResult:
            return asyncio.run(self.execute(prompt_id, prompt, outputs, **kwargs))

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            in_loop = False
        else:
            in_loop = True
        if not in_loop:  # run outside the except block: a node's traceback must not chain onto it
            return run()
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="weft-execute") as pool:
            return pool.submit(run).result()

