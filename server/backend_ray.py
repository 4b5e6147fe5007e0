"""The Ray backend: worker actors on a Ray cluster, one per GPU (or per N CPUs), for the pool.

:class:`RayCluster` joins (or, with ``--ray-address local``, starts) the cluster and sizes the
pool from its resources. Each :class:`RaySlotBackend` drives one actor
(:class:`server.ray_actor.WeftWorker`) for one slot of the pool (:mod:`server.worker_pool`): it
hands it a job, reads the job's event batches until the result, interrupts it, and
replaces it when it dies. Ray is imported here only, and only with ``--backend ray``.

The slot's thread waits for a run's reply and, while it runs, long-polls its events (``next``),
so each batch reaches the server as soon as the worker has it; :mod:`server.ray_actor` says why
plain calls. An interruption the prompt ignores is ended by a timer: past ``--interrupt-grace`` it
kills the actor, which the slot then replaces, as the worker process would be.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from pathlib import Path
from typing import Any

from engine.executor import RunResult, now_ms

from .backend import Emit, Job, Send
from .config import ServerConfig
from .worker_pool import PoolWorker, SlotWorker, WorkerLost

log = logging.getLogger(__name__)

#: the object store of a Ray instance Weft starts itself: events and previews are small and
#: pictures go to files, so the store holds little (Ray's own default is 30 % of the RAM)
LOCAL_OBJECT_STORE = 100 << 20
#: threads of an actor: one waits for a run's next message, the others answer interrupt and info meanwhile
ACTOR_CONCURRENCY = 4
#: seconds to wait for a run's reply before asking for its events as they come (a prompt that
#: ends sooner costs one call)
FIRST_WAIT = 0.02
#: seconds one ``next`` call waits for events before it answers with none (and is made again)
POLL_WAIT = 1.0
#: seconds after which a worker that is not ready yet is worth a warning (resources short?)
STARTUP_WARNING = 120.0
ROOT = Path(__file__).resolve().parents[1]


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - the launcher checks first
        raise RuntimeError("--backend ray needs Ray: pip install 'weft[ray]'") from exc
    return ray


class RayCluster:
    """The connection to the cluster, and how many actors of what size it runs."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.ray = import_ray()
        #: True when this process started or joined Ray, so it lets go at the end
        self.owned = False

    def connect(self) -> None:
        ray, config = self.ray, self.config
        if ray.is_initialized():
            return  # a host program (a test, a notebook) joined a cluster already
        paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        options: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.WARNING,
            # the actors import Weft from where this server runs it (one machine, or the same
            # path on every machine: docs/scale-out.md)
            "runtime_env": {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}},
        }
        if config.ray_address == "local":
            wanted = max(config.ray_workers, 1) * (config.ray_cpus_per_worker or 1)
            options.update(num_cpus=max(int(wanted + 0.999), os.cpu_count() or 1))
            options.update(object_store_memory=LOCAL_OBJECT_STORE)
        else:
            options["address"] = config.ray_address
        ray.init(**options)
        self.owned = True

    def sizes(self) -> tuple[int, float, float]:
        """``(workers, cpus each, gpus each)`` from the flags, the rest from the cluster."""
        config, resources = self.config, self.ray.cluster_resources()
        gpus_total, cpus_total = resources.get("GPU", 0.0), resources.get("CPU", 1.0)
        gpus = config.ray_gpus_per_worker if config.ray_gpus_per_worker is not None else (1.0 if gpus_total else 0.0)
        cpus = config.ray_cpus_per_worker
        if cpus is None:
            cpus = 1.0 if gpus else min(4.0, max(cpus_total, 1.0))
        workers = config.ray_workers
        if not workers:
            workers = int(gpus_total // gpus) if gpus else int(cpus_total // max(cpus, 0.001))
        return max(workers, 1), cpus, gpus

    def shutdown(self) -> None:
        if self.owned:
            self.owned = False
            self.ray.shutdown()


def _death_reason(name: str, info: dict[str, Any], exc: BaseException) -> str:
    """One line for the history: which worker died, and what Ray says of it."""
    text = str(exc)
    detail = ""
    if "Worker exit detail:" in text:
        detail = text.split("Worker exit detail:", 1)[1].strip().split(". ")[0]
    where = f" (pid {info['pid']} on {info.get('node')})" if info.get("pid") else ""
    return f"the Ray worker {name}{where} died" + (f": {detail}" if detail else " (killed, or out of memory?)")


class RaySlotBackend:
    """One worker actor, behind the calls of :class:`~server.backend.ExecutionBackend`."""

    mode = "ray"

    def __init__(
        self, cluster: RayCluster, name: str, config: ServerConfig, send: Send, resources: tuple[float, float]
    ) -> None:
        self.cluster, self.ray = cluster, cluster.ray
        self.name = name
        self.config = config
        self.send = send
        self.cpus, self.gpus = resources
        self.grace = config.interrupt_grace
        self.actor: Any = None
        self._ready_ref: Any = None
        #: the actor's last report (pid, node, models, cache), sent with every result
        self.info: dict[str, Any] = {}
        #: actors started after the first (deaths, kills)
        self.restarts = 0
        #: the actor is gone (it died, or was killed for ignoring an interruption): replace it first
        self.broken = False
        self.error: str | None = None
        #: the actor has loaded its nodes (:meth:`wait_ready` saw it)
        self.ready = False
        self._started_at = 0.0
        self._warned = False
        self._lock = threading.Lock()
        #: kills the actor when an interrupted run goes on past the grace period
        self._timer: threading.Timer | None = None
        self._running = False
        #: the running prompt's actor was killed by that timer
        self._stuck = False
        #: the prompt the slot was handed last (set by the slot before it runs it)
        self.prompt_id: str | None = None
        #: the prompt an interruption was asked for
        self._interrupted: str | None = None

    # -- the actor's life ------------------------------------------------------------------
    def start(self) -> None:
        """Create the actor (returns at once); :meth:`wait_ready` waits for it."""
        from .ray_actor import WeftWorker

        remote = self.ray.remote(WeftWorker).options(
            num_cpus=self.cpus,
            num_gpus=self.gpus,
            max_concurrency=ACTOR_CONCURRENCY,
            max_restarts=0,  # the slot replaces it itself: it must know which prompt was lost
            scheduling_strategy="SPREAD",
        )
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        self.actor = remote.remote(self.config, self.name, level)
        self._ready_ref = self.actor.info.remote()
        self.broken = self.ready = self._warned = False
        self._started_at = time.monotonic()

    def wait_ready(self, timeout: float) -> bool:
        """True once the actor has loaded its nodes; False while it is still starting or waits for
        resources. Raises :class:`WorkerLost` when it failed to start."""
        ready, _ = self.ray.wait([self._ready_ref], timeout=timeout)
        if not ready:
            if not self._warned and time.monotonic() - self._started_at > STARTUP_WARNING:
                self._warned = True
                log.warning(
                    "%s is not ready after %.0f s: does the cluster have %g CPU and %g GPU free for it?",
                    self.name,
                    STARTUP_WARNING,
                    self.cpus,
                    self.gpus,
                )
            return False
        try:
            self.info = self.ray.get(self._ready_ref)
        except self.ray.exceptions.RayError as exc:
            self.error = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise WorkerLost(f"the Ray worker {self.name} failed to start: {self.error}") from None
        self.error, self.ready = None, True
        return True

    def replace(self) -> None:
        self.stop(0)
        self.restarts += 1
        self.start()

    def stop(self, timeout: float) -> None:
        """End the actor: with a ``timeout``, let it exit by itself first (Ray's graceful
        termination runs its exit handlers: logs flushed, GPU memory released); then, or at
        once, kill it."""
        actor, self.actor, self.ready = self.actor, None, False
        if actor is None:
            return
        ray = self.ray
        try:
            if timeout > 0 and not self.broken:
                ray.wait([actor.__ray_terminate__.remote()], timeout=timeout)
            ray.kill(actor, no_restart=True)
        except Exception:  # already gone, or Ray shut down
            log.debug("ending %s", self.name, exc_info=True)

    # -- running ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Nothing to do: the pool hands prompts to a slot only once its actor is ready."""

    def execute(self, job: Job, emit: Emit) -> RunResult:
        """Run ``job`` on the actor; raises :class:`WorkerLost` when the actor dies under it."""
        with self._lock:
            self._running, self._stuck, self.prompt_id = True, False, job.prompt_id
            if self._interrupted == job.prompt_id:  # asked before the run began
                self._arm_kill(self.actor)
        last: dict[str, Any] = {}
        try:
            messages = self._exchange(job, emit, last)
        finally:
            with self._lock:
                self._running = False
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
        if messages is None:  # killed after the grace period
            return self._after_kill(job, emit, last)
        for message in messages:
            self._deliver(message[-1], emit, last)
        result = messages[-1]
        self.info = result[2]
        return RunResult(**result[1])

    def _exchange(self, job: Job, emit: Emit, last: dict[str, Any]) -> list[Any] | None:
        """``run`` the job; while it runs, deliver what ``next`` returns. Returns ``run``'s reply
        (the messages ``next`` did not take, the result last), or ``None`` when the actor was
        killed for ignoring an interruption."""
        ray, actor = self.ray, self.actor
        run = actor.run.remote(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        ready, _ = ray.wait([run], timeout=FIRST_WAIT)  # most short prompts end here: one call
        poll = None
        while not ready:
            if poll is None:
                poll = actor.next.remote(POLL_WAIT)
            done, _ = ray.wait([run, poll], num_returns=1)
            if poll in done:
                batches = self._get(poll, job, last)
                poll = None
                if batches is None:
                    return None
                for message in batches:
                    self._deliver(message[-1], emit, last)
            ready = [run] if run in done else []
        if poll is not None:  # taken before run's reply was made: delivered first
            for message in self._get(poll, job, last) or []:
                self._deliver(message[-1], emit, last)
        return self._get(run, job, last)

    def _get(self, reply: Any, job: Job, last: dict[str, Any]) -> list[Any] | None:
        """The messages of a reply; ``None`` once the actor was killed for ignoring an
        interruption (:meth:`_kill_stuck`); :class:`WorkerLost` when it died otherwise."""
        ray = self.ray
        try:
            return pickle.loads(ray.get(reply))
        except ray.exceptions.RayActorError as exc:  # died, or unreachable (ActorDiedError, ActorUnavailableError)
            self.broken = True
            if self._stuck:
                return None
            raise WorkerLost(_death_reason(self.name, self.info, exc), self._node(job, last)) from None

    def _kill_stuck(self, actor: Any, prompt_id: str | None) -> None:
        """The grace period after an interruption is over and the run goes on: kill the actor
        (the slot starts a new one)."""
        with self._lock:
            if not self._running or self.actor is not actor:
                return
            self._stuck = True
        log.warning("prompt %s ignored its interruption for %.1f s: replacing %s", prompt_id, self.grace, self.name)
        self.ray.kill(actor, no_restart=True)

    def _deliver(self, batch: list[tuple[Any, ...]], emit: Emit, last: dict[str, Any]) -> None:
        for item in batch:
            if item[0] == "e":
                if item[1] == "executing" and isinstance(item[2], dict):
                    last.update(item[2])
                emit(item[1], item[2])
            else:  # a pack's own message (PromptServer.instance.send_sync)
                self.send(item[1], item[2], item[3])

    @staticmethod
    def _node(job: Job, last: dict[str, Any]) -> dict[str, Any]:
        node_id = last.get("node")
        raw = job.prompt.get(node_id) if isinstance(node_id, str) else None
        return {"node": node_id, "class_type": raw.get("class_type") if isinstance(raw, dict) else None}

    def _after_kill(self, job: Job, emit: Emit, last: dict[str, Any]) -> RunResult:
        node = self._node(job, last)
        payload = {
            "prompt_id": job.prompt_id,
            "node_id": node["node"],
            "node_type": node["class_type"],
            "executed": [],
            "timestamp": now_ms(),
        }
        emit("execution_interrupted", payload)
        result = RunResult(job.prompt_id, "error", False, interrupted=True)
        result.messages.append(["execution_interrupted", payload])
        return result

    def interrupt(self) -> None:
        """Interrupt the prompt this slot was handed (:attr:`prompt_id`), even when the actor has
        not started it yet: the actor remembers which prompt to stop."""
        actor, prompt_id = self.actor, self.prompt_id
        if actor is None:
            return
        actor.interrupt.remote(prompt_id)  # served on another of the actor's threads while it runs
        with self._lock:
            self._interrupted = prompt_id
            if self._running:
                self._arm_kill(actor)

    def _arm_kill(self, actor: Any) -> None:
        """Start the grace period's timer (once per run); call with ``_lock`` held."""
        if self._timer is None:
            self._timer = threading.Timer(self.grace, self._kill_stuck, (actor, self.prompt_id))
            self._timer.daemon = True
            self._timer.start()

    def free(self, free_memory: bool, unload_models: bool) -> None:
        if self.actor is None or self.broken or not self.ready:
            return  # nothing loaded yet, or gone
        try:
            self.info = self.ray.get(self.actor.free.remote(free_memory, unload_models), timeout=120)
        except Exception as exc:  # a dead actor holds nothing; the slot replaces it
            log.error("freeing memory on %s: %s", self.name, exc)

    # -- reports -----------------------------------------------------------------------------
    def held(self) -> frozenset[str]:
        """Fingerprints of the model files whose weights the actor holds (as of its last report)."""
        return frozenset(k for k, v in self.info.get("models", {}).items() if v.get("loaded"))

    def identity(self) -> dict[str, Any]:
        """For the history entry: which worker ran the prompt."""
        info = self.info
        return {"id": self.name, "backend": "ray", "pid": info.get("pid"), "node": info.get("node")}

    def describe(self) -> dict[str, Any]:
        info = self.info
        models = [{"file": k, **v} for k, v in info.get("models", {}).items()]
        return {
            "id": self.name,
            "pid": info.get("pid"),
            "node": info.get("node"),
            "gpus": info.get("gpus"),
            "resources": {"CPU": self.cpus, "GPU": self.gpus},
            "restarts": self.restarts,
            "prompts": info.get("prompts", 0),
            "models": models,
            "devices": info.get("devices", []),
            "cache": info.get("cache", {}),
            "error": self.error,
        }

    def release_thread(self) -> None:
        """The slot's thread holds nothing of Ray's."""


def make_ray_slots(pool: PoolWorker) -> list[SlotWorker]:
    """Join the cluster and make the pool's slots, one worker actor each (started by the slots)."""
    server = pool.server
    cluster = RayCluster(server.config)
    cluster.connect()
    pool.cluster = cluster
    workers, cpus, gpus = cluster.sizes()
    log.info("Ray pool: %d workers of %g CPU and %g GPU each", workers, cpus, gpus)
    return [
        SlotWorker(pool, RaySlotBackend(cluster, f"ray-{i}", server.config, server.bus.send_sync, (cpus, gpus)))
        for i in range(workers)
    ]
