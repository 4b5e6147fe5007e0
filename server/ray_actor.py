"""One worker of the Ray pool: the worker process's runtime (:mod:`server.worker_process`) in a
Ray actor.

The actor builds what a worker process builds (paths, launch options, the built-in nodes and
the custom node packs, an executor with its output cache, the process's model manager) by
constructing the same :class:`~server.worker_process.WorkerMain`, with a queue where the
worker process has its pipe. So prompts run here exactly as in ``--worker-mode process``,
events are batched by the same :class:`~server.worker_process.Outbox`, and packs' ``send_sync``
reaches the server the same way.

Events leave as the replies of plain actor calls. ``run(job)`` runs the job on the call's own
thread and returns its result with the events not sent yet, so a prompt that ends within the
Outbox's batch interval (10 ms) costs one call and no hand-off between threads; while a longer
one runs, the server long-polls ``next()``, which returns the batches queued so far. A
streaming generator (Ray's documented way to stream a task's results) was the first choice and
works, but its calls cost 1 to 2 ms more than plain ones on the 2-core test machine (2.2 to
3.4 ms against 1.1 to 1.5 ms for the same reply), and running the job on a thread of its own
(so the generator could yield while it ran) 1.5 to 2.5 ms more: together most of the budget
of the pool's per-prompt overhead. ``ray.util.queue.Queue`` would add an actor between worker
and server: a hop more per batch, and a queue to clean up when a worker dies. ``next`` never
takes the result, and the server delivers a ``next`` reply before ``run``'s, so events keep
their order; when this actor dies, the pending calls raise ``ActorDiedError``, which is how
the server learns of it.

The actor is *threaded* (``max_concurrency``): ``next``, ``interrupt`` and ``info`` are served
on other threads while ``run`` runs, so an interruption reaches a node between two steps.
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
import socket
import threading
import time
from typing import Any

from engine import InterruptFlag

from .affinity import key_fingerprint
from .config import ServerConfig

log = logging.getLogger("weft.worker")

#: seconds between two readings of the device figures (memory) sent with the results
DEVICES_EVERY = 5.0


class _QueuePipe:
    """What :class:`~server.worker_process.Outbox` writes to: the messages in order, taken by
    :meth:`WeftWorker.next` while a job runs and by :meth:`WeftWorker.run` when it ends."""

    def __init__(self) -> None:
        self.messages: collections.deque[tuple[Any, ...]] = collections.deque()
        self.changed = threading.Condition()
        #: no job runs: :meth:`WeftWorker.next` answers at once
        self.ended = True

    def send(self, message: tuple[Any, ...]) -> None:
        with self.changed:
            self.messages.append(message)
            self.changed.notify_all()

    def take(self, final: bool) -> list[tuple[Any, ...]]:
        """Everything queued; without ``final``, up to (not with) the run's ``result``, which
        only :meth:`WeftWorker.run` returns. Call with ``changed`` held."""
        taken = []
        while self.messages and (final or self.messages[0][0] != "result"):
            taken.append(self.messages.popleft())
        return taken


class _RunningNode:
    """The "node running now" the worker process shares with its server; here the actor keeps
    it (the server learns it from the ``executing`` events it has received)."""

    value = b""


def loaded_models() -> dict[str, dict[str, Any]]:
    """The model files this process's model manager knows, by fingerprint: whether their weights
    are loaded, how often a component of each was loaded (the most of its components), bytes."""
    from nodes.diffusion import model_manager

    manager = model_manager._manager  # None until a model was used: nothing loaded yet
    found: dict[str, dict[str, Any]] = {}
    if manager is None:
        return found
    with manager.lock:
        for handle in manager.handles():
            printed = key_fingerprint(handle.key)
            if printed is None:
                continue
            entry = found.setdefault(printed, {"name": handle.name, "loaded": False, "loads": 0, "bytes": 0})
            entry["loads"] = max(entry["loads"], handle.loads)
            if handle.module is not None:
                entry["loaded"] = True
                entry["bytes"] += handle.size_bytes
    return found


def _packed(message: tuple[Any, ...]) -> bytes:
    try:
        return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        from . import jsonio

        return pickle.dumps(jsonio.loads(jsonio.dumps(message)), protocol=pickle.HIGHEST_PROTOCOL)


class WeftWorker:
    """The actor's class (``ray.remote`` is applied by :mod:`server.backend_ray`, with the
    resources the server asks for); its methods are what the server calls."""

    def __init__(self, config: ServerConfig, name: str, log_level: str) -> None:
        from .launch import setup_logging
        from .worker_process import WorkerMain

        setup_logging(log_level, to_stdout=config.log_stdout)
        self.name = name
        self.pipe = _QueuePipe()
        self.flag = InterruptFlag()
        self.main = WorkerMain(self.pipe, config, self.flag, _RunningNode())  # type: ignore[arg-type]
        self.prompts = 0
        self._run_lock = threading.Lock()
        self._devices: list[dict[str, Any]] = []
        self._flag_lock = threading.Lock()
        #: the prompt :meth:`run` runs now, and the last one :meth:`interrupt` was asked for
        self._running_id: str | None = None
        self._interrupted: str | None = None
        self._devices_read = -DEVICES_EVERY
        log.info("Ray worker %s ready (pid %s)", name, os.getpid())

    def info(self) -> dict[str, Any]:
        """Who and where this worker is, and what it holds: for placement and /system_stats
        (sent with every result, so the device figures are read at most every few seconds)."""
        models = loaded_models()
        now = time.monotonic()
        if models and now - self._devices_read > DEVICES_EVERY:  # the manager exists: imports nothing new
            from nodes.memory import device_stats

            self._devices, self._devices_read = device_stats(), now
        return {
            "name": self.name,
            "pid": os.getpid(),
            "node": socket.gethostname(),
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "prompts": self.prompts,
            "cache": self.main.executor.cache.stats(),
            "models": models,
            "devices": self._devices,
        }

    def run(self, job: bytes) -> bytes:
        """Run ``job`` (a pickled :class:`~server.backend.Job`) on this call's thread and return
        its messages that :meth:`next` did not take, ending with ``("result", fields, info,
        events)``. Each message is what the worker process sends over its pipe: ``("events",
        [...])`` batches, then the result, with its last events."""
        with self._run_lock:  # one prompt at a time, as the server hands them
            job_ = pickle.loads(job)
            with self._flag_lock:
                self._running_id = job_.prompt_id
                if self._interrupted == job_.prompt_id:
                    self.flag.set()  # asked for before the run began
                else:
                    self.flag.clear()
            self.prompts += 1
            with self.pipe.changed:
                self.pipe.ended = False
            try:
                outbox = self.main.outbox
                outbox.begin()
                result = self.main.run(job_)  # catches everything a node raises, SystemExit included
                outbox.finish("result", result, self.info())
            finally:  # a waiting next() answers, whatever happened
                with self._flag_lock:
                    self._running_id = None
                with self.pipe.changed:
                    rest = self.pipe.take(final=True)
                    self.pipe.ended = True
                    self.pipe.changed.notify_all()
        return _packed(rest)

    def next(self, wait: float) -> bytes:
        """The running job's messages queued so far (a list, in order), waiting up to ``wait``
        seconds for one; ``[]`` once no job runs. The server calls it while :meth:`run` is in
        progress, one call at a time, and delivers what it returns before ``run``'s own reply.
        Pickled here (as the worker process's pipe pickles them), so Ray moves bytes, and a node
        output that cannot be pickled goes as JSON (what the Outbox does for the pipe)."""
        pipe = self.pipe
        with pipe.changed:
            pipe.changed.wait_for(lambda: pipe.ended or (pipe.messages and pipe.messages[0][0] != "result"), wait)
            taken = [] if pipe.ended else pipe.take(final=False)
        return _packed(taken)

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop ``prompt_id`` (``None``: whatever runs). It may come before :meth:`run` began
        that prompt (the server asks as soon as it handed it over): then ``run`` starts it with
        the flag set."""
        with self._flag_lock:
            self._interrupted = prompt_id
            if prompt_id is None or prompt_id == self._running_id:
                self.flag.set()

    def free(self, free_memory: bool, unload_models: bool) -> dict[str, Any]:
        from nodes.memory import free_models

        if free_memory:
            self.main.executor.cache.clear()
        free_models(unload_models)
        return self.info()
