"""Sampling overhead: Weft's KSampler vs a bare diffusers UNet + scheduler loop.

    python bench/sampling_overhead.py [--steps 20] [--repeats 15] [--size 64] [--full-sd15]

Both run the same UNet (SD1-layout, random weights, tiny by default), the same scheduler
(Euler, Karras sigmas), the same steps, CFG batched into one UNet call, on the same device.
The bare loop is what a diffusers pipeline's inner loop does and nothing else; Weft's side
is the KSampler node (schedule, noise, guider, loop, latent scaling), then the same through
the engine with progress events and a JPEG preview every step. Prints the medians and the
per-step overhead ratio. ``--full-sd15`` uses SD1.5's UNet architecture (860M parameters,
random weights) at 512x512 and also prints it/s; it wants a GPU.
"""

from __future__ import annotations

import argparse
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

TINY_UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(32, 64),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=8,
    norm_num_groups=32,
)
SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)


@dataclass
class Setup:
    """What all three contenders share, so they differ only in the code around the UNet."""

    model: Any  # DiffusionModel
    unet: Any  # the prepared UNet module
    params: int
    size: int
    pos: Any
    neg: Any
    positive: list
    negative: list
    latent: dict

    @property
    def device(self) -> Any:
        return self.model.device

    @property
    def dtype(self) -> Any:
        return self.model.dtype


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (latent is size/8)")
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--full-sd15", action="store_true", help="SD1.5-size UNet at 512x512 (use a GPU)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return parser.parse_args()


def build_setup(args: argparse.Namespace) -> Setup:
    import torch
    from diffusers import UNet2DConditionModel

    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import DiffusionModel

    try:  # the project's tiny SD1 UNet, the one the tests use
        from weft_tools.tiny_models import UNET_CONFIGS

        tiny = dict(UNET_CONFIGS["sd1"])
    except ImportError:
        tiny = TINY_UNET
    config = SD15_UNET if args.full_sd15 else tiny
    size = 512 if args.full_sd15 else args.size
    torch.manual_seed(0)
    unet_module = UNet2DConditionModel(**config)
    params = sum(p.numel() for p in unet_module.parameters())
    handle = get_manager().handle(("bench", "unet"), "unet", lambda: unet_module, name="bench-unet")
    model = DiffusionModel(handle, family="sd1", name="bench")
    unet = model.prepare()
    dim = config["cross_attention_dim"]
    g = torch.Generator().manual_seed(1)
    pos, neg = torch.randn((1, 77, dim), generator=g), torch.randn((1, 77, dim), generator=g)
    return Setup(
        model=model,
        unet=unet,
        params=params,
        size=size,
        pos=pos,
        neg=neg,
        positive=[[pos, {"pooled_output": None}]],
        negative=[[neg, {"pooled_output": None}]],
        latent={"samples": torch.zeros((1, 4, size // 8, size // 8))},
    )


def make_sync(device: Any) -> Callable[[], None]:
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    return sync


def bare_loop(s: Setup, args: argparse.Namespace) -> Callable[[], None]:
    """What a diffusers pipeline's inner loop does, and nothing else."""
    import torch
    from diffusers import EulerDiscreteScheduler

    from nodes.diffusion.types import default_scheduler_config

    sched_config = default_scheduler_config("sd1", "epsilon")
    unet, device, dtype, pos, neg, latent = s.unet, s.device, s.dtype, s.pos, s.neg, s.latent
    sync = make_sync(device)

    def bare() -> None:
        scheduler = EulerDiscreteScheduler.from_config({**sched_config, "use_karras_sigmas": True})
        scheduler.set_timesteps(args.steps, device=device)
        cond = torch.cat([neg, pos]).to(device, dtype)
        x = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(1)).to(device)
        x = x * scheduler.init_noise_sigma
        with torch.inference_mode():
            for t in scheduler.timesteps:
                x_in = scheduler.scale_model_input(torch.cat([x, x]), t)
                out = unet(x_in.to(dtype), t, encoder_hidden_states=cond, return_dict=False)[0].float()
                u, c = out.chunk(2)
                x = scheduler.step(u + args.cfg * (c - u), t, x, return_dict=False)[0]
        (x / 0.18215).cpu()
        sync()

    return bare


def ksampler_node(s: Setup, args: argparse.Namespace) -> Callable[[], None]:
    from nodes.diffusion import sampler_nodes as sn

    model, positive, negative, latent = s.model, s.positive, s.negative, s.latent
    sync = make_sync(s.device)

    def weft() -> None:
        sn.KSampler().run(model, 1, args.steps, args.cfg, "euler", "karras", positive, negative, latent, 1.0)
        sync()

    return weft


def engine_run(s: Setup, args: argparse.Namespace) -> Callable[[], None]:
    """The KSampler through the executor, with progress events and a preview every step."""
    from engine import Executor, OutputCache
    from nodes.api import Node, Output
    from nodes.registry import builtin_registry

    model, positive, negative, size = s.model, s.positive, s.negative, s.size
    sync = make_sync(s.device)

    class BenchModel(Node):
        name = "BenchModel"
        outputs = (Output("MODEL"), Output("CONDITIONING"), Output("CONDITIONING"))

        def run(self):
            return model, positive, negative

    registry = builtin_registry()
    registry.register(BenchModel, pack="bench")
    executor = Executor(registry, OutputCache(enabled=False))  # every run samples afresh
    seed = [0]

    def weft_engine() -> None:
        seed[0] += 1
        prompt = {
            "1": {"class_type": "BenchModel", "inputs": {}},
            "2": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
            "3": {
                "class_type": "KSampler",
                "inputs": {
                    "model": ["1", 0],
                    "seed": seed[0],
                    "steps": args.steps,
                    "cfg": args.cfg,
                    "sampler_name": "euler",
                    "scheduler": "karras",
                    "positive": ["1", 1],
                    "negative": ["1", 2],
                    "latent_image": ["2", 0],
                    "denoise": 1.0,
                },
            },
        }
        events = []
        executor.execute_sync(
            f"b{seed[0]}",
            prompt,
            ["3"],
            order=["1", "2", "3"],
            emit=lambda e, d: events.append(e),
            extra_data={"preview_method": "auto"},
        )  # previews are off unless asked for
        sync()
        assert events.count("progress") == args.steps and events.count("preview") == args.steps, events

    return weft_engine


def time_interleaved(runs: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    """Alternate the contenders on every repetition so drift (other load, clocks) hits them alike."""
    for fn in runs.values():
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for key, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return times


def report(s: Setup, args: argparse.Namespace, times: dict[str, list[float]]) -> None:
    import torch

    # The minimum is the least disturbed run (other processes only ever add time); the median
    # is printed beside it to show how noisy the machine was.
    t_bare, t_weft, t_engine = (min(times[k]) for k in ("bare", "weft", "engine"))
    m_bare, m_weft, m_engine = (statistics.median(times[k]) for k in ("bare", "weft", "engine"))
    device, size = s.device, s.size
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} | {os.cpu_count()} CPUs | torch "
        f"{torch.__version__} threads={torch.get_num_threads()} | device {device} {s.dtype}"
    )
    if device.type == "cuda":
        print(f"gpu: {torch.cuda.get_device_name()}")
    print(
        f"unet: {s.params / 1e6:.2f}M params, {size}x{size} image, {args.steps} steps, cfg {args.cfg}, euler/karras, "
        f"best of {args.repeats} interleaved runs (median in brackets)"
    )
    print(
        f"bare diffusers loop          : {t_bare * 1000:8.1f} ms [{m_bare * 1000:.1f}]  "
        f"({t_bare / args.steps * 1000:.2f} ms/step, {args.steps / t_bare:.2f} it/s)"
    )
    print(
        f"weft KSampler node           : {t_weft * 1000:8.1f} ms [{m_weft * 1000:.1f}]  "
        f"({t_weft / args.steps * 1000:.2f} ms/step)  overhead per step {100 * (t_weft / t_bare - 1):+.2f}% "
        f"[{100 * (m_weft / m_bare - 1):+.2f}%]"
    )
    print(
        f"weft engine, progress+preview: {t_engine * 1000:8.1f} ms [{m_engine * 1000:.1f}]  "
        f"({t_engine / args.steps * 1000:.2f} ms/step)  overhead per step {100 * (t_engine / t_bare - 1):+.2f}% "
        f"[{100 * (m_engine / m_bare - 1):+.2f}%]  (a JPEG preview every step)"
    )


def main() -> int:
    args = parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    setup = build_setup(args)
    runs = {"bare": bare_loop(setup, args), "weft": ksampler_node(setup, args), "engine": engine_run(setup, args)}
    report(setup, args, time_interleaved(runs, args.repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
