"""Small helpers so every bad request gets a 4xx with a JSON message, never a 500.

Request bodies are bounded three ways: in size by aiohttp's ``client_max_size``
(``--max-upload-size``, a 413 naming the flag), in nesting by ``--max-json-depth``, and in
time on the event loop: a body above :data:`OFFLOOP_BYTES` is parsed on a worker thread in
chunks (:mod:`server.jsonio` says why a plain ``json.loads`` there would still stall the loop).
Responses go through :func:`server.jsonio.dumps`, so they are valid JSON whatever a node put in
them; big ones are serialised off the loop by :func:`json_response_offloop`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from . import jsonio

#: bodies (and responses) above this size are parsed (serialised) on a worker thread
OFFLOOP_BYTES = 1 << 20
#: ``--max-json-depth``: how deeply a request body may nest; set by ``create_app``
MAX_JSON_DEPTH_KEY = web.AppKey("weft_max_json_depth", int)
DEFAULT_MAX_JSON_DEPTH = 128


def dumps(value: Any) -> str:
    return jsonio.dumps(value)


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=jsonio.dumps)


async def json_response_offloop(value: Any, status: int = 200) -> web.Response:
    """A JSON response serialised on a worker thread, a subtree at a time: ``/history`` and
    ``/api/jobs`` with big entries must not stall every other client while they are written."""
    text = await asyncio.get_running_loop().run_in_executor(None, jsonio.dumps_chunked, value)
    return web.Response(text=text, status=status, content_type="application/json")


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    kind = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
        status, "server_error" if status >= 500 else "bad_request"
    )
    body = {"error": {"type": kind, "message": message, "details": "", "extra_info": extra}}
    return json_response(body, status)


class BadRequest(web.HTTPBadRequest):
    """Raise from a handler; the error middleware turns it into a JSON 400."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(text=message)
        self.message = message
        self.status_code = status


async def read_body(request: web.Request) -> bytes:
    """The whole body, or a 413 that names the limit and the flag that sets it."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        limit = request.app._client_max_size  # aiohttp keeps the limit only there
        raise BadRequest(
            f"request body is larger than this server accepts ({limit / (1 << 20):g} MB; see --max-upload-size)",
            status=413,
        ) from exc


async def parse_json(raw: bytes, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> Any:
    """Parse ``raw`` strictly (:func:`server.jsonio.loads`): inline in one C call when small,
    else on a thread a subtree at a time."""
    try:
        if len(raw) <= OFFLOOP_BYTES:
            return jsonio.loads(raw, max_depth=max_depth)
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: jsonio.loads(raw, max_depth=max_depth, chunked=True)
        )
    except jsonio.JSONInputError as exc:
        raise BadRequest(str(exc)) from None


async def read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    raw = await read_body(request)
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("request body is empty; expected a JSON object")
    return await parse_json(raw, request.app.get(MAX_JSON_DEPTH_KEY, DEFAULT_MAX_JSON_DEPTH))


async def read_json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    data = await read_json(request, allow_empty=allow_empty)
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def query_int(request: web.Request, name: str, default: int | None = None, minimum: int = 0) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    if len(value) > 18 or not value.lstrip("-").isdigit():
        raise BadRequest(f"query parameter {name!r} must be an integer below 10**18, got {value[:40]!r}")
    number = int(value)
    if number < minimum:
        raise BadRequest(f"query parameter {name!r} must be >= {minimum}")
    return number
