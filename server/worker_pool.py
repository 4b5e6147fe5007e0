"""Several prompts at once: a pool of workers, each with its own backend (``--backend ray``).

The single :class:`~server.worker.Worker` stays what ``--backend local`` runs, untouched. The
pool keeps its public face (``start``, ``stop``, ``interrupt_current``, ``request_free``,
``backend.describe()``) so the routes need not know which one they talk to, and is made of:

* one *dispatcher* thread, which takes prompts off the queue as workers become free and decides
  where each goes (:func:`server.affinity.choose`: a free worker that holds the prompt's model
  files, else the least loaded one), with :meth:`~server.queue.PromptQueue.get_matching`, so
  prompts not yet placed stay in the queue, visible and deletable as ever;
* one :class:`SlotWorker` per backend slot (a Ray actor), a :class:`~server.worker.Worker`
  that runs what the dispatcher hands it with the single worker's bookkeeping: time limit,
  history entry (naming the worker), events to the prompt's client, ``/free`` between runs.

A slot whose worker dies under a prompt raises :class:`WorkerLost`: the prompt goes back to
the queue with its number (so it runs next, on another worker) once, and fails with the reason
the second time; the slot replaces its worker before it takes another prompt.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .affinity import ModelInputs, WorkerView, choose, prompt_models
from .backend import failed_result
from .worker import Worker

if TYPE_CHECKING:
    from .prompt_server import PromptServer
    from .queue import QueueItem

log = logging.getLogger(__name__)

#: times a prompt is run again after its worker died under it
RETRIES = 1
#: seconds between two looks at a worker that is still starting (or waiting for resources)
STARTUP_POLL = 1.0
#: seconds before a worker that failed to start is tried again
STARTUP_BACKOFF = 10.0
#: seconds before joining the cluster is tried again
POOL_RETRY = 30.0


class WorkerLost(RuntimeError):
    """The worker under a prompt died; says why, and the node that ran last (``{"node",
    "class_type"}``)."""

    def __init__(self, message: str, node: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.node = node or {}


class SlotWorker(Worker):
    """One slot of the pool: its backend, the prompt it runs, and what its worker holds."""

    def __init__(self, pool: PoolWorker, backend: Any) -> None:
        super().__init__(pool.server, backend)
        self.pool = pool
        self.name: str = backend.name
        #: "starting", "idle" or "busy"; changed under the pool's lock
        self.state = "starting"
        #: model files the worker holds, or is loading for the prompt it was given
        self.models: frozenset[str] = frozenset()
        self.idle_since = 0.0
        self._inbox: queue.SimpleQueue[QueueItem] = queue.SimpleQueue()
        self._requeued: QueueItem | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"weft-{self.name}", daemon=True)
        self._thread.start()

    def hand(self, item: QueueItem, models: frozenset[str]) -> None:
        """The dispatcher's hand-over (under the pool's lock): the worker is busy from now."""
        self.state = "busy"
        self.models = self.models | models
        self.backend.prompt_id = item.prompt_id  # an interruption from now on is for it
        self._inbox.put(item)

    def _main(self) -> None:
        try:
            while not self._stop.is_set():
                if self.state == "starting":
                    self._bring_up()
                    continue
                try:
                    item = self._inbox.get(timeout=0.5)
                except queue.Empty:
                    continue
                self._handle(item)
        finally:
            self.backend.release_thread()

    def _bring_up(self) -> None:
        """Start the worker if it has none, and wait until it is ready to take prompts."""
        backend = self.backend
        try:
            if backend.broken:  # it died, or was killed for ignoring an interruption
                backend.replace()
            elif backend.actor is None:
                backend.start()
            if not backend.wait_ready(STARTUP_POLL):
                return
        except WorkerLost as failed:
            log.error("%s; trying again in %.0f s", failed, STARTUP_BACKOFF)
            backend.stop(0)
            self._stop.wait(STARTUP_BACKOFF)
            return
        self.pool.slot_idle(self)

    def _handle(self, item: QueueItem) -> None:
        try:
            with self._busy:
                self._run(item)
        except WorkerLost as lost:
            self._lost(item, lost)
        except BaseException:  # never let one prompt end the slot, SystemExit included
            log.exception("%s failed around prompt %s", self.name, item.prompt_id)
            self._record_crash(item)
        finally:
            self._after(item)
            if self.backend.broken:
                with self.pool._lock:
                    self.state = "starting"  # replaced by _bring_up before it takes another prompt
            else:
                self.pool.slot_idle(self)

    def _lost(self, item: QueueItem, lost: WorkerLost) -> None:
        """Its worker died under ``item``: run it again elsewhere once, else record the failure."""
        attempts = self.pool.attempts.get(item.prompt_id, 0) + 1
        if attempts <= RETRIES and not self._stop.is_set() and self.server.queue.requeue(item):
            self.pool.attempts[item.prompt_id] = attempts
            self._requeued = item
            log.warning("prompt %s: %s; queued again", item.prompt_id, lost)
            return
        where = f" while node {lost.node['node']} ({lost.node.get('class_type')}) ran" if lost.node.get("node") else ""
        runs = f"; it ran {attempts} times and its worker died each time" if attempts > 1 else ""
        result = failed_result(item.prompt_id, "WorkerDied", f"{lost}{where}{runs}", lost.node)
        emit = self._emitter(item)
        emit("execution_error", result.error)
        self._finish(item, result, 0.0, emit)

    def _after(self, item: QueueItem) -> None:
        if self._requeued is item:  # back in the queue: not done, its row stays in the store
            self._requeued = None
            self.current = None
            self.server.broadcast_status()
            return
        self.pool.attempts.pop(item.prompt_id, None)
        super()._after(item)

    def _finish(self, item: QueueItem, result: Any, elapsed: float, emit: Any, worker: Any = None) -> None:
        super()._finish(item, result, elapsed, emit, worker=self.backend.identity())


class PoolView:
    """``server.worker.backend`` of a pool: what /system_stats shows of it."""

    mode = "ray"

    def __init__(self, pool: PoolWorker) -> None:
        self.pool = pool

    def describe(self) -> dict[str, Any]:
        pool = self.pool
        workers = []
        for slot in list(pool.slots):
            entry = slot.backend.describe()
            entry["state"] = slot.state
            entry["running"] = slot.current.prompt_id if slot.current is not None else None
            workers.append(entry)
        cache: Counter[str] = Counter()
        for entry in workers:
            cache.update(
                {k: v for k, v in entry.get("cache", {}).items() if k in ("entries", "bytes", "hits", "misses")}
            )
        return {
            "mode": self.mode,
            "address": pool.server.config.ray_address,
            "status": pool.status,
            "error": pool.error,
            "placements": dict(pool.placements),
            "workers": workers,
            "cache": dict(cache),
        }


class PoolWorker:
    """``server.worker`` for a pool of backends (see the module docstring)."""

    def __init__(self, server: PromptServer, make_slots: Callable[[PoolWorker], list[Any]]) -> None:
        self.server = server
        self._make_slots = make_slots
        self.slots: list[SlotWorker] = []
        self.backend = PoolView(self)
        #: prompt id -> times its worker died under it
        self.attempts: dict[str, int] = {}
        #: how prompts were placed ("affinity", "least_loaded", "no_model"), for /system_stats
        self.placements: Counter[str] = Counter()
        #: why the pool could not start (Ray unreachable...), for /system_stats
        self.error: str | None = None
        #: where the pool is: "starting", "joining the cluster", "running", ... (/system_stats)
        self.status = "starting"
        self.cluster: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inputs = ModelInputs(server.registry)
        self._models: dict[str, frozenset[str]] = {}
        #: the last placement :meth:`_choose` made: (slot, the prompt's model files)
        self._placed: tuple[SlotWorker, frozenset[str]] | None = None

    @property
    def current(self) -> QueueItem | None:
        """A running prompt (the first slot's that has one), as the single worker's ``current``."""
        return next((s.current for s in self.slots if s.current is not None), None)

    def start(self) -> None:
        # joining (or starting) Ray takes seconds: the server answers meanwhile, prompts queue
        self._thread = threading.Thread(target=self._main, name="weft-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.server.queue.close()
        for slot in self.slots:
            slot._stop.set()
            slot.backend.interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
        for slot in self.slots:
            if slot._thread is not None:
                slot._thread.join(timeout)
            slot.backend.stop(timeout)
        if self.cluster is not None:
            self.cluster.shutdown()

    def _main(self) -> None:
        while not self._start_slots():
            if self._stop.wait(POOL_RETRY):
                return
        while not self._stop.is_set():
            item = self.server.queue.get_matching(self._choose, timeout=0.5)
            if item is None:
                continue
            with self._lock:
                assert self._placed is not None
                slot, models = self._placed
                slot.hand(item, models)

    def _start_slots(self) -> bool:
        """Join the cluster and start the slots; False (the reason in /system_stats) when the
        cluster cannot be reached: prompts stay queued, and it is tried again."""
        self.status = "joining the cluster"
        try:
            slots = self._make_slots(self)
        except Exception as exc:
            self.status = "failed to join the cluster"
            self.error = f"{type(exc).__name__}: {exc}"
            log.error(
                "the worker pool could not start (%s); prompts stay queued, trying again in %.0f s", exc, POOL_RETRY
            )
            return False
        self.error, self.slots, self.status = None, slots, "running"
        for slot in slots:
            slot.start()
        return True

    # -- placement ---------------------------------------------------------------------------

    def _choose(self, head: list[QueueItem]) -> QueueItem | None:
        """Called by the queue under its lock with the first pending prompts."""
        with self._lock:
            slots = self.slots
            views = [WorkerView(s.state == "idle", s.models, s.idle_since) for s in slots]
            if not any(v.free for v in views):
                return None
            pending = [self._models_of(item) for item in head]
            pick = choose(pending, views)
            if pick is None:
                return None
            index, slot_index, why = pick
            item = head[index]
            slots[slot_index].state = "handing"  # not free to the next look, not yet busy
            self._placed = (slots[slot_index], pending[index])  # for the dispatcher, once the queue lets go
            self._models.pop(item.prompt_id, None)
            if len(self._models) > 4 * len(head) + 64:  # prompts deleted while pending
                self._models = {i.prompt_id: self._models[i.prompt_id] for i in head if i.prompt_id in self._models}
            self.placements[why] += 1
            return item

    def _models_of(self, item: QueueItem) -> frozenset[str]:
        found = self._models.get(item.prompt_id)
        if found is None:
            runtime = self.server.runtime
            found = prompt_models(item.prompt, self._inputs, runtime.paths) if runtime is not None else frozenset()
            self._models[item.prompt_id] = found
        return found

    def slot_idle(self, slot: SlotWorker) -> None:
        """A slot can take a prompt: what its worker holds is what it last reported."""
        with self._lock:
            slot.state = "idle"
            slot.models = slot.backend.held()
            slot.idle_since = time.monotonic()
        self.server.queue.wake()

    # -- what the routes call ------------------------------------------------------------------
    def interrupt_current(self, prompt_id: str | None = None) -> bool:
        """Interrupt ``prompt_id`` on the worker that runs it, or, without one, every running prompt."""
        found = False
        for slot in self.slots:
            found = slot.interrupt_current(prompt_id) or found
        return found

    def request_free(self, unload_models: bool, free_memory: bool) -> bool:
        """POST /free on every worker: now where it is idle, else when its prompt ends."""
        done = True
        for slot in self.slots:
            done = slot.request_free(unload_models, free_memory) and done
        return done


def make_worker(server: PromptServer) -> Worker | PoolWorker:
    """``server.worker``: the single worker (``--backend local``, the default) or a pool."""
    if server.config.backend == "ray":
        from .backend_ray import make_ray_slots

        return PoolWorker(server, make_ray_slots)
    return Worker(server)
