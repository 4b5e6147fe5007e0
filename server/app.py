"""Build the aiohttp application: configuration, node catalogue, routes, worker."""

from __future__ import annotations

import importlib
import logging
import shutil
from typing import Any

from aiohttp import web

from nodes import paths as user_paths
from nodes.registry import NodeRegistry, builtin_registry

from . import security
from . import web as web_ui
from .config import ServerConfig
from .model_paths import load_extra_model_paths
from .prompt_server import PromptServer
from .queue import PromptQueue
from .routes import ROUTE_MODULES

log = logging.getLogger(__name__)

PROMPT_SERVER_KEY = web.AppKey("weft_server", PromptServer)


def configure_paths(config: ServerConfig) -> user_paths.Paths:
    extra: dict[str, list[Any]] = {}
    for config_file in config.extra_model_paths_config:
        for folder, dirs in load_extra_model_paths(config_file).items():
            extra.setdefault(folder, []).extend(dirs)
    paths = user_paths.configure(
        config.base_directory,
        input_dir=config.input_directory,
        output_dir=config.output_directory,
        temp_dir=config.temp_directory,
        extra_model_dirs=extra,
    )
    # ComfyUI clears temp/ at start: previews are disposable
    if paths.temp.is_dir():
        for child in paths.temp.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    return paths


def configure_models(config: ServerConfig) -> None:
    """Pass device settings to the model manager (cheap: torch is imported on first use)."""
    from nodes.diffusion.model_manager import configure

    configure(force_cpu=config.cpu)


def load_custom_nodes(server: PromptServer, registry: NodeRegistry, config: ServerConfig) -> None:
    """Load plugin packs when the plugin loader is present (``nodes.plugins``)."""
    try:
        plugins = importlib.import_module("nodes.plugins")
    except ModuleNotFoundError as exc:
        if exc.name not in ("nodes.plugins",):
            raise
        return
    server.plugin_report = plugins.load_plugins(registry, config)


def create_app(
    config: ServerConfig | None = None,
    registry: NodeRegistry | None = None,
    queue: PromptQueue | None = None,
    *,
    load_plugins: bool = True,
) -> web.Application:
    config = config or ServerConfig()
    configure_paths(config)
    configure_models(config)
    registry = registry if registry is not None else builtin_registry()
    server = PromptServer(config, registry, queue)
    if load_plugins:
        load_custom_nodes(server, registry, config)

    middlewares = [
        security.errors,
        security.make_cors(config.enable_cors_header),
        security.make_guard(config.loopback_only, config.enable_cors_header),
    ]
    app = web.Application(middlewares=middlewares, client_max_size=int(config.max_upload_size_mb * 1024 * 1024))
    app[PROMPT_SERVER_KEY] = server
    server.app = app

    routes = web.RouteTableDef()
    for name in ROUTE_MODULES:
        importlib.import_module(f"server.routes.{name}").setup(routes, server)
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
        plugin_routes.setup(app)

    # routes that packs registered on PromptServer.instance.routes while being imported;
    # added before the canvas' catch-all static route so they are matched first
    app.router.add_routes(server.routes)

    async def on_startup(app: web.Application) -> None:
        await server.start()

    async def on_cleanup(app: web.Application) -> None:
        await server.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    web_ui.setup(app, server)
    return app
