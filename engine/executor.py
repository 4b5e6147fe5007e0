"""Run a validated prompt: demand-driven, each node at most once, cache first.

Scheduling is by dependency counts: a node waits on the nodes its (evaluated) inputs link
to and becomes ready when the count reaches zero, so a run costs time linear in the nodes
it touches. Lazy inputs, node expansion and async nodes all reduce to "wait on more nodes":
a lazy input that a node asks for, the sub-graph an expanding node returns, a coroutine
still in flight.
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


def now_ms() -> int:
    return int(time.time() * 1000)


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

    # -- events -------------------------------------------------------------------------
    def emit(self, event: str, data: dict[str, Any], record: bool = False) -> None:
        if record:
            self.result.messages.append([event, data])
        self.emit_raw(event, data)

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
        """Every available input as a list of values (ComfyUI's list semantics)."""
        values: dict[str, list[Any]] = {}
        lazy = node.schema.lazy_inputs
        for name, value in node.raw["inputs"].items():
            if is_link(value):
                source = self.nodes[value[0]]
                if source.state != DONE:
                    if name in lazy and name not in node.evaluated_lazy:
                        continue
                    raise RuntimeError(f"input {name} of node {node.id} is not ready")
                values[name] = source.outputs[value[1]]
            else:
                values[name] = [value]
        for spec in node.schema.inputs:
            if spec.kind == "hidden":
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
        if kind == "AUTH_TOKEN_COMFY_ORG":
            return None
        return self.extra_data.get(kind.lower())

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
        )

    def blocked(self, node: _Node, values: dict[str, list[Any]]) -> ExecutionBlocker | None:
        for items in values.values():
            for item in items:
                if isinstance(item, ExecutionBlocker):
                    return item
        return None

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

    def needs_lazy(self, node: _Node, values: dict[str, list[Any]]) -> bool:
        """Ask the node which lazy inputs it needs; wait on them if not yet evaluated."""
        lazy = node.schema.lazy_inputs
        unevaluated = frozenset(
            name
            for name in lazy
            if name not in node.evaluated_lazy and is_link(node.raw["inputs"].get(name))
        )
        if not unevaluated:
            return False
        wanted: set[str] = set()
        for args in self.calls(node, values) or [{}]:
            for name in unevaluated:
                args.setdefault(name, None)
            token = set_current(self.context(node))
            try:
                wanted.update(node.instance.check_lazy(args, unevaluated))
            finally:
                reset_current(token)
        wanted &= unevaluated
        if not wanted:
            return False
        stack: list[str] = []
        for name in wanted:
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
        values = self.gather(node)
        blocker = self.blocked(node, values)
        if blocker is not None:
            if blocker.message:
                self.result.messages.append(
                    ["execution_blocked", {"prompt_id": self.prompt_id, "node_id": node.id, "message": blocker.message}]
                )
            self.finish(node, [[blocker] for _ in node.schema.outputs], None)
            return
        if self.needs_lazy(node, values):
            return
        node.state = RUNNING
        self.emit("executing", {"node": node.id, "display_node": node.display, "prompt_id": self.prompt_id})
        self.result.executed.append(node.id)
        if node.schema.is_async:
            task = asyncio.ensure_future(self.call(node, values))
            self.tasks[task] = node.id
            return
        self.complete(node, await self.call(node, values))

    async def call(self, node: _Node, values: dict[str, list[Any]]) -> list[NodeResult]:
        results: list[NodeResult] = []
        token = set_current(self.context(node))
        try:
            for args in self.calls(node, values):
                outcome = node.instance.call(args)
                if inspect.isawaitable(outcome):
                    outcome = await outcome
                results.append(outcome)
        except Interrupted:
            raise
        except Exception as exc:
            raise NodeError(self.error_payload(node, exc, values)) from exc
        finally:
            reset_current(token)
        return results

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
    def expand(self, node: _Node, results: list[NodeResult], ui: dict[str, Any]) -> None:
        """Splice the returned sub-graphs in; the node finishes when their results are in."""
        added: list[str] = []
        for call_index, r in enumerate(results):
            if not r.expand:
                continue
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
                self.add_node(new_id, {**raw, "inputs": inputs}, node.display, node.id)
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
    async def run(self, outputs: list[str], signatures: dict[str, bytes]) -> RunResult:
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
    ) -> RunResult:
        """Execute a prompt that passed :func:`validate_prompt`.

        ``order`` is the validator's dependency order; it is recomputed when not given.
        """
        if order is None:
            order = validate_prompt(prompt, self.registry, outputs).order
        signatures = compute_signatures(prompt, order, self.registry) if self.cache.enabled else {}
        run = _Run(self, prompt_id, prompt, emit or (lambda e, d: None), interrupt or InterruptFlag(), extra_data or {})
        return await run.run(outputs, signatures)

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

