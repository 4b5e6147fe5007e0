"""Model files with their details, in the shape of ComfyUI's experimental model routes.

``GET /experiment/models`` lists the model folders with the directories each is read from;
``GET /experiment/models/{folder}`` lists a folder's files with ``name``, ``pathIndex``,
``modified``, ``created`` and ``size`` as ComfyUI does, plus Weft's ``family`` (``sd1``,
``sd2``, ``sdxl``, ``clip_l``, ... or null, read from the safetensors header only, see
:mod:`nodes.model_catalog`) and ``builtin`` (the file ships with Weft). The plain lists stay
at ``/models`` and ``/models/{folder}`` (:mod:`server.routes.info`).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from nodes.model_catalog import folder_entries
from nodes.paths import MODEL_FOLDERS

from ..http import error_response, json_response
from ..keys import runtime_of

#: folders that hold no models a browser would show (ComfyUI leaves these out as well)
HIDDEN_FOLDERS = frozenset({"configs"})


async def get_model_folder_details(request: web.Request) -> web.Response:
    paths = runtime_of(request).paths
    folders = sorted(f for f in MODEL_FOLDERS if f not in HIDDEN_FOLDERS)
    return json_response([{"name": f, "folders": [str(d) for d in paths.model_dirs(f)]} for f in folders])


async def get_model_file_details(request: web.Request) -> web.Response:
    folder = request.match_info["folder"]
    if folder not in MODEL_FOLDERS:
        return error_response(404, f"unknown model folder {folder!r}; known: {', '.join(sorted(MODEL_FOLDERS))}")
    paths = runtime_of(request).paths
    # stats and headers off the event loop: a folder on a network drive may be slow
    entries = await asyncio.get_running_loop().run_in_executor(None, folder_entries, paths, folder)
    return json_response(entries)


def register(routes: web.RouteTableDef) -> None:
    """Add this module's routes to ``routes`` (``create_app`` adds each at /path and /api/path)."""
    routes.get("/experiment/models")(get_model_folder_details)
    routes.get("/experiment/models/{folder}")(get_model_file_details)
