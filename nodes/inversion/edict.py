"""EDICT: exact diffusion inversion with two coupled latents.

Wallace, Gokul, Naik, "EDICT: Exact Diffusion Inversion via Coupled Transformations", CVPR 2023,
arXiv:2211.12446. DDIM inversion is only approximate because the step from ``x_t`` to ``x_{t-1}``
evaluates the model at ``x_t``, which the inversion does not know yet. EDICT keeps two copies
``x``, ``y`` of the latent (both start as the picture's latent) and alternates affine coupling
updates, each of which evaluates the model only on the *other*, already known copy, so every
update can be undone exactly. One denoising step from ``t`` to ``t-1``, with the DDIM coefficients
``a_t``, ``b_t`` and the mixing parameter ``p`` (0.93 in the paper)::

    x_inter = a_t * x_t + b_t * eps(y_t, t)
    y_inter = a_t * y_t + b_t * eps(x_inter, t)
    x_{t-1} = p * x_inter + (1 - p) * y_inter
    y_{t-1} = p * y_inter + (1 - p) * x_{t-1}

and the inversion runs these four lines backwards (the mixing layers divide by ``p``). In
k-diffusion's space the DDIM coefficients are ``a = 1`` and ``b = sigma' - sigma`` (the same step,
scaled by ``sqrt(1 + sigma^2)``; the mixing is linear, so it commutes with that scaling).

Inversion followed by regeneration with the same conditioning and CFG returns the latent up to
rounding: about 1e-12 in ``float64_cpu`` precision; in float32 the ``1/p`` divisions amplify the
rounding over the steps (keep the default p, or use float64 for long schedules). Editing is the
regeneration with another prompt (and ``InversionSigmas``' ``skip_steps`` or the inversion's
``denoise`` to start part-way, as the paper does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, Node, Output

from .common import (
    INVERSION,
    Denoiser,
    Inversion,
    InversionRun,
    check_inversion_inputs,
    fail,
    inversion_run,
    make_guider,
    model_inputs,
    out_latent,
    precision_input,
    result,
    schedule,
    schedule_inputs,
    stored,
)

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun

NODE = "EDICTInversion"
DEFAULT_MIX = 0.93


def _eps(denoise: Denoiser, x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    denoised = denoise(x, sigma)
    return (x - denoised) / sigma, denoised


def edict_step(
    denoise: Denoiser, x: torch.Tensor, y: torch.Tensor, sigma: float, sigma_next: float, p: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One EDICT denoising step from ``sigma`` to ``sigma_next``; returns (x, y, a clean estimate)."""
    step = sigma_next - sigma
    eps_y, denoised = _eps(denoise, y, sigma)
    x_inter = x + step * eps_y
    eps_x, _ = _eps(denoise, x_inter, sigma)
    y_inter = y + step * eps_x
    x = p * x_inter + (1 - p) * y_inter
    y = p * y_inter + (1 - p) * x
    return x, y, denoised


def edict_unstep(
    denoise: Denoiser, x: torch.Tensor, y: torch.Tensor, sigma: float, sigma_next: float, p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact inverse of :func:`edict_step`: from the pair at ``sigma_next`` back up to ``sigma``."""
    step = sigma_next - sigma
    y_inter = (y - (1 - p) * x) / p
    x_inter = (x - (1 - p) * y_inter) / p
    y = y_inter - step * _eps(denoise, x_inter, sigma)[0]
    x = x_inter - step * _eps(denoise, y, sigma)[0]
    return x, y


def edict_invert(
    denoise: Denoiser, x0: torch.Tensor, sigmas: torch.Tensor, p: float = DEFAULT_MIX, run: InversionRun | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The coupled trajectories: ``xs[i]``, ``ys[i]`` at ``sigmas[i]``; both end at ``x0``."""
    n = len(sigmas) - 1
    xs: list[Any] = [None] * (n + 1)
    ys: list[Any] = [None] * (n + 1)
    x = y = denoise.to_work(x0)
    xs[n], ys[n] = x, y
    for done, i in enumerate(reversed(range(n)), start=1):
        x, y = edict_unstep(denoise, x, y, float(sigmas[i]), float(sigmas[i + 1]), p)
        xs[i], ys[i] = x, y
        if run is not None:
            run.step(done)
    return xs, ys


def edict_sample(
    denoise: Denoiser, x: torch.Tensor, y: torch.Tensor, sigmas: torch.Tensor, p: float, run: LoopRun | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """EDICT regeneration along ``sigmas`` from the pair ``(x, y)``; returns (x, the last clean estimate)."""
    x, y = denoise.to_work(x), denoise.to_work(y)
    denoised = x
    for j in range(len(sigmas) - 1):
        x, y, denoised = edict_step(denoise, x, y, float(sigmas[j]), float(sigmas[j + 1]), p)
        if run is not None:
            run.step_done(j + 1, x, denoised)
    return x, denoised


def regenerate(inversion: Inversion, run: LoopRun, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The matching sampler: EDICT steps from the stored pair at ``run.sigmas[0]``."""
    assert inversion.partners is not None
    denoise = Denoiser(run.guider, tuple(inversion.states[0].shape), inversion.precision)
    return edict_sample(
        denoise,
        inversion.states[start],
        inversion.partners[start],
        run.sigmas,
        float(inversion.options.get("mix", DEFAULT_MIX)),
        run,
    )


class EDICTInversion(Node):
    category = "sampling/inversion"
    description = (
        "EDICT (Wallace, Gokul & Naik, CVPR 2023, arXiv:2211.12446): exact inversion with two coupled latents "
        "x, y and the mixing parameter p. Regenerating the INVERSION with InversionSampler and the same prompt "
        "and CFG returns the latent up to rounding (float64_cpu: ~1e-12); with another prompt it edits the "
        "picture. The noisy LATENT output is x at the top of the schedule (EDICT needs the INVERSION's pair "
        "to regenerate, so use InversionSampler, not KSampler)."
    )
    inputs = (
        *model_inputs(),
        Input("latent", "LATENT", tooltip="The picture to invert (VAEEncode of it)."),
        *schedule_inputs(),
        Float(
            "mix",
            DEFAULT_MIX,
            min=0.5,
            max=0.999,
            step=0.005,
            round=0.0001,
            tooltip="EDICT's mixing parameter p: closer to 1 mixes less (the paper's 0.93); lower values are "
            "more stable but amplify rounding by 1/p per step when inverting.",
        ),
        precision_input(),
    )
    outputs = (Output("LATENT", "noisy_latent"), Output(INVERSION, "inversion"))

    def run(
        self,
        model: Any,
        positive: Any,
        latent: dict,
        steps: int,
        scheduler: str,
        denoise: float,
        mix: float,
        precision: str,
        cfg: float = 1.0,
        negative: Any = None,
    ) -> Any:
        model, samples = check_inversion_inputs(NODE, model, positive, negative, latent)
        if not 0.5 <= mix < 1.0:
            raise fail(NODE, "mix", f"must be in [0.5, 1), got {mix}: p = 1 makes the coupling singular")
        sigmas = schedule(NODE, model, scheduler, steps, denoise)
        guider = make_guider(model, positive, negative, cfg)
        denoiser = Denoiser(guider, tuple(samples.shape), precision)
        x0 = model.process_in(samples.to(denoiser.dtype))
        with inversion_run(guider, sigmas, len(sigmas) - 1) as run:
            xs, ys = edict_invert(denoiser, x0, sigmas, float(mix), run)
            xs, ys = [stored(s) for s in xs], [stored(s) for s in ys]
        inversion = Inversion(
            "edict",
            sigmas.clone(),
            xs,
            positive,
            negative,
            float(cfg),
            precision,
            partners=ys,
            options={"mix": float(mix)},
            latent=latent,
        )
        noisy = out_latent(latent, model.process_out(xs[0]).float())
        lines = [f"EDICT inversion: {len(sigmas) - 1} steps, p={mix:g}, {denoiser.calls} model evaluations"]
        return result((noisy, inversion), run.reports, lines)


NODES = [EDICTInversion]
