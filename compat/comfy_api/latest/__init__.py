"""``comfy_api.latest``: ComfyUI's newest public API for custom nodes, implemented by Weft.

- ``io``: the v3 node schema (``io.ComfyNode``, ``io.Schema``, the types' ``Input``/``Output``).
- ``ui``: what a node shows (``ui.PreviewImage``, ``ui.PreviewText``...).
- ``ComfyExtension``: what a pack's ``async def comfy_entrypoint()`` returns; Weft's loader
  awaits ``on_load()`` and registers the classes ``get_node_list()`` returns.
- ``ComfyAPI`` / ``ComfyAPISync``: services for running nodes; here
  ``execution.set_progress``, which updates the node's entry in ``progress_state`` events.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from engine.context import current_context

from . import _io as io
from . import _ui as ui


def _preview_bytes(image: Any) -> bytes | None:
    """A PIL image or an IMAGE tensor (first of a batch) as JPEG bytes."""
    if image is None:
        return None
    import io as bytes_io

    from PIL import Image

    if not isinstance(image, Image.Image):
        from nodes.diffusion.image import to_uint8

        tensor = image[0] if getattr(image, "dim", lambda: 0)() == 4 else image
        image = Image.fromarray(to_uint8(tensor))
    buffer = bytes_io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def set_progress(
    value: float,
    max_value: float,
    node_id: str | None = None,
    preview_image: Any = None,
    ignore_size_limit: bool = False,
) -> None:
    """Report a node's progress (and optionally a preview) to the client that queued the run."""
    ctx = current_context()
    if ctx is None:
        if node_id is None:
            raise ValueError("node_id must be given when no node is running")
        return  # no run to report to (a script calling the API outside a prompt)
    ctx.set_progress(float(value), float(max_value), node_id)
    data = _preview_bytes(preview_image)
    if data is not None:
        ctx.preview(data, "JPEG")


class ComfyAPI_latest:  # noqa: N801 - ComfyUI's name
    """The async API object: ``await api.execution.set_progress(value, max_value)``."""

    VERSION = "latest"
    STABLE = False

    class Execution:
        async def set_progress(
            self,
            value: float,
            max_value: float,
            node_id: str | None = None,
            preview_image: Any = None,
            ignore_size_limit: bool = False,
        ) -> None:
            set_progress(value, max_value, node_id, preview_image, ignore_size_limit)

    def __init__(self) -> None:
        self.execution = self.Execution()


class ComfyAPISync_latest:  # noqa: N801 - ComfyUI's name
    """The same services for synchronous node code: ``api.execution.set_progress(...)``."""

    VERSION = "latest"
    STABLE = False

    class Execution:
        def set_progress(
            self,
            value: float,
            max_value: float,
            node_id: str | None = None,
            preview_image: Any = None,
            ignore_size_limit: bool = False,
        ) -> None:
            set_progress(value, max_value, node_id, preview_image, ignore_size_limit)

    def __init__(self) -> None:
        self.execution = self.Execution()


ComfyAPI = ComfyAPI_latest
ComfyAPISync = ComfyAPISync_latest


class ComfyExtension(ABC):
    """What ``comfy_entrypoint()`` returns: a pack's nodes and its set-up."""

    async def on_load(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Called once before the nodes are registered."""

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """The pack's v3 node classes."""


class Input:
    """Value types (ComfyUI's ``Input``): an IMAGE, MASK and LATENT are torch tensors / dicts."""

    Image = Any
    Audio = dict
    Mask = Any
    Latent = dict
    Video = Any


class InputImpl:
    """Concrete input classes (video decoding) that Weft does not provide."""


class Types:
    """Helper types (video codecs, meshes) that Weft does not provide."""


IO = io
UI = ui

__all__ = ["ComfyAPI", "ComfyAPISync", "Input", "InputImpl", "Types", "ComfyExtension", "io", "IO", "ui", "UI"]
