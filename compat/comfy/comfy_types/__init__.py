"""``comfy.comfy_types``: IO type names and node base typing, for packs that annotate with them."""

from .node_typing import (
    IO,
    CheckLazyMixin,
    ComfyNodeABC,
    FileLocator,
    InputTypeDict,
    InputTypeOptions,
    StrEnum,
)

__all__ = [
    "IO",
    "CheckLazyMixin",
    "ComfyNodeABC",
    "FileLocator",
    "InputTypeDict",
    "InputTypeOptions",
    "StrEnum",
]
