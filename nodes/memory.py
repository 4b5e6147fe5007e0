"""Hooks between the server and whatever holds model memory (the model manager).

The server answers POST /free and /system_stats without importing torch: model owners
register here when they load, and the server calls through. Nothing registered means no
model was ever loaded, so there is nothing to free.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_free_hooks: list[Callable[[bool], None]] = []
_stats_hooks: list[Callable[[], list[dict[str, Any]]]] = []
_run_end_hooks: list[Callable[[], None]] = []


def register_free_hook(hook: Callable[[bool], None]) -> None:
    """``hook(unload_models)`` releases memory; called by POST /free."""
    if hook not in _free_hooks:
        _free_hooks.append(hook)


def register_stats_hook(hook: Callable[[], list[dict[str, Any]]]) -> None:
    """``hook()`` returns device entries in ComfyUI's /system_stats ``devices`` shape."""
    if hook not in _stats_hooks:
        _stats_hooks.append(hook)


def register_run_end_hook(hook: Callable[[], None]) -> None:
    """``hook()`` runs after every prompt (the model manager offloads there under ``--novram``)."""
    if hook not in _run_end_hooks:
        _run_end_hooks.append(hook)


def run_finished() -> None:
    """Called by the worker when a prompt ends, whatever its outcome."""
    for hook in list(_run_end_hooks):
        try:
            hook()
        except Exception:
            log.exception("a memory hook failed after a run")


def free_models(unload_models: bool = True) -> None:
    for hook in list(_free_hooks):
        try:
            hook(unload_models)
        except Exception:
            log.exception("a memory hook failed while freeing models")


def device_stats() -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = []
    for hook in list(_stats_hooks):
        try:
            devices.extend(hook())
        except Exception:
            log.exception("a memory hook failed while reporting devices")
    return devices
