"""``comfy_api.v0_0_1``: the first versioned alias; the same services as ``v0_0_2``."""

from __future__ import annotations

from comfy_api.v0_0_2 import IO, UI, ComfyAPI, ComfyAPISync, ComfyExtension, Input, InputImpl, Types, io, ui

__all__ = ["ComfyAPI", "ComfyAPISync", "Input", "InputImpl", "Types", "ComfyExtension", "io", "IO", "ui", "UI"]
