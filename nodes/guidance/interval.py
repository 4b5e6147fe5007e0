"""CFGGuidanceInterval: classifier-free guidance only in a window of noise levels.

Kynkäänniemi, Aittala, Karras, Laine, Aila, Lehtinen, "Applying Guidance in a Limited Interval
Improves Sample and Distribution Quality in Diffusion Models", NeurIPS 2024 (arXiv:2404.07724).
Guidance at high noise levels pulls every sample toward a few typical layouts (less variety,
and at high scales oversimplified images); at low noise levels it barely matters. Guiding only
in the middle of the schedule keeps CFG's prompt adherence with better variety and FID. The
paper's interval for SD-XL is ``sigma`` in (0.28, 5.42].

The window is given the way ComfyUI's ControlNet apply nodes give theirs: ``start_percent``
and ``end_percent`` of the model's noise schedule (0 = the noisiest end, 1 = no noise),
converted to sigmas with :func:`nodes.diffusion.control.percent_to_sigma`. This is a property
of the model, not of the step count, so a workflow keeps its meaning when the steps or the
scheduler change. For SD1.x/SD2/SDXL's schedule the paper's SD-XL interval (0.28, 5.42] is
about ``start_percent`` 0.19 to ``end_percent`` 0.93 (sigma 5.42 is training timestep 813, sigma
0.28 timestep 72).

Inside the window nothing changes (CFG, or whatever the other hooks compute). Outside, the
guided result is the conditional prediction: a ``sampler_pre_cfg_function`` replaces the
unconditional prediction by the conditional one (the same tensor), so any CFG combination,
RescaleCFG and APG (which passes such calls through untouched) yield the conditional
prediction. The hook is put *first* in the pre-CFG list, whichever order the nodes were chained
in, so that it sees the model's own predictions. Post-CFG terms (PAG) are separate guidance and
still apply.

Outside the window the unconditional branch is not evaluated at all where the guider can skip
it (its fast path: one positive and one negative prompt, no areas, masks or ControlNets), through
the ``weft_uncond_needed`` model option (:data:`nodes.diffusion.cfg_hooks.UNCOND_NEEDED`): each
unguided step costs one UNet evaluation instead of two. Elsewhere both halves run and the
pre-CFG hook discards the unconditional one.
"""

from __future__ import annotations

from typing import Any

from nodes.api import Float, Input, Node, Output
from nodes.diffusion.cfg_hooks import PRE_CFG, UNCOND_NEEDED


class GuidanceIntervalHook:
    """The pre-CFG function of one :class:`CFGGuidanceInterval` node output; counts the calls it
    guided and left unguided per run (its report)."""

    def __init__(self, start_percent: float = 0.0, end_percent: float = 1.0) -> None:
        self.start_percent = float(start_percent)
        self.end_percent = float(end_percent)
        self._window: tuple[Any, float, float] | None = None  # (model, high, low)
        self.guided = self.unguided = 0

    def begin_run(self, sigmas: Any) -> None:
        self.guided = self.unguided = 0

    def report(self) -> dict[str, Any]:
        if not self.guided and not self.unguided:
            return {}
        return {"name": "CFGGuidanceInterval", "guided_calls": self.guided, "unguided_calls": self.unguided}

    def window(self, model: Any) -> tuple[float, float]:
        """``(high, low)`` sigmas of the window for ``model``'s noise schedule (cached per model)."""
        from nodes.diffusion.control import percent_to_sigma

        if self._window is None or self._window[0] is not model:
            config = model.scheduler_config
            self._window = (
                model,
                percent_to_sigma(self.start_percent, config),
                percent_to_sigma(self.end_percent, config),
            )
        return self._window[1], self._window[2]

    def inside(self, model: Any, sigma: float) -> bool:
        high, low = self.window(model)
        return low <= sigma <= high

    def needs_uncond(self, sigma: float, model: Any) -> bool:
        """The guider's question before a step (``UNCOND_NEEDED``): only inside the window."""
        return self.inside(model, sigma)

    def __call__(self, args: dict[str, Any]) -> list[Any]:
        outs = list(args["conds_out"])
        if self.inside(args["model"], float(args["sigma"].flatten()[0])):
            self.guided += 1
            return outs
        self.unguided += 1
        return [outs[0], outs[0], *outs[2:]]

    def __repr__(self) -> str:
        return f"<CFGGuidanceInterval {self.start_percent}..{self.end_percent}>"


class CFGGuidanceInterval(Node):
    display_name = "CFG Guidance Interval"
    category = "sampling/custom_sampling"
    description = (
        'Guidance in a limited interval (Kynkäänniemi et al., "Applying Guidance in a Limited Interval '
        'Improves Sample and Distribution Quality in Diffusion Models", NeurIPS 2024): CFG only between '
        "start_percent and end_percent of the noise schedule, the conditional prediction alone outside. "
        "More varied compositions at the same prompt adherence. Composes with APG and RescaleCFG."
    )
    inputs = (
        Input("model", "MODEL"),
        Float(
            "start_percent",
            0.0,
            min=0.0,
            max=1.0,
            step=0.001,
            tooltip="Where guidance starts, as a fraction of the noise schedule (0 = pure noise).",
        ),
        Float(
            "end_percent",
            1.0,
            min=0.0,
            max=1.0,
            step=0.001,
            tooltip="Where guidance ends (1 = no noise). The paper's SD-XL interval is about 0.19 to 0.93.",
        ),
    )
    outputs = (Output("MODEL"),)

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        start, end = inputs.get("start_percent"), inputs.get("end_percent")
        if isinstance(start, (int, float)) and isinstance(end, (int, float)) and start > end:
            return (
                f"start_percent ({start}) is after end_percent ({end}): no step would be guided; "
                "make start_percent <= end_percent"
            )
        return True

    def run(self, model: Any, start_percent: float, end_percent: float) -> tuple:
        hook = GuidanceIntervalHook(start_percent, end_percent)
        options = dict(model.model_options)
        options[PRE_CFG] = [hook, *(options.get(PRE_CFG) or ())]
        options[UNCOND_NEEDED] = [*(options.get(UNCOND_NEEDED) or ()), hook.needs_uncond]
        return (model.clone(model_options=options),)


NODES = [CFGGuidanceInterval]

__all__ = ["CFGGuidanceInterval", "GuidanceIntervalHook", "NODES"]
