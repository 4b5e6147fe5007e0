"""GUIDER: turns a MODEL and CONDITIONING into one guided prediction per sampling step.

:class:`Guider` is ComfyUI's CFGGuider/BasicGuider idea: it holds the model, named
conditionings (``positive``, ``negative``) and a CFG scale, and :meth:`Guider.sample`
runs the sampling loop with them. Before the loop, :meth:`Guider.predictor` compiles the
conditionings into one function ``predict(x_in, t) -> model output``:

* the common case (one positive and one negative entry, no area or mask) stacks uncond
  and cond into one batch, built once, so each step is a single UNet call and one
  ``lerp``; with ``cfg == 1`` the unconditional half is skipped;
* anything else (several entries, areas, masks, strengths) runs each entry on its
  region and averages the predictions weighted by strength and mask (an area without a mask
  with ComfyUI's soft edges), as ComfyUI does; a pixel no entry weighs gets a zero denoised
  estimate, ComfyUI's empty sum.

Before that, each run settles the conds for the latent's shape as ComfyUI's ``process_conds``
does: areas resolved (percentages, mask bounds) and, for every entry with an area, an entry with
the same area in each other conditioning (:mod:`.areas`). This happens once per run, for every
guider's ``predictor``, never per step.

Entries may also be limited to part of the schedule (``start_percent``/``end_percent``, from
ConditioningSetTimestepRange: outside it they are skipped at that step, as in ComfyUI) and carry
an inpainting model's extra input channels (``concat_latent_image``/``concat_mask``, from
InpaintModelConditioning; used only by a UNet that takes them, e.g. 9-channel inpainting models).
Such entries take the second path; the fast path is unchanged.

Entries may carry a ControlNet (their ``"control"`` option, see :mod:`.control`). Only then
is a :class:`~.control.ControlRun` built and consulted per UNet call; the fast path stays one
UNet call per step (the ControlNet runs on the stacked batch when both halves carry the same
control, else per half, with zero residuals for a half without one). Without controls the
predictor is the plain one: no ControlNet code runs per step.

Guidance is linear, so combining raw outputs (noise or v) equals combining denoised
estimates; the scheduler converts afterwards with the model's prediction type.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .types import DiffusionModel

from .areas import Area, feather, resized_mask, resolve_area, same_area_entries
from .cfg_hooks import DISABLE_CFG1_OPTIMIZATION, Mix, has_hooks, make_mix, uncond_gate, without_hooks

Predict = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]

_UNWEIGHED = 1e-37  # the weight sum a pixel starts from (ComfyUI's), so that no entry means no division by 0


class ConditioningError(ValueError):
    """A CONDITIONING value is malformed; the message names the input."""


@dataclass
class _Entry:
    cond: Any  # [1 or B, T, D]
    pooled: Any  # [1 or B, P] or None
    options: Mapping[str, Any]
    area: Area | None  # (h, w, y, x) in latent pixels, inside the latent
    weight: Any  # [1 or B, 1, h, w] mask*mask_strength (in the area) or None
    strength: float
    control: Any = None  # a .control.Control (ControlNet chain) or None
    window: tuple[float, float] | None = None  # (highest, lowest) sigma it applies at, or None: always
    concat: Any = None  # [1 or B, k, h, w] extra UNet input channels (inpainting models) or None

    @property
    def plain(self) -> bool:
        return (
            self.area is None
            and self.weight is None
            and self.strength == 1.0
            and self.window is None
            and self.concat is None
        )

    def active(self, sigma: float) -> bool:
        """Whether the entry applies at noise level ``sigma`` (ComfyUI's timestep_start/end test)."""
        return self.window is None or self.window[1] <= sigma <= self.window[0]


def _clip_area(area: Area | None, height: int, width: int) -> Area | None:
    """A settled area (:func:`.areas.resolve_area`) clipped to the latent, ``None`` when it covers it."""
    if area is None:
        return None
    h, w, y, x = area
    y, x = min(max(y, 0), height - 1), min(max(x, 0), width - 1)
    h, w = max(1, min(h, height - y)), max(1, min(w, width - x))
    return None if (h, w, y, x) == (height, width, 0, 0) else (h, w, y, x)


def _mask_weight(mask: Any, options: Mapping[str, Any], area: Area | None, height: int, width: int) -> Any:
    """The entry's ``[B, 1, h, w]`` weight: mask * mask_strength, cut to its area (for "mask
    bounds" the mask's bounding box, settled by :func:`.areas.resolve_area`)."""
    m = resized_mask(mask, height, width)
    if area is not None:
        h, w, y, x = area
        m = m[:, :, y : y + h, x : x + w]
    return m * float(options.get("mask_strength", 1.0))


def _entries(name: str, conditioning: Any, height: int, width: int) -> list[_Entry]:
    import torch

    if not isinstance(conditioning, (list, tuple)) or not conditioning:
        raise ConditioningError(f"input '{name}' is not a CONDITIONING (expected a non-empty list of [tensor, dict])")
    out: list[_Entry] = []
    for item in conditioning:
        if not (isinstance(item, (list, tuple)) and len(item) >= 2 and torch.is_tensor(item[0])):
            raise ConditioningError(f"input '{name}': every CONDITIONING entry must be [tensor, dict]")
        cond, options = item[0], dict(item[1] or {})
        if cond.dim() == 2:
            cond = cond.unsqueeze(0)
        area = _clip_area(resolve_area(options, height, width), height, width)
        mask = options.get("mask")
        if mask is not None:
            weight = _mask_weight(mask, options, area, height, width)
        else:  # ComfyUI's soft edges of an area without a mask
            weight = None if area is None else feather(area, height, width)
        window = None
        if options.get("start_percent", 0.0) > 0.0 or options.get("end_percent", 1.0) < 1.0:
            window = (float(options.get("start_percent", 0.0)), float(options.get("end_percent", 1.0)))
        concat = None
        if options.get("concat_latent_image") is not None:
            concat = (options["concat_latent_image"], options.get("concat_mask"))
        out.append(
            _Entry(
                cond,
                options.get("pooled_output"),
                options,
                area,
                weight,
                float(options.get("strength", 1.0)),
                options.get("control"),
                window,
                concat,
            )
        )
    return out


def _resolve_extras(model: Any, entries: list[_Entry], shape: Sequence[int]) -> None:
    """Turn the entries' timestep windows into sigmas and their inpainting inputs into UNet channels.

    Only called when some entry has either. A UNet without extra input channels ignores the
    inpainting inputs (as ComfyUI's non-inpainting models do), so such entries stay plain.
    """
    import torch
    import torch.nn.functional as F

    from .control import percent_to_sigma

    batch, channels, height, width = (int(v) for v in shape)
    in_channels = None
    for entry in entries:
        if entry.window is not None:
            start, end = entry.window
            entry.window = (
                percent_to_sigma(start, model.scheduler_config),
                percent_to_sigma(end, model.scheduler_config),
            )
        if entry.concat is None:
            continue
        if in_channels is None:
            in_channels = int(model.unet.load().config.in_channels)
        extra = in_channels - channels
        if extra <= 0:
            entry.concat = None
            continue
        latent, mask = entry.concat
        parts = [model.process_in(latent.float())]
        if extra > parts[0].shape[1]:  # SD inpainting layout: the mask channel, then the masked image
            m = mask.float() if mask is not None else torch.ones((1, 1, height, width))
            parts.insert(0, m.reshape((-1, 1, m.shape[-2], m.shape[-1])))
        resized = []
        for part in parts:
            if tuple(part.shape[-2:]) != (height, width):
                part = F.interpolate(part, size=(height, width), mode="bilinear", align_corners=False)
            reps = -(-batch // part.shape[0])
            resized.append(part.repeat(reps, 1, 1, 1)[:batch])
        if len(parts) == 2:
            resized[0] = resized[0].round()
        concat = torch.cat(resized, dim=1)
        if concat.shape[1] != extra:
            raise ConditioningError(
                f"the MODEL takes {extra} extra input channels; the conditioning's inpainting "
                f"inputs give {concat.shape[1]}"
            )
        entry.concat = concat


def _repeat_tokens(cond: torch.Tensor, length: int) -> torch.Tensor:
    return cond if cond.shape[1] == length else cond.repeat(1, length // cond.shape[1], 1)


def bare_predictor_factory(shape: Sequence[int], device: Any) -> Callable[[Any, Any], Predict]:
    """``predict_with(model, conditioning)``: a raw ``predict(x_in, t)`` of one conditioning under a
    MODEL for latents of ``shape``, without its guidance hooks (ComfyUI's ``calc_cond_batch``; a
    hook that asks for a prediction would otherwise recurse). What guidance hooks and guiders use
    for the extra evaluations they make (:class:`.cfg_hooks.HookArgs`)."""

    def predict_with(model: Any, conditioning: Any) -> Predict:
        alone = Guider(model.clone(model_options=without_hooks(model.model_options)), 1.0)
        alone.set_conds(conditioning)
        return alone.predictor(shape, device)

    return predict_with


def _on_run_conds(build: Callable[..., Predict]) -> Callable[..., Predict]:
    """``build`` (a guider's ``predictor``) run with the guider's conds settled for the run's
    latent: ComfyUI's same-area copies (:func:`.areas.same_area_entries`) added. ComfyUI's guiders
    read processed conds for the length of a run; here they are in place while the predictor is
    built (everything per step is built then) and the given ones are back afterwards. Nested
    calls (a subclass's ``super().predictor``) use the settled conds as they are."""

    @functools.wraps(build)
    def predictor(self: Guider, shape: Sequence[int], device: Any) -> Predict:
        given = self.__dict__.get("_conds")
        if self.__dict__.get("_settled") or not isinstance(given, dict):
            return build(self, shape, device)
        self._conds, self._settled = same_area_entries(given, int(shape[-2]), int(shape[-1])), True
        try:
            return build(self, shape, device)
        finally:
            self._conds, self._settled = given, False

    predictor.__weft_run_conds__ = True  # type: ignore[attr-defined]
    return predictor


class Guider:
    """GUIDER: a model, named conditionings and a CFG scale (ComfyUI's ``CFGGuider``).

    Every ``predictor`` (this one, a subclass's, a plugin's) sees the conds settled for its run
    (:func:`_on_run_conds`, applied to overrides by ``__init_subclass__``), as ComfyUI's
    ``process_conds`` settles them for any guider before sampling.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("predictor")
        if inspect.isfunction(own) and not getattr(own, "__weft_run_conds__", False):
            cls.predictor = _on_run_conds(own)  # type: ignore[method-assign]

    def __init__(self, model: DiffusionModel, cfg: float = 1.0) -> None:
        self.model = model
        self.model_patcher = model  # ComfyUI's attribute name, for plugins that read it
        self.conds = {}
        self.cfg = float(cfg)

    @property
    def conds(self) -> dict[str, Any]:
        """The named conditionings with ComfyUI's ``control_apply_to_uncond`` rule applied (part of
        its ``process_conds``). A property so that every guider gets the rule: subclasses and
        plugins assign the whole dict rather than calling :meth:`set_conds`. The rest of
        ``process_conds`` needs the latent's shape: while a predictor is built these are the conds
        settled for it (:func:`_on_run_conds`)."""
        return self._conds

    @conds.setter
    def conds(self, value: dict[str, Any]) -> None:
        from .control import spread_to_uncond

        self._conds = spread_to_uncond(value) if isinstance(value, dict) else value

    def set_conds(self, positive: Any, negative: Any | None = None) -> None:
        self.conds = {"positive": positive} if negative is None else {"positive": positive, "negative": negative}

    def set_cfg(self, cfg: float) -> None:
        self.cfg = float(cfg)

    # -- compiled prediction -----------------------------------------------------------------
    @_on_run_conds
    def predictor(self, shape: Sequence[int], device: Any) -> Predict:
        """``predict(x_in, t)`` for latents of ``shape`` [B, C, h, w], built once per run."""
        batch, _, height, width = (int(s) for s in shape)
        positive = _entries("positive", self.conds.get("positive"), height, width)
        model = self.model
        mix = self._mix(shape, device)
        use_uncond = "negative" in self.conds and (
            not math.isclose(self.cfg, 1.0) or bool(model.model_options.get(DISABLE_CFG1_OPTIMIZATION))
        )
        negative = _entries("negative", self.conds["negative"], height, width) if use_uncond else []
        extras = [e for e in positive + negative if e.window is not None or e.concat is not None]
        if extras:
            _resolve_extras(model, extras, shape)
        groups = [positive] + ([negative] if use_uncond else [])
        if all(len(g) == 1 and g[0].plain for g in groups):
            entries = [negative[0], positive[0]] if use_uncond else [positive[0]]  # uncond first, like diffusers
            return self._stacked(entries, batch, height, width, device, mix)
        return self._regions(groups, extras, batch, height, width, device, mix)

    def _stacked(
        self, entries: list[_Entry], batch: int, height: int, width: int, device: Any, mix: Mix | None
    ) -> Predict:
        """The fast path: one plain entry per half, stacked into one batch and one UNet call per step."""
        import torch

        model, cfg = self.model, self.cfg
        cond, pooled, time_ids = self._stack(entries, batch, height, width, device)
        if any(e.control is not None for e in entries):
            return self._controlled(entries, cond, pooled, time_ids, mix)
        if len(entries) == 1:
            if mix is None:
                return lambda x, t: model.predict_noise(x, t, cond, pooled, time_ids)

            def predict_hooked(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                out = model.predict_noise(x, t, cond, pooled, time_ids)
                return mix(x, t, out, out)

            return predict_hooked

        def predict_cfg(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            out = model.predict_noise(torch.cat((x, x)), t, cond, pooled, time_ids)
            uncond_out, cond_out = out.chunk(2)
            return torch.lerp(uncond_out, cond_out, cfg) if mix is None else mix(x, t, uncond_out, cond_out)

        needed = uncond_gate(model)
        if needed is None:
            return predict_cfg
        half = cond.shape[0] // 2  # [uncond, cond] stacked: the positive rows are the second half
        cond_only = (
            cond[half:],
            None if pooled is None else pooled[half:],
            None if time_ids is None else time_ids[half:],
        )

        def predict_gated(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if needed(t):
                return predict_cfg(x, t)
            out = model.predict_noise(x, t, *cond_only)
            return out if mix is None else mix(x, t, out, out)

        return predict_gated

    def _regions(
        self,
        groups: list[list[_Entry]],
        extras: list[_Entry],
        batch: int,
        height: int,
        width: int,
        device: Any,
        mix: Mix | None,
    ) -> Predict:
        """The general path: each entry on its region, averaged by strength and mask per group."""
        import torch

        cfg = self.cfg
        run = self._control_run([e for g in groups for e in g])
        for entry in [e for g in groups for e in g if e.weight is not None]:
            entry.weight = entry.weight.to(device)  # once here rather than per step
        prepared = [
            [(e, *self._stack([e], batch, height, width, device), run if e.control is not None else None) for e in g]
            for g in groups
        ]

        # a group without an unwindowed whole-frame entry may leave pixels no entry weighs
        gaps = [
            not any(e.area is None and e.weight is None and e.window is None and e.strength for e in g) for g in groups
        ]
        space = None
        if any(gaps) or any(e.window is not None for e in extras):
            from .cfg_hooks import CallSpace

            space = CallSpace(self.model.prediction_type, self.model.scheduler_config)

        def predict_regions(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            sigma = None if space is None else space.sigma(t, x.shape[0])
            results = [self._combine(group, x, t, sigma, space, gap) for group, gap in zip(prepared, gaps, strict=True)]
            if len(results) == 1:
                return results[0] if mix is None else mix(x, t, results[0], results[0])
            return torch.lerp(results[1], results[0], cfg) if mix is None else mix(x, t, results[1], results[0])

        return predict_regions

    def _mix(self, shape: Sequence[int], device: Any) -> Mix | None:
        """The MODEL's guidance hooks compiled for this run (:mod:`.cfg_hooks`), or ``None``
        (plain CFG) when it has none."""
        if not has_hooks(self.model.model_options):
            return None
        return make_mix(self.model, self.cfg, self.conds, bare_predictor_factory(shape, device))

    def _stack(self, entries: list[_Entry], batch: int, height: int, width: int, device: Any) -> tuple:
        """Batched cond / pooled / SDXL time ids for ``entries``, each repeated over the batch."""
        import torch

        length = math.lcm(*[e.cond.shape[1] for e in entries])
        conds, pooled, ids = [], [], []
        for e in entries:
            c = _repeat_tokens(e.cond, length)
            conds.append(c.expand(batch, -1, -1) if c.shape[0] == 1 else c)
            if self.model.needs_pooled:
                if e.pooled is None:
                    raise ConditioningError(
                        "an SDXL model needs pooled text embeddings: encode the prompt with an SDXL checkpoint's CLIP"
                    )
                p = e.pooled.reshape(-1, e.pooled.shape[-1])
                pooled.append(p.expand(batch, -1) if p.shape[0] == 1 else p)
                # the whole latent's size even for an area entry, as ComfyUI's encode_model_conds
                ids.append(torch.tensor([self.model.time_ids(e.options, height, width)] * batch))
        cond = torch.cat(conds).to(device)
        if not self.model.needs_pooled:
            return cond, None, None
        return cond, torch.cat(pooled).to(device), torch.cat(ids).to(device)

    def _combine(
        self,
        group: list[tuple],
        x: torch.Tensor,
        t: torch.Tensor,
        sigma: torch.Tensor | None = None,
        space: Any = None,
        gaps: bool = False,
    ) -> torch.Tensor:
        """Weighted average of each entry's prediction over its area (ComfyUI's area/mask conds).

        With ``sigma`` (only when some entry has a timestep window, or ``gaps``), entries outside
        their window are skipped. Where no entry weighs a pixel (``gaps``: possible only without an
        unwindowed whole-frame entry) the result is what a zero denoised estimate gives, as in
        ComfyUI, which averages denoised estimates and whose empty sum is 0.
        """
        import torch

        total = torch.zeros_like(x)
        count = torch.full_like(x, _UNWEIGHED)
        used = 0
        for entry, cond, pooled, time_ids, control_run in group:
            if sigma is not None and not entry.active(float(sigma[0])):
                continue
            used += 1
            if entry.area is None:
                region, sl = x, (slice(None), slice(None), slice(None), slice(None))
            else:
                h, w, y, xx = entry.area
                sl = (slice(None), slice(None), slice(y, y + h), slice(xx, xx + w))
                region = x[sl]
            extra: dict[str, Any] = {}
            if entry.concat is not None:
                extra["concat"] = entry.concat[sl].to(device=x.device, dtype=x.dtype)
            if (
                control_run is not None
            ):  # the ControlNet sees the region, its hint resized to the region (as in ComfyUI)
                from .control import control_kwargs

                extra.update(control_kwargs(control_run.residuals(entry.control, region, t, cond, pooled, time_ids)))
            out = self.model.predict_noise(region, t, cond, pooled, time_ids, **extra)
            weight = entry.strength if entry.weight is None else entry.weight.to(x.device, x.dtype) * entry.strength
            total[sl] += out * weight
            count[sl] += weight if torch.is_tensor(weight) else torch.full_like(out, weight)
        if not gaps:
            return total / count
        return torch.where(count == _UNWEIGHED, space.output(torch.zeros_like(x), x, sigma), total / count)

    # -- ControlNets ------------------------------------------------------------------------------
    def _control_run(self, entries: list[_Entry]) -> Any:
        """A :class:`~.control.ControlRun` ready for the entries' controls, or ``None`` without any."""
        controls = [e.control for e in entries if e.control is not None]
        if not controls:
            return None
        from .control import ControlRun

        run = ControlRun(self.model)
        for control in controls:
            run.add(control)
        return run

    def _controlled(
        self, entries: list[_Entry], cond: torch.Tensor, pooled: Any, time_ids: Any, mix: Mix | None = None
    ) -> Predict:
        """The fast path (entries stacked in one batch, one UNet call per step) with ControlNets.

        ``entries`` are the batch's halves in order ([uncond, cond] with CFG). One ControlNet
        call covers the whole batch when every half carries the same control; otherwise each
        half runs its own chain on its slice, and a half without control gets zero residuals.
        """
        import torch

        from .control import control_kwargs, stacked_residuals

        model, cfg, run = self.model, self.cfg, self._control_run(entries)
        controls = [e.control for e in entries]
        halves = len(entries)
        shared = controls[0] if all(c is controls[0] for c in controls) else None

        def chunks(value: Any) -> list[Any]:
            return list(value.chunk(halves)) if value is not None else [None] * halves

        # per half: (control, cond, pooled, time_ids), sliced once here rather than per step
        per_half = list(zip(controls, chunks(cond), chunks(pooled), chunks(time_ids), strict=True))

        def residuals(x: torch.Tensor, t: torch.Tensor) -> dict[str, Any]:
            sigma = run.sigma_of(t)
            if shared is not None:
                return control_kwargs(run.residuals(shared, x, t, cond, pooled, time_ids, halves, sigma))
            xs = x.chunk(halves)
            parts = [
                None if c is None else run.residuals(c, xs[i], t, c_cond, c_pooled, c_ids, 1, sigma)
                for i, (c, c_cond, c_pooled, c_ids) in enumerate(per_half)
            ]
            return control_kwargs(stacked_residuals(parts))

        if halves == 1:

            def predict_cond(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                out = model.predict_noise(x, t, cond, pooled, time_ids, **residuals(x, t))
                return out if mix is None else mix(x, t, out, out)

            return predict_cond

        def predict_cfg(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            both = torch.cat((x, x))
            out = model.predict_noise(both, t, cond, pooled, time_ids, **residuals(both, t))
            uncond_out, cond_out = out.chunk(2)
            return torch.lerp(uncond_out, cond_out, cfg) if mix is None else mix(x, t, uncond_out, cond_out)

        return predict_cfg

    # -- ComfyUI-shaped entry point --------------------------------------------------------------
    def sample(
        self,
        noise: torch.Tensor,
        latent_image: torch.Tensor,
        sampler: Any,
        sigmas: torch.Tensor,
        denoise_mask: torch.Tensor | None = None,
        callback: Any = None,
        disable_pbar: bool = False,
        seed: int | None = None,
    ) -> torch.Tensor:
        """Sample ``latent_image`` (raw latents) from ``noise``; returns raw latents (CPU)."""
        from .sampling import sample

        return sample(self, sampler, sigmas, noise, latent_image, denoise_mask=denoise_mask, seed=seed).samples
