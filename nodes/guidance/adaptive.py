"""Adaptive Guidance (AG): CFG until it stops mattering, then the conditional branch alone.

Castillo, Kohler, Pérez, Pérez, Pumarola, Ghanem, Arbeláez, Thabet, "Adaptive Guidance:
Training-free Acceleration of Conditional Diffusion Models", AAAI 2025 (arXiv:2312.12487).
The paper finds that as denoising goes on, the CFG-guided noise prediction and the plain
conditional one point more and more the same way, so the unconditional evaluation becomes
redundant, mostly in the second half of the run. AG measures the cosine similarity
``gamma_t = cos(eps_cond, eps_cfg)`` at every step; once it exceeds a threshold ``gamma_bar``,
every remaining step evaluates only the conditional branch (one UNet evaluation instead of
two). The paper reports CFG's image quality at about 25 % less computation.

:class:`AdaptiveGuider` is a GUIDER (a :class:`~nodes.diffusion.guidance.Guider` with its own
``predictor``), so it runs in SamplerCustomAdvanced with any sampler. Details:

* The similarity is computed on noise predictions (v-prediction outputs are converted), per
  latent of the batch, over the whole latent.
* A threshold above 1 never switches: the guider is then CFGGuider, bit for bit.
* The fast path (one plain positive and one plain negative entry, no ControlNet, no guidance
  hooks on the MODEL) is CFGGuider's single batched UNet call; each latent of the batch switches
  on its own, and the call then stacks the unconditional half only for the latents still guided.
* Anything else computes the halves the simplest correct way and switches the batch as a whole
  (when every latent has passed the threshold): with MODEL guidance hooks (APG, RescaleCFG, PAG,
  a guidance interval) the hooks see, after the switch, the conditional prediction as both
  halves, as at ``cfg 1``; with several entries, areas, masks or ControlNets each half is a
  single-conditioning guider of its own, which honours every feature of the base guider but
  does not batch the halves into one call (ControlNet results then differ from CFGGuider's by
  rounding only).
* State is per run: :meth:`AdaptiveGuider.predictor` (built once per run) starts it, and the
  run protocol's :meth:`~AdaptiveGuider.report` says how many UNet evaluations the run made,
  how many it saved against full CFG, and at which step it switched (``None``: never; a list,
  one entry per latent, for a batch); the sampler node shows it. Counted are evaluations of
  the guider's conditional and unconditional halves, per latent (a CFG call on a batch of one
  counts two); extra passes by MODEL patches (PAG's perturbed pass) are not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, Node, Output
from nodes.diffusion.cfg_hooks import DISABLE_CFG1_OPTIMIZATION, CallSpace, has_hooks, without_hooks
from nodes.diffusion.guidance import Guider, _entries

if TYPE_CHECKING:
    import torch

#: Default ``gamma_bar`` (see ``docs/nodes.md`` for how it was chosen).
DEFAULT_THRESHOLD = 0.99

Predict = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@dataclass
class AdaptiveRun:
    """What one run did: predictor calls, UNet evaluations (per latent and half), the switches."""

    batch: int = 1
    calls: int = 0
    evaluations: int = 0
    full: int = 0  # evaluations the same calls make with full CFG
    switched_at: list[int | None] = field(default_factory=list)  # per latent: the first unguided step

    @property
    def saved(self) -> int:
        return self.full - self.evaluations

    def report(self) -> dict[str, Any]:
        steps: Any = self.switched_at[0] if self.batch == 1 else list(self.switched_at)
        return {
            "name": "AdaptiveGuidance",
            "unet_evaluations": self.evaluations,
            "saved": self.saved,
            "switched_at_step": steps,
        }


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-latent cosine similarity of two ``[B, ...]`` tensors, in float32."""
    import torch.nn.functional as F

    return F.cosine_similarity(a.flatten(1).float(), b.flatten(1).float(), dim=1, eps=1e-12)


class AdaptiveGuider(Guider):
    """CFG that drops the unconditional branch once ``cos(eps_cond, eps_cfg) > threshold``."""

    def __init__(self, model: Any, cfg: float = 8.0, threshold: float = DEFAULT_THRESHOLD) -> None:
        super().__init__(model, cfg)
        self.threshold = float(threshold)
        self._sigmas: Any = None
        self._run: AdaptiveRun | None = None

    # -- run protocol -------------------------------------------------------------------------
    def begin_run(self, sigmas: Any) -> None:
        self._sigmas = sigmas.detach().flatten().float().cpu()
        self._run = None

    def report(self) -> dict[str, Any]:
        return self._run.report() if self._run is not None and self._run.calls else {}

    # -- prediction ---------------------------------------------------------------------------
    def predictor(self, shape: Sequence[int], device: Any) -> Predict:
        batch = int(shape[0])
        run = self._run = AdaptiveRun(batch=batch, switched_at=[None] * batch)
        model = self.model
        guided = "negative" in self.conds and (
            not math.isclose(self.cfg, 1.0) or bool(model.model_options.get(DISABLE_CFG1_OPTIMIZATION))
        )
        if not guided:  # one evaluation per latent and call already: nothing to save
            base = super().predictor(shape, device)

            def predict_unguided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                run.calls += 1
                run.evaluations += batch
                run.full += batch
                return base(x, t)

            return predict_unguided
        if self._fast(shape):
            return self._per_latent(shape, device, run)
        return self._whole_batch(shape, device, run)

    def _fast(self, shape: Sequence[int]) -> bool:
        """Whether the batched per-latent path applies: one plain entry per half, no ControlNet,
        no guidance hooks."""
        height, width = int(shape[2]), int(shape[3])
        positive = _entries("positive", self.conds.get("positive"), height, width)
        negative = _entries("negative", self.conds.get("negative"), height, width)
        return (
            len(positive) == 1
            and len(negative) == 1
            and positive[0].plain
            and negative[0].plain
            and positive[0].control is None
            and negative[0].control is None
            and not has_hooks(self.model.model_options)
        )

    def _per_latent(self, shape: Sequence[int], device: Any, run: AdaptiveRun) -> Predict:
        """CFGGuider's batched call, with the unconditional half stacked only for the latents
        still guided. While every latent is guided the operations are CFGGuider's own."""
        import torch

        batch, _, height, width = (int(s) for s in shape)
        positive = _entries("positive", self.conds["positive"], height, width)[0]
        negative = _entries("negative", self.conds["negative"], height, width)[0]
        cond, pooled, time_ids = self._stack([negative, positive], batch, height, width, device)
        model, cfg, threshold = self.model, self.cfg, self.threshold
        space = CallSpace(model.prediction_type, model.scheduler_config)
        guided = torch.ones(batch, dtype=torch.bool)

        def subset(value: Any, index: torch.Tensor) -> Any:
            """The stacked [uncond; cond] value for the latents in ``index`` plus every cond."""
            if value is None:
                return None
            uncond_part, cond_part = value.chunk(2)
            return torch.cat((uncond_part[index.to(value.device)], cond_part))

        def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            run.calls += 1
            run.full += 2 * batch
            count = int(guided.sum())
            run.evaluations += batch + count
            if count == batch:
                uncond_out, cond_out = model.predict_noise(torch.cat((x, x)), t, cond, pooled, time_ids).chunk(2)
                out = torch.lerp(uncond_out, cond_out, cfg)
            else:
                self._note_switches(run, guided, space, t, batch)
                index = guided.nonzero().flatten()
                if count == 0:
                    return model.predict_noise(
                        x,
                        t,
                        cond.chunk(2)[1],
                        None if pooled is None else pooled.chunk(2)[1],
                        None if time_ids is None else time_ids.chunk(2)[1],
                    )
                raw = model.predict_noise(
                    torch.cat((x[index.to(x.device)], x)),
                    t,
                    subset(cond, index),
                    subset(pooled, index),
                    subset(time_ids, index),
                )
                uncond_part, cond_out = raw[:count], raw[count:]
                uncond_out = cond_out.clone()
                uncond_out[index.to(x.device)] = uncond_part
                out = torch.lerp(uncond_out, cond_out, cfg)
            similarity = cosine_similarity(self._noise(space, cond_out, x, t), self._noise(space, out, x, t))
            guided.logical_and_(similarity.cpu() <= threshold)
            return out

        return predict

    def _whole_batch(self, shape: Sequence[int], device: Any, run: AdaptiveRun) -> Predict:
        """The general path: both halves (batched when the base guider would batch them), the
        MODEL's guidance hooks, and one switch for the whole batch."""
        import torch

        batch = int(shape[0])
        both, cond_only = self._halves(shape, device)
        mix = self._mix(shape, device)
        cfg, threshold = self.cfg, self.threshold
        space = CallSpace(self.model.prediction_type, self.model.scheduler_config)
        guided = torch.ones(batch, dtype=torch.bool)

        def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            run.calls += 1
            run.full += 2 * batch
            if not bool(guided.any()):
                self._note_switches(run, guided, space, t, batch)
                run.evaluations += batch
                out = cond_only(x, t)
                return out if mix is None else mix(x, t, out, out)
            run.evaluations += 2 * batch
            uncond_out, cond_out = both(x, t)
            out = torch.lerp(uncond_out, cond_out, cfg) if mix is None else mix(x, t, uncond_out, cond_out)
            similarity = cosine_similarity(self._noise(space, cond_out, x, t), self._noise(space, out, x, t))
            guided.logical_and_(similarity.cpu() <= threshold)
            return out

        return predict

    def _halves(self, shape: Sequence[int], device: Any) -> tuple[Callable[..., Any], Predict]:
        """``both(x, t) -> (uncond_out, cond_out)`` and ``cond_only(x, t)``: raw UNet outputs,
        without guidance hooks. One batched call when both halves are single plain entries
        without ControlNet (the base guider's fast path); otherwise a guider per half."""
        import torch

        batch, _, height, width = (int(s) for s in shape)
        positive = _entries("positive", self.conds["positive"], height, width)
        negative = _entries("negative", self.conds["negative"], height, width)
        model = self.model
        if (
            len(positive) == 1
            and len(negative) == 1
            and positive[0].plain
            and negative[0].plain
            and positive[0].control is None
            and negative[0].control is None
        ):
            cond, pooled, time_ids = self._stack([negative[0], positive[0]], batch, height, width, device)
            c_cond = cond.chunk(2)[1]
            c_pooled = None if pooled is None else pooled.chunk(2)[1]
            c_ids = None if time_ids is None else time_ids.chunk(2)[1]

            def both_batched(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                uncond_out, cond_out = model.predict_noise(torch.cat((x, x)), t, cond, pooled, time_ids).chunk(2)
                return uncond_out, cond_out

            def cond_batched(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return model.predict_noise(x, t, c_cond, c_pooled, c_ids)

            return both_batched, cond_batched

        bare = model.clone(model_options=without_hooks(model.model_options))
        predictors = []
        for name in ("negative", "positive"):
            alone = Guider(bare, 1.0)
            alone.set_conds(self.conds[name])
            predictors.append(alone.predictor(shape, device))
        uncond_predict, cond_predict = predictors

        def both_separate(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return uncond_predict(x, t), cond_predict(x, t)

        return both_separate, cond_predict

    @staticmethod
    def _noise(space: CallSpace, out: torch.Tensor, x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """A raw UNet output as a noise prediction (the paper's space): epsilon outputs as they
        are, v-prediction converted (``eps = sigma_vp * x_t + alpha * v``)."""
        if not space.v:
            return out
        sigma = space.sigma(t, x_in.shape[0]).to(device=out.device, dtype=out.dtype)
        sigma = sigma.reshape((-1,) + (1,) * (out.dim() - 1))
        alpha = (1 + sigma * sigma).rsqrt()
        return alpha * sigma * x_in + alpha * out

    def _note_switches(
        self, run: AdaptiveRun, guided: torch.Tensor, space: CallSpace, t: torch.Tensor, batch: int
    ) -> None:
        """Record the step of this call for the latents that are unguided for the first time."""
        step: int | None = None
        for i in range(batch):
            if not bool(guided[i]) and run.switched_at[i] is None:
                if step is None:
                    step = self._step_of(space, t, batch, run.calls)
                run.switched_at[i] = step

    def _step_of(self, space: CallSpace, t: torch.Tensor, batch: int, call: int) -> int:
        """The 1-based step of the run's schedule that a call at timestep ``t`` belongs to (how
        many of the schedule's sigmas lie at or above the call's); the call's number when the
        schedule is unknown (a caller that does not use the run protocol)."""
        if self._sigmas is None or self._sigmas.numel() < 2:
            return call
        sigma = float(space.sigma(t, batch)[0])
        return max(1, int((self._sigmas[:-1] >= sigma * (1 - 1e-3)).sum()))


class AdaptiveGuidance(Node):
    category = "sampling/custom_sampling/guiders"
    description = (
        'Adaptive Guidance (Castillo et al., "Adaptive Guidance: Training-free Acceleration of '
        'Conditional Diffusion Models", AAAI 2025): classifier-free guidance until the guided and the '
        "conditional noise predictions agree (cosine similarity above threshold), then the conditional "
        "branch alone, one UNet evaluation per step instead of two. The sampler reports what it saved."
    )
    inputs = (
        Input("model", "MODEL"),
        Input("positive", "CONDITIONING"),
        Input("negative", "CONDITIONING"),
        Float(
            "threshold",
            DEFAULT_THRESHOLD,
            min=0.0,
            max=1.001,
            step=0.001,
            round=0.0001,
            tooltip="The paper's gamma-bar: once the cosine similarity of the guided and the conditional noise "
            "predictions exceeds it, the rest of the run skips the unconditional branch. Lower saves "
            "more; above 1 never switches (plain CFG).",
        ),
        Float(
            "cfg",
            8.0,
            min=0.0,
            max=100.0,
            step=0.1,
            round=0.01,
            tooltip="Classifier-free guidance scale while guidance is on.",
        ),
    )
    outputs = (Output("GUIDER"),)

    def run(self, model: Any, positive: Any, negative: Any, threshold: float, cfg: float) -> tuple:
        guider = AdaptiveGuider(model, cfg, threshold)
        guider.set_conds(positive, negative)
        return (guider,)


NODES = [AdaptiveGuidance]

__all__ = ["AdaptiveGuidance", "AdaptiveGuider", "AdaptiveRun", "DEFAULT_THRESHOLD", "NODES", "cosine_similarity"]
