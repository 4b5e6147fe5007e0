"""HTTP side of custom node packs: the load report, web extensions, missing-pack look-up.

Routes (each also under ``/api``, as ComfyUI serves its API under both):

* ``GET /api/plugins``: the :class:`~nodes.plugins.report.PluginReport` as JSON (per pack:
  status, error and traceback, import time, nodes, renamed nodes, missing requirements).
* ``GET /extensions`` (in ``server/routes/info.py``) lists ``PluginReport.extension_urls``:
  ComfyUI's ``["/extensions/<pack>/<file>.js"]``.
* ``GET /extensions/<pack>/<path>``: files of a loaded pack's ``WEB_DIRECTORY``.
* ``GET /weft/extension-host.js``: the browser half of the hooks API (docs/plugins.md), and
  ``/scripts/app.js`` / ``/scripts/api.js``: shims that give ComfyUI-style extensions
  (``import { app } from "../../scripts/app.js"``) Weft's mapping of their hooks.
* ``POST /api/plugins/missing``: given a workflow (UI or API format), which node types are
  unknown and which packs (name, version from the saved node's properties) provide them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from nodes.paths import UnsafePathError, safe_join
from nodes.plugins.report import PluginReport

from ..http import BadRequest, read_json
from ..keys import runtime_of

WEB = Path(__file__).resolve().parents[2] / "nodes" / "plugins" / "web"
#: URL -> file of the browser half of the plugin system (see docs/plugins.md)
SCRIPTS = {
    "/weft/extension-host.js": WEB / "extension_host.js",
    "/scripts/app.js": WEB / "comfy_app.js",
    "/scripts/api.js": WEB / "comfy_api.js",
}

_CONTENT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}


def missing_nodes(workflow: Any, registry: Mapping[str, Any]) -> dict[str, Any]:
    """Node types of ``workflow`` that ``registry`` lacks, grouped, with the packs they need.

    A UI-format workflow (``{"nodes": [{"id", "type", "properties": {"cnr_id", "ver"}}]}``)
    says which pack and version each node came from; an API-format prompt only has
    ``class_type``, so its missing nodes come back without a pack. Nodes inside subgraph
    definitions (``definitions.subgraphs[].nodes``) are looked at too.
    """
    found: dict[str, dict[str, Any]] = {}

    def note(node_id: Any, class_type: Any, properties: Any) -> None:
        if class_type is not None and not isinstance(class_type, str):
            raise ValueError(
                f"node {str(node_id)[:40]}: its type must be a string naming a node class, "
                f"got {type(class_type).__name__}"
            )
        if not isinstance(class_type, str) or class_type in registry:
            return
        entry = found.setdefault(class_type, {"class_type": class_type, "node_ids": [], "pack": None})
        entry["node_ids"].append(node_id)
        if isinstance(properties, Mapping) and entry["pack"] is None:
            name = properties.get("cnr_id") or properties.get("aux_id")
            if isinstance(name, str) and name:
                entry["pack"] = {"name": name, "version": str(properties.get("ver") or "")}

    if isinstance(workflow, Mapping) and isinstance(workflow.get("nodes"), list):
        node_lists = [workflow["nodes"]]
        definitions = workflow.get("definitions")
        subgraphs = definitions.get("subgraphs") if isinstance(definitions, Mapping) else None
        subgraphs = [sg for sg in subgraphs if isinstance(sg, Mapping)] if isinstance(subgraphs, list) else []
        for subgraph in subgraphs:
            if isinstance(subgraph.get("nodes"), list):
                node_lists.append(subgraph["nodes"])
        # ids and types come from the client: only strings are looked up (a list is unhashable)
        for sg in subgraphs:
            if sg.get("id") is not None and not isinstance(sg.get("id"), str):
                raise ValueError(f"a subgraph's id must be a string, got {type(sg.get('id')).__name__}")
        subgraph_ids = {sg["id"] for sg in subgraphs if isinstance(sg.get("id"), str)}
        for nodes in node_lists:
            for node in nodes:
                if not isinstance(node, Mapping):
                    continue
                node_type = node.get("type")
                if not (isinstance(node_type, str) and node_type in subgraph_ids):
                    note(node.get("id"), node_type, node.get("properties"))
    elif isinstance(workflow, Mapping):
        for node_id, node in workflow.items():
            if isinstance(node, Mapping):
                note(node_id, node.get("class_type"), node.get("_meta"))
    missing = sorted(found.values(), key=lambda e: e["class_type"])
    packs: dict[str, dict[str, Any]] = {}
    for entry in missing:
        if entry["pack"] is not None:
            pack = packs.setdefault(entry["pack"]["name"], {**entry["pack"], "node_types": []})
            pack["node_types"].append(entry["class_type"])
    return {"missing": missing, "packs": list(packs.values())}


def _report(request: web.Request) -> PluginReport:
    """The app's plugin report; an empty one for a server started without plugins."""
    report = runtime_of(request).plugin_report
    return report if isinstance(report, PluginReport) else PluginReport()


async def get_report(request: web.Request) -> web.Response:
    return web.json_response(_report(request).to_json())


async def get_extension_file(request: web.Request) -> web.StreamResponse:
    pack = request.match_info["pack"]
    folder = _report(request).web_directories().get(pack)
    if folder is None:
        raise web.HTTPNotFound(text=f"no loaded custom node pack {pack!r} serves web files")
    try:
        path = safe_join(folder, request.match_info["path"])
    except UnsafePathError as exc:
        raise web.HTTPForbidden(text=str(exc)) from exc
    if not path.is_file():
        raise web.HTTPNotFound(text=f"{request.match_info['path']} is not in {pack}'s WEB_DIRECTORY")
    headers = {"Cache-Control": "no-cache"}
    content_type = _CONTENT_TYPES.get(path.suffix.lower())
    if content_type:
        headers["Content-Type"] = content_type
    return web.FileResponse(path, headers=headers)


async def get_script(request: web.Request) -> web.StreamResponse:
    """One of :data:`SCRIPTS`, by the URL it was asked for."""
    path = SCRIPTS[request.match_info.route.resource.canonical]
    return web.FileResponse(path, headers={"Content-Type": "text/javascript", "Cache-Control": "no-cache"})


async def post_missing(request: web.Request) -> web.Response:
    body = await read_json(request)  # strict and bounded, a 400 naming the problem
    workflow = body.get("workflow", body) if isinstance(body, Mapping) else body
    try:
        result = missing_nodes(workflow, runtime_of(request).registry)
    except ValueError as exc:
        raise BadRequest(f"malformed workflow: {exc}") from exc
    report = _report(request)
    for pack in result["packs"]:
        known = report.pack(pack["name"])
        pack["installed_status"] = known.status if known else None
    return web.json_response(result)


def register(app: web.Application) -> None:
    """Add the plugin routes to ``app``. They read the report and the registry from the app's
    runtime (:data:`server.keys.RUNTIME_KEY`), so call it on an app ``create_app`` builds."""
    routes = web.RouteTableDef()
    for prefix in ("", "/api"):
        routes.get(prefix + "/extensions/{pack}/{path:.+}")(get_extension_file)
    routes.get("/api/plugins")(get_report)
    routes.post("/api/plugins/missing")(post_missing)
    for url in SCRIPTS:
        routes.get(url)(get_script)
    app.router.add_routes(routes)
