"""``comfy_api.v0_0_2``: the versioned alias of ``comfy_api.latest`` that packs pin to."""

from __future__ import annotations

from comfy_api.latest import IO, UI, ComfyAPI_latest, ComfyAPISync_latest, ComfyExtension, io, ui
from comfy_api.latest import Input as Input_latest
from comfy_api.latest import InputImpl as InputImpl_latest
from comfy_api.latest import Types as Types_latest


class ComfyAPIAdapter_v0_0_2(ComfyAPI_latest):  # noqa: N801 - ComfyUI's name
    VERSION = "0.0.2"
    STABLE = False


class ComfyAPISyncAdapter_v0_0_2(ComfyAPISync_latest):  # noqa: N801 - ComfyUI's name
    VERSION = "0.0.2"
    STABLE = False


class Input(Input_latest):
    pass


class InputImpl(InputImpl_latest):
    pass


class Types(Types_latest):
    pass


ComfyAPI = ComfyAPIAdapter_v0_0_2
ComfyAPISync = ComfyAPISyncAdapter_v0_0_2

__all__ = ["ComfyAPI", "ComfyAPISync", "Input", "InputImpl", "Types", "ComfyExtension", "io", "IO", "ui", "UI"]
