"""Delivery of events to WebSocket clients, from any thread, in order.

Node code runs on the worker thread; the sockets live on the event loop. Events go into a
thread-safe deque and one task sends them, so order is kept and the worker never waits on
a slow client. The loop is woken once per batch, not once per event: with a wake-up per
event the two threads traded the GIL for every node and that doubled the per-node cost.

Each socket has its own bounded send queue and sender task, so one client that stops
reading cannot hold up the others (a single sender awaiting that client's full TCP buffer
once stalled every client for minutes). When a client falls behind, preview frames are
dropped first (:attr:`EventBus.preview_backlog`); when its queue passes
:attr:`EventBus.max_queued_messages` or :attr:`EventBus.max_queued_bytes` it is disconnected,
and a reconnecting client gets the current status again, as after any reconnect.

``progress_state`` (ComfyUI's per-node progress) carries every node the run has started, and
the engine announces each change. Clients only draw the newest, so the bus sends at most one
per :attr:`EventBus.progress_interval` per client and prompt (longer for a state that is slow
to write), always the newest, and always before the event that ends the prompt: serialising
the whole state on every node's start and finish made a 2000-node prompt spend most of its
time writing states nobody would read.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import struct
import threading
from typing import Any

from aiohttp import web

from . import jsonio

log = logging.getLogger(__name__)

#: ComfyUI's binary frame types
PREVIEW_IMAGE = 1
UNENCODED_PREVIEW_IMAGE = 2
IMAGE_TYPES = {"JPEG": 1, "PNG": 2}


def encode_preview(image_format: str, data: bytes) -> bytes:
    """ComfyUI's framing: big-endian event type, big-endian image type, image bytes."""
    return struct.pack(">II", PREVIEW_IMAGE, IMAGE_TYPES.get(image_format.upper(), 1)) + data


def _dumps(event: str, data: Any) -> str:
    # always valid JSON: a NaN or an object in a node's UI output must not break the client's parser
    return jsonio.dumps({"type": event, "data": data})


def _corker(transport: asyncio.BaseTransport | None) -> Any:
    """``cork(on) -> on`` for a client's TCP socket (Linux ``TCP_CORK``; a no-op elsewhere).

    A run sends one small WebSocket frame per node; written one by one, each frame is a packet
    the kernel delivers on its own (on loopback, the receiver's whole receive path runs inside
    every send). Corked while a backlog is written, the frames leave as full packets, and the
    socket is uncorked as soon as the backlog is gone, so nothing waits.
    """
    sock = transport.get_extra_info("socket") if transport is not None else None
    option = getattr(socket, "TCP_CORK", None)
    if sock is None or option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return lambda on: False

    def cork(on: bool) -> bool:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, 1 if on else 0)
        except OSError:
            return False
        return on

    return cork


class _Client:
    """One socket's send queue and the task that drains it."""

    __slots__ = ("sid", "ws", "transport", "queue", "queued_bytes", "wake", "task", "closing", "dropped")

    def __init__(self, sid: str, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> None:
        self.sid, self.ws, self.transport = sid, ws, transport
        self.queue: collections.deque[str | bytes] = collections.deque()
        self.queued_bytes = 0
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.closing = False
        self.dropped = 0


#: events after which a prompt sends nothing more: its last ``progress_state`` goes out before them
_PROMPT_ENDS = frozenset({"execution_success", "execution_error", "execution_interrupted"})


def _ends_prompt(event: str, data: Any) -> bool:
    if event == "executing":
        return isinstance(data, dict) and data.get("node") is None
    return event in _PROMPT_ENDS


def _progress_key(sid: str | None, data: Any) -> tuple[str | None, Any]:
    return sid, data.get("prompt_id") if isinstance(data, dict) else id(data)


def _dumps_live(event: str, data: Any) -> str:
    """The message for a payload the worker thread keeps changing (``progress_state``).

    Written by the C JSON encoder, which runs no Python code while it writes plain data, so no
    other thread changes the payload meanwhile: no copy of every node's entry first (which cost
    more than the writing). A payload the C encoder refuses (a NaN) is copied, then written the
    careful way."""
    try:
        return jsonio.encode_plain({"type": event, "data": data})
    except (ValueError, TypeError, RecursionError, RuntimeError):
        return _dumps(event, _snapshot_progress(data))


def _snapshot_progress(data: Any) -> Any:
    """A copy of a live ``progress_state`` payload; ``list(...)`` copies atomically while the
    worker thread keeps updating the original."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
        return data
    return {**data, "nodes": {node_id: dict(entry) for node_id, entry in list(data["nodes"].items())}}


class EventBus:
    #: a client with this many messages waiting gets no preview frames until it catches up
    preview_backlog = 16
    #: ... or this many bytes waiting
    preview_backlog_bytes = 2 << 20
    #: a client with this many messages (or bytes) waiting is disconnected: it is not reading
    max_queued_messages = 4096
    max_queued_bytes = 64 << 20
    #: seconds between two ``progress_state`` events of one prompt to one client, at least ...
    progress_interval = 0.1
    #: ... and at least this many times as long as writing the last one took: a state of
    #: thousands of nodes takes milliseconds to write (and to parse on the client)
    progress_cost_factor = 10

    def __init__(self) -> None:
        #: live sockets by client id (read by routes and packs; changed only by register/unregister)
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self._clients: dict[str, _Client] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pending: collections.deque[tuple[str, Any, str | None]] = collections.deque()
        self._wake_scheduled = False
        self._ready: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        #: newest unsent ``progress_state`` per (client, prompt); a marker in ``_pending`` or a
        #: timer stands for it, so the payload itself is never queued twice
        self._live: dict[tuple[str | None, Any], Any] = {}
        self._live_lock = threading.Lock()
        #: loop time before which the next state of a (client, prompt) waits
        self._live_due: dict[tuple[str | None, Any], float] = {}
        self._live_timers: dict[tuple[str | None, Any], asyncio.TimerHandle] = {}

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(self._pump(), name="weft-event-pump")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for timer in self._live_timers.values():
            timer.cancel()
        self._live_timers.clear()
        for client in list(self._clients.values()):
            if client.task is not None:
                client.task.cancel()
            try:
                await asyncio.wait_for(client.ws.close(), 1.0)
            except (TimeoutError, ConnectionError, RuntimeError):
                if client.transport is not None:
                    client.transport.abort()
        self._clients.clear()
        self.sockets.clear()

    # -- sockets ---------------------------------------------------------------------------
    def register(self, sid: str, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None = None) -> None:
        """Deliver events for ``sid`` to ``ws`` from now on (call on the event loop).

        ``transport`` lets a client that stops reading be cut off at once; without it the
        socket is closed politely.
        """
        previous = self._clients.get(sid)
        if previous is not None:
            self._drop(previous)
        client = _Client(sid, ws, transport)
        client.task = asyncio.get_running_loop().create_task(self._sender(client), name=f"weft-ws-{sid[:16]}")
        self._clients[sid] = client
        self.sockets[sid] = ws

    def unregister(self, sid: str, ws: web.WebSocketResponse) -> None:
        """Forget ``sid`` if it is still bound to ``ws`` (a newer socket for the id stays)."""
        client = self._clients.get(sid)
        if client is not None and client.ws is ws:
            self._drop(client)

    def backlog(self, sid: str) -> int:
        """Bytes queued for ``sid`` and not yet handed to its socket (0 for an unknown id)."""
        client = self._clients.get(sid)
        return client.queued_bytes if client is not None else 0

    def is_live(self, sid: str) -> bool:
        """True when ``sid`` has a socket that is open and not being cut off."""
        client = self._clients.get(sid)
        return client is not None and not client.closing and not client.ws.closed

    def _drop(self, client: _Client) -> None:
        client.closing = True
        client.queue.clear()
        client.queued_bytes = 0
        if client.task is not None:
            client.task.cancel()
        if self._clients.get(client.sid) is client:
            del self._clients[client.sid]
            if self.sockets.get(client.sid) is client.ws:
                del self.sockets[client.sid]

    def _disconnect(self, client: _Client, reason: str) -> None:
        log.warning("disconnecting WebSocket client %s: %s", client.sid, reason)
        self._drop(client)
        if client.transport is not None:
            # aborted, not closed: a close frame would wait behind the data the client does not read
            client.transport.abort()
        else:
            asyncio.get_running_loop().create_task(client.ws.close())

    def _enqueue(self, client: _Client, message: str | bytes, droppable: bool) -> None:
        if client.closing:
            return
        size = len(message)
        if droppable and (
            len(client.queue) >= self.preview_backlog or client.queued_bytes + size > self.preview_backlog_bytes
        ):
            client.dropped += 1
            return
        if len(client.queue) >= self.max_queued_messages or client.queued_bytes + size > self.max_queued_bytes:
            self._disconnect(
                client,
                f"it is not reading its events ({len(client.queue)} messages, {client.queued_bytes} bytes waiting)",
            )
            return
        client.queue.append(message)
        client.queued_bytes += size
        client.wake.set()

    async def _sender(self, client: _Client) -> None:
        ws = client.ws
        cork = _corker(client.transport)
        corked = False
        try:
            while not client.closing:
                if not client.queue:
                    if corked:
                        corked = cork(False)
                    client.wake.clear()
                    await client.wake.wait()
                    continue
                if not corked and len(client.queue) > 2:
                    corked = cork(True)
                message = client.queue.popleft()
                client.queued_bytes -= len(message)
                if ws.closed:
                    break
                if isinstance(message, str):
                    await ws.send_str(message)
                else:
                    await ws.send_bytes(message)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("stopped sending to a closed socket %s: %s", client.sid, exc)

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        """Queue an event from any thread; ``sid=None`` broadcasts.

        A ``progress_state`` replaces the unsent one of the same client and prompt (see the
        module docstring); only the first of them is queued, as a marker for the newest.
        """
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if event == "progress_state":
            key = _progress_key(sid, data)
            # the engine sends one live payload per run, changed in place before each event: while
            # that very object waits to be sent, whoever sends it sends this change too (taken
            # from the dict after this check, the payload is written after the change)
            if self._live.get(key) is data:
                return
            with self._live_lock:
                waiting = key in self._live
                self._live[key] = data
            if waiting:
                return
            data = key
        self._pending.append((event, data, sid))
        if not self._wake_scheduled:
            self._wake_scheduled = True
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # loop closed while shutting down
                pass

    def _wake(self) -> None:
        # cleared before the pump drains, so an event appended after this point schedules
        # a new wake-up and none is left behind
        self._wake_scheduled = False
        assert self._ready is not None
        self._ready.set()

    async def send(self, event: str, data: Any, sid: str | None = None) -> None:
        """Queue an event for one client (``sid``) or all (``None``); returns without waiting
        for any socket. An ``async`` method because ComfyUI's ``PromptServer.send`` is one."""
        self.deliver(event, data, sid)

    def deliver(self, event: str, data: Any, sid: str | None = None) -> None:
        """:meth:`send` for code on the event loop that cannot await."""
        if event == "preview_bytes":
            message: str | bytes = bytes(data)
        else:
            message = _dumps(event, data)
        self._deliver_message(message, sid)

    def _deliver_message(self, message: str | bytes, sid: str | None) -> None:
        if sid is None:
            clients = list(self._clients.values())
        else:
            client = self._clients.get(sid)
            clients = [client] if client is not None else []
        for client in clients:
            self._enqueue(client, message, isinstance(message, bytes))

    async def _pump(self) -> None:
        assert self._ready is not None
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._pending:
                event, data, sid = self._pending.popleft()
                try:
                    if event == "progress_state":
                        await self._progress_due(data)
                        continue
                    if _ends_prompt(event, data):
                        await self._progress_final(_progress_key(sid, data))
                    await self.send(event, data, sid)
                except Exception:  # a bad payload must not stop delivery of the next ones
                    log.exception("could not send event %s", event)

    async def _progress_due(self, key: tuple[str | None, Any]) -> None:
        """Send the newest state for ``key`` now, or when its interval is over."""
        assert self.loop is not None
        due = self._live_due.get(key, 0.0)
        if self.loop.time() >= due:
            await self._progress_send(key)
        elif key not in self._live_timers:
            self._live_timers[key] = self.loop.call_at(due, self._progress_requeue, key)

    def _progress_requeue(self, key: tuple[str | None, Any]) -> None:
        # back through the queue, so the state goes out in order with the events queued meanwhile
        self._live_timers.pop(key, None)
        self._pending.append(("progress_state", key, key[0]))
        assert self._ready is not None
        self._ready.set()

    async def _progress_final(self, key: tuple[str | None, Any]) -> None:
        """The prompt ends: its newest state goes out at once, and its timing is forgotten."""
        timer = self._live_timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        await self._progress_send(key)
        self._live_due.pop(key, None)

    async def _progress_send(self, key: tuple[str | None, Any]) -> None:
        with self._live_lock:
            data = self._live.pop(key, None)
        if data is None:
            return
        assert self.loop is not None
        started = self.loop.time()
        self._deliver_message(_dumps_live("progress_state", data), key[0])
        now = self.loop.time()
        self._live_due[key] = now + max(self.progress_interval, (now - started) * self.progress_cost_factor)
