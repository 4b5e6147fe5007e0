"""``heunpp2``: Heun++ (three-stage Heun), as ComfyUI 0.8.0 runs it (``sample_heunpp2``).

ComfyUI takes it from Carzit's sd-webui-samplers-scheduler. Each step from ``sigma_i`` to
``sigma_(i+1)`` looks two schedule steps ahead: Euler to ``sigma_(i+1)``, the derivative there,
Euler on to ``sigma_(i+2)``, the derivative there, and then the step is taken with a weighted
mean of the three derivatives, ``w_1 d + w_2 d_2 + w_3 d_3`` with ``w_2 = sigma_(i+1) / (3
sigma_0)``, ``w_3 = sigma_(i+2) / (3 sigma_0)`` and ``w_1 = 1 - w_2 - w_3``: the lookahead weighs
less as the noise falls. Three model calls a step. The step before the schedule's last sigma is a
two-stage Heun step with ``w_2 = sigma_(i+1) / (2 sigma_0)``, the last one a plain Euler step
(to sigma 0: the clean estimate). ComfyUI's unused ``s_churn`` (0) is left out: with it at 0 the
step is deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun


class HeunPP2Sampler:
    """``heunpp2`` (module docstring)."""

    def __repr__(self) -> str:
        return "HeunPP2Sampler()"

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        sigmas = [float(s) for s in run.sigmas]
        first, end = sigmas[0], sigmas[-1]
        x = denoised = run.x
        for i in range(run.steps):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            denoised = run.denoise(x, sigma)
            d = (x - denoised) / sigma
            dt = sigma_next - sigma
            if sigma_next == end:
                x = x + d * dt
            else:
                x_next = x + d * dt
                d_next = (x_next - run.denoise(x_next, sigma_next)) / sigma_next
                if sigmas[i + 2] == end:
                    w2 = sigma_next / (2 * first)
                    slope = d * (1 - w2) + d_next * w2
                else:
                    sigma_after = sigmas[i + 2]
                    x_after = x_next + d_next * (sigma_after - sigma_next)
                    d_after = (x_after - run.denoise(x_after, sigma_after)) / sigma_after
                    w2, w3 = sigma_next / (3 * first), sigma_after / (3 * first)
                    slope = d * (1 - w2 - w3) + d_next * w2 + d_after * w3
                x = x + slope * dt
            x = run.step_done(i + 1, x, denoised)
        return run.finish(x, denoised)


def named_sampler(name: str) -> HeunPP2Sampler:
    """The SAMPLER for ``sampler_name`` ``heunpp2``."""
    if name != "heunpp2":
        raise ValueError(f"not a Heun++ sampler name: {name!r}")
    return HeunPP2Sampler()
