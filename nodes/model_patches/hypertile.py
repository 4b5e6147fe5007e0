"""HyperTile: self-attention over tiles of the latent instead of the whole image (ComfyUI's HyperTile).

After tfernd's HyperTile (github.com/tfernd/HyperTile): self-attention costs grow with the
square of the token count, so at high resolutions the UNet's self-attention layers attend
within tiles of about ``tile_size`` pixels. The tiling is chosen per call: the layer's
height/width is split into ``n`` parts, ``n`` one of the ``swap_size`` smallest splits whose
tiles are at least ``tile_size / 8`` latent pixels (picked with torch's global generator, as
in ComfyUI; with its ``randint`` bound only the first ``swap_size - 1`` options are ever
drawn). Layers at the latent's resolution are tiled, and with ``max_depth`` > 0 those up to
``2^max_depth`` times smaller (``scale_depth`` then doubles the tile at each level).

Weft reproduces ComfyUI's arrangement exactly: the *queries* are cut into spatial tiles, while
the keys and values are the layer's tokens cut into as many consecutive runs (ComfyUI hands
the untiled keys/values to its attention, which reshapes them to the tiled batch), and the
height/width used for tiling come from the token count and the latent's aspect ratio in
ComfyUI's order. Implemented as an attention processor wrapped around the UNet's own for
``attn1`` (self-attention), installed for the length of each UNet call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from nodes.api import Boolean, Input, Int, Node, Output

from .unet_hooks import CallHooks

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.types import DiffusionModel, UNetCall


def random_divisor(value: int, min_value: int, max_options: int = 1) -> int:
    """``value // d`` for one of the ``max_options`` smallest divisors ``d >= min_value`` of ``value``."""
    import torch

    min_value = min(min_value, value)
    divisors = [d for d in range(min_value, value + 1) if value % d == 0]
    splits = [value // d for d in divisors[:max_options]]
    index = int(torch.randint(low=0, high=len(splits) - 1, size=(1,)).item()) if len(splits) > 1 else 0
    return splits[index]


class TiledSelfAttention:
    """An attention processor that runs the wrapped one on tiles when ``plan`` says so."""

    def __init__(self, inner: Any, hooks: HyperTileHooks) -> None:
        self.inner = inner
        self.hooks = hooks

    def __getattr__(self, name: str) -> Any:  # diffusers inspects its processors' attributes
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        layout = None
        if encoder_hidden_states is None and hidden_states.dim() == 3:
            layout = self.hooks.plan(hidden_states.shape[1])
        if layout is None:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        nh, nw, h, w = layout
        b, n, c = hidden_states.shape
        th, tw = h // nh, w // nw
        queries = hidden_states.reshape(b, nh, th, nw, tw, c).permute(0, 1, 3, 2, 4, 5).reshape(b * nh * nw, th * tw, c)
        keys_values = hidden_states.reshape(b * nh * nw, n // (nh * nw), c)
        out = self.inner(attn, queries, keys_values, attention_mask, temb, *args, **kwargs)
        return out.reshape(b, nh, nw, th, tw, c).permute(0, 1, 3, 2, 4, 5).reshape(b, n, c)


class HyperTileHooks(CallHooks):
    """The MODEL wrapper of the :class:`HyperTile` node."""

    name = "HyperTile"

    def __init__(self, tile_size: int, swap_size: int, max_depth: int, scale_depth: bool) -> None:
        self.tile_size, self.swap_size, self.max_depth, self.scale_depth = tile_size, swap_size, max_depth, scale_depth
        self.latent_tile = max(32, tile_size) // 8
        self._shape: tuple[int, int] = (0, 0)

    def __repr__(self) -> str:
        return (
            f"<HyperTile tile={self.tile_size} swap={self.swap_size} depth={self.max_depth} "
            f"scale_depth={self.scale_depth}>"
        )

    def plan(self, tokens: int) -> tuple[int, int, int, int] | None:
        """``(nh, nw, h, w)`` for a self-attention over ``tokens`` tokens, or ``None`` (not tiled)."""
        height, width = self._shape
        sizes = [(height / 2**i) * (width / 2**i) for i in range(self.max_depth + 1)]
        if tokens not in sizes:
            return None
        aspect = width / height
        h, w = round(math.sqrt(tokens * aspect)), round(math.sqrt(tokens / aspect))
        if h * w != tokens:
            return None
        factor = 2 ** sizes.index(tokens) if self.scale_depth else 1
        nh = random_divisor(h, self.latent_tile * factor, self.swap_size)
        nw = random_divisor(w, self.latent_tile * factor, self.swap_size)
        return (nh, nw, h, w) if nh * nw > 1 else None

    @contextmanager
    def install(self, unet: Any, call: UNetCall) -> Iterator[None]:
        self._shape = (int(call.x.shape[-2]), int(call.x.shape[-1]))
        swapped = []
        for name, module in unet.named_modules():
            if name.endswith(".attn1") and hasattr(module, "processor"):
                original = module.processor
                module.set_processor(TiledSelfAttention(original, self))
                swapped.append((module, original))
        try:
            yield
        finally:
            for module, original in swapped:
                module.set_processor(original)


class HyperTile(Node):
    category = "model_patches/unet"
    description = (
        "HyperTile: self-attention within tiles of about tile_size pixels (faster at high "
        "resolutions). max_depth also tiles the lower-resolution layers; scale_depth grows the tile "
        "with the depth."
    )
    inputs = (
        Input("model", "MODEL"),
        Int("tile_size", 256, min=1, max=2048),
        Int("swap_size", 2, min=1, max=128),
        Int("max_depth", 0, min=0, max=10),
        Boolean("scale_depth", False),
    )
    outputs = (Output("MODEL"),)

    def run(self, model: DiffusionModel, tile_size: int, swap_size: int, max_depth: int, scale_depth: bool) -> tuple:
        return (model.with_wrapper(HyperTileHooks(tile_size, swap_size, max_depth, scale_depth)),)


NODES = [HyperTile]
