"""Reaches into ComfyUI's model internals: must be refused with a clear message."""

import comfy.sd  # noqa: F401

NODE_CLASS_MAPPINGS = {}
