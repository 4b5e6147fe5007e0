"""Naming the pack behind a failure, and refusing ComfyUI internals Weft does not have.

Packs reach ComfyUI modules at import time *and* lazily inside node functions, so the
loader's "pack being imported" is not enough to say who asked. :func:`calling_pack` walks
the Python stack instead and returns the first frame whose file lives in a known pack; the
errors below use it, so a message reads "comfy.sd is not supported in Weft (needed by
custom node pack 'foo')" wherever the access happens.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from pathlib import Path

#: pack root (normalised, with trailing separator) -> pack name; filled by the loader.
_PACK_ROOTS: dict[str, str] = {}


def register_pack_root(path: Path, name: str) -> None:
    root = os.path.normcase(str(path.resolve()))
    _PACK_ROOTS[root + (os.sep if path.is_dir() else "")] = name


def pack_of_file(filename: str) -> str | None:
    if not filename:
        return None
    normalised = os.path.normcase(os.path.abspath(filename))
    for root, name in _PACK_ROOTS.items():
        if normalised == root or normalised.startswith(root):
            return name
    return None


def calling_pack(skip: int = 1) -> str | None:
    """The pack whose code is on the stack nearest to the caller, if any."""
    frame = sys._getframe(skip)
    while frame is not None:
        name = pack_of_file(frame.f_code.co_filename)
        if name is not None:
            return name
        frame = frame.f_back
    return None


def _message(feature: str, pack: str | None, hint: str = "") -> str:
    who = f"custom node pack '{pack}'" if pack else "a custom node pack"
    text = f"{feature} is not supported in Weft (needed by {who})."
    return f"{text} {hint}".strip() if hint else text + " See docs/plugins.md for what the compatibility layer offers."


class NotSupportedInWeft(NotImplementedError):
    """A ComfyUI feature that Weft's compatibility layer deliberately does not provide."""

    def __init__(self, feature: str, pack: str | None = None, hint: str = "") -> None:
        self.feature, self.pack = feature, pack if pack is not None else calling_pack(2)
        super().__init__(_message(feature, self.pack, hint))


class UnsupportedModuleError(ModuleNotFoundError):
    """Import of a ComfyUI module Weft does not provide; still an ``ImportError`` so a pack's
    ``try: import comfy.sd / except ImportError:`` fallback keeps working."""


class UnsupportedAttributeError(AttributeError):
    """A name missing from a compatibility module; an ``AttributeError`` so ``hasattr`` works."""


def unsupported_attribute(module: str, name: str) -> UnsupportedAttributeError:
    return UnsupportedAttributeError(_message(f"{module}.{name}", calling_pack(3)))


#: Top-level ComfyUI modules that packs import but Weft has no equivalent for.
GUARDED_TOP_LEVEL = frozenset(
    {
        "comfy",
        "comfy_extras",
        "comfy_execution",
        "comfy_api",
        "comfy_api_nodes",
        "comfy_config",
        "latent_preview",
        "node_helpers",
        "execution",
        "comfyui_version",
        "cuda_malloc",
        "new_updater",
    }
)


def _probing() -> bool:
    """True when the look-up comes from ``importlib.util.find_spec`` rather than an import."""
    frame = sys._getframe(2)
    for _ in range(6):
        if frame is None:
            return False
        code = frame.f_code
        filename = code.co_filename
        if code.co_name == "find_spec" and (
            filename == "<frozen importlib.util>" or filename.endswith(os.path.join("importlib", "util.py"))
        ):
            return True
        frame = frame.f_back
    return False


class UnsupportedComfyFinder(importlib.abc.MetaPathFinder):
    """Last on ``sys.meta_path``: any ComfyUI module the compat folder lacks ends up here.

    Because it runs after the normal path finder, modules Weft provides import normally and
    only the ones it lacks raise, with a message that names the module and the pack.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".", 1)[0] not in GUARDED_TOP_LEVEL:
            return None
        if _probing():
            return None  # importlib.util.find_spec("comfy.sd") is a feature test: answer "absent"
        pack = calling_pack(2)
        error = UnsupportedModuleError(
            _message(
                f"ComfyUI module '{fullname}'",
                pack,
                "Weft provides folder_paths, comfy.utils, comfy.model_management, comfy.comfy_types, "
                "comfy.cli_args, comfy_execution (graph_utils, graph, utils, progress) and comfy_api (latest, v0_0_2); "
                "see docs/plugins.md.",
            ),
            name=fullname,
        )
        raise error
