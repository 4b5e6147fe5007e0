"""Faster Diffusion: encoder propagation, reusing the UNet encoder's features between steps.

Li, Hu, Khan, Li, Yang, Wang, Cheng, Yang, "Faster Diffusion: Rethinking the Role of UNet
Encoder in Diffusion Models", arXiv:2312.09608. The paper finds that the UNet *encoder's*
features (down blocks and mid block) change gently across denoising steps while the decoder's
change a lot. Encoder propagation therefore:

* on *key* steps runs the whole UNet and caches the encoder's outputs: every skip feature and
  the mid block's output;
* on the other steps skips the encoder and runs only the decoder (the up blocks) on the cached
  features, with the current step's timestep embedding (and text embeddings).

Key steps here: the first call inside the ``start_percent`` .. ``end_percent`` window and then
every ``key_interval``-th call; calls before the window are all full, which is how the paper's
schedule computes the first steps fully (its SD schedule for 50 DDIM steps has key steps
0, 1, 2, 3, 5, 10, 15, 25, 35: dense at first, sparse later). ``start_percent`` defaults to
0.1 (the noisiest tenth of the schedule runs fully); ``key_interval`` 2 is the paper's uniform
"every two iterations" setting.

What this node leaves out of the paper:

* *Parallel decoding*: since the non-key steps' decoder inputs are all known at the key step,
  the paper batches their decoders together. That changes the sampling loop's order of work
  (and needs the sampler's future timesteps); a MODEL patch only sees one call at a time.
* *Prior noise injection* (adding ``0.003 * z_T`` to the latent at the later steps to restore
  texture): it changes the sampler's latent between steps, which a UNet call wrapper cannot do.
  The sampling loop would need a per-step latent hook for it.

ControlNet residuals are handled: the cache keeps the encoder's *raw* features, and each call
adds its own ControlNet residuals (the guider computes them every step) to them, so the control
stays current on every step. The shared machinery (the noise window, one cache per batch, the
run protocol) lives in :mod:`.feature_cache`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, Int, Node, Output

from .feature_cache import FeatureCacheWrapper, window_check

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.types import DiffusionModel

    from .unet_forward import UNetPass


class FasterDiffusionWrapper(FeatureCacheWrapper):
    """The MODEL wrapper of the :class:`FasterDiffusion` node (encoder propagation)."""

    name = "FasterDiffusion"
    cached_label = "decoder_only_calls"

    def full_pass(self, unet_pass: UNetPass) -> tuple[torch.Tensor, Any]:
        h, skips = unet_pass.encode()
        mid = unet_pass.middle(h)
        out, _ = unet_pass.decode(unet_pass.with_mid_control(mid), unet_pass.with_control(skips))
        return unet_pass.finish(out), (tuple(skips), mid)

    def cached_pass(self, unet_pass: UNetPass, features: Any) -> torch.Tensor:
        skips, mid = features
        out, _ = unet_pass.decode(unet_pass.with_mid_control(mid), unet_pass.with_control(skips))
        return unet_pass.finish(out)


class FasterDiffusion(Node):
    category = "model_patches/acceleration"
    description = (
        "Faster Diffusion encoder propagation (Li et al., arXiv:2312.09608): on key steps the whole UNet "
        "runs and the encoder's features (skips and mid block) are cached; the other steps run only the "
        "decoder on them with the current timestep. A key step every key_interval model calls inside the "
        "start..end window; steps before the window run fully. Parallel decoding and prior noise injection "
        "from the paper are not included."
    )
    inputs = (
        Input("model", "MODEL", tooltip="The model to accelerate (SD1.x, SD2.x or SDXL UNet)."),
        Int(
            "key_interval",
            2,
            min=1,
            max=1000,
            tooltip="Run the encoder every this many model calls inside the window; 1 turns propagation off.",
        ),
        Float(
            "start_percent",
            0.1,
            min=0.0,
            max=1.0,
            step=0.001,
            tooltip="Propagate from this point of the noise schedule on; the steps before run fully "
            "(the paper computes the first steps fully).",
        ),
        Float(
            "end_percent",
            1.0,
            min=0.0,
            max=1.0,
            step=0.001,
            tooltip="Stop propagating after this point of the noise schedule (1 = the last step).",
        ),
    )
    outputs = (Output("MODEL"),)

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        return window_check(inputs.get("start_percent"), inputs.get("end_percent"))

    def run(
        self, model: DiffusionModel, key_interval: int, start_percent: float, end_percent: float
    ) -> tuple[DiffusionModel]:
        return (model.with_wrapper(FasterDiffusionWrapper(key_interval, start_percent, end_percent)),)


NODES = [FasterDiffusion]

__all__ = ["FasterDiffusion", "FasterDiffusionWrapper", "NODES"]
