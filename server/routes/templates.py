"""Workflow templates, in ComfyUI's shapes: the examples that ship with Weft and those of packs.

* ``GET /workflow_templates``: ``{"<pack>": ["<name>", ...]}``, as ComfyUI lists the
  ``example_workflows`` folders of custom node packs. Weft's own examples (``examples/*.json``
  of the repository, ComfyUI UI-format files) are listed under ``"weft"``; an API-format
  twin (``<name>.api.json``) is left out when the UI-format file exists.
* ``GET /api/workflow_templates/<pack>/<file>``: a file of that folder (ComfyUI serves these
  folders as static files there; Weft also answers without the ``/api`` prefix).
"""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path

from aiohttp import web

from nodes.paths import UnsafePathError, safe_join

from .. import userfiles
from ..http import BadRequest, json_response
from ..keys import runtime_of

#: the examples that ship with Weft
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WEFT_PACK = "weft"
#: the folder names ComfyUI looks for in a pack, in its order
PACK_FOLDERS = ("example_workflows", "example", "examples", "workflow", "workflows")


def template_folders(request: web.Request) -> dict[str, Path]:
    """Pack name -> its template folder: Weft's examples, then each loaded pack's first folder."""
    folders = {WEFT_PACK: EXAMPLES} if EXAMPLES.is_dir() else {}
    report = runtime_of(request).plugin_report
    for pack in getattr(report, "packs", None) or []:
        if pack.status not in ("loaded", "partial") or pack.kind != "package" or pack.name in folders:
            continue
        for name in PACK_FOLDERS:
            folder = Path(pack.path) / name
            if folder.is_dir():
                folders[pack.name] = folder
                break
    return folders


def _names(folder: Path, pack: str) -> list[str]:
    files = sorted(p.name for p in folder.glob("*.json") if p.is_file())
    names = [f[: -len(".json")] for f in files]
    if pack == WEFT_PACK:  # an API-format twin of an example is not a template of its own
        names = [n for n in names if not (n.endswith(".api") and n[: -len(".api")] in names)]
    return names


def _listing(folders: dict[str, Path]) -> dict[str, list[str]]:
    listing = {pack: _names(folder, pack) for pack, folder in folders.items()}
    return {pack: names for pack, names in listing.items() if names}


async def list_templates(request: web.Request) -> web.Response:
    folders = template_folders(request)
    return json_response(await asyncio.get_running_loop().run_in_executor(None, _listing, folders))


async def get_template(request: web.Request) -> web.StreamResponse:
    pack, name = request.match_info["pack"], request.match_info["file"]
    folder = template_folders(request).get(pack)
    if folder is None:
        raise BadRequest(f"no templates for {pack!r}: GET /workflow_templates lists them", status=404)
    userfiles.check_length(name, "template name")
    try:
        path = safe_join(folder, name)
    except UnsafePathError as exc:
        raise BadRequest(f"template {name!r} is not allowed: {exc}", status=403) from None
    if not path.is_file():
        raise BadRequest(f"template not found: {pack}/{name}", status=404)
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if content_type not in ("application/json", "image/png", "image/jpeg", "image/webp"):
        content_type = "application/octet-stream"
    return web.FileResponse(path, headers={"Content-Type": content_type, "X-Content-Type-Options": "nosniff"})


def register(routes: web.RouteTableDef) -> None:
    """Add this module's routes to ``routes`` (``create_app`` adds each at /path and /api/path)."""
    routes.get("/workflow_templates")(list_templates)
    routes.get("/workflow_templates/{pack}/{file}")(get_template)
