"""Small helpers so every bad request gets a 4xx with a JSON message, never a 500."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=dumps)


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


async def read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc


async def read_json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    data = await read_json(request, allow_empty=allow_empty)
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def query_int(request: web.Request, name: str, default: int | None = None, minimum: int = 0) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise BadRequest(f"query parameter {name!r} must be an integer, got {value!r}") from exc
    if number < minimum:
        raise BadRequest(f"query parameter {name!r} must be >= {minimum}")
    return number
