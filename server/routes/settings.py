"""ComfyUI's settings routes, stored as ComfyUI stores them: one JSON object of setting ids to
values in ``<user directory>/default/comfy.settings.json`` (:mod:`server.userfiles`).

* ``GET /settings``: every setting (``{}`` before the first is saved, or when the file is unreadable).
* ``GET /settings/{id}``: one value, ``null`` when unset.
* ``POST /settings``: a JSON object merged into the settings; ``POST /settings/{id}``: any JSON
  value for one setting. Both answer 200 with an empty body, as ComfyUI does.

Each update reads, merges and writes the file under the user folder's lock, through a
temporary file renamed over it, so concurrent updates of different settings all land and the
file is never half written. An unreadable file is kept aside (``.unreadable-<time>``) rather
than overwritten.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from .. import userfiles
from ..http import (
    DEFAULT_MAX_JSON_DEPTH,
    MAX_JSON_DEPTH_KEY,
    BadRequest,
    json_response,
    parse_json,
    read_body,
    read_json,
)
from ..keys import runtime_of


def _settings_file(request: web.Request) -> Path:
    return userfiles.user_root(runtime_of(request).paths.user) / userfiles.SETTINGS_FILE


async def _read(request: web.Request) -> dict[str, Any]:
    return await asyncio.get_running_loop().run_in_executor(None, userfiles.read_settings, _settings_file(request))


async def _update(request: web.Request, changes: dict[str, Any]) -> web.Response:
    path = _settings_file(request)
    try:
        await asyncio.get_running_loop().run_in_executor(None, userfiles.update_settings, path, changes)
    except OSError as exc:
        raise BadRequest(f"could not save the settings in {path.name}: {exc.strerror or exc}", status=500) from None
    return web.Response(status=200)


async def get_settings(request: web.Request) -> web.Response:
    return json_response(await _read(request))


async def get_setting(request: web.Request) -> web.Response:
    return json_response((await _read(request)).get(request.match_info["id"]))


async def post_settings(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object of setting ids to values, e.g. {"Comfy.LinkRenderMode": 2}')
    return await _update(request, body)


async def post_setting(request: web.Request) -> web.Response:
    setting_id = request.match_info["id"]
    if not setting_id.strip():
        raise BadRequest("missing setting id")
    raw = await read_body(request)
    if not raw.strip():
        raise BadRequest(f'the body must be the value of {setting_id!r} as JSON, e.g. 2, "dark" or true')
    value = await parse_json(raw, request.app.get(MAX_JSON_DEPTH_KEY, DEFAULT_MAX_JSON_DEPTH))
    return await _update(request, {setting_id: value})


def register(routes: web.RouteTableDef) -> None:
    """Add this module's routes to ``routes`` (``create_app`` adds each at /path and /api/path)."""
    routes.get("/settings")(get_settings)
    routes.get("/settings/{id}")(get_setting)
    routes.post("/settings")(post_settings)
    routes.post("/settings/{id}")(post_setting)
