"""Differential Diffusion: a soft inpainting mask as a per-pixel amount of change.

Levin & Fried, "Differential Diffusion: Giving Each Pixel Its Strength", arXiv:2306.00950.
Plain inpainting thresholds the mask: a pixel is either repainted or kept. Differential
Diffusion reads the mask value as how long a pixel takes part in the denoising: at each step
only pixels whose mask is at least the step's progress threshold (1 at the first step, 0 at the
last) follow the model; the others are reset to the input picture noised to that step's level.
A mask of 0.3 is thus repainted during the last 30 % of the schedule (a small change), 1.0
during all of it.

Implemented as ComfyUI's ``denoise_mask_function`` model option, which the sampling loop calls
at every mask application (:func:`nodes.diffusion.sampling.step_mask`). The threshold is linear
in the whole training timesteps the model is called at (:meth:`ModelSigmas.model_timestep
<nodes.diffusion.schedules.ModelSigmas.model_timestep>`) between the run's first sigma and its
last (or the model's smallest), as ComfyUI's node computes it, so the same workflow gives
ComfyUI's picture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, Node, Output

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.types import DiffusionModel


class DifferentialMask:
    """The ``denoise_mask_function`` of one DifferentialDiffusion node output."""

    def __init__(self, strength: float = 1.0) -> None:
        self.strength = float(strength)

    def __call__(self, sigma: torch.Tensor, mask: torch.Tensor, extra: dict[str, Any]) -> torch.Tensor:
        import torch

        from nodes.diffusion.samplers import model_sigmas

        model, sigmas = extra["model"], extra["sigmas"]
        ms = model_sigmas(model.scheduler_config)
        sigma_to = max(ms.sigma_min, float(sigmas[-1]))
        ts_from, ts_to, ts_now = (
            float(v) for v in ms.model_timestep(torch.tensor([float(sigmas[0]), sigma_to, float(sigma.flatten()[0])]))
        )
        threshold = (ts_now - ts_to) / (ts_from - ts_to) if ts_from != ts_to else 0.0
        binary = (mask >= threshold).to(mask.dtype)
        if 0 < self.strength < 1:
            return self.strength * binary + (1 - self.strength) * mask
        return binary

    def __repr__(self) -> str:
        return f"<DifferentialDiffusion strength={self.strength:g}>"


class DifferentialDiffusion(Node):
    display_name = "Differential Diffusion"
    category = "_for_testing"
    experimental = True
    description = (
        "Differential Diffusion (Levin & Fried, arXiv:2306.00950): the inpainting mask's value sets how "
        "much each pixel changes (a soft mask gives a soft edit) instead of repaint-or-keep. Use with a "
        "latent noise mask (SetLatentNoiseMask or InpaintModelConditioning)."
    )
    inputs = (
        Input("model", "MODEL"),
        Float(
            "strength",
            1.0,
            min=0.0,
            max=1.0,
            step=0.01,
            optional=True,
            tooltip="1: the paper's per-step binary mask; lower blends it with the soft mask.",
        ),
    )
    outputs = (Output("MODEL"),)

    def run(self, model: DiffusionModel, strength: float = 1.0) -> tuple[DiffusionModel]:
        options = {**model.model_options, "denoise_mask_function": DifferentialMask(strength)}
        return (model.clone(model_options=options),)


NODES = [DifferentialDiffusion]
