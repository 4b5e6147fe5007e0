"""torch.compile of the denoiser: sampling it/s eager vs compiled, and what the compile costs.

    python bench/compile_speed.py [--backend inductor] [--steps 10] [--repeats 5] [--size 64]
                                  [--full-sd15] [--threads 0] [--fresh-cache]

One UNet (SD1-layout, random weights: the project's tiny one by default, SD1.5's architecture
with ``--full-sd15``), sampled by the KSampler node (Euler, Karras, CFG batched into one UNet
call) as it is and through TorchCompileModel, in the same process. Prints the first compiled
run (which waits for the compile), the compile time the node reports, a second "prompt" (a new
TorchCompileModel run: it must compile nothing), then the best and median of interleaved
eager/compiled runs, their it/s and the ratio. Inductor keeps what it built in an on-disk cache
(``TORCHINDUCTOR_CACHE_DIR``, by default under the temp folder), so a second process compiles
the same graph much faster; ``--fresh-cache`` starts from an empty one to measure a first compile.
On a shared two-core machine use ``--threads 1``: two OpenMP threads spinning against other
processes make every step several times slower.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sampling_overhead import SD15_UNET  # noqa: E402  (the same full-size UNet)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (inductor, cudagraphs, ...)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (latent is size/8)")
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--full-sd15", action="store_true", help="SD1.5's UNet architecture (860M parameters)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--fresh-cache", action="store_true", help="an empty inductor cache (a first compile)")
    return parser.parse_args()


def build(args: argparse.Namespace) -> tuple[Any, list, list, dict, int]:
    """The MODEL, the two conditionings, the empty latent and the parameter count."""
    import torch
    from diffusers import UNet2DConditionModel

    from nodes.diffusion.latent import EmptyLatentImage
    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import DiffusionModel
    from weft_tools.tiny_models import UNET_CONFIGS

    config = SD15_UNET if args.full_sd15 else dict(UNET_CONFIGS["sd1"])
    torch.manual_seed(0)
    module = UNet2DConditionModel(**config)
    params = sum(p.numel() for p in module.parameters())
    handle = get_manager().handle(("bench", "compile-unet"), "unet", lambda: module, name="bench-unet")
    model = DiffusionModel(handle, family="sd1", name="bench")
    model.prepare()
    g = torch.Generator().manual_seed(1)
    dim = config["cross_attention_dim"]
    pos = [[torch.randn((1, 77, dim), generator=g), {"pooled_output": None}]]
    neg = [[torch.randn((1, 77, dim), generator=g), {"pooled_output": None}]]
    latent = EmptyLatentImage().run(args.size, args.size, 1)[0]
    return model, pos, neg, latent, params


def timed_sample(model: Any, args: argparse.Namespace, pos: list, neg: list, latent: dict, seed: int) -> tuple:
    """Seconds of one KSampler run, its samples and its UI reports."""
    from nodes.diffusion.sampler_nodes import KSampler

    sync = _sync(model)
    start = time.perf_counter()
    out = KSampler().run(model, seed, args.steps, args.cfg, "euler", "karras", pos, neg, latent, 1.0)
    sync()
    elapsed = time.perf_counter() - start
    outputs, ui = (out.outputs, out.ui or {}) if hasattr(out, "outputs") else (out, {})
    return elapsed, outputs[0]["samples"], ui.get("weft_report", [])


def _sync(model: Any) -> Any:
    import torch

    return torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)


def main() -> int:
    args = parse_args()
    if args.fresh_cache:
        import tempfile

        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="weft-bench-inductor-")
    import torch

    from nodes.acceleration.torch_compile import TorchCompileModel
    from nodes.diffusion.unet_compile import compiled_unet, cpp_compiler

    if args.threads:
        torch.set_num_threads(args.threads)
    model, pos, neg, latent, params = build(args)
    compiled_model = TorchCompileModel().run(model, args.backend)[0]
    eager_first, eager_samples, _ = timed_sample(model, args, pos, neg, latent, 1)
    first, samples, reports = timed_sample(compiled_model, args, pos, neg, latent, 1)
    compiled = compiled_unet(model.unet.load(), args.backend)
    second_prompt = TorchCompileModel().run(model, args.backend)[0]  # a new node run, as a new prompt makes
    second, _, second_reports = timed_sample(second_prompt, args, pos, neg, latent, 2)
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for i in range(args.repeats):
        times["eager"].append(timed_sample(model, args, pos, neg, latent, 3 + i)[0])
        times["compiled"].append(timed_sample(compiled_model, args, pos, neg, latent, 3 + i)[0])
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} | {os.cpu_count()} CPUs | load "
        f"{os.getloadavg()[0]:.1f} | torch {torch.__version__} threads={torch.get_num_threads()} | "
        f"device {model.device} {model.dtype} | C++ compiler {cpp_compiler()} | "
        f"inductor cache {os.environ.get('TORCHINDUCTOR_CACHE_DIR', 'default')} "
        f"({'fresh' if args.fresh_cache else 'as found'})"
    )
    print(
        f"unet: {params / 1e6:.1f}M params, {args.size}x{args.size} image, {args.steps} steps, cfg {args.cfg} "
        f"(batch 2 per UNet call), euler/karras, backend {args.backend}"
    )
    print(f"first eager run            : {eager_first:8.2f} s")
    print(f"first compiled run         : {first:8.2f} s  (reports: {reports})")
    print(f"compile time (node report) : {compiled.compile_seconds:8.2f} s  for {compiled.compiles} graph(s)")
    print(f"second prompt, new node run: {second:8.2f} s  new graphs compiled: {second_reports[0]['compiled']}")
    if compiled.failure:
        print(f"FELL BACK TO EAGER: {compiled.failure}")
    diff = (samples - eager_samples).abs().max().item()
    print(f"max |compiled - eager| of the first run's latents: {diff:.2e}")
    best = {k: min(v) for k, v in times.items()}
    median = {k: statistics.median(v) for k, v in times.items()}
    for key in ("eager", "compiled"):
        print(
            f"{key:9s}: best {best[key]:7.3f} s [median {median[key]:.3f}]  "
            f"{args.steps / best[key]:7.2f} it/s [{args.steps / median[key]:.2f}]"
        )
    print(
        f"speed-up compiled/eager: {best['eager'] / best['compiled']:.2f}x best, "
        f"{median['eager'] / median['compiled']:.2f}x median ({args.repeats} interleaved runs each); "
        f"the compile pays for itself after {_break_even(compiled.compile_seconds, best, args.steps)}"
    )
    return 0


def _break_even(compile_s: float, best: dict[str, float], steps: int) -> str:
    saved_per_step = (best["eager"] - best["compiled"]) / steps
    if saved_per_step <= 0:
        return "never (no step is faster)"
    return f"{compile_s / saved_per_step:.0f} steps"


if __name__ == "__main__":
    raise SystemExit(main())
