"""Where a prompt's node code runs: the interface between the server's worker and an executor.

The server's :class:`~server.worker.Worker` takes prompts off the queue, records their history
and tells clients; *running* one is a backend's business. Two backends exist:

* :class:`ThreadBackend` (``--worker-mode thread``): the executor, its output cache and the
  models live in the server process and nodes run on the worker's thread. Interrupting is
  cooperative only: a node that never looks at the flag runs on.
* :class:`server.backend_process.ProcessBackend` (``--worker-mode process``, the launcher's
  default): the executor lives in a child process the server supervises, so nothing a node does
  can freeze the server, and an interruption the node ignores ends with the child being killed
  and started again.

A later remote backend (a pool of workers elsewhere) fits behind the same calls: one job at a
time in, events and a :class:`~engine.executor.RunResult` out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from engine import Executor, InterruptFlag
from engine.batch import AnySet, GroupMember
from engine.executor import RunResult, now_ms
from nodes import runtime as node_runtime
from nodes.memory import free_models, run_finished

#: ``emit(event, data)``: an engine event of the running prompt, for the worker to deliver
Emit = Callable[[str, dict[str, Any]], None]
#: ``send(event, data, sid)``: a message a node sent itself (``PromptServer.instance.send_sync``)
Send = Callable[[str, Any, "str | None"], None]


@dataclass
class Job:
    """One prompt as a backend runs it: what the executor needs and nothing of the queue."""

    prompt_id: str
    prompt: dict[str, Any]
    outputs: list[str]
    extra_data: dict[str, Any]
    order: list[str] | None = None
    client_id: str | None = None


class ExecutionBackend(Protocol):
    def start(self) -> None: ...

    def stop(self, timeout: float) -> None: ...

    def prepare(self) -> None:
        """Get ready to run a job (a fresh worker process loads its nodes); not part of the
        prompt's time limit."""

    def execute(self, job: Job, emit: Emit) -> RunResult:
        """Run ``job`` to its end (success, error, interruption or the worker's death) on the
        calling thread, delivering its events through ``emit`` in order."""

    def execute_group(self, jobs: list[Job], emit: Emit) -> list[RunResult]:
        """Run ``jobs`` side by side, batching what they share (``--batch-prompts``); their
        events go through ``emit``, each with its prompt id. Results in the jobs' order."""

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop the running job (from any thread): the cooperative flag first, then whatever
        the backend can do to a node that ignores it. ``prompt_id``: only that prompt of a
        group running side by side (the others go on)."""

    def free(self, free_memory: bool, unload_models: bool) -> None:
        """Clear the output cache and/or free models; only between jobs."""

    def describe(self) -> dict[str, Any]:
        """For /system_stats: the mode, and the cache's and the worker's figures."""

    def release_thread(self) -> None:
        """The worker thread ends: let go of what it holds (called on that thread)."""


def error_payload(
    prompt_id: str,
    exception_type: str,
    message: str,
    node: dict[str, Any] | None = None,
    *,
    executed: list[str] | None = None,
    trace: list[str] | None = None,
) -> dict[str, Any]:
    """An ``execution_error`` payload in ComfyUI's shape for a failure the executor did not
    report itself (the worker died or crashed, a time limit struck); ``node`` names the node
    that ran last (``{"node": id, "class_type": ...}``)."""
    node = node or {}
    return {
        "prompt_id": prompt_id,
        "node_id": node.get("node"),
        "node_type": node.get("class_type"),
        "executed": executed or [],
        "exception_message": message,
        "exception_type": exception_type,
        "traceback": trace or [],
        "current_inputs": {},
        "current_outputs": {},
        "timestamp": now_ms(),
    }


def failed_result(prompt_id: str, exception_type: str, message: str, node: dict[str, Any] | None = None) -> RunResult:
    """A result for a run that ended without the executor's own account of it."""
    payload = error_payload(prompt_id, exception_type, message, node)
    return RunResult(prompt_id, "error", False, messages=[["execution_error", payload]], error=payload)


def run_job(
    executor: Executor, loop: asyncio.AbstractEventLoop, job: Job, emit: Emit, flag: InterruptFlag
) -> RunResult:
    """Run ``job`` on ``executor`` in ``loop`` (the calling thread's own, for async nodes),
    without the final ``executing`` event: the server sends it once the history entry exists."""
    return loop.run_until_complete(
        executor.execute(
            job.prompt_id,
            job.prompt,
            job.outputs,
            emit=emit,
            interrupt=flag,
            extra_data=job.extra_data,
            order=job.order,
            announce_end=False,
        )
    )


def run_group_jobs(
    executor: Executor, loop: asyncio.AbstractEventLoop, jobs: list[Job], emit: Emit, flags: list[InterruptFlag]
) -> list[RunResult]:
    """:func:`run_job` for a group of jobs run side by side (``flags``: each job's own)."""
    members = [
        GroupMember(job.prompt_id, job.prompt, job.outputs, emit, flag, job.extra_data, job.order)
        for job, flag in zip(jobs, flags, strict=True)
    ]
    return loop.run_until_complete(executor.execute_group(members))


class ThreadBackend:
    """The executor in the server process, run on the calling (worker) thread."""

    mode = "thread"

    def __init__(self, executor: Executor, runtime: Any) -> None:
        self.executor = executor
        self.runtime = runtime
        self.flag = InterruptFlag()
        #: per prompt of the group running now (``execute_group``)
        self._members: dict[str, InterruptFlag] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Nothing to start: the executor runs on the worker's thread."""

    def stop(self, timeout: float) -> None:
        self.flag.set()

    def prepare(self) -> None:
        """Always ready: there is no process to wait for."""

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:  # the worker thread's own loop, for async nodes
            self._loop = asyncio.new_event_loop()
            if self.runtime is not None:
                node_runtime.bind(self.runtime)  # the worker thread's own context: nothing to undo
        return self._loop

    def execute(self, job: Job, emit: Emit) -> RunResult:
        loop = self._event_loop()
        self.flag.clear()
        try:
            result = run_job(self.executor, loop, job, emit, self.flag)
        finally:
            run_finished()  # the model manager's end-of-run policy (--novram, --disable-smart-memory)
        return result

    def execute_group(self, jobs: list[Job], emit: Emit) -> list[RunResult]:
        loop = self._event_loop()
        self.flag.clear()
        self._members = {job.prompt_id: InterruptFlag() for job in jobs}
        flags: list[InterruptFlag] = [AnySet(self._members[job.prompt_id], self.flag) for job in jobs]
        try:
            return run_group_jobs(self.executor, loop, jobs, emit, flags)
        finally:
            self._members = {}
            run_finished()

    def interrupt(self, prompt_id: str | None = None) -> None:
        member = self._members.get(prompt_id) if prompt_id is not None else None
        (member or self.flag).set()

    def free(self, free_memory: bool, unload_models: bool) -> None:
        if free_memory:
            self.executor.cache.clear()
        free_models(unload_models)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "cache": self.executor.cache.stats()}

    def release_thread(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None
