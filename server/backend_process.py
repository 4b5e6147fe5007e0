"""The server's side of the worker process: start it, feed it prompts, watch it, replace it.

Node code runs in a child process (:mod:`server.worker_process`), so a node that holds the
GIL for minutes, exhausts memory, segfaults or calls ``sys.exit`` cannot freeze or end the
server. The worker thread of the server waits on the pipe with a short timeout, so it always
notices in time:

* an interruption (``/interrupt``, a time limit): the shared flag is set at once (nodes that
  look at it stop, async nodes are cancelled); a run still going after ``grace`` seconds ends
  with the child killed and a fresh one started;
* the child's death: the prompt is marked failed with the reason (signal, exit code, the
  node that ran last) and a fresh child is started for the next prompt.

Started with ``spawn``: a fresh interpreter, never a fork of a server with threads and sockets.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import multiprocessing
import signal
import threading
import time
from typing import Any

from engine.executor import RunResult, now_ms

from . import worker_process
from .backend import Emit, Job, Send, failed_result
from .config import ServerConfig
from .flags_worker import MAX_BATCH_PROMPTS

log = logging.getLogger(__name__)

#: seconds the worker thread waits on the pipe before it looks at the clock again
POLL = 0.05
#: seconds a fresh worker may take to load its nodes and packs before prompts go to it anyway
STARTUP_TIMEOUT = 120.0


class WorkerDied(RuntimeError):
    """The worker process ended (or the server is stopping) while it had a job; the message
    says why, for the prompt's history entry."""


class ProcessBackend:
    mode = "process"

    def __init__(self, config: ServerConfig, send: Send, *, grace: float | None = None) -> None:
        self.config = config
        self.send = send
        #: seconds an interrupted run may take to stop by itself before its worker is killed
        self.grace = config.interrupt_grace if grace is None else grace
        self._ctx = multiprocessing.get_context("spawn")
        self._flag_value = self._ctx.RawValue(ctypes.c_bool, False)
        self.flag = worker_process.SharedFlag(self._flag_value)
        self._running_node = self._ctx.RawArray(ctypes.c_char, worker_process.RUNNING_BYTES)
        #: one interrupt flag per prompt of a batch (``--batch-prompts``), and their prompt ids
        self._members = self._ctx.RawArray(ctypes.c_bool, MAX_BATCH_PROMPTS)
        self._member_ids: list[str] = []
        self.process: Any = None
        self.conn: Any = None
        self.pid: int | None = None
        #: workers started after the first (deaths and kills)
        self.restarts = 0
        #: the last start-up failure the worker reported (its traceback), if any
        self.startup_error: str | None = None
        self._lock = threading.Lock()
        #: set by :meth:`stop`: no worker is started again (a run cut short by the stop fails)
        self._stopping = False
        self._atexit_registered = False
        self._running = False
        self._kill_at: float | None = None
        self._last: dict[str, Any] = {}
        self._ready = False

    # -- the child's life ----------------------------------------------------------------
    def start(self) -> None:
        self._spawn()

    def _spawn(self) -> None:
        if self._stopping:
            raise WorkerDied("the server is stopping")
        if not self._atexit_registered:
            # before multiprocessing's own exit handler, which would wait for the worker forever
            atexit.register(self._reap, kill=True)
            self._atexit_registered = True
        parent, child = self._ctx.Pipe()
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        process = self._ctx.Process(
            target=worker_process.main,
            args=(child, self.config, self._flag_value, self._running_node, level, self._members),
            name="weft-worker",
        )
        process.start()
        child.close()
        self.process, self.conn, self.pid = process, parent, process.pid
        self._ready = False
        log.info("worker process %s started", process.pid)

    def _respawn(self) -> None:
        self._reap(kill=True)
        self.restarts += 1
        self._spawn()

    def _reap(self, kill: bool) -> None:
        process, conn = self.process, self.conn
        if process is None:
            return
        if kill and process.is_alive():
            process.kill()
        process.join(5)
        conn.close()
        self.process = self.conn = None

    def stop(self, timeout: float) -> None:
        self._stopping = True
        self.flag.set()
        if self.process is None:
            return
        try:
            self.conn.send(("stop",))
        except (OSError, ValueError):
            pass
        self.process.join(timeout)
        self._reap(kill=True)

    # -- running ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Wait until a worker has loaded its nodes (a fresh one takes a second or more), so a
        prompt's time limit counts the prompt and not the start-up."""
        if self._stopping:
            return
        if self.process is None or not self.process.is_alive():
            try:
                self._respawn()
            except WorkerDied:  # stopping meanwhile
                return
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._ready and time.monotonic() < deadline:
            try:
                if self.conn.poll(POLL):
                    message = self._take(self.conn.recv())
                    if message is not None:  # what a pack's own thread sent meanwhile
                        self._deliver(message[-1], lambda event, data: None, {})
                elif not self.process.is_alive():
                    return  # its death is reported by the run that follows
            except (EOFError, OSError, ValueError, AttributeError):  # died, or stopped meanwhile
                return

    def _take(self, message: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """Note start-up news; anything else is returned."""
        if message[0] == "ready":
            self.pid, self.startup_error, self._ready = message[1], None, True
            return None
        if message[0] == "fatal":
            self.startup_error = message[1]
            return None
        return message

    def execute(self, job: Job, emit: Emit) -> RunResult:
        return self._exchange(("run", job), [job], emit)[0]

    def execute_group(self, jobs: list[Job], emit: Emit) -> list[RunResult]:
        return self._exchange(("group", jobs), jobs, emit)

    def _exchange(self, message: tuple[Any, ...], jobs: list[Job], emit: Emit) -> list[RunResult]:
        with self._lock:
            self.flag.clear()
            self._members[:] = [False] * MAX_BATCH_PROMPTS
            self._member_ids = [job.prompt_id for job in jobs] if message[0] == "group" else []
            self._running_node.value = b""
            self._kill_at = None
            self._running = True
        try:
            try:
                self._hand_over(message)
            except WorkerDied as died:
                return self._after_death(jobs, emit, {}, str(died))
            return self._await_results(jobs, emit)
        finally:
            with self._lock:
                self._running = False
                self._kill_at = None
                self._member_ids = []

    def _hand_over(self, message: tuple[Any, ...]) -> None:
        """Send to the worker; one that is gone is replaced first. Raises :class:`WorkerDied`
        once the server is stopping."""
        if self.process is None or not self.process.is_alive():
            self._respawn()
        try:
            self.conn.send(message)
        except (OSError, ValueError):  # it died just now
            self._respawn()
            self.conn.send(message)

    def _await_results(self, jobs: list[Job], emit: Emit) -> list[RunResult]:
        last: dict[str, Any] = {}
        while True:
            try:
                message = self._next(jobs[0])
            except WorkerDied as died:
                return self._after_death(jobs, emit, last, str(died))
            if message is None:  # killed after the grace period
                return self._after_kill(jobs, emit, last)
            kind = message[0]
            self._deliver(message[-1], emit, last)  # every message ends with the events before it
            if kind == "result":
                self._last = message[2]
                fields = message[1]
                return [RunResult(**f) for f in fields] if isinstance(fields, list) else [RunResult(**fields)]

    def _next(self, job: Job) -> tuple[Any, ...] | None:
        """The worker's next message about ``job``; ``None`` once it was killed for ignoring
        an interruption. Raises :class:`WorkerDied`."""
        conn, process = self.conn, self.process
        if conn is None or process is None:
            raise WorkerDied("the server is stopping")
        while True:
            try:
                ready = conn.poll(POLL)
                message = self._take(conn.recv()) if ready else None
            except (EOFError, OSError, ValueError):  # dead, or its pipe closed by stop()
                raise WorkerDied(self._death_reason()) from None
            if message is not None:
                return message
            if ready:
                continue
            if not process.is_alive() and not conn.poll(0):
                raise WorkerDied(self._death_reason())
            kill_at = self._kill_at
            if kill_at is not None and time.monotonic() >= kill_at:
                log.warning(
                    "prompt %s did not stop within %.1f s of its interruption: restarting the worker",
                    job.prompt_id,
                    self.grace,
                )
                process.kill()
                return None

    def _deliver(self, batch: list[tuple[Any, ...]], emit: Emit, last: dict[str, Any]) -> None:
        for item in batch:
            if item[0] == "e":
                if item[1] == "executing" and isinstance(item[2], dict):
                    last.update(item[2])
                emit(item[1], item[2])
            else:
                self.send(item[1], item[2], item[3])

    def _death_reason(self) -> str:
        process = self.process
        if process is None:
            return "the server is stopping"
        process.join(1)
        code = process.exitcode
        if self.startup_error:
            return "the worker process failed to start: " + self.startup_error.strip().splitlines()[-1]
        if code is None:
            return "the worker process stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"the worker process was killed by {name}{hint}"
        return f"the worker process exited with code {code}"

    def _after_death(self, jobs: list[Job], emit: Emit, last: dict[str, Any], reason: str) -> list[RunResult]:
        """Each job (one, or a batch's) failed with the reason; one fresh worker for the next."""
        node = self._node(jobs[0], last)
        where = f" while node {node['node']} ({node['class_type']}) ran" if node.get("node") else ""
        message = f"{reason}{where}; a new worker was started and the queue goes on"
        results = []
        for job in jobs:
            log.error("prompt %s: %s", job.prompt_id, message)
            result = failed_result(job.prompt_id, "WorkerDied", message, node)
            emit("execution_error", result.error)
            results.append(result)
        if not self._stopping:
            self._respawn()
        return results

    def _after_kill(self, jobs: list[Job], emit: Emit, last: dict[str, Any]) -> list[RunResult]:
        node = self._node(jobs[0], last)
        results = []
        for job in jobs:
            payload = {
                "prompt_id": job.prompt_id,
                "node_id": node.get("node"),
                "node_type": node.get("class_type"),
                "executed": [],
                "timestamp": now_ms(),
            }
            emit("execution_interrupted", payload)
            result = RunResult(job.prompt_id, "error", False, interrupted=True)
            result.messages.append(["execution_interrupted", payload])
            results.append(result)
        if not self._stopping:
            self._respawn()
        return results

    def _node(self, job: Job, last: dict[str, Any]) -> dict[str, Any]:
        """The node that ran last: as the worker wrote it to shared memory (its events may not
        have left it), else as its last ``executing`` event said."""
        node_id = self._running_node.value.decode(errors="replace") or last.get("node")
        raw = job.prompt.get(node_id) if isinstance(node_id, str) else None
        class_type = raw.get("class_type") if isinstance(raw, dict) else None
        return {"node": node_id, "class_type": class_type}

    # -- between runs ----------------------------------------------------------------------
    def interrupt(self, prompt_id: str | None = None) -> None:
        with self._lock:
            if prompt_id is not None and prompt_id in self._member_ids:
                # one prompt of a batch: the others go on, so the worker is never killed for it
                self._members[self._member_ids.index(prompt_id)] = True
                return
        self.flag.set()
        with self._lock:
            if self._running and self._kill_at is None:
                self._kill_at = time.monotonic() + self.grace

    def free(self, free_memory: bool, unload_models: bool) -> None:
        if self.process is None or not self.process.is_alive():
            return  # a worker that is gone holds nothing; the next prompt starts a fresh one
        job = Job("", {}, [], {})
        try:
            self._hand_over(("free", free_memory, unload_models))
            while True:
                message = self._next(job)
                if message is not None:
                    self._deliver(message[-1], lambda event, data: None, {})
                    if message[0] == "freed":
                        self._last = message[1]
                        return
        except WorkerDied as died:
            log.error("freeing memory: %s", died)
            if not self._stopping:
                self._respawn()

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "pid": self.pid,
            "restarts": self.restarts,
            "cache": self._last.get("cache", {}),
        }

    def release_thread(self) -> None:
        """The worker thread holds nothing here: the event loop is the worker process's."""
