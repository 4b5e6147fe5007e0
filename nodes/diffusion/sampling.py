"""The denoising loop: NOISE + GUIDER + SAMPLER + SIGMAS -> LATENT.

This is the hot path. Everything that can be decided once (the scheduler and its sigmas,
the batched conditioning, the inpainting mask at latent size, whether previews are due)
is decided before the loop; each model call then costs what a bare diffusers loop costs:
``scale_model_input``, one UNet call (through the guider) and ``scheduler.step``.

Progress goes to the running node's context once per completed step (which is also where
an interrupt from the user stops the loop), and every ``preview_every`` steps a cheap
latent-to-RGB JPEG of the model's current clean estimate goes with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .guidance import Guider
    from .samplers import SamplerSpec

_log = logging.getLogger("weft.sampling")

#: ``on_step(steps_done, total_steps, denoised_scaled_or_None)``; ``denoised`` is only computed
#: when ``wants_preview(steps_done)`` says so.
StepCallback = Callable[[int, int, "torch.Tensor | None"], None]


@dataclass
class SampleResult:
    samples: Any  # raw latents [B, C, h, w], float32 CPU
    denoised: Any  # the model's last clean estimate, raw latents
    reports: list[dict[str, Any]] = field(default_factory=list)  # what run participants reported


def run_participants(guider: Any, sampler: Any, stepper: Any = None) -> list[Any]:
    """Everything in a run that may keep per-run state: the MODEL's call wrappers and guidance
    hooks, the guider, the sampler (and its stepper).

    The run protocol, for research nodes whose state spans the steps of one run (a feature
    cache, a momentum buffer, an evaluation counter): an object may define
    ``begin_run(sigmas)``, called once before the first model call, and ``report() -> dict``,
    called after the last; reports go to the sampler node's UI output and the log.
    """
    from .cfg_hooks import hook_functions

    model = guider.model
    found = [*model.wrappers, *hook_functions(model.model_options), guider, sampler, stepper]
    unique: list[Any] = []
    for item in found:
        if item is not None and all(item is not other for other in unique):
            unique.append(item)
    return unique


def begin_run(participants: list[Any], sigmas: Any) -> None:
    for item in participants:
        begin = getattr(item, "begin_run", None)
        if callable(begin):
            begin(sigmas)


def collect_reports(participants: list[Any]) -> list[dict[str, Any]]:
    reports = []
    for item in participants:
        report = getattr(item, "report", None)
        if callable(report):
            value = report()
            if value:
                reports.append(dict(value))
    return reports


def latent_mask(mask: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A LATENT ``noise_mask`` (any of [H,W], [B,H,W], [B,1,H,W], image or latent size) as
    [B, 1, h, w] at latent size; 1 marks what gets denoised."""
    import torch.nn.functional as F

    m = mask.float()
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[:, None]
    m = m[:, :1]
    if tuple(m.shape[-2:]) != tuple(shape[-2:]):
        m = F.interpolate(m, size=tuple(shape[-2:]), mode="bilinear", align_corners=False)
    batch = shape[0]
    if m.shape[0] != batch:
        m = m.repeat((batch + m.shape[0] - 1) // m.shape[0], 1, 1, 1)[:batch]
    return m.clamp(0, 1)


def step_mask(model: Any, mask: torch.Tensor | None, sigmas: torch.Tensor) -> Callable[[float], Any]:
    """``mask_at(sigma)``: the inpainting mask in force at noise level ``sigma``.

    The mask itself, unless the MODEL sets ComfyUI's ``denoise_mask_function(sigma, mask,
    extra_options)`` (Differential Diffusion: a soft mask thresholded lower and lower as the
    noise falls, so each pixel is repainted for a share of the steps set by its mask value).
    ``extra_options`` has ``model`` (the MODEL) and ``sigmas`` (the run's schedule).
    """
    import torch

    fn = model.model_options.get("denoise_mask_function")
    if fn is None or mask is None:
        return lambda sigma: mask
    extra = {"model": model, "sigmas": sigmas}
    return lambda sigma: fn(torch.tensor([sigma]), mask, extra).to(mask.device, mask.dtype)


@dataclass
class _RunLatents:
    """What the loop noises, blends and masks with, on the model's device (scaled latents)."""

    latent: Any
    noise: Any
    mask: Any  # [B, 1, h, w] or None
    mask_at: Callable[[float], Any]
    #: what the kept area of an inpainting run is noised with (:func:`.inpainting.keep_noise`)
    keep_noise: Any = None

    def inpainting(self) -> Any:
        from .inpainting import Inpainting

        if self.mask is None:
            return None
        return Inpainting(self.latent, self.noise if self.keep_noise is None else self.keep_noise, self.mask_at)


def sample(
    guider: Guider,
    sampler: SamplerSpec,
    sigmas: torch.Tensor,
    noise: torch.Tensor,
    latent_image: torch.Tensor,
    *,
    denoise_mask: torch.Tensor | None = None,
    seed: int | None = None,
    on_step: StepCallback | None = None,
    wants_preview: Callable[[int], bool] | None = None,
) -> SampleResult:
    """Run one sampling pass. ``latent_image`` and ``noise`` are raw latents [B, C, h, w].

    ``sigmas`` follow ComfyUI's SIGMAS convention (descending, usually ending in 0; a
    schedule that stops above 0 leaves that much noise in, for a later pass). ``seed``
    seeds the noise ancestral and SDE samplers add along the way.
    """
    import torch

    model = guider.model
    sigmas = sigmas.flatten()
    if sigmas.numel() < 2:
        return SampleResult(latent_image, latent_image)
    model.prepare()
    device = model.device
    latent = model.process_in(latent_image.to(device=device, dtype=torch.float32))
    noise = noise.to(device=device, dtype=torch.float32)
    mask = latent_mask(denoise_mask, tuple(latent.shape)).to(device) if denoise_mask is not None else None
    run = _RunLatents(latent, noise, mask, step_mask(model, mask, sigmas))
    if mask is not None:
        from .inpainting import keep_noise

        run.keep_noise = keep_noise(noise, seed, bool(getattr(sampler, "fresh_inpaint_noise", False)))
    if hasattr(sampler, "sample_loop"):
        return _sample_with_own_loop(guider, sampler, sigmas, run, seed, on_step, wants_preview)
    stepper = sampler.stepper(model.scheduler_config, sigmas, seed)
    participants = run_participants(guider, sampler, stepper)
    begin_run(participants, sigmas)
    predict = guider.predictor(latent.shape, device)
    # inference_mode: about 10% faster per step than no_grad on small models (no version
    # counters or view tracking). What leaves the loop is cloned outside it (_plain), so the
    # LATENT is an ordinary tensor that later nodes (and plugins) may modify in place.
    with torch.inference_mode():
        x, denoised = _step_through(stepper, predict, run, on_step, wants_preview)
    return SampleResult(
        _plain(model.process_out(x)), _plain(model.process_out(denoised)), collect_reports(participants)
    )


def _sample_with_own_loop(
    guider: Guider,
    sampler: Any,
    sigmas: torch.Tensor,
    run: _RunLatents,
    seed: int | None,
    on_step: StepCallback | None,
    wants_preview: Callable[[int], bool] | None,
) -> SampleResult:
    """A SAMPLER with ``sample_loop`` (:mod:`.loops`) runs the loop itself."""
    import torch

    from .loops import LoopRun

    model = guider.model
    # a CFG++ sampler (needs_uncond) runs on a copy of the guider that keeps each call's
    # unconditional estimate; that copy is the run's participant (begin_run / report)
    loop_run = LoopRun(
        guider,
        sigmas,
        run.latent,
        run.noise,
        run.mask,
        seed,
        on_step,
        wants_preview,
        run.mask_at,
        uncond=bool(getattr(sampler, "needs_uncond", False)),
        keep_noise=run.keep_noise,
    )
    participants = run_participants(loop_run.guider, sampler)
    begin_run(participants, sigmas)
    with torch.inference_mode():
        x, denoised = sampler.sample_loop(loop_run)
    return SampleResult(
        _plain(model.process_out(x)), _plain(model.process_out(denoised)), collect_reports(participants)
    )


def _step_through(
    stepper: Any,
    predict: Callable[[Any, Any], Any],
    run: _RunLatents,
    on_step: StepCallback | None,
    wants_preview: Callable[[int], bool] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The hot loop: every model call of ``stepper``; returns the final sample and clean estimate."""
    total = len(stepper.grid) - 1
    calls, stages = stepper.calls, stepper.stages
    call = _model_call(stepper, predict, run)
    x = stepper.initial_sample(run.latent, run.noise)
    for j in range(calls):
        out = call(x, j)
        if j % stages == 0:
            # Start of a step: x sits exactly on grid[j // stages]; remember it for the
            # clean estimate (previews, denoised_output, a scheduler that stops above 0).
            first_out, first_x, first_j = out, x, j
            step_no = j // stages + 1
            due = on_step is not None and wants_preview is not None and wants_preview(step_no)
            denoised = stepper.denoised(out, j, x) if due else None
        x = stepper.step(out, j, x)
        if (j + 1) % stages and j + 1 < calls:
            continue  # between the two stages of a Heun/DPM2 step
        done = j // stages + 1
        if on_step is not None:
            on_step(done, total, denoised)
    return _finish(stepper, run, x, stepper.denoised(first_out, first_j, first_x))


def _model_call(stepper: Any, predict: Callable[[Any, Any], Any], run: _RunLatents) -> Callable[[Any, int], Any]:
    """``call(x, j)``: the model's output for model call ``j`` on the sample ``x``, masked per
    call when inpainting (:mod:`.inpainting`, ComfyUI's rule)."""
    timesteps = stepper.timesteps
    inpainting = run.inpainting()
    if inpainting is None:
        return lambda x, j: predict(stepper.scale_input(x, j), timesteps[j])
    from .inpainting import masked_model_call

    masked = masked_model_call(predict, inpainting, stepper.prediction_type, stepper.scheduler_config)
    sigmas = stepper.call_sigmas
    return lambda x, j: masked(stepper.scale_input(x, j), sigmas[j], timesteps[j])


def _finish(stepper: Any, run: _RunLatents, x: torch.Tensor, final_denoised: torch.Tensor) -> tuple[Any, Any]:
    """The run's result from the last sample and the last step's clean estimate."""
    x = final_denoised if stepper.finish_denoised else stepper.to_latent(x)
    inpainting = run.inpainting()
    if inpainting is not None and stepper.ends_at_zero and not stepper.stops_short_of_zero and stepper.calls:
        last = stepper.call_sigmas[stepper.calls - 1]
        x, final_denoised = inpainting.finish(x, last), inpainting.finish(final_denoised, last)
    return x, final_denoised


def _plain(t: torch.Tensor) -> torch.Tensor:
    """A float32 CPU copy that is a normal tensor (cloning outside inference mode does that)."""
    import torch

    return t.to(device="cpu", dtype=torch.float32).clone() if t.is_inference() else t.float().cpu()


def node_callbacks(
    preview_format: Mapping[str, Any] | None = None,
) -> tuple[StepCallback | None, Callable[[int], bool]]:
    """Progress and preview callbacks for the running node (``None`` outside a node run).

    As in ComfyUI, previews are off unless the prompt's ``extra_data.preview_method`` or the
    launcher's ``--preview-method`` asks (``auto``, ``latent2rgb``; ``taesd`` is served by
    latent2rgb). Then they go every ``preview_every`` steps (``extra_data``; default 1), at most
    ``preview_size`` pixels a side. A preview costs one 4x3 matmul at latent resolution and a
    small JPEG encode.
    """
    from engine.context import current_context

    from ..launch_options import get_options, resolve_preview_method

    ctx = current_context()
    if ctx is None:
        return None, lambda step: False
    extra = ctx.extra or {}
    every = int(extra.get("preview_every", 1) or 0)
    if resolve_preview_method(extra.get("preview_method")) == "none":
        every = 0
    size = extra.get("preview_size", get_options().preview_size)
    preview_format = {**(preview_format or {}), "max_size": size}

    def wants(step: int) -> bool:
        return every > 0 and step % every == 0

    def on_step(done: int, total: int, denoised: torch.Tensor | None) -> None:
        if denoised is not None and every > 0:
            from .preview import preview_jpeg

            ctx.preview(preview_jpeg(denoised, preview_format), "JPEG")
        ctx.progress(done, total)

    return on_step, wants


def run_sampler(
    model: Any,
    sampler: SamplerSpec,
    sigmas: torch.Tensor,
    latent: Mapping[str, Any],
    noise: torch.Tensor,
    guider: Guider,
    seed: int | None,
) -> SampleResult:
    """Sample a LATENT dict with a node's progress/preview callbacks wired in."""
    on_step, wants = node_callbacks(_preview_format(model))
    result = sample(
        guider,
        sampler,
        sigmas,
        noise,
        latent["samples"],
        denoise_mask=latent.get("noise_mask"),
        seed=seed,
        on_step=on_step,
        wants_preview=wants,
    )
    for report in result.reports:
        _log.info("%s", report_line(report))
    return result


def report_line(report: Mapping[str, Any]) -> str:
    """One run participant's report as a line for the log and the node's UI text."""
    name = report.get("name", "run")
    details = ", ".join(f"{k}={v}" for k, v in report.items() if k != "name")
    return f"{name}: {details}" if details else str(name)


def _preview_format(model: Any) -> dict[str, Any]:
    fmt = getattr(model, "latent_format", None)
    return {
        "family": getattr(model, "family", "sd1"),
        "rgb_factors": getattr(fmt, "rgb_factors", None),
        "rgb_bias": getattr(fmt, "rgb_bias", None),
    }
