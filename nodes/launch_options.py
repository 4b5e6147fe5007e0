"""Launch options that node code reads: Weft's counterpart of ComfyUI's ``comfy.cli_args.args``.

ComfyUI's nodes read a few launcher flags at run time (SaveImage checks
``--disable-metadata``; the sampler's previewer checks ``--preview-method``), and so do
custom node packs through ``comfy.cli_args``. They belong to the runtime the node runs under
(:mod:`nodes.runtime`): a server's own, or what ``main.py run`` configured. Nodes read them
here, so ``nodes/`` never imports the server. The defaults are ComfyUI's: metadata on, no
previews unless asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import runtime as _runtime

#: ``--preview-method`` values (ComfyUI's); ``extra_data.preview_method`` may also say "default".
PREVIEW_METHODS = ("none", "auto", "latent2rgb", "taesd")


@dataclass(frozen=True)
class LaunchOptions:
    #: ``--disable-metadata``: SaveImage/PreviewImage write no prompt or workflow text chunks
    disable_metadata: bool = False
    #: ``--preview-method``: what a sampler previews when the prompt's extra_data does not say
    preview_method: str = "none"
    #: ``--preview-size``: longest side of a preview image in pixels
    preview_size: int = 512
    #: every ComfyUI launcher flag by its argparse name, as given (for ``comfy.cli_args``)
    comfy_args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: ``--max-string-length``: longest string a string node may produce (:mod:`nodes.limits`)
    max_string_length: int = 16 * 1024 * 1024
    #: ``--max-image-pixels``: largest image (width x height) decoded from a file; one
    #: MAX_RESOLUTION-square image, the largest any node makes (:mod:`nodes.limits`)
    max_image_pixels: int = 16384 * 16384


DEFAULTS = LaunchOptions()


def get_options() -> LaunchOptions:
    """The options of the current runtime (ComfyUI's defaults until a launcher configures them)."""
    return _runtime.current().options or DEFAULTS


def configure(options: LaunchOptions) -> LaunchOptions:
    """Make ``options`` the process default's options (scripts, ``main.py run``); returns the
    previous ones, to restore them. A server keeps its own in its runtime instead."""
    previous = _runtime.default().options or DEFAULTS
    _runtime.configure_default(options=options)
    return previous


def restore(expected: LaunchOptions, previous: LaunchOptions) -> None:
    """Put ``previous`` back if ``expected`` is still the process default's options."""
    if (_runtime.default().options or DEFAULTS) is expected:
        _runtime.configure_default(options=previous)


def resolve_preview_method(requested: Any, default: str | None = None) -> str:
    """The preview method for one prompt: its ``extra_data.preview_method`` when that names a
    method, else the launch default (ComfyUI's ``set_preview_method``: "default", a missing or an
    unknown value all mean the launcher's ``--preview-method``)."""
    if isinstance(requested, str) and requested in PREVIEW_METHODS:
        return requested
    if requested in ("off",):  # Weft's earlier spelling of "none"
        return "none"
    return default if default is not None else get_options().preview_method
