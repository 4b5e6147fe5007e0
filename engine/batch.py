"""Several prompts run side by side, so that one call of a node can serve them all.

The server's ``--batch-prompts`` hands the executor a group of queued prompts of one graph that
differ only in seeds and texts (``server/batching.py`` decides which). Each prompt keeps its own
run: its own events, result, cache look-ups and hidden inputs (a SaveImage still writes its own
prompt into its own PNG). The runs are interleaved on one event loop and meet at the nodes whose
definition can make several calls as one: a definition with a true ``batches`` attribute and a
``batch(calls) -> list[NodeResult] | None`` method (``Node.run_batch`` in ``nodes/api.py``).

A run that reaches such a node waits there. When every run still going waits somewhere, nothing
else can make progress, and the node with the most runs waiting is called once for all of them;
its results go back to each run, which resume in queue order (so what they do next, a SaveImage's
file counter included, happens as if the prompts ran one after the other). A definition that
declines (``None``: the inputs differ in a way it cannot batch) or fails leaves every run to call
the node alone, in order, with its own errors, so a batch never loses a prompt.

Each run served so records ``["execution_batched", {"prompt_id", "node_id", "prompts"}]`` in its
messages (the history's ``status.messages``). While the batched call runs, progress and previews
go to every run waiting on it, each event with that run's prompt id; previews follow the first
run's ``extra_data`` settings. The call stops early only when every one of its runs is
interrupted; a run interrupted alone stops as soon as the batched call returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .context import EventSink, ExecutionContext, Interrupted, InterruptFlag, reset_current, set_current
from .schema import NodeResult

if TYPE_CHECKING:
    from .schedule import RunNode

log = logging.getLogger("weft.batch")


@dataclass
class GroupMember:
    """One prompt of a group, as :meth:`engine.Executor.execute_group` runs it."""

    prompt_id: str
    prompt: dict[str, Any]
    outputs: list[str]
    emit: EventSink | None = None
    interrupt: InterruptFlag | None = None
    extra_data: dict[str, Any] = field(default_factory=dict)
    order: list[str] | None = None


class AllSet(InterruptFlag):
    """Set when every one of ``flags`` is: a batched call stops only when all its runs stop."""

    def __init__(self, flags: Sequence[InterruptFlag]) -> None:
        self.flags = list(flags)

    def set(self) -> None:
        for flag in self.flags:
            flag.set()

    def clear(self) -> None:
        for flag in self.flags:
            flag.clear()

    def is_set(self) -> bool:
        return all(flag.is_set() for flag in self.flags)


class AnySet(InterruptFlag):
    """Set when one of ``flags`` is: a member's own flag or the whole group's."""

    def __init__(self, *flags: InterruptFlag) -> None:
        self.flags = flags

    def set(self) -> None:
        self.flags[0].set()

    def clear(self) -> None:
        for flag in self.flags:
            flag.clear()

    def is_set(self) -> bool:
        return any(flag.is_set() for flag in self.flags)


@dataclass
class _Arrival:
    run: Any  # the executor's _Run
    node: RunNode
    args: dict[str, Any]
    future: asyncio.Future


def batches(definition: Any) -> bool:
    """Whether ``definition`` can make several calls as one."""
    return bool(getattr(definition, "batches", False))


class BatchGroup:
    """The runs of one group and the calls waiting at batchable nodes."""

    def __init__(self) -> None:
        #: runs not finished, in queue order
        self.active: list[Any] = []
        self._rank: dict[int, int] = {}
        self._waiting: dict[str, list[_Arrival]] = {}

    def join(self, run: Any) -> None:
        self._rank[id(run)] = len(self._rank)
        self.active.append(run)

    def wants(self, node: RunNode, calls: list[dict[str, Any]], blocked: list[Any]) -> bool:
        """Whether this call of ``node`` should wait for the same node of the other runs."""
        return (
            len(self.active) > 1
            and batches(node.definition)
            and len(calls) == 1
            and blocked[0] is None
            and not node.schema.is_async
        )

    async def call(self, run: Any, node: RunNode, args: dict[str, Any]) -> list[NodeResult] | None:
        """Wait for the other runs; the batched call's result for ``run``, or ``None``: call
        the node alone. Raises :class:`Interrupted` when ``run`` was interrupted meanwhile."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(node.id, []).append(_Arrival(run, node, args, future))
        self._fire_when_stuck()
        result = await future
        if run.interrupt.is_set():
            raise Interrupted()
        return result

    def leave(self, run: Any) -> None:
        """``run`` has ended: the others no longer wait for it."""
        if run in self.active:
            self.active.remove(run)
        self._fire_when_stuck()

    def _fire_when_stuck(self) -> None:
        waiting = sum(len(arrivals) for arrivals in self._waiting.values())
        if not self.active or waiting < len(self.active):
            return
        node_id = max(self._waiting, key=lambda k: (len(self._waiting[k]), -self._first(self._waiting[k])))
        arrivals = sorted(self._waiting.pop(node_id), key=lambda a: self._rank[id(a.run)])
        # called soon rather than now: every run then awaits its result, and they wake in the
        # order the results are set (queue order), the one that arrived last included
        asyncio.get_running_loop().call_soon(self._fire, arrivals)

    def _first(self, arrivals: list[_Arrival]) -> int:
        return min(self._rank[id(a.run)] for a in arrivals)

    def _fire(self, arrivals: list[_Arrival]) -> None:
        live = []
        for arrival in arrivals:
            if arrival.run.interrupt.is_set():
                arrival.future.set_exception(Interrupted())
            else:
                live.append(arrival)
        results = self._batched(live) if len(live) > 1 else None
        prompts = [a.run.prompt_id for a in live]
        for index, arrival in enumerate(live):
            if results is not None:  # in the history's messages (ComfyUI clients skip unknown ones)
                note = {"prompt_id": arrival.run.prompt_id, "node_id": arrival.node.id, "prompts": prompts}
                arrival.run.result.messages.append(["execution_batched", note])
            arrival.future.set_result([results[index]] if results is not None else None)

    def _batched(self, arrivals: list[_Arrival]) -> list[NodeResult] | None:
        """One call for every arrival, or ``None`` when the definition declines or fails."""
        node = arrivals[0].node
        contexts = [a.run.context(a.node) for a in arrivals]
        token = set_current(_fan_out(contexts))
        try:
            results = node.definition.batch([a.args for a in arrivals])
        except Interrupted:
            return None
        except Exception as exc:  # each run then calls the node alone and reports its own error
            log.warning(
                "batched call of node %s (%s) for %d prompts failed (%s: %s); running them one by one",
                node.id,
                node.raw.get("class_type"),
                len(arrivals),
                type(exc).__name__,
                exc,
            )
            return None
        finally:
            reset_current(token)
        if results is None or len(results) != len(arrivals):
            return None
        log.info("node %s (%s) ran once for %d prompts", node.id, node.raw.get("class_type"), len(arrivals))
        return list(results)


def _fan_out(contexts: list[ExecutionContext]) -> ExecutionContext:
    """A context whose events (progress, previews) reach every run, each under its prompt id."""
    first = contexts[0]

    def emit(event: str, data: dict[str, Any]) -> None:
        for ctx in contexts:
            ctx.emit(event, {**data, "prompt_id": ctx.prompt_id})

    def track(node_id: str, value: float, maximum: float) -> None:
        for ctx in contexts:
            if ctx.track is not None:
                ctx.track(node_id, value, maximum)

    return ExecutionContext(
        prompt_id=first.prompt_id,
        node_id=first.node_id,
        display_node=first.display_node,
        class_type=first.class_type,
        emit=emit,
        interrupt=AllSet([ctx.interrupt for ctx in contexts]),
        extra=first.extra,
        track=track,
    )
