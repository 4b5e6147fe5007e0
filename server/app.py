"""Build the aiohttp application from a server runtime: middlewares, routes, life cycle.

The start-up step (:func:`server.runtime.start_up`) decides everything from the configuration
and returns the app's :class:`~server.runtime.ServerRuntime`; the app carries it under
:data:`~server.keys.RUNTIME_KEY`. Building an app changes nothing in the process: the app
installs its runtime as the process default (:mod:`nodes.runtime`) when it starts and removes
it on cleanup, and each request runs bound to it.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from aiohttp import web

from nodes import paths as user_paths
from nodes import runtime as node_runtime
from nodes.registry import NodeRegistry

from . import security
from . import web as web_ui
from .config import ServerConfig
from .http import MAX_JSON_DEPTH_KEY
from .keys import PROMPT_SERVER_KEY, RUNTIME_KEY
from .prompt_server import PromptServer
from .queue import PromptQueue
from .routes import ROUTE_MODULES
from .runtime import (
    CUSTOM_NODES_KEY,
    ServerRuntime,
    apply_model_settings,
    custom_node_folders,
    launch_options,
    load_packs,
    model_settings,
    resolve_paths,
    start_up,
)

__all__ = [
    "COMPRESSIBLE",
    "CUSTOM_NODES_KEY",
    "PROMPT_SERVER_KEY",
    "RUNTIME_KEY",
    "build_app",
    "configure_models",
    "configure_paths",
    "create_app",
    "custom_node_folders",
    "launch_options",
    "load_custom_nodes",
    "model_settings",
]

log = logging.getLogger(__name__)


def create_app(
    config: ServerConfig | None = None,
    registry: NodeRegistry | None = None,
    queue: PromptQueue | None = None,
    *,
    load_plugins: bool = True,
) -> web.Application:
    return build_app(start_up(config or ServerConfig(), registry, queue, load_plugins=load_plugins))


def build_app(runtime: ServerRuntime) -> web.Application:
    """The app serving ``runtime``'s server."""
    config, server = runtime.config, runtime.server
    middlewares = [
        bind_runtime,
        *([compress_responses] if config.enable_compress_response_body else []),
        security.errors,
        security.make_cors(config.enable_cors_header),
        *security.access_middlewares(config),  # proxy headers, Host/Origin, token, body deadline
    ]
    app = web.Application(middlewares=middlewares, client_max_size=int(config.max_upload_size_mb * 1024 * 1024))
    app[RUNTIME_KEY] = runtime
    app[PROMPT_SERVER_KEY] = server
    app[MAX_JSON_DEPTH_KEY] = config.max_json_depth
    server.app = app
    _add_routes(app, server)

    async def on_startup(app: web.Application) -> None:
        node_runtime.install(runtime)
        await server.start()

    async def on_cleanup(app: web.Application) -> None:
        try:
            await server.stop()
        finally:
            node_runtime.uninstall(runtime)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    web_ui.setup(app, server)
    return app


def _add_routes(app: web.Application, server: PromptServer) -> None:
    """Every route of :data:`ROUTE_MODULES` at /path and /api/path, the plugin routes, then
    those packs registered on ``PromptServer.instance.routes`` while they were imported
    (before the canvas' catch-all static route, which ``web_ui.setup`` adds last)."""
    routes = web.RouteTableDef()
    for name in ROUTE_MODULES:
        importlib.import_module(f"server.routes.{name}").register(routes)
    api_routes = web.RouteTableDef()
    for route in routes:
        assert isinstance(route, web.RouteDef)
        api_routes.route(route.method, "/api" + route.path)(route.handler)
    app.add_routes(api_routes)
    app.add_routes(routes)
    try:
        plugin_routes = importlib.import_module("server.routes.plugins")
    except ModuleNotFoundError as exc:
        if exc.name != "server.routes.plugins":
            raise
    else:
        plugin_routes.register(app)
    app.router.add_routes(server.routes)


@web.middleware
async def bind_runtime(request: web.Request, handler: Any) -> web.StreamResponse:
    """Node code a request reaches (``INPUT_TYPES`` for /object_info, validators for /prompt)
    sees this app's runtime, whatever other app the process runs."""
    token = node_runtime.bind(request.app[RUNTIME_KEY])
    try:
        return await handler(request)
    finally:
        node_runtime.unbind(token)


#: content types worth compressing (``--enable-compress-response-body``); images are compressed already
COMPRESSIBLE = ("application/json", "text/", "application/javascript")


@web.middleware
async def compress_responses(request: web.Request, handler: Any) -> web.StreamResponse:
    """``--enable-compress-response-body``: gzip JSON, HTML and scripts for clients that accept it
    (/object_info is large and repetitive; worth it over a slow link, not on loopback)."""
    response = await handler(request)
    if (
        isinstance(response, web.Response)
        and not response.prepared
        and response.body is not None
        and (response.content_type or "").startswith(COMPRESSIBLE)
        and "gzip" in request.headers.get("Accept-Encoding", "")
    ):
        response.enable_compression()
    return response


# -- one process, no app: ``main.py run`` configures the process's own runtime step by step ----------
def configure_paths(config: ServerConfig) -> user_paths.Paths:
    """The folders ``config`` names (temp/ cleared), made the process's paths; returns them."""
    paths = resolve_paths(config, clear_temp=True)
    node_runtime.configure_default(paths=paths)
    return paths


def configure_models(config: ServerConfig) -> None:
    """Pass device settings to the model manager (cheap: torch is imported on first use)."""
    apply_model_settings(model_settings(config))


def load_custom_nodes(server: PromptServer, registry: NodeRegistry, config: ServerConfig) -> None:
    """Make ``server`` the process's ``PromptServer.instance`` and load the plugin packs into
    ``registry`` (a server object without sockets, for ``main.py run``)."""
    node_runtime.configure_default(server=server)
    server.plugin_report = load_packs(registry, config)
