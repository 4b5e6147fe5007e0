"""ComfyUI's ``comfy.utils`` for custom node packs: progress, resizing, safe file loading.

``ProgressBar`` reports through the running node's Weft execution context, so the canvas
shows progress and an interrupt stops the node at its next update, exactly as in ComfyUI.
torch is imported inside the functions: importing this module (which many packs do at
import time) must not slow down server start.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.context import ExecutionContext, current_context
from nodes.plugins.support import unsupported_attribute

if TYPE_CHECKING:
    import torch

PROGRESS_BAR_ENABLED = True
PROGRESS_BAR_HOOK: Callable[..., None] | None = None


def set_progress_bar_enabled(enabled: bool) -> None:
    global PROGRESS_BAR_ENABLED
    PROGRESS_BAR_ENABLED = enabled


def set_progress_bar_global_hook(function: Callable[..., None] | None) -> None:
    """Replace where progress goes (ComfyUI's hook); ``None`` restores Weft's own reporting."""
    global PROGRESS_BAR_HOOK
    PROGRESS_BAR_HOOK = function


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise unsupported_attribute("comfy.utils", name)


def _encode_preview(preview: Any) -> tuple[bytes, str] | None:
    """ComfyUI previews are ``(format, PIL image, max_size)``; Weft sends encoded bytes."""
    if not isinstance(preview, tuple) or len(preview) < 2:
        return None
    image_format, image = str(preview[0]).upper(), preview[1]
    max_size = preview[2] if len(preview) > 2 else None
    if max_size:
        image = image.copy()
        image.thumbnail((max_size, max_size))
    buffer = io.BytesIO()
    fmt = "PNG" if image_format == "PNG" else "JPEG"
    image.convert("RGB").save(buffer, format=fmt, quality=95) if fmt == "JPEG" else image.save(buffer, format=fmt)
    return buffer.getvalue(), fmt


class ProgressBar:
    """Progress of the current node: ``update(1)`` per step or ``update_absolute(i, total)``.

    The execution context is captured when the bar is created, so updates from a helper
    thread the node started still reach the right client. Each update is also an
    interruption point (it raises Weft's ``Interrupted``, which ComfyUI calls
    ``InterruptProcessingException``).
    """

    def __init__(self, total: int, node_id: str | None = None) -> None:
        self.total = total
        self.current = 0
        self.node_id = node_id
        self._ctx: ExecutionContext | None = current_context()

    def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        if value > self.total:
            value = self.total
        self.current = value
        if PROGRESS_BAR_HOOK is not None:
            PROGRESS_BAR_HOOK(self.current, self.total, preview, node_id=self.node_id)
            return
        ctx = self._ctx or current_context()
        if ctx is None or not PROGRESS_BAR_ENABLED:
            return
        if preview is not None:
            encoded = _encode_preview(preview)
            if encoded is not None:
                ctx.preview(*encoded)
        ctx.progress(self.current, self.total)

    def update(self, value: int) -> None:
        self.update_absolute(self.current + value)


# -- tensors ---------------------------------------------------------------------------
def repeat_to_batch_size(tensor: torch.Tensor, batch_size: int, dim: int = 0) -> torch.Tensor:
    """Repeat (or cut) along ``dim`` to exactly ``batch_size`` entries."""
    import torch

    size = tensor.shape[dim]
    if size > batch_size:
        return tensor.narrow(dim, 0, batch_size)
    if size < batch_size:
        repeats = [1] * tensor.ndim
        repeats[dim] = -(-batch_size // size)
        return torch.Tensor.repeat(tensor, *repeats).narrow(dim, 0, batch_size)
    return tensor


def resize_to_batch_size(tensor: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Pick evenly spaced entries (or repeat them) to get ``batch_size`` along dim 0."""
    import torch

    size = tensor.shape[0]
    if size == batch_size:
        return tensor
    if batch_size <= 1:
        return tensor[:batch_size]
    index = torch.linspace(0, size - 1, batch_size).round().long()
    return tensor[index]


def lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Lanczos resize of ``[B, C, H, W]`` in 0..1, through Pillow like ComfyUI."""
    import numpy as np
    import torch
    from PIL import Image

    images = []
    for image in samples:
        array = (image.movedim(0, -1).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        pil = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
        pil = pil.resize((width, height), resample=Image.Resampling.LANCZOS)
        out = torch.from_numpy(np.array(pil).astype(np.float32) / 255.0)
        images.append(out.unsqueeze(-1) if out.ndim == 2 else out)
    return torch.stack(images).movedim(-1, 1).to(samples.device, samples.dtype)


def common_upscale(samples: torch.Tensor, width: int, height: int, upscale_method: str, crop: str) -> torch.Tensor:
    """Resize ``[B, C, H, W]`` (IMAGE after ``movedim(-1, 1)``, or LATENT samples).

    ``crop="center"`` first cuts the input to the target aspect ratio. Methods:
    nearest-exact, bilinear, area, bicubic, lanczos; ``bislerp`` is not supported.
    """
    import torch.nn.functional as F

    if crop == "center":
        old_width, old_height = samples.shape[-1], samples.shape[-2]
        old_aspect, new_aspect = old_width / old_height, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
        samples = samples.narrow(-2, y, old_height - y * 2).narrow(-1, x, old_width - x * 2)
    if upscale_method == "lanczos":
        return lanczos(samples, width, height)
    if upscale_method == "bislerp":
        from nodes.plugins.support import NotSupportedInWeft

        raise NotSupportedInWeft("comfy.utils.common_upscale(upscale_method='bislerp')")
    mode = {"nearest-exact": "nearest-exact", "bilinear": "bilinear", "area": "area", "bicubic": "bicubic"}.get(
        upscale_method
    )
    if mode is None:
        raise ValueError(f"unknown upscale_method {upscale_method!r}")
    if samples.ndim == 5:  # video latents [B, C, T, H, W]: resize each frame
        b, c, t, h, w = samples.shape
        flat = samples.movedim(2, 1).reshape(b * t, c, h, w)
        out = F.interpolate(flat, size=(height, width), mode=mode)
        return out.reshape(b, t, c, height, width).movedim(1, 2)
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(samples, size=(height, width), mode=mode, **kwargs)


# -- files -----------------------------------------------------------------------------
def load_torch_file(ckpt: str, safe_load: bool = False, device: Any = None, return_metadata: bool = False) -> Any:
    """Load a state dict from ``.safetensors`` or a torch pickle, never executing code.

    Pickles are always read with ``weights_only=True`` whatever ``safe_load`` says: a pack
    cannot opt Weft into running arbitrary code from a downloaded file.
    """
    import torch

    device = device if device is not None else torch.device("cpu")
    metadata = None
    if str(ckpt).lower().endswith((".safetensors", ".sft")):
        import safetensors

        with safetensors.safe_open(str(ckpt), framework="pt", device=str(device)) as handle:
            state = {key: handle.get_tensor(key) for key in handle.keys()}
            metadata = handle.metadata() if return_metadata else None
    else:
        loaded = torch.load(str(ckpt), map_location=device, weights_only=True)
        state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    return (state, metadata) if return_metadata else state


def save_torch_file(sd: dict[str, Any], ckpt: str, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    save_file(sd, str(ckpt), metadata=metadata)


def state_dict_prefix_replace(
    state_dict: dict[str, Any], replace_prefix: dict[str, str], filter_keys: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {} if filter_keys else state_dict
    for old, new in replace_prefix.items():
        for key in [k for k in state_dict if k.startswith(old)]:
            out[new + key[len(old) :]] = state_dict.pop(key)
    return out


def state_dict_key_replace(state_dict: dict[str, Any], keys_to_replace: dict[str, str]) -> dict[str, Any]:
    for old, new in keys_to_replace.items():
        if old in state_dict:
            state_dict[new] = state_dict.pop(old)
    return state_dict
