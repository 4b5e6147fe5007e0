"""GET /ws: one socket per client id; events of its prompts go to it, status to everyone.

A client id is bound to the connection that holds it. ComfyUI lets a second connection with
the same ``clientId`` take the id over, so anyone who learns an id receives that user's
previews, outputs and errors. Here a second connection while the first is open gets a fresh
id instead, announced in its first ``status`` message (``data.sid``), the field ComfyUI's
front end and Weft's canvas already adopt as their id. A reconnect after the old socket has
closed keeps its id, so a page that reloads or a script that reconnects is unaffected.
"""

from __future__ import annotations

import logging
import uuid

from aiohttp import WSMsgType, web

from ..keys import server_of

log = logging.getLogger(__name__)

#: longest client id accepted; a longer one is replaced like a taken one
MAX_CLIENT_ID = 256


async def websocket(request: web.Request) -> web.WebSocketResponse:
    server = server_of(request)
    ws = web.WebSocketResponse(max_msg_size=1 << 20, heartbeat=30)
    await ws.prepare(request)
    requested = request.query.get("clientId") or ""
    sid = requested
    if not sid or len(sid) > MAX_CLIENT_ID or server.bus.is_live(sid):
        sid = uuid.uuid4().hex
        if requested:
            log.info(
                "a WebSocket asked for client id %r, which is %s; it gets its own id %s",
                requested[:64],
                "too long" if len(requested) > MAX_CLIENT_ID else "in use",
                sid,
            )
    server.bus.register(sid, ws, request.transport)
    try:
        await server.bus.send("status", {"status": server.queue_info(), "sid": sid}, sid)
        if server.client_id == sid and server.last_node_id is not None:
            await server.bus.send("executing", {"node": server.last_node_id, "prompt_id": server.last_prompt_id}, sid)
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                log.debug("websocket %s closed with %s", sid, ws.exception())
    finally:
        server.bus.unregister(sid, ws)
    return ws


def register(routes: web.RouteTableDef) -> None:
    """Add this module's route to ``routes`` (``create_app`` adds it at /ws and /api/ws)."""
    routes.get("/ws")(websocket)
