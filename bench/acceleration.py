"""Research nodes that change the cost of sampling: speed-up and fidelity against the plain run.

    python bench/acceleration.py [--steps 20] [--repeats 3] [--warmup 1] [--threads N] [--full-size]
    python bench/acceleration.py --flops

Every row samples the same prompt pair (random text embeddings), the same noise, the same
schedule (Euler, "normal" sigmas, CFG 7 batched into one UNet call) through Weft's own loop
(``nodes.diffusion.sampling.sample``), with one MODEL patch or guider changed, and compares
with the plain run:

* **speed-up**: median wall time of the plain run / median wall time of the row's run;
* **PSNR**: of the row's VAE-decoded image against the plain run's decoded image (dB; higher
  is closer; identical images print ``inf``); ``rel err`` is the same comparison on latents,
  ``|a - b| / |b|``.

The *samplers* section (``nodes/samplers``) measures samplers instead: its rows integrate the
probability-flow ODE from the model's sigma_max to sigma_min (where ``dpm_adaptive`` stops) and
compare with the converged solution (Weft's lms, 500 Karras steps), not with the plain run; the
evaluations column says how many model evaluations each spent (fixed-step DPM-Solver++(2M)
against ``dpm_adaptive`` and Gotta Go Fast at several tolerances).

Models are random-weight, real-architecture: by default a *small* SD1-layout UNet (SD1.5's
four levels and block types at 1/10 of its widths) and a small VAE at 128x128 (16x16
latents), sized for a CPU (``--threads 1`` on a shared machine); ``--full-size`` uses SD1.5's
UNet (860M parameters) and VAE configs at 512x512 (64x64 latents), real FLOPs, for a GPU. Random weights make the *speed*
figures real and the PSNR figures a stress test (a trained model's features change more
smoothly between steps than random ones, so the papers' reported fidelity is higher).

``--flops`` prints instead what one cached call of each acceleration mode costs relative to a
full call, in FLOPs, on the real SD1.5 and SDXL layouts (counted on the meta device: seconds,
no GPU): the speed-up a GPU approaches when the UNet dominates a step.

Structure: :func:`setup` builds the shared :class:`Bench` (model, prompt, noise, the plain
run's timing and image); each section below is a function ``(bench) -> Row`` registered in
:data:`SECTIONS`; :func:`main` runs them and prints one table.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_SD1_BLOCKS = dict(
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
)
#: SD1.5's UNet layout at 1/10 of its widths (8.6M parameters), 16x16 latents: a CPU runs a
#: 20-step CFG run in a few seconds; same depth, block types and skip structure as SD1.5.
SMALL_UNET = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(32, 64, 128, 128),
    cross_attention_dim=64,
    attention_head_dim=8,
    norm_num_groups=32,
    **_SD1_BLOCKS,
)
FULL_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
    **_SD1_BLOCKS,
)
SMALL_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=1,
    block_out_channels=(32, 32, 64, 64),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=32,
    sample_size=128,
)
#: SDXL's base UNet layout (2.6B parameters), for the FLOP table only.
SDXL_UNET = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10),
    cross_attention_dim=2048,
    attention_head_dim=(5, 10, 20),
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
    norm_num_groups=32,
)
FULL_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=2,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=32,
    sample_size=512,
)


@dataclass
class Bench:
    """What every section shares: the model, prompt, noise and schedule, and the plain run."""

    model: Any  # DiffusionModel without patches
    positive: list
    negative: list
    cfg: float
    sigmas: Any
    noise: Any
    repeats: int
    warmup: int
    decode: Callable[[Any], Any]  # raw latents -> image [B, H, W, 3] in 0..1
    plain_seconds: float = 0.0
    plain_latent: Any = None
    plain_image: Any = None


@dataclass
class Row:
    method: str
    settings: str
    seconds: float
    speedup: float
    psnr: float
    rel_err: float
    evaluations: str = ""  # what the run's report says (full / cached calls...)


def setup(full_size: bool, steps: int, repeats: int, warmup: int = 1, cfg: float = 7.0) -> Bench:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.samplers import compute_sigmas
    from nodes.diffusion.types import DiffusionModel

    config = FULL_UNET if full_size else SMALL_UNET
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**config).eval()
    handle = get_manager().handle(("bench.acceleration", full_size), "unet", lambda: unet, name="bench-unet")
    model = DiffusionModel(handle, family="sd1", name="bench")
    torch.manual_seed(1)
    vae = AutoencoderKL(**(FULL_VAE if full_size else SMALL_VAE)).eval().to(model.device)
    dim = config["cross_attention_dim"]
    g = torch.Generator().manual_seed(2)
    positive = [[torch.randn((1, 77, dim), generator=g), {"pooled_output": None}]]
    negative = [[torch.randn((1, 77, dim), generator=g), {"pooled_output": None}]]
    latent = config["sample_size"]
    noise = torch.randn((1, 4, latent, latent), generator=g)
    sigmas = compute_sigmas(model.scheduler_config, "normal", steps)

    def decode(raw: Any) -> Any:
        with torch.inference_mode():
            image = vae.decode(raw.to(model.device, next(vae.parameters()).dtype), return_dict=False)[0]
        return ((image.float().cpu() + 1) / 2).clamp(0, 1).movedim(1, -1)

    bench = Bench(model, positive, negative, cfg, sigmas, noise, repeats, warmup, decode)
    sample_once(bench, model)  # the first run pays for allocations and kernel choices
    bench.plain_seconds, bench.plain_latent = timed_run(bench, model)
    bench.plain_image = decode(bench.plain_latent)
    return bench


def sample_once(bench: Bench, model: Any, guider: Any = None) -> Any:
    """One sampling run (raw latents, CPU); ``guider`` replaces the default CFG guider."""
    import torch

    from nodes.diffusion.guidance import Guider
    from nodes.diffusion.sampler_nodes import KSamplerSelect
    from nodes.diffusion.sampling import sample

    if guider is None:
        guider = Guider(model, bench.cfg)
        guider.set_conds(bench.positive, bench.negative)
    sampler = KSamplerSelect().run("euler")[0]
    return sample(guider, sampler, bench.sigmas, bench.noise, torch.zeros_like(bench.noise)).samples


def timed_run(bench: Bench, model: Any, guider: Any = None) -> tuple[float, Any]:
    """Median seconds over ``bench.repeats`` runs (after ``bench.warmup`` untimed ones) and the
    last result."""
    for _ in range(bench.warmup):
        sample_once(bench, model, guider)
    times, out = [], None
    for _ in range(bench.repeats):
        start = time.perf_counter()
        out = sample_once(bench, model, guider)  # ends with a copy to the CPU: device work is done
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def psnr(image: Any, reference: Any) -> float:
    mse = float(((image - reference) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def compare(bench: Bench, method: str, settings: str, model: Any, guider: Any = None, report_of: Any = None) -> Row:
    """Time a patched model (or a guider) against the plain run and score its image."""
    seconds, latent = timed_run(bench, model, guider)
    rel = float((latent - bench.plain_latent).norm() / bench.plain_latent.norm())
    evaluations = ""
    if report_of is not None:
        report = report_of.report()
        evaluations = ", ".join(f"{k}={v}" for k, v in report.items() if k not in ("name", "unet_calls"))
    return Row(
        method,
        settings,
        seconds,
        bench.plain_seconds / seconds,
        psnr(bench.decode(latent), bench.plain_image),
        rel,
        evaluations,
    )


# == Acceleration: DeepCache, Faster Diffusion (nodes/acceleration) ===================================
def deepcache(bench: Bench, cache_interval: int = 3, cache_depth: int = 3) -> Row:
    """DeepCache node: full UNet every ``cache_interval`` calls, shallow branch in between."""
    from nodes.acceleration.deepcache import DeepCache

    model = DeepCache().run(bench.model, cache_interval, cache_depth, 0.0, 1.0)[0]
    return compare(
        bench, "DeepCache", f"interval {cache_interval}, depth {cache_depth}", model, report_of=model.wrappers[-1]
    )


def faster_diffusion(bench: Bench, key_interval: int = 2, start_percent: float = 0.1) -> Row:
    """FasterDiffusion node: encoder every ``key_interval`` calls, decoder only in between."""
    from nodes.acceleration.faster_diffusion import FasterDiffusion

    model = FasterDiffusion().run(bench.model, key_interval, start_percent, 1.0)[0]
    return compare(
        bench,
        "FasterDiffusion",
        f"interval {key_interval}, start {start_percent:g}",
        model,
        report_of=model.wrappers[-1],
    )


ACCELERATION: list[Callable[[Bench], Row]] = [
    lambda b: deepcache(b, 3, 3),
    lambda b: deepcache(b, 3, 0),
    lambda b: deepcache(b, 5, 3),
    lambda b: faster_diffusion(b, 2, 0.1),
    lambda b: faster_diffusion(b, 3, 0.0),
]


def acceleration_flops() -> None:
    """Cost of one cached call as a fraction of a full call, by matmul/convolution FLOPs, on the
    real SD1.5 (512 px) and SDXL (1024 px) UNet layouts. Counted on PyTorch's meta device: no
    weights, no arithmetic, a few seconds on any machine; what a GPU's speed-up tends to."""
    import torch
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    from nodes.acceleration.deepcache import DeepCacheWrapper
    from nodes.acceleration.faster_diffusion import FasterDiffusionWrapper
    from nodes.acceleration.unet_forward import UNetPass

    def flops(fn: Callable[[], Any]) -> int:
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops()

    modes: list[tuple[str, Any]] = [(f"DeepCache depth {d}", DeepCacheWrapper(3, d)) for d in (0, 3, 5)]
    modes.append(("FasterDiffusion decoder only", FasterDiffusionWrapper(2)))
    print("| UNet (batch 2) | full call TFLOP | " + " | ".join(name for name, _ in modes) + " |")
    print("|---|---:|" + "---:|" * len(modes))
    for name, config, latent in (("SD1.5, 64x64 latent", FULL_UNET, 64), ("SDXL, 128x128 latent", SDXL_UNET, 128)):
        with torch.device("meta"):
            unet = UNet2DConditionModel(**config).eval()
            x, t = torch.empty(2, 4, latent, latent), torch.full((2,), 500.0)
            cond = torch.empty(2, 77, config["cross_attention_dim"])
            kwargs = {}
            if config.get("addition_embed_type") == "text_time":
                kwargs["added_cond_kwargs"] = {"text_embeds": torch.empty(2, 1280), "time_ids": torch.empty(2, 6)}
        make = functools.partial(UNetPass, unet, x, t, cond, **kwargs)
        with torch.inference_mode():
            full = flops(lambda m=make: m().run())
            shares = []
            for _, wrapper in modes:
                _, features = wrapper.full_pass(make())
                shares.append(flops(lambda w=wrapper, f=features, m=make: w.cached_pass(m(), f)) / full)
        print(f"| {name} | {full / 1e12:.2f} | " + " | ".join(f"{share:.1%}" for share in shares) + " |")


# == Guidance (nodes/guidance) ==========================================================================
def adaptive_guidance(bench: Bench, threshold: float | None = None) -> Row:
    """AdaptiveGuidance guider against full CFG: UNet evaluations saved once the guided and the
    conditional predictions agree (cosine similarity above ``threshold``)."""
    from nodes.guidance.adaptive import DEFAULT_THRESHOLD, AdaptiveGuider

    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    guider = AdaptiveGuider(bench.model, bench.cfg, threshold)
    guider.set_conds(bench.positive, bench.negative)
    return compare(bench, "AdaptiveGuidance", f"threshold {threshold:g}", bench.model, guider, report_of=guider)


def guidance_patch(bench: Bench, method: str) -> Row:
    """The cost of a guidance MODEL patch (APG, CFGGuidanceInterval, PAG): these change the picture
    on purpose, so their PSNR measures how much, not a loss."""
    from nodes.diffusion.cfg_hooks import POST_CFG
    from nodes.guidance.apg import APG
    from nodes.guidance.interval import CFGGuidanceInterval
    from nodes.guidance.pag import PerturbedAttentionGuidance

    if method == "APG":
        model, settings, report = APG().run(bench.model, 0.0, 5.0, 0.0)[0], "eta 0, norm_threshold 5", None
    elif method == "CFGGuidanceInterval":
        model, settings, report = CFGGuidanceInterval().run(bench.model, 0.19, 0.93)[0], "0.19 .. 0.93", None
    else:
        model = PerturbedAttentionGuidance().run(bench.model, 3.0)[0]
        settings, report = "scale 3", model.model_options[POST_CFG][-1]
    return compare(bench, method, settings, model, report_of=report)


@functools.cache
def shapes_bench(steps: int, repeats: int, warmup: int, cfg: float = 5.0) -> Bench:
    """The built-in shapes model (trained weights): 8 held-out captions, one seed each, in one
    batch of 64x64 pictures, at the model's native settings (Euler, "normal" sigmas, CFG 5)."""
    import torch

    from nodes.diffusion.loaders import load_checkpoint
    from nodes.diffusion.noise import RandomNoiseSource
    from nodes.diffusion.samplers import compute_sigmas
    from nodes.paths import BUILTIN_MODELS
    from weft_tools.shapes import evaluate as ev

    model, clip, vae = load_checkpoint(BUILTIN_MODELS / "checkpoints" / ev.CHECKPOINT)
    captions = [spec.caption() for spec in ev.heldout_specs(8)]
    positive = [[torch.cat([clip.encode(c)[0] for c in captions]), {"pooled_output": None}]]
    negative = clip.encode_conditioning("")
    noise = torch.cat(
        [RandomNoiseSource(seed).generate_noise({"samples": torch.zeros(1, 4, 8, 8)}) for seed in range(len(captions))]
    )
    bench = Bench(
        model,
        positive,
        negative,
        cfg,
        compute_sigmas(model.scheduler_config, "normal", steps),
        noise,
        repeats,
        warmup,
        vae.decode,
    )
    sample_once(bench, model)
    bench.plain_seconds, bench.plain_latent = timed_run(bench, model)
    bench.plain_image = vae.decode(bench.plain_latent)
    return bench


def adaptive_guidance_shapes(bench: Bench, threshold: float | None = None) -> Row:
    """AdaptiveGuidance on the trained shapes model, against its own full-CFG run."""
    shapes = shapes_bench(len(bench.sigmas) - 1, bench.repeats, bench.warmup)
    row = adaptive_guidance(shapes, threshold)
    row.method = "AG (shapes x8)"
    return row


GUIDANCE: list[Callable[[Bench], Row]] = [
    lambda b: adaptive_guidance(b),
    lambda b: adaptive_guidance(b, 0.98),
    lambda b: adaptive_guidance(b, 0.95),
    lambda b: adaptive_guidance_shapes(b),
    lambda b: adaptive_guidance_shapes(b, 0.985),
    lambda b: adaptive_guidance_shapes(b, 0.98),
    lambda b: guidance_patch(b, "APG"),
    lambda b: guidance_patch(b, "CFGGuidanceInterval"),
    lambda b: guidance_patch(b, "PerturbedAttentionGuidance"),
]


# == Samplers (nodes/samplers) ===========================================================================
#: steps of the "converged" probability-flow ODE solution the sampler rows are measured against
CONVERGED_STEPS = 500
_converged: dict[int, Any] = {}


def _ode_sigmas(bench: Bench, steps: int) -> Any:
    """Karras sigmas from the model's sigma_max down to its sigma_min, without the final 0: the
    ODE between the ends an adaptive solver uses (``dpm_adaptive`` stops at sigma_min)."""
    from nodes.diffusion.samplers import compute_sigmas

    return compute_sigmas(bench.model.scheduler_config, "karras", steps + 1)[:-1]


def _sampler_run(bench: Bench, sampler: Any, sigmas: Any) -> tuple[float, Any]:
    """Median seconds over ``bench.repeats`` runs of ``sampler`` and the last SampleResult."""
    import torch

    from nodes.diffusion.guidance import Guider
    from nodes.diffusion.sampling import sample

    guider = Guider(bench.model, bench.cfg)
    guider.set_conds(bench.positive, bench.negative)
    times, result = [], None
    for _ in range(bench.repeats):
        start = time.perf_counter()
        result = sample(guider, sampler, sigmas, bench.noise, torch.zeros_like(bench.noise), seed=0)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def converged(bench: Bench) -> Any:
    """The ODE's solution at sigma_min: Weft's lms (order 4, the UNet at whole
    timesteps like every sampler), ``CONVERGED_STEPS`` Karras steps; computed once per bench."""
    if id(bench) not in _converged:
        import torch

        from nodes.diffusion.guidance import Guider
        from nodes.diffusion.samplers import SAMPLERS
        from nodes.diffusion.sampling import sample

        guider = Guider(bench.model, bench.cfg)
        guider.set_conds(bench.positive, bench.negative)
        _converged[id(bench)] = sample(
            guider, SAMPLERS["lms"], _ode_sigmas(bench, CONVERGED_STEPS), bench.noise, torch.zeros_like(bench.noise)
        ).samples
    return _converged[id(bench)]


def sampler_row(bench: Bench, method: str, settings: str, sampler: Any, sigmas: Any, evaluations: int = 0) -> Row:
    """A sampler's cost (against the plain run's time) and its distance from the converged ODE
    solution (PSNR of the decoded images, relative error of the latents)."""
    seconds, result = _sampler_run(bench, sampler, sigmas)
    reference = converged(bench)
    rel = float((result.samples - reference).norm() / reference.norm())
    report = next((r for r in result.reports if r.get("name") == getattr(sampler, "name", None)), None)
    if report is not None:
        counts = ", ".join(f"{k}={v}" for k, v in report.items() if k != "name")
    else:
        counts = f"model_evaluations={evaluations}"
    return Row(
        method,
        f"{settings} (vs ODE)",
        seconds,
        bench.plain_seconds / seconds,
        psnr(bench.decode(result.samples), bench.decode(reference)),
        rel,
        counts,
    )


def fixed_steps(bench: Bench, steps: int) -> Row:
    """DPM-Solver++(2M) on ``steps`` Karras steps to sigma_min, the fixed-step baseline (the
    own-loop one at momentum 1, whose timesteps are not rounded as diffusers' are)."""
    from nodes.samplers.momentum import MomentumSampler

    return sampler_row(
        bench,
        "dpmpp_2m",
        f"{steps} steps",
        MomentumSampler("dpmpp_2m_hb", 1.0),
        _ode_sigmas(bench, steps),
        evaluations=steps,
    )


def dpm_adaptive(bench: Bench, rtol: float) -> Row:
    """ComfyUI's dpm_adaptive (order 3) at ``rtol``, atol scaled with it (ComfyUI's 0.0078 at 0.05)."""
    from nodes.samplers.dpm_solver import DPMAdaptiveSampler

    sampler = DPMAdaptiveSampler(rtol=rtol, atol=0.0078 * rtol / 0.05)
    return sampler_row(bench, "dpm_adaptive", f"rtol {rtol:g}", sampler, _ode_sigmas(bench, 2))


def gotta_go_fast_ode(bench: Bench, rel_tol: float) -> Row:
    """Gotta Go Fast with eta 0 (the ODE; exponent 0.5), stopping at sigma_min like dpm_adaptive."""
    from nodes.samplers.gotta_go_fast import GottaGoFastSampler

    sampler = GottaGoFastSampler(abs_tol=0.0078 * rel_tol / 0.05, rel_tol=rel_tol, eta=0.0, exponent=0.5)
    return sampler_row(bench, "gotta_go_fast", f"eta 0, rel_tol {rel_tol:g}", sampler, _ode_sigmas(bench, 2))


SAMPLER_ROWS: list[Callable[[Bench], Row]] = [
    lambda b: fixed_steps(b, 10),
    lambda b: fixed_steps(b, 20),
    lambda b: fixed_steps(b, 40),
    lambda b: dpm_adaptive(b, 0.05),
    lambda b: dpm_adaptive(b, 0.01),
    lambda b: dpm_adaptive(b, 0.001),
    lambda b: gotta_go_fast_ode(b, 0.05),
    lambda b: gotta_go_fast_ode(b, 0.01),
]


#: Every section's rows, in table order.
SECTIONS: dict[str, list[Callable[[Bench], Row]]] = {
    "acceleration": ACCELERATION,
    "guidance": GUIDANCE,
    "samplers": SAMPLER_ROWS,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before each row's timed ones")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--full-size", action="store_true", help="SD1.5-size UNet and VAE at 512x512 (use a GPU)")
    parser.add_argument(
        "--section",
        choices=sorted(SECTIONS),
        action="append",
        help="run only these sections (repeatable); default: all",
    )
    parser.add_argument(
        "--flops",
        action="store_true",
        help="only print the acceleration nodes' per-call FLOP shares on SD1.5/SDXL layouts",
    )
    args = parser.parse_args(argv)
    if args.flops:
        acceleration_flops()
        return 0

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    bench = setup(args.full_size, args.steps, args.repeats, args.warmup)
    device = bench.model.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    size = "full-size SD1.5 UNet, 512x512" if args.full_size else "small SD1-layout UNet, 128x128"
    print(
        f"# {size}; {args.steps} Euler steps, CFG {bench.cfg:g} batched; {device} ({name}), "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs; dtype {bench.model.dtype}; "
        f"median of {args.repeats}"
    )
    print(f"# plain run: {bench.plain_seconds:.3f} s")
    print(
        f"| {'method':<16} | {'settings':<22} | {'s':>7} | {'speed-up':>8} | {'PSNR dB':>7} | {'rel err':>7} | "
        "evaluations |"
    )
    print(f"|{'-' * 18}|{'-' * 24}|{'-' * 8}:|{'-' * 9}:|{'-' * 8}:|{'-' * 8}:|{'-' * 13}|")
    for section in args.section or list(SECTIONS):
        for make_row in SECTIONS[section]:
            row = make_row(bench)
            print(
                f"| {row.method:<16} | {row.settings:<22} | {row.seconds:7.3f} | {row.speedup:8.2f} | "
                f"{row.psnr:7.2f} | {row.rel_err:7.4f} | {row.evaluations} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
