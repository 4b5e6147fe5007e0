"""What the adaptive-step samplers share: the integration range, counters, progress.

An adaptive solver picks its own noise levels, so of a SIGMAS schedule only the ends matter:
it integrates from ``sigmas[0]`` down to the last nonzero sigma (ComfyUI's ``dpm_fast`` and
``dpm_adaptive`` do the same), and the step count and intermediate sigmas are ignored. A
one-step schedule ``[sigma_max, 0]`` has no nonzero end below its start; there the model's
smallest training sigma is the end (the end every multi-step Karras/exponential schedule has).

Progress is reported per accepted step against an estimated total (steps taken plus what is
left at the current step size), since the real total is only known at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun


@dataclass(frozen=True)
class IntegrationRange:
    """``start`` and ``end`` noise levels (both > 0) and whether the schedule goes on to 0."""

    start: float
    end: float
    to_zero: bool


def integration_range(run: LoopRun) -> IntegrationRange:
    """The noise levels an adaptive solver integrates between, from the run's schedule."""
    from nodes.diffusion.samplers import model_sigmas

    sigmas = [float(s) for s in run.sigmas]
    start = sigmas[0]
    to_zero = sigmas[-1] == 0.0
    end = sigmas[-2] if to_zero else sigmas[-1]
    if end >= start:  # [sigma_max, 0]: nothing nonzero below the start
        end = min(model_sigmas(run.model.scheduler_config).sigma_min, start)
    return IntegrationRange(start, end, to_zero)


class StepStats:
    """Accepted and rejected steps and model evaluations of one run: the sampler's report."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.accepted = self.rejected = self.evaluations = 0
        self.ran = False

    def reset(self) -> None:
        self.accepted = self.rejected = self.evaluations = 0
        self.ran = False

    def report(self) -> dict[str, Any]:
        if not self.ran:
            return {}
        return {
            "name": self.name,
            "model_evaluations": self.evaluations,
            "accepted": self.accepted,
            "rejected": self.rejected,
        }


def estimated_total(done: int, remaining: float, h: float) -> int:
    """Steps done plus the steps ``remaining`` (in the solver's time) takes at step size ``h``."""
    if remaining <= 0:
        return done
    return done + max(1, math.ceil(remaining / max(abs(h), 1e-12)))


def tolerance_scale(atol: float, rtol: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The mixed absolute/relative tolerance per element: ``max(atol, rtol * max(|a|, |b|))``
    (never exactly 0, so a zero tolerance means "as tight as floats allow", not a division by 0)."""
    import torch

    return torch.maximum(a.abs(), b.abs()).mul_(rtol).clamp_(min=max(atol, 1e-12))
