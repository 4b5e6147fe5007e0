"""Queueing and controlling prompts: /prompt, /queue, /history, /interrupt, /free."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from typing import Any

from aiohttp import web

from engine import normalise_prompt, validate_prompt_async
from engine.validation import ValidationResult

from ..console import validation_lines
from ..http import BadRequest, json_response, json_response_offloop, query_int, read_json_object
from ..keys import server_of
from ..prompt_server import PromptServer
from ..queue import CHUNKED_NODES, PromptIdInUse, QueueFull, QueueItem
from ..store import StoreError

log = logging.getLogger(__name__)


def _string_list(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"'{key}' must be a list of prompt ids (strings)")
    return value


#: prompts with more nodes than this are normalised on a worker thread, not on the event loop
OFFLOAD_NODES = 2000
#: prompts with more nodes are queued (JSON written, saved) on a thread, not on the event loop.
#: Up to this size the C encoder writes the JSON in one call (a 1000-node prompt: ~2 ms) and the
#: WAL append takes ~0.1 ms (no fsync): cheaper than a thread hop, which waits for the GIL behind
#: the running prompt (a third of the throughput of small prompts). See ``queue.CHUNKED_NODES``.
OFFLOAD_PUT_NODES = CHUNKED_NODES
#: longest client-chosen prompt or client id (they end up in URLs, logs and history keys)
MAX_ID_LENGTH = 256


def _checked_fields(data: dict[str, Any]) -> tuple[str | None, dict[str, Any], list[str] | None, str, float | None]:
    """``client_id``, ``extra_data``, ``partial_execution_targets``, ``prompt_id`` and ``number``
    of a POST /prompt body, checked: what is stored here is served to every client later by
    /queue, /history and /api/jobs, so one odd value must not break those routes for everyone."""
    client_id = data.get("client_id")
    if client_id is not None and not (isinstance(client_id, str) and len(client_id) <= MAX_ID_LENGTH):
        raise BadRequest(f"'client_id' must be a string of at most {MAX_ID_LENGTH} characters")
    extra_data = data.get("extra_data", {})
    if not isinstance(extra_data, dict):
        raise BadRequest("'extra_data' must be an object")
    if client_id is None and isinstance(extra_data.get("client_id"), str):
        client_id = extra_data["client_id"][:MAX_ID_LENGTH]  # ComfyUI routes by extra_data.client_id
    pnginfo = extra_data.get("extra_pnginfo")
    if pnginfo is not None and not isinstance(pnginfo, dict):
        raise BadRequest("'extra_data.extra_pnginfo' must be an object (e.g. {\"workflow\": {...}})")
    targets = data.get("partial_execution_targets")
    if targets is not None and not (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
        raise BadRequest("'partial_execution_targets' must be a list of node ids")
    prompt_id = data.get("prompt_id") or str(uuid.uuid4())
    if not isinstance(prompt_id, str) or len(prompt_id) > MAX_ID_LENGTH:
        raise BadRequest(f"'prompt_id' must be a string of at most {MAX_ID_LENGTH} characters")
    number = data.get("number")
    if number is not None:
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            raise BadRequest("'number' must be a number")
        if isinstance(number, float) and not math.isfinite(number):
            raise BadRequest("'number' must be a finite number")  # NaN made /history invalid JSON
        if abs(number) > 2**53:
            raise BadRequest("'number' must be between -2**53 and 2**53")
    return client_id, extra_data, targets, prompt_id, number


def _prompt_id_taken(server: PromptServer, prompt_id: str) -> bool:
    """True when ``prompt_id`` is queued, running or in history: reusing it would overwrite
    another prompt's history entry (another user's, perhaps)."""
    return server.queue.contains(prompt_id) or prompt_id in server.history


def _prompt_id_in_use(prompt_id: str) -> web.Response:
    message = f"prompt_id {prompt_id!r} is already used by a queued, running or finished prompt"
    return json_response(
        {
            "error": {
                "type": "prompt_id_in_use",
                "message": message,
                "details": "Leave out prompt_id to get a new one, or choose an unused id.",
                "extra_info": {"prompt_id": prompt_id},
            },
            "node_errors": {},
        },
        400,
    )


def _queue_full(exc: QueueFull) -> web.Response:
    """429 naming the bound (never a 500): the client may retry once prompts have run."""
    response = json_response(
        {
            "error": {
                "type": "queue_full",
                "message": exc.message,
                "details": f"Raise {exc.flag} when starting the server to allow more.",
                "extra_info": {"bound": exc.flag, "limit": exc.limit},
            },
            "node_errors": {},
        },
        429,
    )
    response.headers["Retry-After"] = "5"
    return response


def _on_prompt(server: PromptServer, data: dict[str, Any]) -> dict[str, Any]:
    """The body after the packs' ``on_prompt`` hooks (one that fails is skipped)."""
    for handler in server.on_prompt_handlers:
        try:
            data = handler(data) or data
        except Exception:
            log.exception("an on_prompt handler failed; ignoring it")
    return data


async def _normalised(raw_prompt: Any) -> dict[str, Any] | web.Response:
    """The prompt in engine form, or the 400 naming what is wrong with it."""
    try:
        if isinstance(raw_prompt, dict) and len(raw_prompt) > OFFLOAD_NODES:  # seconds of Python for 100k nodes
            return await asyncio.get_running_loop().run_in_executor(None, normalise_prompt, raw_prompt)
        return normalise_prompt(raw_prompt)
    except ValueError as exc:
        log.warning("invalid prompt: %s", exc)
        return json_response(
            {
                "error": {
                    "type": "invalid_prompt",
                    "message": f"Invalid prompt: {exc}",
                    "details": str(exc),
                    "extra_info": {},
                },
                "node_errors": {},
            },
            400,
        )


def _log_validation(result: ValidationResult) -> None:
    if not result.ok:
        for line in validation_lines(result.error, result.node_errors):
            log.warning("%s", line)
    elif result.node_errors:  # ComfyUI: the valid outputs run, the others are named and ignored
        for line in validation_lines(None, result.node_errors):
            log.warning("%s", line)
        log.warning(
            "outputs %s will be ignored",
            sorted({o for e in result.node_errors.values() for o in e["dependent_outputs"]}),
        )


async def get_prompt(request: web.Request) -> web.Response:
    return json_response(server_of(request).queue_info())


async def post_prompt(request: web.Request) -> web.Response:
    server = server_of(request)
    data = _on_prompt(server, await read_json_object(request))
    if "prompt" not in data:
        raise BadRequest('missing \'prompt\': expected {"prompt": {...}, "client_id": ...}')
    prompt = await _normalised(data["prompt"])
    if isinstance(prompt, web.Response):
        return prompt
    client_id, extra_data, targets, prompt_id, number = _checked_fields(data)
    front = bool(data.get("front"))
    if _prompt_id_taken(server, prompt_id):  # early, before validation; checked again below
        return _prompt_id_in_use(prompt_id)
    try:
        server.queue.check_room()  # a full queue refuses before validation works
    except QueueFull as exc:
        return _queue_full(exc)

    # awaits async VALIDATE_INPUTS; a large prompt is checked off the event loop
    result = await validate_prompt_async(
        prompt, server.registry, targets, memory_budget=server.config.node_memory_budget
    )
    _log_validation(result)
    if not result.ok:
        return json_response({"error": result.error, "node_errors": result.node_errors}, 400)
    if _prompt_id_taken(server, prompt_id):  # a concurrent request took it while this one validated
        return _prompt_id_in_use(prompt_id)
    if number is None:
        number = server.queue.next_number(front)
    extra_data = dict(extra_data)
    extra_data.setdefault("client_id", client_id)
    # the server's clock, always (as ComfyUI): a client's "yesterday" broke /api/jobs' sort for everyone
    extra_data["create_time"] = int(time.time() * 1000)
    item = QueueItem(number, prompt_id, result.prompt, extra_data, result.outputs, client_id, order=result.order)
    try:
        if len(item.prompt) > OFFLOAD_PUT_NODES:  # see OFFLOAD_PUT_NODES
            await asyncio.get_running_loop().run_in_executor(None, server.queue.put, item)
        else:
            server.queue.put(item)
    except QueueFull as exc:
        return _queue_full(exc)
    except PromptIdInUse:  # a concurrent request with the same id got there first
        return _prompt_id_in_use(prompt_id)
    except StoreError as exc:  # not queued: a prompt the next restart would lose is not accepted
        log.error("%s", exc)
        return json_response(
            {
                "error": {
                    "type": "queue_unavailable",
                    "message": f"the prompt was not queued: {exc}",
                    "details": "Free disk space where the user directory is, or start the "
                    "server with --memory-only-queue.",
                    "extra_info": {},
                },
                "node_errors": {},
            },
            503,
        )
    server.broadcast_status()
    return json_response({"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors})


async def get_queue(request: web.Request) -> web.Response:
    queue = server_of(request).queue
    # serialised off the loop: pending prompts can be many megabytes
    return await json_response_offloop(
        {
            "queue_running": [i.as_comfy() for i in queue.running()],
            "queue_pending": [i.as_comfy() for i in queue.pending()],
        }
    )


async def post_queue(request: web.Request) -> web.Response:
    server = server_of(request)
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


async def get_history(request: web.Request) -> web.Response:
    max_items = query_int(request, "max_items")
    offset = query_int(request, "offset", 0) or 0
    history = server_of(request).history
    # gathered (entries a restart read back are parsed on first use) and serialised off the loop, a
    # history entry at a time: big entries stalled every client
    entries = await asyncio.get_running_loop().run_in_executor(None, history.items, max_items, offset)
    return await json_response_offloop(entries)


async def get_history_item(request: web.Request) -> web.Response:
    prompt_id = request.match_info["prompt_id"]
    entry = server_of(request).history.get(prompt_id)
    return await json_response_offloop({prompt_id: entry} if entry is not None else {})


async def post_history(request: web.Request) -> web.Response:
    history = server_of(request).history
    data = await read_json_object(request)
    if data.get("clear"):
        history.clear()
    if "delete" in data:
        history.delete(_string_list(data, "delete"))
    return web.Response(status=200)


async def post_interrupt(request: web.Request) -> web.Response:
    data = await read_json_object(request, allow_empty=True)
    prompt_id = data.get("prompt_id")
    if prompt_id is not None and not isinstance(prompt_id, str):
        raise BadRequest("'prompt_id' must be a string")
    server_of(request).worker.interrupt_current(prompt_id)
    return web.Response(status=200)


async def post_free(request: web.Request) -> web.Response:
    """Clear the output cache and free models: at once when no prompt runs, else when it ends
    (the worker owns both while a prompt runs; see :meth:`server.worker.Worker.request_free`)."""
    data = await read_json_object(request, allow_empty=True)
    unload = bool(data.get("unload_models", False))
    free_memory = bool(data.get("free_memory", False))
    worker = server_of(request).worker
    await asyncio.get_running_loop().run_in_executor(None, worker.request_free, unload, free_memory)
    return web.Response(status=200)


def register(routes: web.RouteTableDef) -> None:
    """Add this module's routes to ``routes`` (``create_app`` adds each at /path and /api/path)."""
    routes.get("/prompt")(get_prompt)
    routes.post("/prompt")(post_prompt)
    routes.get("/queue")(get_queue)
    routes.post("/queue")(post_queue)
    routes.get("/history")(get_history)
    routes.get("/history/{prompt_id}")(get_history_item)
    routes.post("/history")(post_history)
    routes.post("/interrupt")(post_interrupt)
    routes.post("/free")(post_free)
