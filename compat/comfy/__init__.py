"""ComfyUI's ``comfy`` package, as far as Weft provides it to custom node packs.

Provided submodules: ``comfy.utils``, ``comfy.model_management``, ``comfy.comfy_types`` and
``comfy.cli_args``. Any other (``comfy.sd``, ``comfy.samplers``, ``comfy.model_patcher``...)
is ComfyUI's model machinery, which Weft replaces with diffusers; importing it raises
``ModuleNotFoundError`` saying it is not supported in Weft and naming the pack.
"""

from __future__ import annotations

from typing import Any

from nodes.plugins.support import unsupported_attribute


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise unsupported_attribute("comfy", name)
