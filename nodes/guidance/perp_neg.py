"""Perp-Neg: a negative prompt that removes only what it does not share with the positive one.

Armandpour, Sadeghian, Zheng, Sadeghian, Zhou, "Re-imagine the Negative Prompt Algorithm:
Transform 2D Diffusion into 3D, alleviate Janus problem and Beyond", 2023 (arXiv:2304.04968).
With CFG the negative prompt's direction is subtracted whole, so when it overlaps the positive
(a "back view" against "a dog") it also removes what was asked for. Perp-Neg measures both
prompts against an empty prompt and subtracts only the component of the negative direction that
is perpendicular to the positive one::

    pos = positive - empty,  neg = negative - empty
    perp = neg - (<neg, pos> / |pos|^2) * pos
    result = empty + cfg * (pos - neg_scale * perp)

on denoised predictions. With ``neg_scale`` 0 it is CFG from the empty prompt to the positive.
As in ComfyUI the inner product and the norm run over the whole batch tensor, not per latent.
Weft guards a zero ``|pos|`` (positive equal to the empty prompt), where ComfyUI divides by 0.

Two nodes, as in ComfyUI 0.8.0:

* :class:`PerpNegGuider` (GUIDER): positive, negative and empty prompt in one batched UNet call;
  the MODEL's pre-CFG hooks get the three predictions, its post-CFG hooks the result, with the
  empty prompt's under ``empty_cond``/``empty_cond_denoised``; its CFG function is not used.
* :class:`PerpNeg` (MODEL patch, deprecated there): the CFG function of the MODEL, evaluating
  the empty prompt in a UNet call of its own (``weft_predict`` of :mod:`nodes.diffusion.cfg_hooks`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, Node, Output
from nodes.diffusion.cfg_hooks import CFG, DISABLE_CFG1_OPTIMIZATION, POST_CFG, PRE_CFG, HookArgs
from nodes.diffusion.guidance import Guider, bare_predictor_factory

from .multi_cond import predictions

if TYPE_CHECKING:
    import torch

Predict = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def perp_neg(
    positive: torch.Tensor, negative: torch.Tensor, empty: torch.Tensor, neg_scale: float, cfg: float
) -> torch.Tensor:
    """The Perp-Neg combination of three denoised predictions (see the module docstring)."""
    pos = positive - empty
    neg = negative - empty
    squared = (pos * pos).sum().clamp(min=1e-30)
    perp = neg - ((neg * pos).sum() / squared) * pos
    return empty + cfg * (pos - perp * neg_scale)


class PerpNegHook:
    """The CFG function of one :class:`PerpNeg` node output: ``x - result`` in ComfyUI's terms."""

    def __init__(self, empty_conditioning: Any, neg_scale: float) -> None:
        self.empty = empty_conditioning
        self.neg_scale = float(neg_scale)
        self.evaluations = 0

    def begin_run(self, sigmas: Any) -> None:
        self.evaluations = 0

    def report(self) -> dict[str, Any]:
        return {"name": "PerpNeg", "empty_prompt_evaluations": self.evaluations} if self.evaluations else {}

    def __call__(self, args: dict[str, Any]) -> torch.Tensor:
        empty = args["weft_predict"](self.empty)
        self.evaluations += 1
        guided = perp_neg(args["cond_denoised"], args["uncond_denoised"], empty, self.neg_scale, args["cond_scale"])
        return args["input"] - guided

    def __repr__(self) -> str:
        return f"<PerpNeg neg_scale={self.neg_scale}>"


class PerpNegGuide(Guider):
    """GUIDER of PerpNegGuider: ``conds`` are ``positive``, ``negative`` and ``empty_negative_prompt``."""

    def __init__(self, model: Any, cfg: float = 8.0, neg_scale: float = 1.0) -> None:
        super().__init__(model, cfg)
        self.neg_scale = float(neg_scale)

    def set_cfg(self, cfg: float, neg_scale: float | None = None) -> None:  # type: ignore[override]
        self.cfg = float(cfg)
        if neg_scale is not None:
            self.neg_scale = float(neg_scale)

    def set_conds(self, positive: Any, negative: Any = None, empty_negative_prompt: Any = None) -> None:  # type: ignore[override]
        self.conds = {"positive": positive, "negative": negative, "empty_negative_prompt": empty_negative_prompt}

    def _needed(self) -> list[str]:
        """ComfyUI's cfg-1 optimisation: no negative at neg_scale 0, no empty prompt also at cfg 1."""
        if self.model.model_options.get(DISABLE_CFG1_OPTIMIZATION) or not math.isclose(self.neg_scale, 0.0):
            return ["positive", "negative", "empty_negative_prompt"]
        return ["positive"] if math.isclose(self.cfg, 1.0) else ["positive", "empty_negative_prompt"]

    def predictor(self, shape: Sequence[int], device: Any) -> Predict:
        inputs = {"positive": "positive", "negative": "negative", "empty_negative_prompt": "empty_conditioning"}
        needed = self._needed()
        predict_all = predictions(self, {inputs[k]: self.conds[k] for k in needed}, shape, device)
        options = self.model.model_options
        pre, post = list(options.get(PRE_CFG) or ()), list(options.get(POST_CFG) or ())
        hook_args = HookArgs(self.model, self.cfg, self.conds, bare_predictor_factory(shape, device))
        space, cfg, neg_scale = hook_args.space, self.cfg, self.neg_scale
        conds = [self.conds[k] if k in needed else None for k in inputs]

        def predict(x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            import torch

            raw = predict_all(x_in, t)
            common, sigma = hook_args.at(x_in, t)
            pos = space.denoised(raw["positive"], x_in, sigma)
            outs = [pos] + [
                space.denoised(raw[inputs[k]], x_in, sigma) if k in needed else torch.zeros_like(pos)
                for k in ("negative", "empty_negative_prompt")
            ]
            for fn in pre:  # the three predictions, as ComfyUI's guider hands them over
                outs = list(fn({**common, "conds": conds, "conds_out": outs}))
            guided = perp_neg(outs[0], outs[1], outs[2], neg_scale, cfg)
            for fn in post:
                guided = fn(
                    {
                        **common,
                        "denoised": guided,
                        "cond": conds[0],
                        "uncond": conds[1],
                        "cond_denoised": outs[0],
                        "uncond_denoised": outs[1],
                        "empty_cond": conds[2],
                        "empty_cond_denoised": outs[2],
                    }
                )
            return space.output(guided, x_in, sigma)

        return predict

    def __repr__(self) -> str:
        return f"<GUIDER PerpNeg cfg={self.cfg} neg_scale={self.neg_scale}>"


_PAPER = (
    'Perp-Neg (Armandpour et al., "Re-imagine the Negative Prompt Algorithm: Transform 2D Diffusion '
    'into 3D, alleviate Janus problem and Beyond", arXiv:2304.04968)'
)


def _neg_scale() -> Any:
    return Float(
        "neg_scale",
        1.0,
        min=0.0,
        max=100.0,
        step=0.01,
        tooltip="How much of the negative prompt's direction perpendicular to the positive one is removed; 0: CFG "
        "from the empty prompt.",
    )


class PerpNegGuider(Node):
    category = "_for_testing"
    experimental = True
    description = (
        f"{_PAPER}: guides away from only the part of the negative prompt that is perpendicular to the "
        "positive one, measured from an empty prompt; one UNet call for the three prompts."
    )
    inputs = (
        Input("model", "MODEL"),
        Input("positive", "CONDITIONING"),
        Input("negative", "CONDITIONING"),
        Input("empty_conditioning", "CONDITIONING", tooltip="An empty prompt, encoded with the same CLIP."),
        Float("cfg", 8.0, min=0.0, max=100.0, step=0.1, round=0.01),
        _neg_scale(),
    )
    outputs = (Output("GUIDER"),)

    def run(self, model: Any, positive: Any, negative: Any, empty_conditioning: Any, cfg: float, neg_scale: float):
        guider = PerpNegGuide(model, cfg, neg_scale)
        guider.set_conds(positive, negative, empty_conditioning)
        return (guider,)


class PerpNeg(Node):
    display_name = "Perp-Neg (DEPRECATED by PerpNegGuider)"
    category = "_for_testing"
    experimental = True
    deprecated = True
    description = (
        f"{_PAPER} as a MODEL patch: the CFG function becomes Perp-Neg, at one more UNet call per step "
        "for the empty prompt. PerpNegGuider does the same in one call."
    )
    inputs = (
        Input("model", "MODEL"),
        Input("empty_conditioning", "CONDITIONING", tooltip="An empty prompt, encoded with the same CLIP."),
        _neg_scale(),
    )
    outputs = (Output("MODEL"),)

    def run(self, model: Any, empty_conditioning: Any, neg_scale: float) -> tuple:
        return (model.with_guidance_hook(CFG, PerpNegHook(empty_conditioning, neg_scale)),)


NODES = [PerpNeg, PerpNegGuider]

__all__ = ["NODES", "PerpNeg", "PerpNegGuide", "PerpNegGuider", "PerpNegHook", "perp_neg"]
