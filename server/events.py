"""Delivery of events to WebSocket clients, from any thread, in order.

Node code runs on the worker thread; the sockets live on the event loop. Events are put on
an asyncio queue with ``call_soon_threadsafe`` and one task sends them, so order is kept
and the worker never waits on a slow client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

#: ComfyUI's binary frame types
PREVIEW_IMAGE = 1
UNENCODED_PREVIEW_IMAGE = 2
IMAGE_TYPES = {"JPEG": 1, "PNG": 2}


def encode_preview(image_format: str, data: bytes) -> bytes:
    """ComfyUI's framing: big-endian event type, big-endian image type, image bytes."""
    return struct.pack(">II", PREVIEW_IMAGE, IMAGE_TYPES.get(image_format.upper(), 1)) + data


def _dumps(event: str, data: Any) -> str:
    return json.dumps({"type": event, "data": data}, default=str)


class EventBus:
    def __init__(self) -> None:
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[str, Any, str | None]] | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._pump(), name="weft-event-pump")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for ws in list(self.sockets.values()):
            await ws.close()

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        """Queue an event from any thread; ``sid=None`` broadcasts."""
        if self.loop is None or self._queue is None or self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self._queue.put_nowait, (event, data, sid))

    async def send(self, event: str, data: Any, sid: str | None = None) -> None:
        if event == "preview_bytes":
            message: str | bytes = data
        else:
            message = _dumps(event, data)
        if sid is None:
            targets = list(self.sockets.values())
        else:
            ws = self.sockets.get(sid)
            targets = [ws] if ws is not None else []
        for ws in targets:
            if ws.closed:
                continue
            try:
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_str(message)
            except (ConnectionResetError, RuntimeError) as exc:
                log.debug("dropping event for a closed socket: %s", exc)

    async def _pump(self) -> None:
        assert self._queue is not None
        while True:
            event, data, sid = await self._queue.get()
            try:
                await self.send(event, data, sid)
            except Exception:  # a bad payload must not stop delivery of the next ones
                log.exception("could not send event %s", event)
