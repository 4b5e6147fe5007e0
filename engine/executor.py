"""Run a validated prompt: demand-driven, each node at most once, cache first.

This module holds the run loop and what happens around one node's call; which node may
start is :mod:`engine.schedule`'s business, what a node is called with
:mod:`engine.node_inputs`', sub-graphs :mod:`engine.expansion`'s and the per-node progress
payload :mod:`engine.progress`'s.

List semantics follow ComfyUI: a node is called once per list element, and an
:class:`ExecutionBlocker` among the elements blocks only the calls that receive it; the
blocked calls contribute a blocker to each output in their place.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .batch import BatchGroup, GroupMember
from .blocker import ExecutionBlocker
from .cache import CacheEntry, OutputCache
from .context import EventSink, ExecutionContext, Interrupted, InterruptFlag, reset_current, set_current
from .expansion import await_subgraph, check_limits, expanded_result, merge_ui, splice
from .failures import NodeError, engine_error_payload, node_error_payload
from .node_inputs import blocker_in, call_args, gather
from .progress import ProgressTracker
from .prompt import Prompt
from .schedule import EXPANDING, RUNNING, WAITING, RunNode, Schedule
from .schema import NodeDefinition, NodeResult
from .signature import compute_signatures
from .validation import validate_prompt

#: seconds between two looks at the interrupt flag while only async nodes are running
INTERRUPT_POLL = 0.05


def now_ms() -> int:
    return int(time.time() * 1000)


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


def _released(*_args: Any) -> Any:
    raise RuntimeError("this run has ended")


class _Run:
    """One prompt's execution: the loop, the events, and the bookkeeping around node calls."""

    def __init__(
        self,
        executor: Executor,
        prompt_id: str,
        prompt: Prompt,
        emit: EventSink,
        interrupt: InterruptFlag,
        extra_data: dict[str, Any],
        signatures: dict[str, bytes],
    ) -> None:
        self.ex = executor
        self.prompt_id = prompt_id
        self.prompt = prompt
        self.emit_raw = emit
        self.interrupt = interrupt
        self.extra_data = extra_data
        self.schedule = Schedule(executor.registry, executor.cache, signatures, self.finish_cached)
        self.nodes = self.schedule.nodes
        self.progress = ProgressTracker(prompt_id, emit, self.origin)
        self.tasks: dict[asyncio.Task, str] = {}
        self.result = RunResult(prompt_id, "success", True)
        self.reported_blocks: set[tuple[str, str]] = set()
        #: the node started (or completed) last: the one an interruption or engine failure names
        self.current: str | None = None
        #: the prompts this one runs beside (``execute_group``), or ``None``
        self.group: BatchGroup | None = None

    # -- events -------------------------------------------------------------------------
    def emit(self, event: str, data: dict[str, Any], record: bool = False) -> None:
        if record:
            self.result.messages.append([event, data])
        self.emit_raw(event, data)

    def origin(self, node_id: str) -> tuple[str, str | None, str]:
        """Display id, parent and prompt node of ``node_id``, for its ``progress_state`` entry."""
        node = self.nodes.get(node_id)
        if node is None:
            return node_id, None, node_id
        if node.parent is None:
            return node.display, None, node_id
        return node.display, node.parent, self.schedule.root_of(node_id)

    # -- finishing nodes ----------------------------------------------------------------
    def finish_cached(self, node: RunNode, entry: CacheEntry) -> None:
        self.finish(node, entry.outputs, entry.ui, from_cache=True)

    def finish(
        self, node: RunNode, outputs: list[list[Any]], ui: dict[str, Any] | None, from_cache: bool = False
    ) -> None:
        self.schedule.done(node, outputs)
        if from_cache:
            self.result.cached.append(node.id)
        self.progress.finished(node.id)
        if ui:
            self.show(node, ui)

    def show(self, node: RunNode, ui: dict[str, Any]) -> None:
        """Record the node's UI output for the history and send it (``executed``)."""
        merge_ui(self.result.outputs.setdefault(node.display, {}), ui)
        self.result.meta[node.display] = {
            "node_id": node.display,
            "display_node": node.display,
            "parent_node": node.parent,
            "real_node_id": node.id,
        }
        self.emit(
            "executed", {"node": node.id, "display_node": node.display, "output": ui, "prompt_id": self.prompt_id}
        )

    def complete(self, node: RunNode, results: list[NodeResult]) -> None:
        """Gather the calls' results into the node's outputs, or splice in their sub-graphs."""
        schema = node.schema
        if any(r.expand for r in results):
            self.expand(node, results)
            return
        ui: dict[str, Any] = {}
        for r in results:
            if r.ui:
                merge_ui(ui, r.ui)
        outputs: list[list[Any]] = [[] for _ in schema.outputs]
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

    def store(self, node: RunNode, outputs: list[list[Any]], ui: dict[str, Any] | None) -> None:
        signature = self.schedule.signatures.get(node.id)
        if signature is not None:
            self.ex.cache.put(signature, outputs, ui)
        self.finish(node, outputs, ui)

    def expand(self, node: RunNode, results: list[NodeResult]) -> None:
        """Splice the returned sub-graphs in; the node finishes when their results are in."""
        try:
            check_limits(self.schedule, node, results, self.ex.max_expansion_depth, self.ex.max_run_nodes)
            added = splice(self.schedule, node, results)
        except (LookupError, RuntimeError) as exc:  # reported as the node's error, without engine frames
            raise NodeError(self.error_payload(node, exc.with_traceback(None), {})) from None
        await_subgraph(self.schedule, node, results, added)

    def error_payload(self, node: RunNode, exc: BaseException, values: Mapping[str, Any]) -> dict[str, Any]:
        return node_error_payload(self.prompt_id, node, exc, values, self.result.executed)

    # -- running one node ---------------------------------------------------------------
    def context(self, node: RunNode) -> ExecutionContext:
        return ExecutionContext(
            prompt_id=self.prompt_id,
            node_id=node.id,
            display_node=node.display,
            class_type=node.raw["class_type"],
            emit=self.emit_raw,
            interrupt=self.interrupt,
            extra=self.extra_data,
            track=self.progress.track,
        )

    def blockers(self, node: RunNode, calls: list[dict[str, Any]]) -> list[ExecutionBlocker | None]:
        """Per call, the blocker that stops it, if any.

        A blocker with a message is recorded once, at the first node it stops, and passed on
        silent (ComfyUI reports it once too).
        """
        found = [blocker_in(args, node.schema.input_is_list) for args in calls]
        if not any(found):
            return found
        silent: dict[int, ExecutionBlocker] = {}
        for index, blocker in enumerate(found):
            if blocker is None or not blocker.message:
                continue
            if id(blocker) not in silent:
                silent[id(blocker)] = ExecutionBlocker(None)
                if (node.id, blocker.message) not in self.reported_blocks:  # a lazy re-check asks again
                    self.reported_blocks.add((node.id, blocker.message))
                    self.result.messages.append(
                        [
                            "execution_blocked",
                            {"prompt_id": self.prompt_id, "node_id": node.id, "message": blocker.message},
                        ]
                    )
            found[index] = silent[id(blocker)]
        return found

    async def lazy_wanted(
        self, node: RunNode, calls: list[dict[str, Any]], blocked: list[ExecutionBlocker | None]
    ) -> set[str]:
        """Ask the node (once per unblocked call) which unevaluated lazy inputs it needs."""
        unevaluated = self.schedule.unevaluated(node)
        if not unevaluated:
            return set()
        wanted: set[str] = set()
        token = set_current(self.context(node))
        try:
            for args, blocker in zip(calls, blocked, strict=True):
                if blocker is not None:
                    continue
                answer = node.instance.check_lazy(args, unevaluated)
                if inspect.isawaitable(answer):
                    answer = await answer
                wanted.update(answer or ())
        except Interrupted:
            raise
        except Exception as exc:
            raise NodeError(self.error_payload(node, exc, {k: [v] for k, v in (calls or [{}])[0].items()})) from exc
        finally:
            reset_current(token)
        return wanted & unevaluated

    async def prepare(
        self, node: RunNode
    ) -> tuple[dict[str, list[Any]], list[dict[str, Any]], list[ExecutionBlocker | None]] | None:
        """The node's inputs and calls once every lazy input it asks for is in.

        ``None`` when the node needs nothing more to be done now: every call was blocked (the
        node is finished with blockers) or it waits for lazy inputs (it is queued again).
        """
        has_lazy = bool(node.schema.lazy_inputs)
        while True:
            values = gather(node, self.nodes, self.prompt, self.extra_data)
            calls = call_args(node, values)
            blocked = self.blockers(node, calls)
            if calls and all(b is not None for b in blocked):
                self.finish(node, [list(blocked) for _ in node.schema.outputs], None)
                return None
            wanted = await self.lazy_wanted(node, calls, blocked) if has_lazy else None
            if not wanted:
                return values, calls, blocked
            if self.schedule.request_lazy(node, wanted):
                return None

    async def start(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.state == EXPANDING:
            outputs, ui = expanded_result(self.schedule, node)
            self.store(node, outputs, ui)
            return
        if node.state != WAITING:
            return  # queued twice: a lazy or expansion wait resolved at once
        if self.interrupt.is_set():
            raise Interrupted()
        if node.instance is None:
            node.instance = node.definition.create()
        prepared = await self.prepare(node)
        if prepared is None:
            return
        values, calls, blocked = prepared
        node.state = RUNNING
        self.emit("executing", {"node": node.id, "display_node": node.display, "prompt_id": self.prompt_id})
        self.progress.track(node.id, 0.0, 1.0)
        self.result.executed.append(node.id)
        if node.schema.is_async:
            task = asyncio.ensure_future(self.call(node, values, calls, blocked))
            self.tasks[task] = node.id
            return
        if self.group is not None and self.group.wants(node, calls, blocked):
            results = await self.group.call(self, node, calls[0])
            if results is not None:
                self.complete(node, results)
                return
        self.complete(node, await self.call(node, values, calls, blocked))

    async def call(
        self,
        node: RunNode,
        values: dict[str, list[Any]],
        calls: list[dict[str, Any]],
        blocked: list[ExecutionBlocker | None],
    ) -> list[NodeResult]:
        """Call the node once per list element; async calls of one node run concurrently."""
        count = len(node.schema.outputs)
        results: list[NodeResult | None] = [None] * len(calls)
        pending: list[tuple[int, Any]] = []
        token = set_current(self.context(node))
        try:
            for index, args in enumerate(calls):
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
        except (Exception, SystemExit) as exc:  # a node's sys.exit() fails that node, not the worker
            raise NodeError(self.error_payload(node, exc, values)) from exc
        finally:
            reset_current(token)
        return [r if r is not None else NodeResult(None) for r in results]

    # -- the run ------------------------------------------------------------------------
    async def run(self, outputs: list[str], announce_end: bool = True) -> RunResult:
        self.begin()
        try:
            await self.drive(outputs)
        except Interrupted:
            await self.cancel_tasks()
            self.interrupted()
        except NodeError as exc:
            await self.cancel_tasks()
            self.fail(dict(exc.payload, executed=list(self.result.executed)))
        except Exception as exc:  # an engine-level failure still ends the run cleanly
            await self.cancel_tasks()
            node = self.nodes.get(self.current) if self.current else None
            if node is not None:
                self.fail(self.error_payload(node, exc, {}))
            else:
                self.fail(engine_error_payload(self.prompt_id, exc, self.result.executed))
        else:
            self.emit("execution_success", {"prompt_id": self.prompt_id, "timestamp": now_ms()}, record=True)
        if announce_end:
            self.emit("executing", {"node": None, "prompt_id": self.prompt_id})
        self.release()
        return self.result

    def release(self) -> None:
        """Break the run's reference cycles (the schedule and the progress tracker call back
        into the run), so that its nodes, inputs and outputs are freed as soon as the run is
        dropped. Left to the cycle collector, a 2000-node run's ~20,000 objects lived on to be
        walked by full collections, which then took a sixth of a run's time."""
        self.schedule.on_cached = _released
        self.progress.origin = _released

    def begin(self) -> None:
        """Add the prompt's nodes and announce the run and what the cache already holds."""
        for node_id, raw in self.prompt.items():
            self.schedule.add(node_id, raw, node_id)
        self.emit("execution_start", {"prompt_id": self.prompt_id, "timestamp": now_ms()}, record=True)
        cache = self.ex.cache
        cached = [nid for nid, sig in self.schedule.signatures.items() if sig in cache]
        self.emit(
            "execution_cached", {"nodes": cached, "prompt_id": self.prompt_id, "timestamp": now_ms()}, record=True
        )

    async def drive(self, outputs: list[str]) -> None:
        """Start ready nodes one by one; when none is ready, wait for an async node to finish."""
        for output_id in outputs:
            self.schedule.request(output_id)
        ready, tasks = self.schedule.ready, self.tasks
        while ready or tasks:
            if self.interrupt.is_set():
                raise Interrupted()
            if ready:
                self.current = ready.popleft()
                await self.start(self.current)
                continue
            # woken now and then even while every async node waits, so an interruption that
            # arrives then still cancels them
            done, _ = await asyncio.wait(list(tasks), timeout=INTERRUPT_POLL, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self.current = tasks.pop(task)
                self.complete(self.nodes[self.current], task.result())
        stuck = self.schedule.unfinished(outputs)
        if stuck:
            raise RuntimeError(f"output nodes {stuck} could not run: their inputs form a cycle")

    def interrupted(self) -> None:
        node = self.nodes.get(self.current) if self.current else None
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
        run = _Run(
            self,
            prompt_id,
            prompt,
            emit or (lambda e, d: None),
            interrupt or InterruptFlag(),
            extra_data or {},
            signatures,
        )
        return await run.run(outputs, announce_end)

    async def execute_group(self, members: list[GroupMember]) -> list[RunResult]:
        """Run prompts side by side, each as :meth:`execute` would (``announce_end=False``),
        with one call of a batchable node serving all of them (:mod:`engine.batch`). The
        results are in the members' order."""
        group = BatchGroup()
        runs: list[_Run] = []
        for member in members:
            order = member.order or validate_prompt(member.prompt, self.registry, member.outputs).order
            signatures = compute_signatures(member.prompt, order, self.registry) if self.cache.enabled else {}
            run = _Run(
                self,
                member.prompt_id,
                member.prompt,
                member.emit or (lambda e, d: None),
                member.interrupt or InterruptFlag(),
                member.extra_data or {},
                signatures,
            )
            run.group = group
            group.join(run)
            runs.append(run)

        async def run_member(run: _Run, outputs: list[str]) -> RunResult:
            try:
                return await run.run(outputs, announce_end=False)
            finally:
                group.leave(run)

        # started in order: each runs until it waits at a batchable node, so the next one finds
        # the shared nodes (loader, empty latent) in the cache
        tasks = [asyncio.ensure_future(run_member(run, m.outputs)) for run, m in zip(runs, members, strict=True)]
        return list(await asyncio.gather(*tasks))

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
