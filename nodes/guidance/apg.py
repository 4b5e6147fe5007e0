"""Adaptive Projected Guidance (APG).

Sadat, Hilliges, Weber, "Eliminating Oversaturation and Artifacts of High Guidance Scales in
Diffusion Models", ICLR 2025 (arXiv:2410.02416).

The paper works on the denoised (x0) predictions and splits the CFG update
``diff = cond - uncond`` into its component parallel to the conditional prediction and the
orthogonal rest. The parallel component mostly scales the image's intensity (oversaturation at
high scales); the orthogonal one carries the image-quality gain. APG then

1. optionally averages the update over steps with a *reverse* momentum
   (``running = diff + momentum * running``, ``momentum < 0`` subtracts the previous
   directions so the update keeps pointing somewhere new),
2. rescales the update so its L2 norm (per sample) is at most ``norm_threshold``,
3. down-weights the parallel part: ``update = orthogonal + eta * parallel``,

and returns ``cond + (scale - 1) * update``. With ``eta = 1``, no threshold and no momentum,
``update == diff`` and this is CFG at the same scale.

How it is wired: a ``sampler_pre_cfg_function`` that leaves the conditional prediction as it is
and replaces the *unconditional* one by ``cond - update``; the ordinary CFG combination
``uncond' + (cond - uncond') * scale`` then equals the formula above for every scale, with no
division by the scale. ComfyUI's APG node instead rewrites the conditional prediction (and its
result is ``cond + scale * update``, one unit stronger than CFG at ``eta = 1``); keeping the
conditional prediction intact means post-CFG hooks such as PAG still see the model's own
positive prediction, and a CFG function such as RescaleCFG rescales APG's result against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, Node, Output
from nodes.diffusion.cfg_hooks import PRE_CFG

if TYPE_CHECKING:
    import torch


def project(vector: torch.Tensor, onto: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(parallel, orthogonal)`` parts of ``vector`` relative to ``onto``, per batch item.

    Each sample ``[C, H, W]`` is one vector; the projection is computed in float32 (the dot
    product of a 16k-element latent in half precision loses the small parallel part).
    """
    import torch

    dims = tuple(range(1, vector.dim()))
    v, u = vector.float(), onto.float()
    unit = u / torch.linalg.vector_norm(u, dim=dims, keepdim=True).clamp_min(1e-12)
    parallel = (v * unit).sum(dim=dims, keepdim=True) * unit
    return parallel.to(vector.dtype), (v - parallel).to(vector.dtype)


class APGHook:
    """The pre-CFG function of one :class:`APG` node output.

    The momentum buffer is per run: :meth:`begin_run` empties it, and so does a call whose
    noise level is above the previous call's (a new run by a caller that does not use the run
    protocol, or the second KSampler of a two-pass workflow sharing this MODEL).
    """

    def __init__(self, eta: float = 1.0, norm_threshold: float = 5.0, momentum: float = 0.0) -> None:
        self.eta = float(eta)
        self.norm_threshold = float(norm_threshold)
        self.momentum = float(momentum)
        self._running: torch.Tensor | None = None
        self._previous_sigma: float | None = None

    def begin_run(self, sigmas: Any) -> None:
        self._running, self._previous_sigma = None, None

    def update(self, cond: torch.Tensor, uncond: torch.Tensor, sigma: float) -> torch.Tensor:
        """APG's update direction for this call (the paper's ``normalized_update``)."""
        import torch

        if self._previous_sigma is not None and sigma > self._previous_sigma:
            self._running = None
        self._previous_sigma = sigma
        diff = cond - uncond
        if self.momentum != 0.0:
            if self._running is None or self._running.shape != diff.shape:
                self._running = diff
            else:
                self._running = diff + self.momentum * self._running
            diff = self._running
        if self.norm_threshold > 0.0:
            dims = tuple(range(1, diff.dim()))
            norm = torch.linalg.vector_norm(diff.float(), dim=dims, keepdim=True)
            diff = diff * torch.clamp(self.norm_threshold / norm, max=1.0).to(diff.dtype)
        parallel, orthogonal = project(diff, cond)
        return orthogonal + self.eta * parallel

    def __call__(self, args: dict[str, Any]) -> list[Any]:
        import torch

        outs = list(args["conds_out"])
        if len(outs) < 2 or outs[1] is outs[0] or torch.equal(outs[0], outs[1]):
            # no unconditional prediction this call (CFGGuidanceInterval outside its window,
            # AdaptiveGuidance after its switch, cfg 1): nothing to guide, and the momentum must
            # not carry on as if there were
            return outs
        cond, uncond = outs[0], outs[1]
        update = self.update(cond, uncond, float(args["sigma"].flatten()[0]))
        return [cond, cond - update, *outs[2:]]

    def __repr__(self) -> str:
        return f"<APG eta={self.eta} norm_threshold={self.norm_threshold} momentum={self.momentum}>"


class APG(Node):
    display_name = "Adaptive Projected Guidance"
    category = "sampling/custom_sampling"
    description = (
        'Adaptive Projected Guidance (Sadat et al., "Eliminating Oversaturation and Artifacts of High '
        'Guidance Scales in Diffusion Models", ICLR 2025): CFG whose update is split into the part '
        "parallel to the conditional prediction (which oversaturates) and the rest; the parallel part is "
        "scaled by eta, the update's norm capped and averaged with a reverse momentum. Allows high CFG "
        "without burnt colours."
    )
    inputs = (
        Input("model", "MODEL"),
        Float(
            "eta",
            1.0,
            min=-10.0,
            max=10.0,
            step=0.01,
            tooltip="Scale of the guidance's component parallel to the conditional prediction: 1 keeps it "
            "(plain CFG), 0 removes it (the paper's choice against oversaturation).",
        ),
        Float(
            "norm_threshold",
            5.0,
            min=0.0,
            max=50.0,
            step=0.1,
            tooltip="Caps the guidance vector's norm (per image, in latent space) at this value; 0 disables it.",
        ),
        Float(
            "momentum",
            0.0,
            min=-5.0,
            max=1.0,
            step=0.01,
            tooltip="Running average of the guidance over the steps; negative values (the paper: -0.5) push "
            "away from previous directions. 0 disables it.",
        ),
    )
    outputs = (Output("MODEL"),)

    def run(self, model: Any, eta: float, norm_threshold: float, momentum: float) -> tuple:
        return (model.with_guidance_hook(PRE_CFG, APGHook(eta, norm_threshold, momentum)),)


NODES = [APG]

__all__ = ["APG", "APGHook", "NODES", "project"]
