"""Build the aiohttp application: configuration, node catalogue, routes, worker."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import shutil
from pathlib import Path
from types import MappingProxyType
from typing import Any

from aiohttp import web

from nodes import paths as user_paths
from nodes.launch_options import LaunchOptions
from nodes.launch_options import configure as configure_launch_options
from nodes.launch_options import restore as restore_launch_options
from nodes.registry import NodeRegistry, builtin_registry

from . import security
from . import web as web_ui
from .config import ServerConfig
from .http import MAX_JSON_DEPTH_KEY
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
            if folder == CUSTOM_NODES_KEY:  # pack folders, not models: see custom_node_folders()
                continue
            extra.setdefault(folder, []).extend(dirs)
    paths = user_paths.configure(
        config.base_directory,
        input_dir=config.input_directory,
        output_dir=config.output_directory,
        temp_dir=config.temp_directory,
        user_dir=config.user_directory,
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


def model_settings(config: ServerConfig) -> dict[str, Any]:
    """The launcher's device, memory and precision flags as model-manager settings.

    All of them, every time: a server started without ``--lowvram`` after one started with it
    (tests, a restart in-process) gets the defaults back.
    """
    return {
        "force_cpu": config.cpu,
        "vram_mode": config.vram_mode,
        "vram_reserve": int(config.reserve_vram_gb * (1 << 30)) if config.reserve_vram_gb is not None else None,
        "offload_after_run": config.disable_smart_memory,
        "unet_dtype": config.unet_dtype,
        "unet_storage": config.unet_storage,
        "text_encoder_dtype": config.text_encoder_dtype,
        "text_encoder_storage": config.text_encoder_storage,
        "vae_dtype": config.vae_dtype,
        "vae_on_cpu": config.cpu_vae,
        "deterministic": config.deterministic,
    }


def configure_models(config: ServerConfig) -> None:
    """Pass device settings to the model manager (cheap: torch is imported on first use)."""
    from nodes.diffusion.model_manager import configure

    configure(**model_settings(config))


def launch_options(config: ServerConfig) -> LaunchOptions:
    """What node code reads of the command line (ComfyUI's ``args``): metadata, preview defaults."""
    return LaunchOptions(
        disable_metadata=config.disable_metadata,
        preview_method=config.preview_method,
        preview_size=config.preview_size,
        comfy_args=MappingProxyType(dict(config.comfy_args)),
        max_string_length=config.max_string_length,
        max_image_pixels=config.max_image_pixels,
    )


#: the ``extra_model_paths.yaml`` key that names more custom-node folders (ComfyUI's)
CUSTOM_NODES_KEY = "custom_nodes"


def custom_node_folders(config: ServerConfig) -> list[Path]:
    """Custom-node folders named by ``custom_nodes:`` entries of ``--extra-model-paths-config``.

    ComfyUI reads every key of that YAML as a ``folder_paths`` folder and loads packs from
    all ``custom_nodes`` folders, so a shared install (and ComfyUI's own test suite) adds
    pack folders this way; Weft adds them to the plugin loader's folders.
    """
    folders: list[Path] = []
    for config_file in config.extra_model_paths_config:
        folders.extend(load_extra_model_paths(config_file).get(CUSTOM_NODES_KEY, []))
    return folders


def load_custom_nodes(server: PromptServer, registry: NodeRegistry, config: ServerConfig) -> None:
    """Load plugin packs when the plugin loader is present (``nodes.plugins``)."""
    try:
        plugins = importlib.import_module("nodes.plugins")
    except ModuleNotFoundError as exc:
        if exc.name not in ("nodes.plugins",):
            raise
        return
    from_yaml = [f for f in custom_node_folders(config) if f not in config.extra_custom_node_dirs]
    if from_yaml:
        config = dataclasses.replace(config, extra_custom_node_dirs=[*config.extra_custom_node_dirs, *from_yaml])
    server.plugin_report = plugins.load_plugins(registry, config)


#: content types worth compressing (``--enable-compress-response-body``); images are compressed already
COMPRESSIBLE = ("application/json", "text/", "application/javascript")


@web.middleware
async def compress_responses(request: web.Request, handler: Any) -> web.StreamResponse:
    """``--enable-compress-response-body``: gzip JSON, HTML and scripts for clients that accept it
    (/object_info is large and repetitive; worth it over a slow link, not on loopback)."""
    response = await handler(request)
    if (isinstance(response, web.Response) and not response.prepared and response.body is not None
            and (response.content_type or "").startswith(COMPRESSIBLE)
            and "gzip" in request.headers.get("Accept-Encoding", "")):
        response.enable_compression()
    return response


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
    options = launch_options(config)
    previous_options = configure_launch_options(options)
    registry = registry if registry is not None else builtin_registry()
    server = PromptServer(config, registry, queue)
    if load_plugins:
        load_custom_nodes(server, registry, config)

    middlewares = [
        *([compress_responses] if config.enable_compress_response_body else []),
        security.errors,
        security.make_cors(config.enable_cors_header),
        security.make_guard(config.loopback_only, config.enable_cors_header),
    ]
    app = web.Application(middlewares=middlewares, client_max_size=int(config.max_upload_size_mb * 1024 * 1024))
    app[PROMPT_SERVER_KEY] = server
    app[MAX_JSON_DEPTH_KEY] = config.max_json_depth
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
        restore_launch_options(options, previous_options)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    web_ui.setup(app, server)
    return app
