"""What the inversion techniques share: the INVERSION value, the guided denoiser, checks.

**The INVERSION value.** An inversion node returns the noisy LATENT (the state at the top of its
schedule, so that KSamplerAdvanced with ``add_noise: disable`` can regenerate from it like from
any leftover-noise latent) and an :class:`Inversion`: the schedule, the whole trajectory of
latents (one per sigma), the conditioning and CFG it was computed with and what the method needs
besides (EDICT's second sequence, the edit-friendly noise maps). Samplers and editing nodes read
it; nothing mutates it (the engine's output cache may hand the same value to later runs).

**The denoiser.** :class:`Denoiser` is the guided model as k-diffusion's ``D(x, sigma)``,
computed exactly like :meth:`nodes.diffusion.loops.LoopRun.denoise` (same timestep, same input
scaling, same conversion of the raw output). The inversion and its matching sampler call the same
function on the same numbers, which is what makes EDICT and the edit-friendly noise maps exact.

**Precision.** ``precision: float64_cpu`` runs the UNet in float64 on the CPU: a twin of the
MODEL's weight handle (same file, same patches) whose compute dtype is float64. Exactness to
"float precision" then means about 1e-12 rather than the 1e-4..1e-3 that float32 rounding,
amplified by EDICT's ``1/p`` divisions over many steps, can reach.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nodes.api import Combo, Float, Input, Int
from nodes.diffusion.model_manager import ModuleHandle

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.types import DiffusionModel

INVERSION = "INVERSION"
#: The inversion methods an INVERSION can hold.
METHODS: tuple[str, ...] = ("ddim", "edict", "ddpm_edit_friendly")
#: ``model``: the MODEL's own device and dtype; ``float64_cpu``: the UNet in float64 on the CPU.
PRECISIONS: tuple[str, ...] = ("model", "float64_cpu")


class InversionError(ValueError):
    """A user-facing problem with an inversion node's inputs; the message names node and input."""


def fail(node: str, input_name: str, reason: str) -> InversionError:
    """The error to raise: ``"<node>: input '<input>' <reason>"``."""
    return InversionError(f"{node}: input '{input_name}' {reason}")


# -- the INVERSION value -------------------------------------------------------------------------


@dataclass(eq=False)
class Inversion:
    """One inverted LATENT: the trajectory from the clean latent up to the top of the schedule.

    * ``sigmas``: the schedule, float32 CPU, descending, usually ending in 0 (SIGMAS convention:
      the order a sampler runs it; the inversion walked it backwards).
    * ``states[i]``: the latent at ``sigmas[i]`` in the scaled k-diffusion space (``x0 + sigma *
      eps``), CPU, in the inversion's dtype; ``states[-1]`` is the clean input latent.
    * ``partners[i]``: EDICT's second sequence ``y`` (``None`` for other methods).
    * ``noise_maps[i]`` / ``spreads[i]``: the edit-friendly DDPM maps ``z`` and the posterior
      spreads of the step from ``sigmas[i]`` to ``sigmas[i+1]``.
    * ``positive``/``negative``/``cfg``: the conditioning the model was guided with.
    """

    method: str
    sigmas: Any
    states: list[Any]
    positive: Any
    negative: Any | None
    cfg: float
    precision: str = "model"
    partners: list[Any] | None = None
    noise_maps: list[Any] | None = None
    spreads: list[float] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    latent: dict[str, Any] | None = None  # the source LATENT (raw), for editors that need the picture

    TYPE = INVERSION

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    @property
    def dtype(self) -> torch.dtype:
        return self.states[0].dtype

    def __weft_cache_size__(self) -> int:
        tensors = list(self.states) + list(self.partners or ()) + list(self.noise_maps or ())
        return sum(int(t.numel() * t.element_size()) for t in tensors) + 1024

    def __repr__(self) -> str:
        shape = tuple(self.states[0].shape)
        return f"<INVERSION {self.method} steps={self.steps} shape={shape} cfg={self.cfg:g} precision={self.precision}>"

    def window(self, sigmas: torch.Tensor, who: str) -> int:
        """Where a run's ``sigmas`` start in this schedule; the run must walk a contiguous part of it.

        ``who`` names the sampler node for the error a mismatch raises.
        """
        import torch

        run = sigmas.detach().to("cpu", torch.float32).flatten()
        own = self.sigmas
        n = len(run)
        for start in range(len(own) - n + 1):
            if torch.allclose(own[start : start + n], run, rtol=1e-5, atol=1e-6):
                return start
        raise InversionError(
            f"{who}: the run's SIGMAS ({_brief(run)}) are not a part of this {self.method} inversion's schedule "
            f"({_brief(own)}); feed the sampler node's 'sigmas' from InversionSigmas with the same INVERSION"
        )


def _brief(sigmas: torch.Tensor) -> str:
    values = [f"{float(v):.4g}" for v in sigmas]
    if len(values) > 6:
        values = values[:3] + ["..."] + values[-2:]
    return f"{len(sigmas) - 1} steps: " + ", ".join(values)


def check_inversion(node: str, name: str, value: Any, methods: Sequence[str] = METHODS) -> Inversion:
    if not isinstance(value, Inversion):
        raise fail(node, name, f"is not an INVERSION (got {type(value).__name__}); connect an inversion node")
    if value.method not in methods:
        raise fail(node, name, f"holds a {value.method} inversion; this node needs one of: {', '.join(methods)}")
    return value


# -- input checks --------------------------------------------------------------------------------


def check_latent(node: str, name: str, latent: Any, model: Any = None) -> Any:
    """The LATENT's samples, after checking they are a [B, C, h, w] tensor the model can denoise."""
    import torch

    if not isinstance(latent, dict) or not torch.is_tensor(latent.get("samples")):
        raise fail(node, name, "is not a LATENT (a dict with a 'samples' tensor); connect VAEEncode or a sampler")
    samples = latent["samples"]
    if samples.dim() != 4:
        raise fail(node, name, f"must hold [batch, channels, height, width] samples, got shape {tuple(samples.shape)}")
    expected = getattr(model, "latent_channels", None)
    if expected is not None and samples.shape[1] != expected:
        raise fail(
            node,
            name,
            f"has {samples.shape[1]} latent channels but the model expects {expected}: "
            "encode the picture with this model family's VAE",
        )
    if not torch.isfinite(samples).all():
        raise fail(node, name, "contains NaN or infinite values")
    if latent.get("noise_mask") is not None:
        raise fail(
            node,
            name,
            "carries a noise_mask; inversion works on the whole latent "
            "(remove SetLatentNoiseMask, or apply the mask after editing)",
        )
    return samples


def check_conditioning(node: str, name: str, value: Any, optional: bool = False) -> None:
    import torch

    if value is None and optional:
        return
    if not (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(item, (list, tuple)) and len(item) >= 2 and torch.is_tensor(item[0]) for item in value)
    ):
        raise fail(node, name, "is not a CONDITIONING (a list of [tensor, dict]); connect CLIPTextEncode")


def check_model(node: str, model: Any) -> DiffusionModel:
    if not hasattr(model, "predict_noise") or not hasattr(model, "scheduler_config"):
        raise fail(node, "model", f"is not a Weft MODEL (got {type(model).__name__}); connect a checkpoint loader")
    return model


def check_inversion_inputs(node: str, model: Any, positive: Any, negative: Any, latent: Any) -> tuple[Any, Any]:
    """The inversion nodes' shared inputs checked: the model and the latent's samples."""
    model = check_model(node, model)
    check_conditioning(node, "positive", positive)
    check_conditioning(node, "negative", negative, optional=True)
    return model, check_latent(node, "latent", latent, model)


def schedule(node: str, model: Any, scheduler: str, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """The sampling schedule the inversion walks backwards (KSampler's, including ``denoise``)."""
    from nodes.diffusion.samplers import SCHEDULER_NAMES, denoise_sigmas, unsupported_message

    if scheduler not in SCHEDULER_NAMES:
        raise fail(node, "scheduler", unsupported_message("scheduler", str(scheduler)).removeprefix("scheduler "))
    if steps < 1:
        raise fail(node, "steps", f"must be at least 1, got {steps}")
    if not 0.0 < denoise <= 1.0:
        raise fail(node, "denoise", f"must be above 0 and at most 1, got {denoise}")
    sigmas = denoise_sigmas(model.scheduler_config, scheduler, steps, denoise)
    if len(sigmas) < 2:
        raise fail(node, "steps", "gives an empty schedule; use more steps or a larger denoise")
    return sigmas


# -- common widgets ------------------------------------------------------------------------------


def model_inputs() -> tuple[Any, ...]:
    """model, positive, optional negative, cfg (1 by default: no guidance, the classic inversion)."""
    return (
        Input("model", "MODEL", tooltip="The model to invert with (LoRA, ControlNet conditioning etc. apply)."),
        Input("positive", "CONDITIONING", tooltip="The prompt that describes the source picture."),
        Input(
            "negative",
            "CONDITIONING",
            optional=True,
            tooltip="Unconditional/negative prompt; only used when cfg is not 1.",
        ),
        Float(
            "cfg",
            1.0,
            min=0.0,
            max=100.0,
            step=0.1,
            round=0.01,
            tooltip="Classifier-free guidance during the inversion; 1 (no guidance) inverts most faithfully.",
        ),
    )


def schedule_inputs(default_steps: int = 20) -> tuple[Any, ...]:
    from nodes.diffusion.samplers import SCHEDULER_NAMES

    return (
        Int("steps", default_steps, min=1, max=1000, tooltip="Steps of the schedule the inversion walks back."),
        Combo(
            "scheduler",
            list(SCHEDULER_NAMES),
            default="normal",
            tooltip="How the noise levels are spaced; regenerate with the same (InversionSigmas does).",
        ),
        Float(
            "denoise",
            1.0,
            min=0.01,
            max=1.0,
            step=0.01,
            tooltip="How far up to invert: 1 reaches pure noise; lower stops at that part of the schedule "
            "(KSampler's denoise), which keeps more of the picture when editing.",
        ),
    )


def precision_input() -> Any:
    return Combo(
        "precision",
        list(PRECISIONS),
        default="model",
        tooltip="model: the MODEL's device and dtype. float64_cpu: the UNet in float64 on the CPU "
        "(slow; exact to ~1e-12, for checking and for exact round trips).",
    )


# -- float64 ---------------------------------------------------------------------------------------


class _Float64Handle(ModuleHandle):
    """A twin of a UNet handle that computes in float64 on the CPU (same file, same patches)."""

    @property
    def compute_dtype(self) -> torch.dtype:
        import torch

        return torch.float64


_TWINS: weakref.WeakKeyDictionary[ModuleHandle, ModuleHandle] = weakref.WeakKeyDictionary()


def float64_model(model: DiffusionModel) -> DiffusionModel:
    """A clone of ``model`` whose UNet runs in float64 on the CPU.

    The twin handle loads the base weights with the original's loader (a fresh module, so the
    original's applied patches are not baked in) and applies this clone's patches itself. It is
    kept per original handle, so repeated runs reuse the float64 weights while memory allows.
    """
    handle = model.unet
    twin = _TWINS.get(handle)
    if twin is None:
        twin = _Float64Handle(
            handle.manager,
            (handle.key, "float64"),
            handle.kind,
            handle.loader,
            name=f"{handle.name} (float64)",
            target=handle.target,
            size_hint=2 * handle.size_hint,
            device="cpu",
        )
        _TWINS[handle] = twin
    return model.clone(unet=twin)


def guider_with_model(guider: Any, model: DiffusionModel) -> Any:
    """A shallow copy of ``guider`` (whatever GUIDER class) that evaluates ``model`` instead."""
    other = copy.copy(guider)
    other.model = model
    if hasattr(other, "model_patcher"):
        other.model_patcher = model
    return other


def make_guider(model: DiffusionModel, positive: Any, negative: Any | None, cfg: float) -> Any:
    from nodes.diffusion.guidance import Guider

    guider = Guider(model, cfg)
    guider.set_conds(positive, negative if negative is not None and not math.isclose(cfg, 1.0) else None)
    return guider


# -- the guided denoiser -----------------------------------------------------------------------------


class Denoiser:
    """``D(x, sigma)``: the guider's clean estimate of ``x`` at noise level ``sigma`` (k-diffusion space).

    The same computation as :meth:`LoopRun.denoise <nodes.diffusion.loops.LoopRun.denoise>`, in the
    working dtype of ``precision`` (float32 on the model's device, or float64 on the CPU).
    Every call is one guided model evaluation, counted in :attr:`calls`.
    """

    def __init__(self, guider: Any, shape: Sequence[int], precision: str = "model") -> None:
        import torch

        from nodes.diffusion.cfg_hooks import CallSpace

        if precision == "float64_cpu":
            guider = guider_with_model(guider, float64_model(guider.model))
            self.dtype = torch.float64
        else:
            self.dtype = torch.float32
        self.guider = guider
        self.model = guider.model
        self.model.prepare()
        self.device = self.model.device
        self.space = CallSpace(self.model.prediction_type, self.model.scheduler_config)
        self._predict = guider.predictor(tuple(int(s) for s in shape), self.device)
        self.calls = 0

    def to_work(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on this denoiser's device, in its dtype."""
        return x.to(device=self.device, dtype=self.dtype)

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        import torch

        s = torch.tensor([float(sigma)], dtype=torch.float32)
        t = self.space.ms.call_timestep(s).to(self.device)
        x_in = x / math.sqrt(1.0 + float(s) ** 2)
        out = self._predict(x_in, t)
        self.calls += 1
        return self.space.denoised(out, x_in, s.to(torch.float64).expand(x.shape[0]))

    def eps(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """The guided noise estimate ``(x - D(x, sigma)) / sigma``."""
        return (x - self(x, sigma)) / float(sigma)


# -- running an inversion node ---------------------------------------------------------------------


@dataclass
class InversionRun:
    """Progress, previews, interruption and the run protocol for an inversion node's loop."""

    total: int
    on_step: Callable[[int, int, Any], None] | None
    wants_preview: Callable[[int], bool]
    reports: list[dict[str, Any]] = field(default_factory=list)

    def step(self, done: int, denoised: Callable[[], torch.Tensor] | None = None) -> None:
        """Report step ``done`` of :attr:`total` (``denoised`` is computed only for a preview)."""
        if self.on_step is None:
            return
        preview = None
        if denoised is not None and self.wants_preview(done):
            preview = denoised().float()
        self.on_step(done, self.total, preview)


@contextmanager
def inversion_run(guider: Any, sigmas: torch.Tensor, total: int) -> Iterator[InversionRun]:
    """Wrap an inversion loop like :func:`nodes.diffusion.sampling.sample` wraps a sampling loop:
    the run protocol (``begin_run``/``report`` of the MODEL's wrappers and hooks), the node's
    progress and previews, and ``torch.inference_mode``."""
    import torch

    from nodes.diffusion.sampling import _preview_format, begin_run, collect_reports, node_callbacks, run_participants

    participants = run_participants(guider, None)
    begin_run(participants, sigmas)
    on_step, wants = node_callbacks(_preview_format(guider.model))
    run = InversionRun(total, on_step, wants)
    with torch.inference_mode():
        yield run
    run.reports.extend(collect_reports(participants))


def plain(t: torch.Tensor) -> torch.Tensor:
    """A float32 CPU copy that is an ordinary tensor (safe to modify, not an inference tensor)."""
    import torch

    return t.detach().to(device="cpu", dtype=torch.float32).clone()


def stored(t: torch.Tensor) -> torch.Tensor:
    """A CPU copy in its own dtype that is an ordinary tensor (what an INVERSION keeps)."""
    with _outside_inference():
        return t.detach().to("cpu").clone()


@contextmanager
def _outside_inference() -> Iterator[None]:
    import torch

    with torch.inference_mode(False):
        yield


def out_latent(latent: dict[str, Any], samples: torch.Tensor) -> dict[str, Any]:
    """A LATENT like ``latent`` (batch_index etc. kept) with new raw ``samples``."""
    out = dict(latent)
    out.pop("noise_mask", None)
    out["samples"] = samples
    return out


def result(outputs: tuple[Any, ...], reports: list[dict[str, Any]], lines: list[str]) -> Any:
    """The node's outputs with a UI text: what the inversion measured, and the run's reports."""
    from nodes.api import Result
    from nodes.diffusion.sampling import report_line

    text = lines + [report_line(r) for r in reports]
    ui: dict[str, Any] = {"text": text}
    if reports:
        ui["weft_report"] = reports
    return Result(*outputs, ui=ui)
