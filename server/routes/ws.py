"""GET /ws: one socket per client id; events of its prompts go to it, status to everyone."""

from __future__ import annotations

import logging
import uuid

from aiohttp import WSMsgType, web

from ..prompt_server import PromptServer

log = logging.getLogger(__name__)


def setup(routes: web.RouteTableDef, server: PromptServer) -> None:
    @routes.get("/ws")
    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20, heartbeat=30)
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        previous = server.bus.sockets.get(sid)
        server.bus.sockets[sid] = ws
        if previous is not None and not previous.closed:
            await previous.close()
        try:
            await server.bus.send("status", {"status": server.queue_info(), "sid": sid}, sid)
            if server.client_id == sid and server.last_node_id is not None:
                await server.bus.send(
                    "executing", {"node": server.last_node_id, "prompt_id": server.last_prompt_id}, sid
                )
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    log.debug("websocket %s closed with %s", sid, ws.exception())
        finally:
            if server.bus.sockets.get(sid) is ws:
                del server.bus.sockets[sid]
        return ws
