"""Operations on SIGMAS, and AddNoise: ComfyUI's custom-sampling helpers beside SplitSigmas.

ComfyUI 0.8.0's names, inputs and semantics (comfy_extras/nodes_custom_sampler.py), quirks
included where a workflow could depend on them: SplitSigmasDenoise at a denoise that rounds to
0 steps gives an empty high part; FlipSigmas lifts a leading 0 to 0.0001 so the reversed schedule
can start (inversion runs schedules upwards); ExtendIntermediateSigmas inserts its extra levels
after every level within [end_at_sigma, start_at_sigma] (start -1: no upper bound).
SamplingPercentToSigma converts a fraction of the schedule to the MODEL's sigma with the rule
ControlNet ranges and ConditioningSetTimestepRange use (:func:`nodes.diffusion.control.percent_to_sigma`).

AddNoise noises a LATENT to the schedule's span (``|first - last|`` sigma, or the only one) in
the model's scaled latent space, as ComfyUI's node does; SamplerCustomAdvanced with DisableNoise
then samples it as if it had added that noise itself.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from .api import Boolean, Combo, Float, Input, Int, Node, Output, String

if TYPE_CHECKING:
    import torch

_NUMBER = re.compile(r"[-+]?(?:\d*\.*\d+)")


def _sigmas(name: str, value: Any) -> torch.Tensor:
    import torch

    if not torch.is_tensor(value):
        raise ValueError(f"input '{name}' is not SIGMAS (a 1-D tensor of noise levels)")
    return value


class SplitSigmasDenoise(Node):
    category = "sampling/custom_sampling/sigmas"
    description = (
        "Splits a schedule so the low part holds the last round(steps * denoise) steps (img2img from a "
        "full schedule); the parts share the sigma at the split."
    )
    inputs = (Input("sigmas", "SIGMAS"), Float("denoise", 1.0, min=0.0, max=1.0, step=0.01))
    outputs = (Output("SIGMAS", "high_sigmas"), Output("SIGMAS", "low_sigmas"))

    def run(self, sigmas: Any, denoise: float) -> tuple:
        sigmas = _sigmas("sigmas", sigmas)
        low_steps = round(max(sigmas.shape[-1] - 1, 0) * denoise)
        return sigmas[:-low_steps], sigmas[-(low_steps + 1) :]


class FlipSigmas(Node):
    category = "sampling/custom_sampling/sigmas"
    description = "Reverses a schedule (for inversion: from the image towards noise); a leading 0 becomes 0.0001."
    inputs = (Input("sigmas", "SIGMAS"),)
    outputs = (Output("SIGMAS"),)

    def run(self, sigmas: Any) -> tuple:
        sigmas = _sigmas("sigmas", sigmas)
        if len(sigmas) == 0:
            return (sigmas,)
        flipped = sigmas.flip(0)
        if flipped[0] == 0:
            flipped[0] = 0.0001
        return (flipped,)


class SetFirstSigma(Node):
    category = "sampling/custom_sampling/sigmas"
    description = "The schedule with its first noise level replaced (a copy)."
    inputs = (Input("sigmas", "SIGMAS"), Float("sigma", 136.0, min=0.0, max=20000.0, step=0.001, round=False))
    outputs = (Output("SIGMAS"),)

    def run(self, sigmas: Any, sigma: float) -> tuple:
        sigmas = _sigmas("sigmas", sigmas)
        if len(sigmas) == 0:
            raise ValueError("input 'sigmas' is empty: there is no first sigma to set")
        sigmas = sigmas.clone()
        sigmas[0] = sigma
        return (sigmas,)


def _spacing(name: str, x: torch.Tensor) -> torch.Tensor:
    import torch

    if name == "cosine":
        return torch.sin(x * math.pi / 2)
    if name == "sine":
        return 1 - torch.cos(x * math.pi / 2)
    return x


class ExtendIntermediateSigmas(Node):
    category = "sampling/custom_sampling/sigmas"
    description = (
        "Inserts steps - 1 extra noise levels between each pair of levels whose upper one lies in "
        "[end_at_sigma, start_at_sigma] (start -1: no upper bound), spaced linearly, or denser at "
        "the upper (cosine) or lower (sine) end."
    )
    inputs = (
        Input("sigmas", "SIGMAS"),
        Int("steps", 2, min=1, max=100),
        Float("start_at_sigma", -1.0, min=-1.0, max=20000.0, step=0.01, round=False),
        Float("end_at_sigma", 12.0, min=0.0, max=20000.0, step=0.01, round=False),
        Combo("spacing", ["linear", "cosine", "sine"]),
    )
    outputs = (Output("SIGMAS"),)

    def run(self, sigmas: Any, steps: int, start_at_sigma: float, end_at_sigma: float, spacing: str) -> tuple:
        import torch

        sigmas = _sigmas("sigmas", sigmas)
        upper = math.inf if start_at_sigma < 0 else start_at_sigma
        fractions = _spacing(spacing, torch.linspace(0, 1, steps + 1, device=sigmas.device)[1:-1])
        out: list[float] = []
        for current, following in zip(sigmas[:-1], sigmas[1:], strict=True):
            out.append(float(current))
            if end_at_sigma <= float(current) <= upper:
                out.extend((fractions * (following - current) + current).tolist())
        if len(sigmas):
            out.append(float(sigmas[-1]))
        return (torch.tensor(out, dtype=torch.float32),)


class SamplingPercentToSigma(Node):
    category = "sampling/custom_sampling/sigmas"
    description = (
        "The MODEL's noise level at a fraction of its schedule (0: the start, 1: the end), as timestep "
        "ranges use it: 0 gives a value above every sigma and 1 gives 0, unless return_actual_sigma."
    )
    inputs = (
        Input("model", "MODEL"),
        Float("sampling_percent", 0.0, min=0.0, max=1.0, step=0.0001),
        Boolean(
            "return_actual_sigma",
            False,
            tooltip="Return the actual sigma value instead of the value used for interval checks.\n"
            "This only affects results at 0.0 and 1.0.",
        ),
    )
    outputs = (Output("FLOAT", "sigma_value"),)

    def run(self, model: Any, sampling_percent: float, return_actual_sigma: bool) -> tuple:
        from .diffusion.control import percent_to_sigma
        from .diffusion.samplers import model_sigmas

        value = percent_to_sigma(sampling_percent, model.scheduler_config)
        if return_actual_sigma and sampling_percent in (0.0, 1.0):
            ms = model_sigmas(model.scheduler_config)
            value = ms.sigma_max if sampling_percent == 0.0 else ms.sigma_min
        return (value,)


class ManualSigmas(Node):
    category = "_for_testing/custom_sampling"
    experimental = True
    description = "A schedule typed as numbers (every number in the text, in order)."
    inputs = (String("sigmas", "1, 0.5", multiline=False),)
    outputs = (Output("SIGMAS"),)

    def run(self, sigmas: str) -> tuple:
        import torch

        return (torch.tensor([float(v) for v in _NUMBER.findall(sigmas)], dtype=torch.float32),)


class AddNoise(Node):
    category = "_for_testing/custom_sampling/noise"
    experimental = True
    description = (
        "Adds the NOISE to the latent at the schedule's noise level (|first - last| sigma), in the model's "
        "latent space; sample the result with DisableNoise."
    )
    inputs = (
        Input("model", "MODEL"),
        Input("noise", "NOISE"),
        Input("sigmas", "SIGMAS"),
        Input("latent_image", "LATENT"),
    )
    outputs = (Output("LATENT"),)

    def run(self, model: Any, noise: Any, sigmas: Any, latent_image: dict) -> tuple:
        import torch

        sigmas = _sigmas("sigmas", sigmas)
        if len(sigmas) == 0:
            return (latent_image,)
        samples = latent_image["samples"]
        drawn = noise.generate_noise(latent_image)
        scale = float((sigmas[0] - sigmas[-1]).abs()) if len(sigmas) > 1 else float(sigmas[0])
        # as ComfyUI: an all-zero latent (EmptyLatentImage) is not shifted into the model's space
        clean = model.process_in(samples) if torch.count_nonzero(samples) > 0 else samples
        noisy = model.process_out(drawn.to(clean) * scale + clean)
        out = dict(latent_image)
        out["samples"] = torch.nan_to_num(noisy, nan=0.0, posinf=0.0, neginf=0.0)
        return (out,)


NODES = [
    SplitSigmasDenoise,
    FlipSigmas,
    SetFirstSigma,
    ExtendIntermediateSigmas,
    SamplingPercentToSigma,
    ManualSigmas,
    AddNoise,
]
