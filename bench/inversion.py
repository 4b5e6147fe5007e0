"""How long inverting a picture takes, per method, and what its round trip costs.

    python bench/inversion.py [--steps 50] [--repeats 3] [--threads N] [--full-size] [--float64]

Each row runs one inversion node of ``nodes/inversion`` on one latent (random pixels through no
VAE: the UNet dominates) and then the matching regeneration with the same prompt (SamplerCustomAdvanced,
InversionSampler, InversionSigmas), and prints the median wall time of each, the number of model
evaluations and the round trip's largest latent error. CFG 1 (one UNet call per evaluation), the
"normal" schedule.

Models are random-weight, real-architecture (the configs of ``bench/acceleration.py``): by default
SD1.5's UNet layout at 1/10 of its widths on 16x16 latents (128x128 pictures), sized for a CPU;
``--full-size`` is SD1.5's UNet (860M parameters) on 64x64 latents: a 512x512 picture, for a GPU
(where the model manager puts it in fp16). Random weights make the times real; the round-trip
errors are a stress test (a trained model's approximate DDIM inversion is far closer).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

Row = tuple[str, str, float, float, int, float]  # method, settings, invert s, regenerate s, evaluations, error
Method = tuple[str, tuple[str, Callable[[], Any]]]  # method, (settings, run the inversion node)


def _outputs(result: Any) -> tuple:
    return tuple(result.outputs) if hasattr(result, "outputs") else tuple(result)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--full-size", action="store_true", help="SD1.5's UNet at 512x512 (for a GPU)")
    parser.add_argument("--float64", action="store_true", help="also time EDICT in float64 on the CPU")
    return parser.parse_args()


def build_model(full_size: bool) -> tuple[Any, Any, list, dict]:
    """The random-weight model, its prompt and the latent to invert: (model, unet, positive, latent)."""
    import torch
    from acceleration import FULL_UNET, SMALL_UNET
    from diffusers import UNet2DConditionModel

    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import DiffusionModel

    config = FULL_UNET if full_size else SMALL_UNET
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**config).eval()
    handle = get_manager().handle(("bench.inversion", full_size), "unet", lambda: unet, name="bench-unet")
    model = DiffusionModel(handle, family="sd1", name="bench")
    g = torch.Generator().manual_seed(2)
    positive = [[torch.randn((1, 77, config["cross_attention_dim"]), generator=g), {"pooled_output": None}]]
    size = config["sample_size"]
    latent = {"samples": torch.randn((1, 4, size, size), generator=g) * 5}
    return model, unet, positive, latent


def inversion_methods(model: Any, positive: list, latent: dict, steps: int, float64: bool) -> list[Method]:
    from nodes.inversion.ddim import DDIMInversion
    from nodes.inversion.ddpm_edit_friendly import DDPMEditFriendlyInversion
    from nodes.inversion.edict import EDICTInversion

    methods: list[Method] = [
        ("DDIM", ("refine 0", lambda: DDIMInversion().run(model, positive, latent, steps, "normal", 1.0, 0, "model"))),
        ("DDIM", ("refine 2", lambda: DDIMInversion().run(model, positive, latent, steps, "normal", 1.0, 2, "model"))),
        (
            "EDICT",
            ("p 0.93", lambda: EDICTInversion().run(model, positive, latent, steps, "normal", 1.0, 0.93, "model")),
        ),
        (
            "edit-friendly DDPM",
            (
                "seed 0",
                lambda: DDPMEditFriendlyInversion().run(model, positive, latent, steps, "normal", 1.0, 0, "model"),
            ),
        ),
    ]
    if float64:
        methods.append(
            (
                "EDICT",
                (
                    "p 0.93, float64 CPU",
                    lambda: EDICTInversion().run(model, positive, latent, steps, "normal", 1.0, 0.93, "float64_cpu"),
                ),
            )
        )
    return methods


def measure(name: str, settings: str, invert: Callable[[], Any], guider: Any, latent: dict, repeats: int) -> Row:
    """Median times of the inversion and of regenerating from it, and the round trip's error."""
    from nodes.diffusion import sampler_nodes as sn
    from nodes.diffusion.noise import NoNoise
    from nodes.inversion.sampler_nodes import InversionSampler, InversionSigmas

    times, back_times, calls, error = [], [], 0, 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        result = invert()
        times.append(time.perf_counter() - start)
        noisy, inversion = _outputs(result)
        calls = int(result.ui["text"][0].split(" model evaluations")[0].rsplit(" ", 1)[-1])
        sampler = _outputs(InversionSampler().run(inversion))[0]
        sigmas = _outputs(InversionSigmas().run(inversion, 0))[0]
        start = time.perf_counter()
        back = _outputs(sn.SamplerCustomAdvanced().run(NoNoise(), guider, sampler, sigmas, noisy))[0]
        back_times.append(time.perf_counter() - start)
        error = float((back["samples"] - latent["samples"]).abs().max())
    return name, settings, statistics.median(times), statistics.median(back_times), calls, error


def report(args: argparse.Namespace, model: Any, unet: Any, size: int, rows: list[Row]) -> None:
    import torch

    device = model.device
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    print(
        f"inversion of one {size * 8}x{size * 8} picture ({size}x{size} latents), {args.steps} steps, cfg 1; "
        f"UNet {'SD1.5' if args.full_size else 'SD1.5 layout at 1/10 width'} ({sum(p.numel() for p in unet.parameters()) / 1e6:.1f}M "
        f"parameters), {device} {gpu} {model.dtype}, torch {torch.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, threads {torch.get_num_threads()}, median of {args.repeats}"
    )
    print("| method | settings | invert s | evaluations | ms / evaluation | regenerate s | round-trip max error |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, settings, seconds, back, calls, error in rows:
        print(
            f"| {name} | {settings} | {seconds:.2f} | {calls} | {1000 * seconds / max(calls, 1):.1f} | {back:.2f} "
            f"| {error:.2e} |"
        )


def main() -> int:
    args = parse_args()
    import torch

    from nodes.diffusion import sampler_nodes as sn

    if args.threads:
        torch.set_num_threads(args.threads)
    model, unet, positive, latent = build_model(args.full_size)
    methods = inversion_methods(model, positive, latent, args.steps, args.float64)
    guider = _outputs(sn.BasicGuider().run(model, positive))[0]
    _outputs(methods[0][1][1]())  # warm-up: loading, allocations, kernel choices
    rows = [measure(name, settings, invert, guider, latent, args.repeats) for name, (settings, invert) in methods]
    report(args, model, unet, latent["samples"].shape[-1], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
