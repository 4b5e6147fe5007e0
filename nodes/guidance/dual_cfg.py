"""DualCFGGuider: classifier-free guidance with two prompts and a negative (ComfyUI's node).

Three predictions per call: ``cond1``, ``cond2`` and ``negative``. ``regular`` guides from the
negative to ``cond2`` with ``cfg_cond2_negative`` and adds ``cond1``'s difference from ``cond2``
times ``cfg_conds``::

    negative + (cond2 - negative) * cfg_cond2_negative + (cond1 - cond2) * cfg_conds

so with both scales equal it is CFG between ``cond1`` and the negative, whatever ``cond2`` is.
``nested`` first guides ``cond1`` against ``cond2``, then that result against the negative::

    negative + cfg_cond2_negative * (cond2 + (cond1 - cond2) * cfg_conds - negative)

As in ComfyUI, the MODEL's guidance hooks (RescaleCFG, APG, PAG...) see one pair: ``cond2``
against the negative (``regular``) or ``cond1`` against ``cond2`` (``nested``), and the rest is
added outside them. ``regular`` skips the negative when ``cfg_cond2_negative`` is 1 and ``cond2``
too when ``cfg_conds`` is also 1 (unless a patch disables that optimisation); a skipped prediction
does not count: the hooks then see the evaluated one as both halves, Weft's rule for an
unevaluated unconditional half (ComfyUI hands them a zero prediction).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from nodes.api import Combo, Float, Input, Node, Output
from nodes.diffusion.cfg_hooks import DISABLE_CFG1_OPTIMIZATION
from nodes.diffusion.guidance import Guider

from .multi_cond import predictions

if TYPE_CHECKING:
    import torch

Predict = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


class DualCFG(Guider):
    """GUIDER of DualCFGGuider: ``conds`` are ComfyUI's ``positive`` (cond1), ``middle`` (cond2) and
    ``negative``; ``cfg1`` is ``cfg_conds``, ``cfg2`` ``cfg_cond2_negative``."""

    def __init__(self, model: Any, cfg1: float = 8.0, cfg2: float = 8.0, nested: bool = False) -> None:
        super().__init__(model, 1.0)
        self.set_cfg(cfg1, cfg2, nested)

    def set_cfg(self, cfg1: float, cfg2: float | None = None, nested: bool | None = None) -> None:  # type: ignore[override]
        self.cfg1 = float(cfg1)
        if cfg2 is not None:
            self.cfg2 = float(cfg2)
        if nested is not None:
            self.nested = bool(nested)

    def set_conds(self, positive: Any, middle: Any = None, negative: Any = None) -> None:  # type: ignore[override]
        self.conds = {"positive": positive, "middle": middle, "negative": negative}

    def _needed(self) -> list[str]:
        """The predictions this run makes (ComfyUI's cfg-1 optimisation, ``regular`` only)."""
        if self.nested or self.model.model_options.get(DISABLE_CFG1_OPTIMIZATION):
            return ["negative", "middle", "positive"]
        if not math.isclose(self.cfg2, 1.0):
            return ["negative", "middle", "positive"]
        return ["middle", "positive"] if not math.isclose(self.cfg1, 1.0) else ["positive"]

    def predictor(self, shape: Sequence[int], device: Any) -> Predict:
        inputs = {"positive": "cond1", "middle": "cond2", "negative": "negative"}
        needed = self._needed()
        predict_all = predictions(self, {inputs[k]: self.conds[k] for k in needed}, shape, device)
        low, high = ("middle", "positive") if self.nested else ("negative", "middle")
        pair = Guider(self.model, self.cfg1 if self.nested else self.cfg2)
        pair.set_conds(self.conds[high], self.conds[low])
        mix = pair._mix(shape, device)
        cfg1, cfg2, nested = self.cfg1, self.cfg2, self.nested

        def combine(x: torch.Tensor, t: torch.Tensor, low_out: torch.Tensor, high_out: torch.Tensor) -> torch.Tensor:
            """The hooked (or plain) combination of the pair the hooks see."""
            import torch

            if mix is not None:
                return mix(x, t, low_out, high_out)
            if low_out is high_out:
                return high_out
            return torch.lerp(low_out, high_out, cfg1 if nested else cfg2)

        def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            import torch

            out = predict_all(x, t)
            pos = out["cond1"]
            if nested:
                text = combine(x, t, out["cond2"], pos)
                return torch.lerp(out["negative"], text, cfg2)
            mid = out.get("cond2", pos)
            base = combine(x, t, out.get("negative", mid), mid)
            return base if mid is pos else base + (pos - mid) * cfg1

        return predict

    def __repr__(self) -> str:
        style = "nested" if self.nested else "regular"
        return f"<GUIDER DualCFG {style} cfg_conds={self.cfg1} cfg_cond2_negative={self.cfg2}>"


def _cfg(name: str) -> Any:
    return Float(name, 8.0, min=0.0, max=100.0, step=0.1, round=0.01)


class DualCFGGuider(Node):
    category = "sampling/custom_sampling/guiders"
    description = (
        "Guidance with two prompts and a negative: regular adds cond1's difference from cond2 "
        "(times cfg_conds) to CFG from the negative to cond2 (times cfg_cond2_negative); nested "
        "guides cond1 against cond2, then that against the negative."
    )
    inputs = (
        Input("model", "MODEL"),
        Input("cond1", "CONDITIONING"),
        Input("cond2", "CONDITIONING"),
        Input("negative", "CONDITIONING"),
        _cfg("cfg_conds"),
        _cfg("cfg_cond2_negative"),
        Combo("style", ["regular", "nested"]),
    )
    outputs = (Output("GUIDER"),)

    def run(
        self,
        model: Any,
        cond1: Any,
        cond2: Any,
        negative: Any,
        cfg_conds: float,
        cfg_cond2_negative: float,
        style: str,
    ) -> tuple:
        guider = DualCFG(model, cfg_conds, cfg_cond2_negative, nested=style == "nested")
        guider.set_conds(cond1, cond2, negative)
        return (guider,)


NODES = [DualCFGGuider]

__all__ = ["NODES", "DualCFG", "DualCFGGuider"]
