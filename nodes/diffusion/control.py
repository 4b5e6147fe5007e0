"""CONTROL_NET values and how they act during sampling (ComfyUI's ControlNet semantics).

Two values:

* :class:`ControlNet` is what ControlNetLoader outputs: a handle on a diffusers
  ``ControlNetModel`` (owned by the model manager, loaded on first use) and its family.
* :class:`Control` is what the apply nodes put in a CONDITIONING entry's ``"control"``
  option: a ControlNet with its hint image, strength and active window, and the control
  that was on the entry before (``previous``), so several ControlNets chain and their
  residuals add up, as in ComfyUI.

:class:`ControlRun` evaluates controls for one sampling run; the guider builds it only when
some entry carries a control, so a run without ControlNets does no extra work per step.
For each UNet call it computes the chain's residuals with the call's own noisy latents,
timestep and text embeddings, and the guider passes them to
:meth:`DiffusionModel.predict_noise` as ``down_block_additional_residuals`` /
``mid_block_additional_residual``.

The hint follows ComfyUI: IMAGE ``[B, H, W, C]`` in 0..1 becomes ``[B, 3, H, W]`` (not
rescaled to -1..1), resized with nearest-exact after a centre crop to 8x the latent size of
the region being denoised, and repeated over the batch.

torch is imported inside functions; importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .model_manager import ModuleHandle
    from .types import DiffusionModel

#: Pixels per latent pixel for the SD families (ComfyUI's ``compression_ratio``).
HINT_SCALE = 8
#: ComfyUI's "sigma above everything" for a start percent of 0.
_SIGMA_INFINITY = 999999999.9

Residuals = tuple[tuple["torch.Tensor", ...], "torch.Tensor"]


class ControlNetMismatchError(ValueError):
    """A ControlNet does not fit the MODEL it is sampled with; the message names the apply node."""


class ControlNet:
    """``CONTROL_NET``: a diffusers ``ControlNetModel`` handle and the family it was trained for."""

    TYPE = "CONTROL_NET"

    def __init__(self, handle: ModuleHandle, family: str, name: str = "") -> None:
        self.handle = handle
        self.family = family
        self.name = name

    def __weft_cache_size__(self) -> int:
        return 1024  # the weights belong to the model manager

    def __repr__(self) -> str:
        return f"<CONTROL_NET {self.family} {self.name!r}>"


@dataclass(frozen=True, eq=False)
class Control:
    """One ControlNet applied to a CONDITIONING entry (its ``"control"`` option).

    ``hint`` is ``[B, 3, H, W]`` float32 on the CPU in 0..1. ``start_percent`` and
    ``end_percent`` are fractions of the model's noise schedule (0 = the noisiest end).
    ``origin`` names the node that applied it (``"ControlNetApplyAdvanced (node 12)"``),
    for errors raised later, while sampling. Identity matters (``eq=False``): the guider
    runs one ControlNet call for the cond and uncond halves only when both carry the same
    object, as ComfyUI batches them only then.
    """

    controlnet: ControlNet
    hint: Any
    strength: float = 1.0
    start_percent: float = 0.0
    end_percent: float = 1.0
    previous: Control | None = None
    origin: str = "ControlNetApplyAdvanced"

    def __weft_cache_size__(self) -> int:
        own = int(getattr(self.hint, "nbytes", 0)) + 256
        return own + (self.previous.__weft_cache_size__() if self.previous is not None else 0)

    def chain(self) -> list[Control]:
        """This control and the ones before it, newest first."""
        out: list[Control] = []
        control: Control | None = self
        while control is not None:
            out.append(control)
            control = control.previous
        return out

    # ComfyUI's attribute names, for plugins that inspect a conditioning's control
    @property
    def previous_controlnet(self) -> Control | None:
        return self.previous

    @property
    def cond_hint_original(self) -> Any:
        return self.hint

    @property
    def timestep_percent_range(self) -> tuple[float, float]:
        return (self.start_percent, self.end_percent)


def hint_from_image(image: Any, input_name: str = "image") -> torch.Tensor:
    """IMAGE ``[B, H, W, C]`` (0..1) -> the ControlNet hint ``[B, 3, H, W]`` float32 CPU.

    RGBA drops alpha and a one-channel image is repeated to RGB, so any IMAGE a loader or an
    image node gives is usable; values stay 0..1, which is what ControlNets were trained on.
    """
    import torch

    if not torch.is_tensor(image) or image.dim() not in (3, 4):
        raise ValueError(f"{input_name}: expected an IMAGE tensor [batch, height, width, channels]")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    channels = image.shape[-1]
    if channels == 1:
        image = image.expand(-1, -1, -1, 3)
    elif channels >= 3:
        image = image[..., :3]
    else:
        raise ValueError(
            f"{input_name}: an IMAGE with {channels} channels cannot be a ControlNet hint (need 1, 3 or 4)"
        )
    return image.detach().to("cpu", torch.float32).movedim(-1, 1).contiguous()


def percent_to_sigma(percent: float, scheduler_config: Any) -> float:
    """ComfyUI's ``percent_to_sigma``: 0 is above every sigma, 1 is 0, else the training sigma at
    timestep ``(1 - percent) * (steps - 1)``."""
    import torch

    from .samplers import model_sigmas

    if percent <= 0.0:
        return _SIGMA_INFINITY
    if percent >= 1.0:
        return 0.0
    ms = model_sigmas(scheduler_config)
    return float(ms.t_to_sigma(torch.tensor((1.0 - percent) * (len(ms.sigmas) - 1))))


def _options(item: Any) -> dict[str, Any] | None:
    """A CONDITIONING entry's options, or ``None`` for something that is not an entry."""
    if not isinstance(item, (list, tuple)) or len(item) < 2:
        return None
    return item[1] if isinstance(item[1], dict) else {}


def _whole_frame(options: dict[str, Any]) -> bool:
    """Not bound to an area: ComfyUI counts an ``area``, and a mask with "mask bounds" (which it
    turns into one), as area-bound."""
    return "area" not in options and not (options.get("mask") is not None and options.get("set_area_to_bounds"))


def spread_to_uncond(conds: dict[str, Any]) -> dict[str, Any]:
    """A guider's named conditionings with ComfyUI's ``control_apply_to_uncond`` rule applied.

    Apply ControlNet (OLD) marks its entries with ``control_apply_to_uncond``, and ComfyUI's
    ``process_conds`` then gives their controls to every other conditioning (the negative, a
    DualCFG middle, ...) that has none on its whole-frame entries: the n-th control goes to that
    conditioning's whole-frame entries in turn (a later one replacing an earlier one on the same
    entry). So the old node on the positive acts on both halves of CFG, exactly as
    ControlNetApplyAdvanced with the whole schedule does. Entries are copied; the given lists are
    left as they are.
    """
    positive = conds.get("positive")
    given = [o for o in map(_options, positive if isinstance(positive, (list, tuple)) else ()) if o is not None]
    sources = [
        o["control"]
        for o in given
        if o.get("control_apply_to_uncond") is True and _whole_frame(o) and o.get("control") is not None
    ]
    if not sources:
        return conds
    out = dict(conds)
    for name, conditioning in conds.items():
        if name == "positive" or not isinstance(conditioning, (list, tuple)):
            continue
        whole = [i for i, item in enumerate(conditioning) if (o := _options(item)) is not None and _whole_frame(o)]
        if not whole or any((_options(conditioning[i]) or {}).get("control") is not None for i in whole):
            # one with a control of its own stays as it is; one without a whole-frame entry too
            # (ComfyUI divides by zero there)
            continue
        entries = list(conditioning)
        for n, control in enumerate(sources):
            i = whole[n % len(whole)]
            entries[i] = [conditioning[i][0], {**(_options(conditioning[i]) or {}), "control": control}]
        out[name] = entries
    return out


def _broadcast(hint: torch.Tensor, target: int, halves: int) -> torch.Tensor:
    """ComfyUI's ``broadcast_image_to``: a batch-1 hint broadcasts by itself; a longer one is
    cut or tiled to the batch of one half and repeated for each half (cond/uncond)."""
    import torch

    if hint.shape[0] == 1 or hint.shape[0] == target:
        return hint
    per_half = max(target // halves, 1)
    hint = hint[:per_half]
    if hint.shape[0] < per_half:
        reps = per_half // hint.shape[0]
        hint = torch.cat([hint] * reps + [hint[: per_half % hint.shape[0]]])
    return hint if hint.shape[0] == target else torch.cat([hint] * halves)


class ControlRun:
    """Evaluates controls for one sampling run of ``model``.

    Built once per run (by the guider, only when controls are present): it checks each
    chain's family, loads the ControlNets on the compute device, converts each control's
    window to sigmas and caches resized hints per latent size, so per step only the
    ControlNet calls themselves remain.
    """

    def __init__(self, model: DiffusionModel) -> None:
        from .samplers import model_sigmas

        self.model = model
        self._ms = model_sigmas(model.scheduler_config)
        self._windows: dict[int, tuple[float, float]] = {}
        self._hints: dict[tuple[int, int, int, int, int], torch.Tensor] = {}
        self._controls: dict[int, Control] = {}  # keeps ids stable for the run

    def add(self, control: Control) -> None:
        """Check a control chain against the model and get it ready (once per run)."""
        for item in control.chain():
            if id(item) in self._controls:
                continue
            net = item.controlnet
            if net.family != self.model.family:
                raise ControlNetMismatchError(
                    f"{item.origin}: input 'control_net' is a {net.family} ControlNet ({net.name}) but the MODEL "
                    f"being sampled is {self.model.family} ({self.model.name or 'model'}); load a ControlNet made for "
                    f"{self.model.family} models, or sample with a {net.family} checkpoint"
                )
            self._controls[id(item)] = item
            self._windows[id(item)] = (
                percent_to_sigma(item.start_percent, self.model.scheduler_config),
                percent_to_sigma(item.end_percent, self.model.scheduler_config),
            )
            net.handle.on_device()

    def sigma_of(self, timestep: Any) -> float:
        """The noise level of a UNet call's timestep (the first one of a batch, like ComfyUI)."""
        import torch

        t = timestep.flatten()[0] if torch.is_tensor(timestep) else torch.tensor(float(timestep))
        return float(self._ms.t_to_sigma(t.detach().float().cpu()))

    def residuals(
        self,
        control: Control,
        x: torch.Tensor,
        timestep: Any,
        cond: torch.Tensor,
        pooled: Any,
        time_ids: Any,
        halves: int = 1,
        sigma: float | None = None,
    ) -> Residuals | None:
        """The summed residuals of ``control``'s chain for one UNet call, or ``None`` when every
        control of the chain is outside its window at this step."""
        if sigma is None:
            sigma = self.sigma_of(timestep)
        total: Residuals | None = None
        for item in reversed(control.chain()):  # oldest first, as ComfyUI adds the previous one in
            high, low = self._windows[id(item)]
            if sigma > high or sigma < low:
                continue
            down, mid = self._run(item, x, timestep, cond, pooled, time_ids, halves)
            if total is None:
                total = (tuple(down), mid)
            else:
                total = (tuple(a + b for a, b in zip(total[0], down, strict=True)), total[1] + mid)
        return total

    def _hint(self, control: Control, x: torch.Tensor, halves: int, device: Any, dtype: Any) -> torch.Tensor:
        from .latent import resize_nchw

        batch, _, height, width = (int(s) for s in x.shape)
        key = (id(control), height, width, batch, halves)
        hint = self._hints.get(key)
        if hint is None:
            hint = resize_nchw(control.hint, width * HINT_SCALE, height * HINT_SCALE, "nearest-exact", "center")
            hint = _broadcast(hint, batch, halves).to(device=device, dtype=dtype)
            self._hints[key] = hint
        return hint

    def _run(
        self,
        control: Control,
        x: torch.Tensor,
        timestep: Any,
        cond: torch.Tensor,
        pooled: Any,
        time_ids: Any,
        halves: int,
    ) -> Residuals:
        import torch

        from .schedules import whole_timestep

        handle = control.controlnet.handle
        module = handle.on_device()
        device, dtype = handle.device, handle.compute_dtype
        batch = x.shape[0]
        t = timestep if torch.is_tensor(timestep) else torch.tensor([float(timestep)])
        # called at the UNet's whole timestep, as ComfyUI calls its ControlNets
        t = whole_timestep(t.to(device=device, dtype=torch.float32).reshape(-1))
        if t.numel() == 1 and batch > 1:
            t = t.expand(batch)
        kwargs: dict[str, Any] = {}
        if self.model.needs_pooled:
            if time_ids is None:
                time_ids = torch.tensor([self.model.time_ids(None, x.shape[-2], x.shape[-1])] * batch)
            kwargs["added_cond_kwargs"] = {
                "text_embeds": pooled.to(device=device, dtype=dtype),
                "time_ids": time_ids.to(device=device, dtype=dtype),
            }
        with torch.no_grad():
            down, mid = module(
                x.to(device=device, dtype=dtype),
                t,
                encoder_hidden_states=cond.to(device=device, dtype=dtype),
                controlnet_cond=self._hint(control, x, halves, device, dtype),
                conditioning_scale=control.strength,
                return_dict=False,
                **kwargs,
            )
        return tuple(down), mid


def control_kwargs(residuals: Residuals | None) -> dict[str, Any]:
    """``predict_noise`` keyword arguments for residuals (none when there are none)."""
    if residuals is None:
        return {}
    return {"down_block_additional_residuals": residuals[0], "mid_block_additional_residual": residuals[1]}


def stacked_residuals(parts: list[Residuals | None]) -> Residuals | None:
    """Residuals of batch halves concatenated along the batch; a half without any gets zeros,
    which leave its UNet output exactly as without a ControlNet."""
    import torch

    present = next((p for p in parts if p is not None), None)
    if present is None:
        return None
    filled = [
        p if p is not None else (tuple(torch.zeros_like(r) for r in present[0]), torch.zeros_like(present[1]))
        for p in parts
    ]
    down = tuple(torch.cat([p[0][i] for p in filled]) for i in range(len(present[0])))
    return down, torch.cat([p[1] for p in filled])


__all__ = [
    "Control",
    "ControlNet",
    "ControlNetMismatchError",
    "ControlRun",
    "control_kwargs",
    "hint_from_image",
    "percent_to_sigma",
    "spread_to_uncond",
    "stacked_residuals",
]
