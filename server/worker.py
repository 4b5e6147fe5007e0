"""The single worker: takes prompts off the queue in order and has them run, one at a time.

The worker's thread hands each prompt to the server's backend (:mod:`server.backend`): the
executor on this thread (``--worker-mode thread``) or in a supervised child process
(``--worker-mode process``). Whatever a prompt does, the worker records its history entry,
tells the client and goes on with the next one: no exception, ``SystemExit`` included, ends
its loop, and a per-prompt wall-clock limit (``--max-prompt-seconds``) interrupts a prompt that
runs too long and marks it failed.

The output cache and the loaded models belong to the backend while a prompt runs: POST /free
(:meth:`Worker.request_free`) frees them at once when the worker is idle, and otherwise records
the request, which the worker carries out when the prompt ends (ComfyUI's flags), never under a
running prompt.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from engine.executor import RunResult
from nodes.launch_options import resolve_preview_method

from .backend import ExecutionBackend, Job, ThreadBackend, error_payload, failed_result
from .batching import take_batch
from .console import execution_error_lines
from .events import encode_preview

if TYPE_CHECKING:
    from .prompt_server import PromptServer
    from .queue import QueueItem

log = logging.getLogger(__name__)


def make_backend(server: PromptServer) -> ExecutionBackend:
    """The backend ``server``'s configuration asks for (``--worker-mode``)."""
    if server.config.worker_mode == "process":
        from .backend_process import ProcessBackend

        return ProcessBackend(server.config, server.bus.send_sync)
    return ThreadBackend(server.executor, server.runtime)


class Worker:
    def __init__(self, server: PromptServer, backend: ExecutionBackend | None = None) -> None:
        self.server = server
        self.backend = backend or make_backend(server)
        self.current: QueueItem | None = None
        #: the prompts running side by side with ``current`` (``--batch-prompts``), itself first
        self.group: list[QueueItem] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: held while a prompt runs or the cache and models are freed
        self._busy = threading.Lock()
        self._requests = threading.Lock()
        #: what POST /free asked for that is not done yet: (free_memory, unload_models)
        self._free_requested: tuple[bool, bool] | None = None
        #: the prompt id whose wall-clock limit struck
        self._timed_out: str | None = None

    def start(self) -> None:
        self.backend.start()
        self._thread = threading.Thread(target=self._main, name="weft-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.backend.interrupt()
        self.server.queue.close()
        if self._thread is not None:
            self._thread.join(timeout)
        self.backend.stop(timeout)

    def interrupt_current(self, prompt_id: str | None = None) -> bool:
        """Interrupt the running prompt (only if it is ``prompt_id`` when one is given); of a
        batch, ``prompt_id`` alone, or all of them without one."""
        current, group = self.current, self.group
        if current is None:
            return False
        if prompt_id is not None and len(group) > 1 and any(i.prompt_id == prompt_id for i in group):
            self.backend.interrupt(prompt_id)
            return True
        if prompt_id is not None and current.prompt_id != prompt_id:
            return False
        self.backend.interrupt()
        return True

    def request_free(self, unload_models: bool, free_memory: bool) -> bool:
        """POST /free: clear the output cache (``free_memory``) and free models (both flags;
        ``unload_models`` unloads them). Done now when no prompt runs (returns True), else when
        the running prompt ends. Blocks while it frees: call it off the event loop."""
        if not (unload_models or free_memory):
            return True
        with self._requests:
            before = self._free_requested or (False, False)
            self._free_requested = (before[0] or free_memory, before[1] or unload_models)
        if not self._busy.acquire(blocking=False):
            return False
        try:
            self._free_as_requested()
        finally:
            self._busy.release()
        return True

    def _free_as_requested(self) -> None:
        """Carry out a pending POST /free; the caller holds ``_busy``."""
        with self._requests:
            requested, self._free_requested = self._free_requested, None
        if requested is None:
            return
        self.backend.free(*requested)

    def _main(self) -> None:
        try:
            while not self._stop.is_set():
                item = self.server.queue.get(timeout=0.5)
                if item is None:
                    continue
                group = take_batch(self.server.queue, item, self.server.config.batch_prompts)
                try:
                    with self._busy:
                        if len(group) == 1:
                            self._run(item)
                        else:
                            self._run_group(group)
                except BaseException:  # never let one prompt end the worker, SystemExit included
                    log.exception("worker failed around prompt %s", item.prompt_id)
                    for member in group:  # of a batch, those not recorded yet
                        if len(group) == 1 or member.prompt_id not in self.server.history:
                            self._record_crash(member)
                finally:
                    for member in group:
                        self._after(member)
        finally:
            self.backend.release_thread()

    def _after(self, item: QueueItem) -> None:
        self.current, self.group = None, []
        # a /free that came while the prompt ran: recorded before it found the worker busy, so
        # seen here, after the prompt let go of _busy
        if self._free_requested is not None:
            with self._busy:
                try:
                    self._free_as_requested()
                except Exception:
                    log.exception("freeing memory after prompt %s failed", item.prompt_id)
        self.server.queue.task_done(item.prompt_id)
        self.server.broadcast_status()

    def _run(self, item: QueueItem) -> None:
        server = self.server
        self.current = item
        server.client_id = item.client_id
        server.last_prompt_id = item.prompt_id
        server.broadcast_status()
        emit = self._emitter(item)
        job = Job(
            item.prompt_id, item.prompt, item.outputs, self.run_extra_data(item.extra_data), item.order, item.client_id
        )
        self.backend.prepare()
        limit = server.config.max_prompt_seconds
        timer = threading.Timer(limit, self._time_out, (item.prompt_id,)) if limit > 0 else None
        started = time.perf_counter()
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            result = self.backend.execute(job, emit)
        finally:
            if timer is not None:
                timer.cancel()
        if self._timed_out == item.prompt_id and result.interrupted:
            self._timed_out = None
            result = self._past_limit(result, emit, limit)
        self._finish(item, result, time.perf_counter() - started, emit)

    def _run_group(self, group: list[QueueItem]) -> None:
        """Run prompts side by side (``--batch-prompts``): each still gets its own history
        entry, events (to its own client) and done signal; the time limit is the sum of theirs."""
        server, first = self.server, group[0]
        self.current, self.group = first, group
        server.client_id, server.last_prompt_id = first.client_id, first.prompt_id
        server.broadcast_status()
        emits = {item.prompt_id: self._emitter(item) for item in group}

        def route(event: str, data: dict[str, Any]) -> None:
            emits.get(data.get("prompt_id"), emits[first.prompt_id])(event, data)

        jobs = [
            Job(i.prompt_id, i.prompt, i.outputs, self.run_extra_data(i.extra_data), i.order, i.client_id)
            for i in group
        ]
        self.backend.prepare()
        limit = server.config.max_prompt_seconds * len(group)
        timer = threading.Timer(limit, self._time_out, (first.prompt_id,)) if limit > 0 else None
        started = time.perf_counter()
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            results = self.backend.execute_group(jobs, route)
        finally:
            if timer is not None:
                timer.cancel()
        timed_out = self._timed_out == first.prompt_id
        self._timed_out = None
        elapsed = time.perf_counter() - started
        log.info("%d prompts ran as one batch in %.3f s", len(group), elapsed)
        for item, result in zip(group, results, strict=True):
            emit = emits[item.prompt_id]
            if timed_out and result.interrupted:
                result = self._past_limit(result, emit, limit)
            self._finish(item, result, elapsed, emit)

    def _emitter(self, item: QueueItem) -> Any:
        server, sid, send = self.server, item.client_id, self.server.bus.send_sync

        def emit(event: str, data: dict[str, Any]) -> None:
            if event == "executing":
                server.last_node_id = data.get("node")
            if sid is None:
                # a prompt without client_id has nobody to tell: a sid of None would broadcast
                # its previews, outputs and errors to every socket (ComfyUI does so for some of
                # them). Its result is in /history; everyone still gets the queue status.
                return
            if event == "preview":
                send("preview_bytes", encode_preview(data["format"], data["data"]), sid)
                return
            send(event, data, sid)

        return emit

    def _time_out(self, prompt_id: str) -> None:
        current = self.current
        if current is not None and current.prompt_id == prompt_id:
            log.warning("prompt %s ran past --max-prompt-seconds: interrupting it", prompt_id)
            self._timed_out = prompt_id
            self.backend.interrupt()

    @staticmethod
    def _past_limit(result: RunResult, emit: Any, limit: float) -> RunResult:
        """An interruption by the time limit is a failure, with the reason in the history."""
        interrupted = next((m[1] for m in result.messages if m[0] == "execution_interrupted"), {})
        node = {"node": interrupted.get("node_id"), "class_type": interrupted.get("node_type")}
        message = f"the prompt ran longer than its {limit:g} s limit (--max-prompt-seconds)"
        payload = error_payload(result.prompt_id, "PromptTimeout", message, node, executed=interrupted.get("executed"))
        result.interrupted, result.error = False, payload
        result.messages.append(["execution_error", payload])
        emit("execution_error", payload)
        return result

    def _finish(
        self, item: QueueItem, result: RunResult, elapsed: float, emit: Any, worker: dict[str, Any] | None = None
    ) -> None:
        """Log, record the history entry (with ``worker``, the pool worker that ran it, when
        there is a pool), then send ComfyUI's done signal."""
        server = self.server
        if result.interrupted:
            log.info("Processing interrupted")
        elif result.error is not None:
            for line in execution_error_lines(result.error):
                log.error("%s", line)
        log.info("prompt %s: %s in %.3f s", item.prompt_id, result.status_str, elapsed)
        entry = {
            "prompt": item.as_comfy(),
            "outputs": result.outputs,
            "status": {
                "status_str": result.status_str,
                "completed": result.completed,
                "messages": result.messages,
            },
            "meta": result.meta,
        }
        if worker is not None:
            entry["worker"] = worker  # Weft's own field: ComfyUI clients ignore it
        server.history.add(
            item.prompt_id, entry, prompt_json=item.as_comfy_json() if item.prompt_json is not None else None
        )
        # ComfyUI's "done" signal comes after the history entry exists: clients read
        # /history/<id> as soon as they see it
        emit("executing", {"node": None, "prompt_id": item.prompt_id})

    def run_extra_data(self, extra_data: dict[str, Any]) -> dict[str, Any]:
        """The prompt's ``extra_data`` as its nodes see it: ``preview_method`` resolved against this
        server's ``--preview-method`` (ComfyUI's rule: the client's choice when it names a method,
        else the launcher's, which defaults to none) and ``--preview-size`` filled in. A copy: the
        queue and the history keep what the client sent."""
        config = self.server.config
        resolved = dict(extra_data)
        resolved["preview_method"] = resolve_preview_method(extra_data.get("preview_method"), config.preview_method)
        resolved.setdefault("preview_size", config.preview_size)
        return resolved

    def _record_crash(self, item: QueueItem) -> None:
        """The worker's own failure around a prompt: recorded and told like any failed run."""
        trace = traceback.format_exc()
        result = failed_result(item.prompt_id, "WorkerError", trace.strip().splitlines()[-1])
        result.error["traceback"] = trace.splitlines(keepends=True)
        emit = self._emitter(item)
        emit("execution_error", result.error)
        self._finish(item, result, 0.0, emit)
