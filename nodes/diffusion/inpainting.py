"""Inpainting inside the sampling loop: a LATENT's ``noise_mask`` applied at every model call.

ComfyUI masks each model call, not each step (``KSamplerX0Inpaint`` in comfy/samplers.py,
0.8.0): the model sees the sampler's sample where the mask is 1 and the source latent noised to
the call's sigma where it is 0, and the clean estimate handed back to the sampler is the
model's where the mask is 1 and the source latent where it is 0. A soft mask mixes both by its
value; the sampler's own sample is never overwritten. Doing it per call (rather than blending
the sample after each step) is what gives ComfyUI's picture for soft masks, for the midpoints
of two-stage samplers and for the first call of a run from the top noise level (whose sample
is noised by ``sqrt(1 + sigma^2)``, the kept area by ``sigma``).

The kept area is noised with the run's initial noise, except for ``ddim``: ComfyUI runs it as
Euler with fresh noise from ``seed + 1`` for the kept area (its ``inpaint_options``
``random``), and so does Weft (:func:`keep_noise`).

torch is imported inside the functions; importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: ComfyUI's seed when a run has none (``extra_args.get("seed", 41)``)
DEFAULT_SEED = 41


def keep_noise(noise: torch.Tensor, seed: int | None, fresh: bool) -> torch.Tensor:
    """The noise the kept area is noised with: the run's initial noise, or (``fresh``, ddim)
    standard normal noise of the same shape from ``seed + 1`` on the CPU, as ComfyUI draws it."""
    if not fresh:
        return noise
    from .noise import seeded_noise

    base = DEFAULT_SEED if seed is None else int(seed)
    return seeded_noise(tuple(noise.shape), base + 1).to(device=noise.device, dtype=noise.dtype)


class Inpainting:
    """One run's inpainting: the source latent, the noise of its kept area and the mask in force
    at a noise level (the LATENT's, or Differential Diffusion's, :func:`.sampling.step_mask`),
    all on the model's device."""

    def __init__(self, latent: torch.Tensor, noise: torch.Tensor, mask_at: Callable[[float], Any]) -> None:
        self.latent, self.noise, self.mask_at = latent, noise, mask_at

    def model_input(self, x: torch.Tensor, sigma: float, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input, mask)`` of a call at ``sigma`` on the sample ``x``: the sample where the
        mask is 1, the kept area noised to ``sigma`` where it is 0. ``x`` is in k-diffusion's
        space (``x = x0 + sigma * eps``) divided by ``scale`` (the UNet's input for
        ``scale = sqrt(1 + sigma^2)``)."""
        import torch

        mask = _fit(self.mask_at(sigma), x)
        kept = _fit(self.latent, x) + _fit(self.noise, x) * sigma
        return torch.lerp(kept / scale if scale != 1.0 else kept, x, mask), mask

    def estimate(self, denoised: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The clean estimate the sampler gets: the model's where the mask is 1, the source's where 0."""
        import torch

        return torch.lerp(_fit(self.latent, denoised), denoised, mask)

    def finish(self, x: torch.Tensor, last_sigma: float) -> torch.Tensor:
        """The result of a run that ended at sigma 0: exactly the source latent where the last
        call's mask is 0 (the sampler's last step leaves it there up to float rounding)."""
        import torch

        mask = _fit(self.mask_at(last_sigma), x)
        return torch.where(mask == 0, _fit(self.latent, x), x)


def masked_model_call(
    predict: Callable[[Any, Any], Any],
    inpainting: Inpainting,
    prediction_type: str,
    scheduler_config: Mapping[str, Any],
) -> Callable[[Any, float, Any], Any]:
    """``call(x_in, sigma, t)``: ``predict`` for the UNet input ``x_in`` of the sampler's sample,
    masked as :class:`Inpainting` says; the output is re-expressed for ``x_in``, so the sampler
    reads the masked clean estimate from it whatever its parametrisation (epsilon or v)."""
    import torch

    from .cfg_hooks import CallSpace

    space = CallSpace(prediction_type, scheduler_config)

    def call(x_in: torch.Tensor, sigma: float, t: Any) -> torch.Tensor:
        masked_in, mask = inpainting.model_input(x_in, sigma, math.sqrt(1.0 + sigma * sigma))
        sigmas = torch.full((x_in.shape[0],), sigma, dtype=torch.float32)
        denoised = inpainting.estimate(space.denoised(predict(masked_in, t), masked_in, sigmas), mask)
        return space.output(denoised, x_in, sigmas)

    return call


def _fit(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` repeated over the batch when ``like`` holds several copies of it in one batch
    (steering particles); as it is otherwise (broadcasting handles ``[k, B, ...]`` stacks)."""
    if t.dim() != like.dim() or t.shape[0] in (1, like.shape[0]) or like.shape[0] % t.shape[0]:
        return t
    return t.repeat(like.shape[0] // t.shape[0], *([1] * (t.dim() - 1)))
