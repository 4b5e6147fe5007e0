"""The matching sampler of an INVERSION, and the schedule to run it on.

``InversionSampler`` turns an INVERSION into a SAMPLER with its own loop (the loop hook of
:mod:`nodes.diffusion.loops`): SamplerCustomAdvanced runs it with any GUIDER (the source prompt to
reconstruct, another prompt to edit; LoRA, ControlNet and guidance patches on the guider's MODEL
apply), on the SIGMAS ``InversionSigmas`` takes from the same INVERSION. The sampler starts from the
inversion's stored state at the run's first sigma, in the inversion's precision, and steps with the
method's own update: deterministic DDIM, EDICT's coupled steps, or DDPM with the stored noise maps.
The NOISE and the latent_image of SamplerCustomAdvanced give nothing but the batch's shape (use
DisableNoise and the inversion's noisy LATENT).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodes.api import Input, Int, Node, Output

from .common import INVERSION, Inversion, InversionError, check_inversion, fail

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun


def check_run(who: str, inversion: Inversion, run: LoopRun) -> int:
    """The run's start index in the inversion's schedule, after checking the run fits the inversion."""
    if run.mask is not None:
        raise InversionError(
            f"{who}: the latent_image carries a noise_mask; inversion samplers regenerate the whole "
            "latent (apply the mask afterwards, e.g. with a latent composite)"
        )
    shape = tuple(inversion.states[0].shape)
    if tuple(run.latent.shape) != shape:
        raise InversionError(
            f"{who}: latent_image has shape {tuple(run.latent.shape)} but the inversion's latent is "
            f"{shape}; pass the inversion node's noisy_latent"
        )
    return inversion.window(run.sigmas, who)


class InversionSamplerValue:
    """SAMPLER: regenerates (or edits, with another prompt) from an INVERSION."""

    def __init__(self, inversion: Inversion) -> None:
        self.inversion = inversion
        self.name = f"inversion:{inversion.method}"

    def __repr__(self) -> str:
        return f"<SAMPLER InversionSampler {self.inversion!r}>"

    def __weft_cache_size__(self) -> int:
        return 1024  # the INVERSION is counted where it is produced

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        from . import ddim, ddpm_edit_friendly, edict

        start = check_run("InversionSampler", self.inversion, run)
        method = {
            "ddim": ddim.regenerate,
            "edict": edict.regenerate,
            "ddpm_edit_friendly": ddpm_edit_friendly.regenerate,
        }[self.inversion.method]
        x, denoised = method(self.inversion, run, start)
        return run.finish(x, denoised)


class InversionSampler(Node):
    category = "sampling/inversion"
    description = (
        "The SAMPLER matching an INVERSION (DDIM inversion: deterministic DDIM, eta 0; EDICT: its coupled "
        "steps; edit-friendly DDPM: DDPM with the stored noise maps). Use with SamplerCustomAdvanced, "
        "DisableNoise, the inversion's noisy latent and InversionSigmas: a guider with the source prompt and "
        "CFG reconstructs the picture, one with another prompt edits it."
    )
    inputs = (
        Input("inversion", INVERSION, tooltip="From DDIMInversion, EDICTInversion or DDPMEditFriendlyInversion."),
    )
    outputs = (Output("SAMPLER"),)

    def run(self, inversion: Any) -> tuple:
        return (InversionSamplerValue(check_inversion("InversionSampler", "inversion", inversion)),)


class InversionSigmas(Node):
    category = "sampling/inversion"
    description = (
        "The schedule an INVERSION was computed on, for its sampler. skip_steps leaves out the first (noisiest) "
        "steps, so the regeneration or edit starts part-way down from the stored state there: the edit-friendly "
        "paper's T_skip, EDICT's partial inversion; more skipped steps keep more of the source picture."
    )
    inputs = (
        Input("inversion", INVERSION),
        Int("skip_steps", 0, min=0, max=10000, tooltip="How many of the first steps to leave out."),
    )
    outputs = (Output("SIGMAS"),)

    def run(self, inversion: Any, skip_steps: int) -> tuple:
        inversion = check_inversion("InversionSigmas", "inversion", inversion)
        if skip_steps < 0 or skip_steps >= inversion.steps:
            raise fail(
                "InversionSigmas",
                "skip_steps",
                f"must be between 0 and {inversion.steps - 1} (the inversion has {inversion.steps} steps), "
                f"got {skip_steps}",
            )
        return (inversion.sigmas[skip_steps:].clone(),)


NODES = [InversionSampler, InversionSigmas]
