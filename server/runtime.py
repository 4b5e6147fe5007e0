"""A server's runtime, and the start-up step that makes it.

Everything a server needs beyond its sockets is decided once, from its configuration, and
kept in one :class:`ServerRuntime`: the user's folders, the launch options node code reads,
the model-manager settings, the node registry with the packs loaded into it, their report,
and the server object. ``create_app`` stores it on the app (:data:`server.keys.RUNTIME_KEY`);
routes read it from there. Node code and the ComfyUI compatibility modules reach it through
:func:`nodes.runtime.current`: the worker binds it while it runs prompts, the request
handlers while they answer, and the app installs it as the process default while it runs, so
two apps in one process each keep their own.

What stays process-wide on purpose: the model manager (there is one GPU; the last settings
applied win) and the ComfyUI module names on ``sys.path`` (installed once, when packs first load).
"""

from __future__ import annotations

import dataclasses
import importlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nodes import paths as user_paths
from nodes.launch_options import LaunchOptions
from nodes.registry import NodeRegistry, builtin_registry
from nodes.runtime import Runtime

from .config import ServerConfig
from .model_paths import load_extra_model_paths
from .prompt_server import PromptServer
from .queue import PromptQueue

#: the ``extra_model_paths.yaml`` key that names more custom-node folders (ComfyUI's)
CUSTOM_NODES_KEY = "custom_nodes"


@dataclass(eq=False)
class ServerRuntime(Runtime):
    """The :class:`nodes.runtime.Runtime` of one server, with what only the server uses."""

    config: ServerConfig = field(default_factory=ServerConfig)
    registry: NodeRegistry = field(default_factory=NodeRegistry)
    #: what :func:`apply_model_settings` passed to the model manager
    model_settings: dict[str, Any] = field(default_factory=dict)
    #: the plugin loader's report (``nodes.plugins.PluginReport``); ``None`` when packs were not loaded
    plugin_report: Any = None


def start_up(
    config: ServerConfig,
    registry: NodeRegistry | None = None,
    queue: PromptQueue | None = None,
    *,
    load_plugins: bool = True,
) -> ServerRuntime:
    """The start-up step: folders made (temp/ cleared), model settings applied, the server
    object made, packs loaded under the new runtime. Installs nothing as the process's.

    With ``worker_mode="process"`` the worker process builds its own registry (the built-in
    nodes and the configured packs), so a ``registry`` made here could not reach it: refused.
    """
    if config.worker_mode == "process" and registry is not None:
        raise ValueError(
            "worker_mode='process' runs the built-in nodes and the configured packs in a worker "
            "process, which cannot see a registry built here: pass no registry, or worker_mode='thread'"
        )
    paths = resolve_paths(config, clear_temp=True)
    settings = model_settings(config)
    apply_model_settings(settings)
    runtime = ServerRuntime(
        paths=paths,
        options=launch_options(config),
        config=config,
        registry=registry if registry is not None else builtin_registry(),
        model_settings=settings,
    )
    runtime.server = PromptServer(config, runtime.registry, queue, runtime=runtime)
    if load_plugins:
        with runtime.active():  # packs reach PromptServer.instance and folder_paths as they import
            runtime.plugin_report = load_packs(runtime.registry, config)
        runtime.server.plugin_report = runtime.plugin_report
    return runtime


def resolve_paths(config: ServerConfig, *, clear_temp: bool = False) -> user_paths.Paths:
    """The folders ``config`` names (made if missing), with the model folders of
    ``--extra-model-paths-config``; ``clear_temp`` empties temp/ as ComfyUI does at start."""
    extra: dict[str, list[Any]] = {}
    for config_file in config.extra_model_paths_config:
        for folder, dirs in load_extra_model_paths(config_file).items():
            if folder == CUSTOM_NODES_KEY:  # pack folders, not models: see custom_node_folders()
                continue
            extra.setdefault(folder, []).extend(dirs)
    paths = user_paths.Paths.at(
        config.base_directory,
        input_dir=config.input_directory,
        output_dir=config.output_directory,
        temp_dir=config.temp_directory,
        user_dir=config.user_directory,
        extra_model_dirs=extra,
    )
    if clear_temp:
        _clear(paths.temp)  # previews are disposable
    return paths


def _clear(folder: Path) -> None:
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


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
        "compile_unet": config.compile_unet or "",
    }


def apply_model_settings(settings: dict[str, Any]) -> None:
    """Pass device settings to the process's model manager (cheap: torch is imported on first use)."""
    from nodes.diffusion.model_manager import configure

    configure(**settings)


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


def load_packs(registry: NodeRegistry, config: ServerConfig) -> Any:
    """Load plugin packs into ``registry`` when the plugin loader is present (``nodes.plugins``);
    returns its report, or ``None`` without a loader."""
    try:
        plugins = importlib.import_module("nodes.plugins")
    except ModuleNotFoundError as exc:
        if exc.name not in ("nodes.plugins",):
            raise
        return None
    from_yaml = [f for f in custom_node_folders(config) if f not in config.extra_custom_node_dirs]
    if from_yaml:
        config = dataclasses.replace(config, extra_custom_node_dirs=[*config.extra_custom_node_dirs, *from_yaml])
    return plugins.load_plugins(registry, config)
