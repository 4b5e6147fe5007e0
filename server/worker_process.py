"""The worker process: where node code runs when the server runs with ``--worker-mode process``.

The server (:mod:`server.backend_process`) starts this module's :func:`main` in a fresh
interpreter and talks to it over one pipe. Messages, all tuples whose first item names them:

server -> worker
    ``("run", Job)``, ``("group", [Job, ...])`` (prompts run side by side, ``--batch-prompts``),
    ``("free", free_memory, unload_models)``, ``("stop",)``
worker -> server
    ``("ready", pid)`` once the nodes and packs are loaded, or ``("fatal", text)`` and exit;
    ``("events", [...])``: the running prompt's events in order, each ``("e", event, data)``
    (an engine event) or ``("s", event, data, sid)`` (a pack's ``PromptServer.instance.send_sync``);
    ``("result", fields, describe, [...])`` once a run ends, with its last events (for a
    group, a list of fields, one per job);
    ``("freed", describe, [...])`` after a ``free``. ``ready`` and ``fatal`` carry events too.

The interrupt flag is one shared byte the server sets and the executor reads, so asking
costs no message and works while the worker is busy. The id of the node running now is
shared memory too: the worker writes it as the node starts, so the server can name it even
when the worker dies or holds the GIL before its events left. The worker keeps the output cache and
the loaded models between prompts, as the server process did; it exits when the pipe closes
or the server process goes away.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from engine import Executor, InterruptFlag, OutputCache, RunResult
from nodes import runtime as node_runtime
from nodes.memory import free_models, run_finished
from nodes.registry import builtin_registry

from .backend import Job, failed_result, run_group_jobs, run_job
from .config import ServerConfig
from .events import _snapshot_progress
from .heap import settle_after_startup
from .runtime import ServerRuntime, apply_model_settings, launch_options, load_packs, model_settings, resolve_paths

log = logging.getLogger("weft.worker")

#: size of the shared "node running now" buffer (longer ids are cut)
RUNNING_BYTES = 256


class SharedFlag(InterruptFlag):
    """The interrupt flag as a byte of shared memory (``multiprocessing.RawValue``)."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def set(self) -> None:
        self._value.value = True

    def clear(self) -> None:
        self._value.value = False

    def is_set(self) -> bool:
        return bool(self._value.value)


class Outbox:
    """Messages to the server, in order, without making a node wait on the pipe.

    Events are only queued where they happen; while a prompt runs, a thread sends what has
    piled up every :attr:`tick` seconds as one message, and the end of the run sends the rest
    together with the result. Waking a thread per event (or writing the pipe per event) made
    the worker trade the GIL and the CPU with the server for every node.

    ``progress_state`` payloads are live objects the executor keeps changing: only a marker is
    queued, and the newest state is copied when the batch is sent (the server's event bus
    coalesces them too).
    """

    #: seconds between two sends while a prompt runs: how late a client may see an event
    tick = 0.01

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self._progress: dict[Any, Any] = {}
        #: held while a batch is taken off the queue and written, so batches keep their order
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="weft-worker-outbox", daemon=True)
        self._thread.start()

    def event(self, event: str, data: Any) -> None:
        if event == "progress_state" and isinstance(data, dict):
            key = data.get("prompt_id")
            with self._lock:
                queued = key in self._progress  # then a marker is queued already
                self._progress[key] = data
                if not queued:
                    self._queue.append(("p", key))
        else:
            self._queue.append(("e", event, data))

    def send(self, event: str, data: Any, sid: str | None) -> None:
        """A pack's own message; sent at once when no prompt runs (a pack's own thread)."""
        self._queue.append(("s", event, data, sid))
        if not self._running.is_set():
            self.flush()

    def begin(self) -> None:
        """A prompt starts: send its events as they come, every :attr:`tick`."""
        self._running.set()

    def finish(self, kind: str, *fields: Any) -> None:
        """Send ``(kind, *fields, events)``: a reply (a result, ``ready``, ``freed``) with the
        events still queued before it, in one message; the periodic sends stop."""
        self._running.clear()
        with self._lock:
            self._write((kind, *fields, self._take()))

    def flush(self) -> None:
        with self._lock:
            batch = self._take()
            if batch:
                self._write(("events", batch))

    def _take(self) -> list[tuple[Any, ...]]:
        """Everything queued, ``progress_state`` markers replaced by the state now; call with
        the lock held."""
        batch: list[tuple[Any, ...]] = []
        while self._queue:
            item = self._queue.popleft()
            if item[0] == "p":
                batch.append(("e", "progress_state", _snapshot_progress(self._progress.pop(item[1], None))))
            else:
                batch.append(item)
        return batch

    def _pump(self) -> None:
        while True:
            self._running.wait()
            time.sleep(self.tick)
            if self._queue:
                self.flush()

    def _write(self, message: tuple[Any, ...]) -> None:
        try:
            self.conn.send(message)
        except (OSError, EOFError):  # the server has gone: nothing left to do
            os._exit(0)
        except Exception:  # something in a node's output that cannot be pickled: send it as JSON
            from . import jsonio

            self.conn.send(jsonio.loads(jsonio.dumps(message)))


class WorkerServer:
    """``PromptServer.instance`` inside the worker: what packs use of it, forwarded.

    ``send_sync`` and ``send`` reach the server's sockets through the pipe; routes a pack adds
    here are ignored (the server process loaded the same pack and serves its routes).
    """

    def __init__(self, outbox: Outbox, config: ServerConfig) -> None:
        from aiohttp import web

        self.outbox = outbox
        self.config = config
        self.routes = web.RouteTableDef()
        self.app = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.last_prompt_id: str | None = None
        self.on_prompt_handlers: list[Any] = []
        self.plugin_report: Any = None
        self.stopped = False

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        self.outbox.send(event, data, sid)

    async def send(self, event: str, data: Any, sid: str | None = None) -> None:
        self.outbox.send(event, data, sid)

    async def send_json(self, event: str, data: Any, sid: str | None = None) -> None:
        self.outbox.send(event, data, sid)

    def add_on_prompt_handler(self, handler: Any) -> None:
        self.on_prompt_handlers.append(handler)


class MemberFlag(InterruptFlag):
    """One prompt's flag of a batch: a byte of the shared array, or the whole job's flag."""

    def __init__(self, members: Any, index: int, job_flag: InterruptFlag) -> None:
        self.members, self.index, self.job_flag = members, index, job_flag

    def set(self) -> None:
        self.members[self.index] = True

    def clear(self) -> None:
        self.members[self.index] = False

    def is_set(self) -> bool:
        return bool(self.members[self.index]) or self.job_flag.is_set()


class WorkerMain:
    """The worker's loop: one message at a time off the pipe."""

    def __init__(
        self, conn: Connection, config: ServerConfig, flag: InterruptFlag, running: Any, members: Any = None
    ) -> None:
        self.conn = conn
        self.flag = flag
        #: shared bytes: one interrupt flag per prompt of a batch (``ctypes`` bool array)
        self.members = members
        #: shared bytes: the id of the node that started last (ctypes char array)
        self.running = running
        self.outbox = Outbox(conn)
        settings = model_settings(config)
        apply_model_settings(settings)
        # temp/ was cleared by the server when it started; a restarted worker leaves it alone
        self.runtime = ServerRuntime(
            paths=resolve_paths(config),
            options=launch_options(config),
            config=config,
            registry=builtin_registry(),
            model_settings=settings,
        )
        self.server = WorkerServer(self.outbox, config)
        self.runtime.server = self.server
        node_runtime.install(self.runtime)
        with self.runtime.active():
            self.server.plugin_report = load_packs(self.runtime.registry, config)
        cache = OutputCache(
            max_entries=config.cache_lru or None,
            max_bytes=int(config.cache_ram_gb * (1 << 30)),
            enabled=not config.cache_none,
        )
        self.executor = Executor(self.runtime.registry, cache)
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.server.loop = self.loop

    def describe(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "cache": self.executor.cache.stats()}

    def serve(self) -> None:
        settle_after_startup()  # nodes and packs are loaded: keep the collector off them
        self.outbox.finish("ready", os.getpid())
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return
            kind = message[0]
            if kind == "run":
                self.outbox.begin()
                result = self.run(message[1])
                self.outbox.finish("result", result, self.describe())
            elif kind == "group":
                self.outbox.begin()
                results = self.run_group(message[1])
                self.outbox.finish("result", results, self.describe())
            elif kind == "free":
                if message[1]:
                    self.executor.cache.clear()
                free_models(message[2])
                self.outbox.finish("freed", self.describe())
            elif kind == "stop":
                return

    def emit(self, event: str, data: dict[str, Any]) -> None:
        if event == "executing":
            self.server.last_node_id = node_id = data.get("node")
            if isinstance(node_id, str):
                self.running.value = node_id.encode()[: RUNNING_BYTES - 1]
        self.outbox.event(event, data)

    def run(self, job: Job) -> dict[str, Any]:
        return self.run_group([job], single=True)[0]

    def run_group(self, jobs: list[Job], single: bool = False) -> list[dict[str, Any]]:
        """Run one job, or several side by side (each with its own interrupt flag)."""
        server = self.server
        server.last_prompt_id = jobs[0].prompt_id
        server.client_id = jobs[0].client_id
        try:
            if single:
                results = [run_job(self.executor, self.loop, jobs[0], self.emit, self.flag)]
            else:
                flags = [MemberFlag(self.members, i, self.flag) for i in range(len(jobs))]
                results = run_group_jobs(self.executor, self.loop, jobs, self.emit, flags)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt, ...: the prompt fails, the worker goes on
            results = [self._failed(job, exc) for job in jobs]
        finally:
            run_finished()
        return [dataclasses.asdict(result) for result in results]

    def _failed(self, job: Job, exc: BaseException) -> RunResult:
        running = {"node": self.running.value.decode(errors="replace") or None}
        if running["node"] in job.prompt:
            running["class_type"] = job.prompt[running["node"]].get("class_type")
        result = failed_result(job.prompt_id, type(exc).__name__, f"{type(exc).__name__}: {exc}".rstrip(": "), running)
        result.error["traceback"] = traceback.format_exception(exc)
        self.emit("execution_error", result.error)
        return result


def main(
    conn: Connection, config: ServerConfig, flag_value: Any, running: Any, log_level: str, members: Any = None
) -> None:
    """The worker process's entry point (``multiprocessing`` spawns it)."""
    from .launch import setup_logging

    setup_logging(log_level, to_stdout=config.log_stdout)  # as the server's: --verbose, --log-stdout
    _exit_with_parent()
    try:
        worker = WorkerMain(conn, config, SharedFlag(flag_value), running, members)
    except BaseException:
        conn.send(("fatal", traceback.format_exc()))
        raise
    worker.serve()


def _exit_with_parent() -> None:
    """End this process when the server's ends, even while a node runs (a SIGKILLed server
    cannot tell its worker to stop)."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        from multiprocessing.connection import wait

        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="weft-worker-parent", daemon=True).start()
