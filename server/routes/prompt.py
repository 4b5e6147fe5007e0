"""Queueing and controlling prompts: /prompt, /queue, /history, /interrupt, /free."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from aiohttp import web

from engine import normalise_prompt, validate_prompt

from ..console import validation_lines
from ..http import BadRequest, json_response, query_int, read_json_object
from ..prompt_server import PromptServer
from ..queue import QueueItem

log = logging.getLogger(__name__)


def _string_list(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"'{key}' must be a list of prompt ids (strings)")
    return value


def setup(routes: web.RouteTableDef, server: PromptServer) -> None:
    @routes.get("/prompt")
    async def get_prompt(request: web.Request) -> web.Response:
        return json_response(server.queue_info())

    @routes.post("/prompt")
    async def post_prompt(request: web.Request) -> web.Response:
        data = await read_json_object(request)
        for handler in server.on_prompt_handlers:
            try:
                data = handler(data) or data
            except Exception:
                log.exception("an on_prompt handler failed; ignoring it")
        if "prompt" not in data:
            raise BadRequest("missing 'prompt': expected {\"prompt\": {...}, \"client_id\": ...}")
        try:
            prompt = normalise_prompt(data["prompt"])
        except ValueError as exc:
            log.warning("invalid prompt: %s", exc)
            return json_response(
                {"error": {"type": "invalid_prompt", "message": f"Invalid prompt: {exc}", "details": str(exc), "extra_info": {}}, "node_errors": {}},
                400,
            )
        client_id = data.get("client_id")
        if client_id is not None and not isinstance(client_id, str):
            raise BadRequest("'client_id' must be a string")
        extra_data = data.get("extra_data", {})
        if not isinstance(extra_data, dict):
            raise BadRequest("'extra_data' must be an object")
        targets = data.get("partial_execution_targets")
        if targets is not None and not (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
            raise BadRequest("'partial_execution_targets' must be a list of node ids")
        prompt_id = data.get("prompt_id") or str(uuid.uuid4())
        if not isinstance(prompt_id, str):
            raise BadRequest("'prompt_id' must be a string")
        number = data.get("number")
        front = bool(data.get("front"))
        if number is not None and (not isinstance(number, (int, float)) or isinstance(number, bool)):
            raise BadRequest("'number' must be a number")

        if len(prompt) > 2000:
            result = await asyncio.get_running_loop().run_in_executor(None, validate_prompt, prompt, server.registry, targets)
        else:
            result = validate_prompt(prompt, server.registry, targets)
        if not result.ok:
            for line in validation_lines(result.error, result.node_errors):
                log.warning("%s", line)
            return json_response({"error": result.error, "node_errors": result.node_errors}, 400)
        if number is None:
            number = server.queue.next_number(front)
        extra_data = dict(extra_data)
        extra_data.setdefault("client_id", client_id)
        extra_data.setdefault("create_time", int(time.time() * 1000))
        server.queue.put(
            QueueItem(number, prompt_id, result.prompt, extra_data, result.outputs, client_id, order=result.order)
        )
        server.broadcast_status()
        return json_response({"prompt_id": prompt_id, "number": number, "node_errors": {}})

    @routes.get("/queue")
    async def get_queue(request: web.Request) -> web.Response:
        return json_response(
            {
                "queue_running": [i.as_comfy() for i in server.queue.running()],
                "queue_pending": [i.as_comfy() for i in server.queue.pending()],
            }
        )

    @routes.post("/queue")
    async def post_queue(request: web.Request) -> web.Response:
        data = await read_json_object(request)
        if data.get("clear"):
            server.queue.clear()
        if "delete" in data:
            ids = _string_list(data, "delete")
            server.queue.delete(ids)
            for prompt_id in ids:  # ComfyUI: deleting the running prompt interrupts it
                server.worker.interrupt_current(prompt_id)
        server.broadcast_status()
        return web.Response(status=200)

    @routes.get("/history")
    async def get_history(request: web.Request) -> web.Response:
        max_items = query_int(request, "max_items")
        offset = query_int(request, "offset", 0) or 0
        return json_response(server.history.items(max_items, offset))

    @routes.get("/history/{prompt_id}")
    async def get_history_item(request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = server.history.get(prompt_id)
        return json_response({prompt_id: entry} if entry is not None else {})

    @routes.post("/history")
    async def post_history(request: web.Request) -> web.Response:
        data = await read_json_object(request)
        if data.get("clear"):
            server.history.clear()
        if "delete" in data:
            server.history.delete(_string_list(data, "delete"))
        return web.Response(status=200)

    @routes.post("/interrupt")
    async def post_interrupt(request: web.Request) -> web.Response:
        data = await read_json_object(request, allow_empty=True)
        prompt_id = data.get("prompt_id")
        if prompt_id is not None and not isinstance(prompt_id, str):
            raise BadRequest("'prompt_id' must be a string")
        server.worker.interrupt_current(prompt_id)
        return web.Response(status=200)

    @routes.post("/free")
    async def post_free(request: web.Request) -> web.Response:
        data = await read_json_object(request, allow_empty=True)
        unload = bool(data.get("unload_models", False))
        free_memory = bool(data.get("free_memory", False))
        if free_memory:
            server.executor.cache.clear()
        if unload or free_memory:
            from nodes.memory import free_models

            await asyncio.get_running_loop().run_in_executor(None, free_models, unload)
        return web.Response(status=200)
