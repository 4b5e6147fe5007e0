"""DeepCache: reuse the UNet's deep features between steps, recompute only a shallow branch.

Ma, Fang, Wang, "DeepCache: Accelerating Diffusion Models for Free", CVPR 2024,
arXiv:2312.00858. The paper observes that the high-level features a UNet computes in its deep
layers change little from one denoising step to the next, while the shallow skip branches carry
the detail that does change. So:

* on a *full* step the whole UNet runs and the feature entering the decoder at skip branch
  ``d`` (the output of all the deeper up-block layers) is cached;
* on the next ``cache_interval - 1`` steps only the shallow branch runs: the encoder up to skip
  entry ``d``, then the cached deep feature concatenated with the fresh shallow skip, then the
  remaining decoder layers.

``cache_depth`` counts skip entries exactly like the popular ComfyUI community node (LDM's
``input_blocks`` index, 0..11 for SD1.x/SD2, 0..8 for SDXL): 0 keeps only ``conv_in`` and the
last decoder layer fresh; larger values keep more layers fresh (slower, closer to the full
result). A depth beyond the UNet's last entry is clamped to it (then only the mid block is
cached). The defaults, depth 3 and interval 3, keep the full-resolution level fresh (for SD1.x:
``conv_in``, both layers of the first down block and its downsampler).

ControlNet residuals (``UNetCall.kwargs``) are handled: on a shallow step the current step's
residuals are added to the fresh shallow skips; the deep part's residuals are those of the last
full step (baked into the cached feature). The shared machinery (the noise window, one cache
per batch, the run protocol) lives in :mod:`.feature_cache`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, Int, Node, Output

from .feature_cache import FeatureCacheWrapper, window_check

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.types import DiffusionModel

    from .unet_forward import UNetPass


class DeepCacheWrapper(FeatureCacheWrapper):
    """The MODEL wrapper of the :class:`DeepCache` node (one per node output; state per run)."""

    name = "DeepCache"
    cached_label = "shallow_calls"

    def __init__(
        self, cache_interval: int, cache_depth: int, start_percent: float = 0.0, end_percent: float = 1.0
    ) -> None:
        super().__init__(cache_interval, start_percent, end_percent)
        if cache_depth < 0:
            raise ValueError("cache_depth must be at least 0")
        self.cache_depth = int(cache_depth)

    def full_pass(self, unet_pass: UNetPass) -> tuple[torch.Tensor, Any]:
        depth = min(self.cache_depth, unet_pass.skip_count - 1)
        h, skips = unet_pass.encode()
        h = unet_pass.with_mid_control(unet_pass.middle(h))
        out, deep = unet_pass.decode(h, unet_pass.with_control(skips), capture=unet_pass.skip_count - 1 - depth)
        return unet_pass.finish(out), (depth, deep)

    def cached_pass(self, unet_pass: UNetPass, features: Any) -> torch.Tensor:
        depth, deep = features
        _, skips = unet_pass.encode(upto=depth)
        out, _ = unet_pass.decode(deep, unet_pass.with_control(skips), start=unet_pass.skip_count - 1 - depth)
        return unet_pass.finish(out)

    def __repr__(self) -> str:
        return (
            f"<DeepCache interval={self.interval} depth={self.cache_depth} "
            f"window={self.start_percent:g}..{self.end_percent:g}>"
        )


class DeepCache(Node):
    category = "model_patches/acceleration"
    description = (
        "DeepCache (Ma, Fang & Wang, CVPR 2024, arXiv:2312.00858): every cache_interval steps the whole "
        "UNet runs and its deep features are cached; the steps in between recompute only the shallow "
        "branch (the first cache_depth+1 encoder layers and the matching decoder layers) around the "
        "cached features. Roughly 1.5-2.5x faster sampling for a small loss of detail; no training."
    )
    inputs = (
        Input("model", "MODEL", tooltip="The model to accelerate (SD1.x, SD2.x or SDXL UNet)."),
        Int(
            "cache_interval",
            3,
            min=1,
            max=1000,
            tooltip="Run the full UNet every this many model calls; 1 turns caching off.",
        ),
        Int(
            "cache_depth",
            3,
            min=0,
            max=12,
            tooltip="Skip branch kept fresh, counted in encoder layers (LDM input blocks): 0 is the "
            "shallowest and fastest; higher is slower and closer to the uncached result.",
        ),
        Float(
            "start_percent",
            0.0,
            min=0.0,
            max=1.0,
            step=0.001,
            tooltip="Use the cache from this point of the noise schedule on (0 = the first step).",
        ),
        Float(
            "end_percent",
            1.0,
            min=0.0,
            max=1.0,
            step=0.001,
            tooltip="Stop using the cache after this point of the noise schedule (1 = the last step).",
        ),
    )
    outputs = (Output("MODEL"),)

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        return window_check(inputs.get("start_percent"), inputs.get("end_percent"))

    def run(
        self, model: DiffusionModel, cache_interval: int, cache_depth: int, start_percent: float, end_percent: float
    ) -> tuple[DiffusionModel]:
        return (model.with_wrapper(DeepCacheWrapper(cache_interval, cache_depth, start_percent, end_percent)),)


NODES = [DeepCache]

__all__ = ["DeepCache", "DeepCacheWrapper", "NODES"]
