"""Sampling nodes with ComfyUI's names, inputs and widget order.

KSampler and KSamplerAdvanced are the all-in-one nodes; SamplerCustomAdvanced composes the
same loop from NOISE (RandomNoise, DisableNoise), GUIDER (CFGGuider, BasicGuider), SAMPLER
(KSamplerSelect) and SIGMAS (BasicScheduler, KarrasScheduler).
"""

from __future__ import annotations

from typing import Any

from ..api import Boolean, Combo, Float, Input, Int, Node, NodeClassDefinition, Output
from .samplers import SAMPLER_NAMES, SCHEDULER_NAMES, resolve_sampler, unsupported_message

SEED_MAX = 0xFFFFFFFFFFFFFFFF


def _seed(name: str) -> Any:
    return Int(
        name,
        0,
        min=0,
        max=SEED_MAX,
        control_after_generate=True,
        tooltip="The random seed of the noise; the same seed gives the same image on the same device.",
    )


def _steps() -> Any:
    return Int("steps", 20, min=1, max=10000, tooltip="The number of denoising steps.")


def _cfg() -> Any:
    return Float(
        "cfg",
        8.0,
        min=0.0,
        max=100.0,
        step=0.1,
        round=0.01,
        tooltip="Classifier-free guidance scale: how strongly the prompt steers the image.",
    )


def _sampler_name() -> Any:
    return Combo(
        "sampler_name",
        list(SAMPLER_NAMES),
        tooltip="The stepping algorithm (a diffusers scheduler, or a loop of Weft's own).",
    )


def _scheduler() -> Any:
    return Combo("scheduler", list(SCHEDULER_NAMES), tooltip="How the noise levels are spaced over the steps.")


def _sampler(name: Any) -> Any:
    return resolve_sampler(name)


def _check_schedule(name: Any) -> None:
    if name not in SCHEDULER_NAMES:
        raise ValueError(unsupported_message("scheduler", str(name)))


def check_names(inputs: dict[str, Any]) -> bool | str:
    """Validation of ``sampler_name``/``scheduler`` that says *why* a ComfyUI name is refused.

    The engine's generic combo check would only say "not in list"; these nodes are
    registered with :class:`_NamesCheckedHere` so this message reaches the client instead.
    """
    problems = []
    if "sampler_name" in inputs and inputs["sampler_name"] not in SAMPLER_NAMES:
        problems.append(unsupported_message("sampler_name", str(inputs["sampler_name"])))
    if "scheduler" in inputs and inputs["scheduler"] not in SCHEDULER_NAMES:
        problems.append(unsupported_message("scheduler", str(inputs["scheduler"])))
    return "; ".join(problems) if problems else True


class _NamesCheckedHere(NodeClassDefinition):
    """A node definition whose ``sampler_name``/``scheduler`` combos the node validates itself."""

    def __init__(self, cls: type[Node]) -> None:
        super().__init__(cls)
        self._own = frozenset(s.name for s in cls.inputs if s.name in ("sampler_name", "scheduler"))

    def skips_default_validation(self, input_name: str) -> bool:
        return input_name in self._own


def _check_latent(name: str, latent: Any) -> None:
    import torch

    if not isinstance(latent, dict) or not torch.is_tensor(latent.get("samples")):
        raise ValueError(f"input '{name}' is not a LATENT (a dict with a 'samples' tensor)")
    if latent["samples"].dim() != 4:
        raise ValueError(
            f"input '{name}': LATENT samples must be [batch, channels, height, width], "
            f"got shape {tuple(latent['samples'].shape)}"
        )


def _check_channels(model: Any, latent: dict, name: str = "latent_image") -> None:
    expected = getattr(model, "latent_channels", None)
    got = latent["samples"].shape[1]
    if expected is not None and got != expected:
        raise ValueError(
            f"input '{name}' has {got} latent channels but the model expects {expected}: "
            "use a latent made for this model family"
        )


def _out_latent(latent: dict, samples: Any) -> dict:
    """The input LATENT with new samples. Like ComfyUI (``latent.copy()``), every other key
    is kept, ``noise_mask`` included, so a second sampler on this output inpaints the same
    area instead of repainting the whole picture."""
    out = dict(latent)
    out["samples"] = samples
    return out


def common_ksampler(
    model: Any,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: Any,
    negative: Any,
    latent: dict,
    denoise: float = 1.0,
    disable_noise: bool = False,
    start_step: int | None = None,
    last_step: int | None = None,
    force_full_denoise: bool = False,
    reports: list | None = None,
    noise_source: Any = None,
) -> dict:
    """KSampler and KSamplerAdvanced: schedule, noise, guide, sample (ComfyUI's semantics).
    ``noise_source``: the NOISE to use instead of ``seed``'s (several prompts batched)."""
    from .guidance import Guider
    from .noise import NoNoise, RandomNoiseSource
    from .samplers import DISCARD_PENULTIMATE_SIGMA_SAMPLERS, denoise_sigmas
    from .sampling import run_sampler

    _check_latent("latent_image", latent)
    _check_channels(model, latent)
    spec = _sampler(sampler_name)
    _check_schedule(scheduler)
    discard = sampler_name in DISCARD_PENULTIMATE_SIGMA_SAMPLERS
    sigmas = denoise_sigmas(model.scheduler_config, scheduler, steps, denoise, discard_penultimate=discard)
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[: last_step + 1].clone()
        if force_full_denoise:
            sigmas[-1] = 0
    if start_step is not None:
        if start_step >= len(sigmas) - 1:
            return _out_latent(latent, latent["samples"])  # nothing left to do, as in ComfyUI
        sigmas = sigmas[start_step:]
    source = noise_source or (NoNoise() if disable_noise else RandomNoiseSource(seed))
    noise = source.generate_noise(latent)
    guider = Guider(model, cfg)
    guider.set_conds(positive, negative)
    result = run_sampler(model, spec, sigmas, latent, noise, guider, seed)
    if reports is not None:
        reports.extend(result.reports)
    return _out_latent(latent, result.samples)


def _with_reports(reports: list[dict[str, Any]], *outputs: Any) -> Any:
    """The node's outputs, with what the run's research nodes reported (evaluations saved, cache
    hits...) as UI output: ``text`` lines for people, ``weft_report`` dicts for scripts."""
    if not reports:
        return outputs
    from nodes.api import Result

    from .sampling import report_line

    return Result(*outputs, ui={"text": [report_line(r) for r in reports], "weft_report": reports})


class KSampler(Node):
    category = "sampling"
    description = "Denoises the latent image with the model, guided by the positive and negative prompts."
    inputs = (
        Input("model", "MODEL", tooltip="The model used for denoising the input latent."),
        _seed("seed"),
        _steps(),
        _cfg(),
        _sampler_name(),
        _scheduler(),
        Input("positive", "CONDITIONING", tooltip="What to include in the image."),
        Input("negative", "CONDITIONING", tooltip="What to exclude from the image."),
        Input("latent_image", "LATENT", tooltip="The latent image to denoise."),
        Float(
            "denoise",
            1.0,
            min=0.0,
            max=1.0,
            step=0.01,
            tooltip="How much of the latent to replace with noise: below 1 keeps the input's structure (img2img).",
        ),
    )
    outputs = (Output("LATENT", tooltip="The denoised latent."),)

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        return check_names(inputs)

    @classmethod
    def run_batch(cls, calls: list[dict[str, Any]]) -> list[Any] | None:
        """Several prompts at once (``--batch-prompts``; :mod:`.batch_sampling`)."""
        from .batch_sampling import ksampler_batch

        return ksampler_batch(calls, "seed")

    def run(
        self,
        model: Any,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        positive: Any,
        negative: Any,
        latent_image: dict,
        denoise: float,
    ) -> tuple:
        reports: list[dict[str, Any]] = []
        return _with_reports(
            reports,
            common_ksampler(
                model,
                seed,
                steps,
                cfg,
                sampler_name,
                scheduler,
                positive,
                negative,
                latent_image,
                denoise=denoise,
                reports=reports,
            ),
        )


class KSamplerAdvanced(Node):
    display_name = "KSampler (Advanced)"
    category = "sampling"
    description = (
        "KSampler with control over noise: start and end at given steps, add noise or not, "
        "and return the latent with its remaining noise for a later pass."
    )
    inputs = (
        Input("model", "MODEL"),
        Combo("add_noise", ["enable", "disable"]),
        _seed("noise_seed"),
        _steps(),
        _cfg(),
        _sampler_name(),
        _scheduler(),
        Input("positive", "CONDITIONING"),
        Input("negative", "CONDITIONING"),
        Input("latent_image", "LATENT"),
        Int("start_at_step", 0, min=0, max=10000),
        Int("end_at_step", 10000, min=0, max=10000),
        Combo("return_with_leftover_noise", ["disable", "enable"]),
    )
    outputs = (Output("LATENT"),)

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        return check_names(inputs)

    @classmethod
    def run_batch(cls, calls: list[dict[str, Any]]) -> list[Any] | None:
        from .batch_sampling import ksampler_batch

        return ksampler_batch(calls, "noise_seed")

    def run(
        self,
        model: Any,
        add_noise: str,
        noise_seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        positive: Any,
        negative: Any,
        latent_image: dict,
        start_at_step: int,
        end_at_step: int,
        return_with_leftover_noise: str,
    ) -> tuple:
        reports: list[dict[str, Any]] = []
        latent = common_ksampler(
            model,
            noise_seed,
            steps,
            cfg,
            sampler_name,
            scheduler,
            positive,
            negative,
            latent_image,
            disable_noise=add_noise == "disable",
            start_step=start_at_step,
            last_step=end_at_step,
            force_full_denoise=return_with_leftover_noise != "enable",
            reports=reports,
        )
        return _with_reports(reports, latent)


class SamplerCustomAdvanced(Node):
    category = "sampling/custom_sampling"
    description = "Samples with separately chosen noise, guider, sampler and sigmas."
    inputs = (
        Input("noise", "NOISE"),
        Input("guider", "GUIDER"),
        Input("sampler", "SAMPLER"),
        Input("sigmas", "SIGMAS"),
        Input("latent_image", "LATENT"),
    )
    outputs = (Output("LATENT", "output"), Output("LATENT", "denoised_output"))

    @classmethod
    def run_batch(cls, calls: list[dict[str, Any]]) -> list[Any] | None:
        from .batch_sampling import custom_batch

        return custom_batch(calls)

    def run(self, noise: Any, guider: Any, sampler: Any, sigmas: Any, latent_image: dict) -> tuple:
        from .sampling import run_sampler

        _check_latent("latent_image", latent_image)
        if not hasattr(guider, "predictor"):
            raise ValueError("input 'guider' is not a Weft GUIDER (use CFGGuider or BasicGuider)")
        if not (hasattr(sampler, "stepper") or hasattr(sampler, "sample_loop")):
            raise ValueError("input 'sampler' is not a Weft SAMPLER (use KSamplerSelect)")
        _check_channels(guider.model, latent_image)
        noise_tensor = noise.generate_noise(latent_image)
        result = run_sampler(
            guider.model, sampler, sigmas, latent_image, noise_tensor, guider, getattr(noise, "seed", None)
        )
        return _with_reports(
            result.reports, _out_latent(latent_image, result.samples), _out_latent(latent_image, result.denoised)
        )


class SamplerCustom(Node):
    category = "sampling/custom_sampling"
    description = "Samples with a chosen sampler and sigmas, CFG-guided, with seeded noise (or none)."
    inputs = (
        Input("model", "MODEL"),
        Boolean("add_noise", True),
        _seed("noise_seed"),
        _cfg(),
        Input("positive", "CONDITIONING"),
        Input("negative", "CONDITIONING"),
        Input("sampler", "SAMPLER"),
        Input("sigmas", "SIGMAS"),
        Input("latent_image", "LATENT"),
    )
    outputs = (Output("LATENT", "output"), Output("LATENT", "denoised_output"))

    def run(
        self,
        model: Any,
        add_noise: bool,
        noise_seed: int,
        cfg: float,
        positive: Any,
        negative: Any,
        sampler: Any,
        sigmas: Any,
        latent_image: dict,
    ) -> tuple:
        from .guidance import Guider
        from .noise import NoNoise, RandomNoiseSource

        guider = Guider(model, cfg)
        guider.set_conds(positive, negative)
        noise = RandomNoiseSource(noise_seed) if add_noise else NoNoise(noise_seed)
        return SamplerCustomAdvanced().run(noise, guider, sampler, sigmas, latent_image)


class SplitSigmas(Node):
    category = "sampling/custom_sampling/sigmas"
    description = "Splits a schedule at a step: the high sigmas run first, the low ones finish (they share that sigma)."
    inputs = (Input("sigmas", "SIGMAS"), Int("step", 0, min=0, max=10000))
    outputs = (Output("SIGMAS", "high_sigmas"), Output("SIGMAS", "low_sigmas"))

    def run(self, sigmas: Any, step: int) -> tuple:
        return sigmas[: step + 1], sigmas[step:]


class RandomNoise(Node):
    category = "sampling/custom_sampling/noise"
    description = "Seeded noise for SamplerCustomAdvanced."
    inputs = (_seed("noise_seed"),)
    outputs = (Output("NOISE"),)

    def run(self, noise_seed: int) -> tuple:
        from .noise import RandomNoiseSource

        return (RandomNoiseSource(noise_seed),)


class DisableNoise(Node):
    category = "sampling/custom_sampling/noise"
    description = "No noise: sample the latent as it is (for a second pass over leftover noise)."
    inputs = ()
    outputs = (Output("NOISE"),)

    def run(self) -> tuple:
        from .noise import NoNoise

        return (NoNoise(),)


class CFGGuider(Node):
    category = "sampling/custom_sampling/guiders"
    description = "Classifier-free guidance between the positive and negative conditioning."
    inputs = (Input("model", "MODEL"), Input("positive", "CONDITIONING"), Input("negative", "CONDITIONING"), _cfg())
    outputs = (Output("GUIDER"),)

    def run(self, model: Any, positive: Any, negative: Any, cfg: float) -> tuple:
        from .guidance import Guider

        guider = Guider(model, cfg)
        guider.set_conds(positive, negative)
        return (guider,)


class BasicGuider(Node):
    category = "sampling/custom_sampling/guiders"
    description = "Guides with one conditioning only (no negative prompt; for guidance-distilled models)."
    inputs = (Input("model", "MODEL"), Input("conditioning", "CONDITIONING"))
    outputs = (Output("GUIDER"),)

    def run(self, model: Any, conditioning: Any) -> tuple:
        from .guidance import Guider

        guider = Guider(model, 1.0)
        guider.set_conds(conditioning)
        return (guider,)


class KSamplerSelect(Node):
    category = "sampling/custom_sampling/samplers"
    description = "Picks a sampler by ComfyUI name."
    inputs = (_sampler_name(),)
    outputs = (Output("SAMPLER"),)

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        return check_names(inputs)

    def run(self, sampler_name: str) -> tuple:
        return (_sampler(sampler_name),)


class BasicScheduler(Node):
    category = "sampling/custom_sampling/schedulers"
    description = "The model's noise levels for a number of steps, spaced by the chosen scheduler."
    inputs = (Input("model", "MODEL"), _scheduler(), _steps(), Float("denoise", 1.0, min=0.0, max=1.0, step=0.01))
    outputs = (Output("SIGMAS"),)

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        return check_names(inputs)

    def run(self, model: Any, scheduler: str, steps: int, denoise: float) -> tuple:
        from .samplers import denoise_sigmas

        _check_schedule(scheduler)
        return (denoise_sigmas(model.scheduler_config, scheduler, steps, denoise),)


class KarrasScheduler(Node):
    category = "sampling/custom_sampling/schedulers"
    description = "Karras et al.'s noise levels between sigma_max and sigma_min."
    inputs = (
        _steps(),
        Float("sigma_max", 14.614642, min=0.0, max=5000.0, step=0.01, round=False),
        Float("sigma_min", 0.0291675, min=0.0, max=5000.0, step=0.01, round=False),
        Float("rho", 7.0, min=0.0, max=100.0, step=0.01, round=False),
    )
    outputs = (Output("SIGMAS"),)

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        lo, hi = inputs.get("sigma_min"), inputs.get("sigma_max")
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and not 0 < lo < hi:
            return f"sigma_min ({lo}) must be above 0 and below sigma_max ({hi})"
        if isinstance(inputs.get("rho"), (int, float)) and inputs["rho"] <= 0:
            return "rho must be above 0"
        return True

    def run(self, steps: int, sigma_max: float, sigma_min: float, rho: float) -> tuple:
        from .schedules import karras_schedule

        return (karras_schedule(steps, sigma_min, sigma_max, rho),)


NODES = [
    _NamesCheckedHere(KSampler),
    _NamesCheckedHere(KSamplerAdvanced),
    SamplerCustomAdvanced,
    SamplerCustom,
    SplitSigmas,
    RandomNoise,
    DisableNoise,
    CFGGuider,
    BasicGuider,
    _NamesCheckedHere(KSamplerSelect),
    _NamesCheckedHere(BasicScheduler),
    KarrasScheduler,
]

__all__ = ["NODES", "common_ksampler"]
