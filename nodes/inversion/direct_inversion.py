"""Direct Inversion: a source branch pinned to the inversion trajectory, a target branch that edits.

Ju, Zeng, Bian, Liu, Xu, "Direct Inversion: Boosting Diffusion-based Editing with 3 Lines of Code"
(PnP Inversion), ICLR 2024, arXiv:2310.01506. Dual-branch editing runs a *source* branch with the
source prompt and a *target* branch with the target prompt from the same inverted noise. With CFG
the source branch drifts from the DDIM inversion trajectory ``z*_t`` (the inversion used no or
another guidance), and with it everything the target branch borrows from it. Null-text inversion
optimises embeddings to close that gap; Direct Inversion simply adds the gap back at every step::

    z~src_{t-1} = DDIM(z_src_t, source prompt, CFG)
    d_{t-1}     = z*_{t-1} - z~src_{t-1}
    z_src_{t-1} = z~src_{t-1} + d_{t-1}        (= z*_{t-1}: the source branch reproduces the source)

so the source branch is exact whatever the CFG, and the target branch is left to edit. The paper
pairs it with attention-control editors (Prompt-to-Prompt, MasaCtrl, ...) that make the target
branch borrow structure from the source branch; Weft has no attention-control editor yet, so the
target branch is corrected with the same ``d_{t-1}`` (``correct_target``, the authors' "add target"
variant): the target branch then follows the source trajectory except where the two prompts'
predictions differ. With ``correct_target`` off, the target branch is plain DDIM from ``z*_T``.

The SAMPLER needs a DDIM INVERSION (its trajectory); the run's GUIDER is the target branch, the
INVERSION's conditioning (with ``source_cfg``) the source branch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nodes.api import Boolean, Float, Input, Node, Output

from .common import INVERSION, Denoiser, Inversion, InversionError, check_inversion, fail, make_guider
from .ddim import ddim_step
from .sampler_nodes import check_run

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun

NODE = "DirectInversionSampler"


@dataclass
class DirectInversionResult:
    target: Any  # the edited latent (scaled)
    source: Any  # where the source branch ended: the inversion's clean latent
    denoised: Any  # the target branch's last clean estimate
    largest_correction: float  # the largest |d_t| applied (how far CFG pushed the source branch off)


def direct_inversion_edit(
    source: Denoiser,
    target: Denoiser,
    states: list[Any],
    sigmas: torch.Tensor,
    start: int = 0,
    correct_target: bool = True,
    run: LoopRun | None = None,
) -> DirectInversionResult:
    """Both branches along ``sigmas`` (a window of the inversion's schedule starting at ``start``)."""
    src = source.to_work(states[start])
    tgt = target.to_work(states[start])
    denoised = tgt
    largest = 0.0
    for j in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[j]), float(sigmas[j + 1])
        anchor = source.to_work(states[start + j + 1])
        drifted, _ = ddim_step(source, src, sigma, sigma_next)
        correction = anchor - drifted
        largest = max(largest, float(correction.abs().max()))
        src = anchor  # = drifted + correction, without the rounding of the addition
        tgt, denoised = ddim_step(target, tgt, sigma, sigma_next)
        if correct_target:
            tgt = tgt + correction.to(tgt.device, tgt.dtype)
        if run is not None:
            tgt = run.step_done(j + 1, tgt, denoised)
    return DirectInversionResult(tgt, src, denoised, largest)


class DirectInversionSamplerValue:
    """SAMPLER: Direct Inversion's two branches; the run's GUIDER drives the target branch."""

    def __init__(self, inversion: Inversion, source_cfg: float, correct_target: bool) -> None:
        self.inversion = inversion
        self.source_cfg = float(source_cfg)
        self.correct_target = bool(correct_target)
        self._last: DirectInversionResult | None = None

    def __repr__(self) -> str:
        return f"<SAMPLER DirectInversion {self.inversion!r} source_cfg={self.source_cfg:g}>"

    def __weft_cache_size__(self) -> int:
        return 1024

    def begin_run(self, sigmas: Any = None) -> None:
        self._last = None

    def report(self) -> dict[str, Any]:
        if self._last is None:
            return {}
        return {
            "name": "DirectInversion",
            "largest_correction": round(self._last.largest_correction, 4),
            "target_corrected": self.correct_target,
        }

    def source_guider(self, run: LoopRun) -> Any:
        inv = self.inversion
        cfg = self.source_cfg if self.source_cfg >= 0 else float(getattr(run.guider, "cfg", 1.0))
        negative = inv.negative
        if negative is None and not math.isclose(cfg, 1.0):
            negative = getattr(run.guider, "conds", {}).get("negative")
            if negative is None:
                raise InversionError(
                    f"{NODE}: input 'source_cfg' is {cfg:g} but neither the inversion nor the "
                    "guider has a negative conditioning; give DDIMInversion a negative or use "
                    "source_cfg 1"
                )
        return make_guider(run.model, inv.positive, negative, cfg)

    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        start = check_run(NODE, self.inversion, run)
        shape = tuple(self.inversion.states[0].shape)
        source = Denoiser(self.source_guider(run), shape, self.inversion.precision)
        target = Denoiser(run.guider, shape, self.inversion.precision)
        self._last = direct_inversion_edit(
            source, target, self.inversion.states, run.sigmas, start, self.correct_target, run
        )
        return run.finish(self._last.target, self._last.denoised)


class DirectInversionSampler(Node):
    category = "sampling/inversion"
    description = (
        "Direct Inversion (Ju et al., 'Direct Inversion: Boosting Diffusion-based Editing with 3 Lines of Code', "
        "ICLR 2024, arXiv:2310.01506): a SAMPLER that runs a source branch (the inversion's prompt at source_cfg), "
        "corrected at every step onto the stored DDIM inversion trajectory so it reproduces the source exactly, "
        "and a target branch driven by the guider's (target) prompt. correct_target adds the same correction to "
        "the target branch (the authors' add-target variant), which keeps the picture's layout without an "
        "attention-control editor. Use with SamplerCustomAdvanced, DisableNoise, the DDIM inversion's noisy "
        "latent and InversionSigmas."
    )
    inputs = (
        Input("inversion", INVERSION, tooltip="From DDIMInversion (its trajectory anchors the source branch)."),
        Float(
            "source_cfg",
            -1.0,
            min=-1.0,
            max=100.0,
            step=0.1,
            round=0.01,
            tooltip="CFG of the source branch; -1 uses the guider's CFG, as the paper does.",
        ),
        Boolean(
            "correct_target",
            True,
            tooltip="Add the source branch's correction to the target branch too (keeps the layout).",
        ),
    )
    outputs = (Output("SAMPLER"),)

    def run(self, inversion: Any, source_cfg: float, correct_target: bool) -> tuple:
        inversion = check_inversion(NODE, "inversion", inversion, ("ddim",))
        if source_cfg < 0 and source_cfg != -1:
            raise fail(NODE, "source_cfg", f"must be -1 (the guider's CFG) or at least 0, got {source_cfg}")
        return (DirectInversionSamplerValue(inversion, source_cfg, correct_target),)


NODES = [DirectInversionSampler]
