"""Read-only catalogue routes: /object_info, /system_stats, /embeddings, /models, /extensions."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from nodes.memory import device_stats
from nodes.paths import MODEL_FOLDERS
from nodes.registry import NodeRegistry

from ..http import error_response, json_response
from ..keys import runtime_of, server_of
from ..object_info import describe, python_module_of


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _memory() -> tuple[int, int]:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if ":" in line}
        return info.get("MemTotal", 0), info.get("MemAvailable", 0)
    except OSError:
        return 0, 0


def _fallback_devices(force_cpu: bool) -> list[dict[str, Any]]:
    """Describe the compute device without loading a model (imports torch, off the loop)."""
    try:
        import torch
    except ImportError:
        return []
    if not force_cpu and torch.cuda.is_available():
        index = torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        return [
            {
                "name": f"cuda:{index} {torch.cuda.get_device_name(index)}",
                "type": "cuda",
                "index": index,
                "vram_total": total,
                "vram_free": free,
                "torch_vram_total": torch.cuda.memory_reserved(index),
                "torch_vram_free": torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index),
            }
        ]
    total, free = _memory()
    return [
        {
            "name": "cpu",
            "type": "cpu",
            "index": None,
            "vram_total": total,
            "vram_free": free,
            "torch_vram_total": total,
            "torch_vram_free": free,
        }
    ]


def _object_info_of(registry: NodeRegistry, name: str) -> dict[str, Any]:
    schema = registry[name].schema
    return describe(schema, python_module_of(schema))


async def get_object_info(request: web.Request) -> web.Response:
    registry = runtime_of(request).registry
    return json_response({name: _object_info_of(registry, name) for name in registry})


async def get_object_info_node(request: web.Request) -> web.Response:
    registry = runtime_of(request).registry
    name = request.match_info["node_class"]
    if name not in registry:
        return json_response({})
    return json_response({name: _object_info_of(registry, name)})


async def get_system_stats(request: web.Request) -> web.Response:
    server = server_of(request)
    total, free = _memory()
    devices = device_stats()
    if not devices:
        devices = await asyncio.get_running_loop().run_in_executor(None, _fallback_devices, server.config.cpu)
    return json_response(
        {
            "system": {
                "os": os.name,
                "platform": platform.platform(),
                "ram_total": total,
                "ram_free": free,
                "comfyui_version": _version("weft") or "0.1.0",
                "weft_version": _version("weft") or "0.1.0",
                "python_version": sys.version,
                "pytorch_version": _version("torch"),
                "embedded_python": False,
                "argv": sys.argv,
            },
            "devices": devices,
            # the backend's: with --worker-mode process, as the worker reported it after its last prompt
            "cache": (worker := server.worker.backend.describe()).pop("cache"),
            "worker": worker,
        }
    )


async def get_embeddings(request: web.Request) -> web.Response:
    names = runtime_of(request).paths.list_models("embeddings")
    return json_response([os.path.splitext(n)[0] for n in names])


async def get_model_folders(request: web.Request) -> web.Response:
    return json_response(sorted(MODEL_FOLDERS))


async def get_models(request: web.Request) -> web.Response:
    folder = request.match_info["folder"]
    if folder not in MODEL_FOLDERS:
        return error_response(404, f"unknown model folder {folder!r}; known: {', '.join(sorted(MODEL_FOLDERS))}")
    return json_response(runtime_of(request).paths.list_models(folder))


async def get_extensions(request: web.Request) -> web.Response:
    report = runtime_of(request).plugin_report
    urls = list(getattr(report, "extension_urls", []) or []) if report is not None else []
    return json_response(urls)


async def get_features(request: web.Request) -> web.Response:
    config = runtime_of(request).config
    return json_response(
        {"supports_preview_metadata": False, "max_upload_size": int(config.max_upload_size_mb * 1024 * 1024)}
    )


def register(routes: web.RouteTableDef) -> None:
    """Add this module's routes to ``routes`` (``create_app`` adds each at /path and /api/path)."""
    routes.get("/object_info")(get_object_info)
    routes.get("/object_info/{node_class}")(get_object_info_node)
    routes.get("/system_stats")(get_system_stats)
    routes.get("/embeddings")(get_embeddings)
    routes.get("/models")(get_model_folders)
    routes.get("/models/{folder}")(get_models)
    routes.get("/extensions")(get_extensions)
    routes.get("/features")(get_features)
