"""The running server's state, reachable as ``PromptServer.instance`` like ComfyUI's.

Custom node packs written for ComfyUI do ``from server import PromptServer`` and use
``PromptServer.instance.send_sync(...)`` or ``.routes``; the same object is what Weft's own
routes and worker use, so there is one source of truth. ``instance`` is the server of the
current runtime (:func:`nodes.runtime.current`), not a class attribute a server sets: with
two servers in a process, a pack's node reaches the one that runs it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from engine import Executor, OutputCache
from nodes import runtime as node_runtime
from nodes.registry import NodeRegistry

from .config import ServerConfig
from .events import EventBus
from .queue import PromptQueue
from .store import open_state
from .worker_pool import make_worker

if TYPE_CHECKING:
    from .runtime import ServerRuntime

log = logging.getLogger(__name__)


class _CurrentServer:
    """``PromptServer.instance``: the current runtime's server while it has not stopped."""

    def __get__(self, obj: object, owner: type | None = None) -> PromptServer | None:
        # a PromptServer, or the worker process's stand-in (server/worker_process.py:WorkerServer)
        server = node_runtime.current().server
        return server if server is not None and getattr(server, "stopped", True) is False else None


class PromptServer:
    instance = _CurrentServer()

    def __init__(
        self,
        config: ServerConfig,
        registry: NodeRegistry,
        queue: PromptQueue | None = None,
        *,
        runtime: ServerRuntime | None = None,
    ) -> None:
        #: the runtime the worker binds while it runs prompts; ``None`` for a server made without
        #: one (``main.py run``), whose node code runs under the process default
        self.runtime = runtime
        self.config = config
        self.registry = registry
        cache = OutputCache(
            max_entries=config.cache_lru or None,
            max_bytes=int(config.cache_ram_gb * (1 << 30)),
            enabled=not config.cache_none,
        )
        self.executor = Executor(registry, cache)
        # durable under the user directory (server/store.py); a server without a runtime keeps them in memory
        own_queue, self.history, self.store = open_state(config, runtime.paths.user if runtime is not None else None)
        self.queue: PromptQueue = queue or own_queue
        self.bus = EventBus()
        self.worker = make_worker(self)  # the local worker, or a pool with --backend ray
        #: routes that custom node packs add; merged into the app at start-up
        self.routes = web.RouteTableDef()
        self.app: web.Application | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.last_prompt_id: str | None = None
        #: extra hooks: functions(json_data) -> json_data run on every POST /prompt body
        self.on_prompt_handlers: list[Any] = []
        #: set by the plugin loader: what was loaded, failed, how long it took
        self.plugin_report: Any = None
        self.stopped = False

    # -- ComfyUI-compatible messaging ------------------------------------------------------
    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        self.bus.send_sync(event, data, sid)

    async def send(self, event: str, data: Any, sid: str | None = None) -> None:
        await self.bus.send(event, data, sid)

    async def send_json(self, event: str, data: Any, sid: str | None = None) -> None:
        await self.bus.send(event, data, sid)

    def add_on_prompt_handler(self, handler: Any) -> None:
        self.on_prompt_handlers.append(handler)

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    def broadcast_status(self, sid: str | None = None) -> None:
        self.bus.send_sync("status", {"status": self.queue_info(), "sid": sid}, None)

    # -- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.bus.start()
        self.worker.start()

    async def stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.worker.stop)
        await self.bus.stop()
        if self.store is not None:
            self.store.close()  # lets go of the file: another server may use it now
        self.stopped = True
