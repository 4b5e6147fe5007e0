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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TINY_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 64),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
)
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (latent is size/8)")
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--full-sd15", action="store_true", help="SD1.5-size UNet at 512x512 (use a GPU)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel

    from engine import Executor, OutputCache
    from nodes.api import Node, Output
    from nodes.diffusion import sampler_nodes as sn
    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import DiffusionModel, default_scheduler_config
    from nodes.registry import builtin_registry

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
    device, dtype = model.device, model.dtype
    dim = config["cross_attention_dim"]
    g = torch.Generator().manual_seed(1)
    pos, neg = torch.randn((1, 77, dim), generator=g), torch.randn((1, 77, dim), generator=g)
    positive, negative = [[pos, {"pooled_output": None}]], [[neg, {"pooled_output": None}]]
    latent = {"samples": torch.zeros((1, 4, size // 8, size // 8))}
    sched_config = default_scheduler_config("sd1", "epsilon")

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

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

    def weft() -> None:
        sn.KSampler().run(model, 1, args.steps, args.cfg, "euler", "karras", positive, negative, latent, 1.0)
        sync()

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
            "3": {"class_type": "KSampler", "inputs": {
                "model": ["1", 0], "seed": seed[0], "steps": args.steps, "cfg": args.cfg, "sampler_name": "euler",
                "scheduler": "karras", "positive": ["1", 1], "negative": ["1", 2], "latent_image": ["2", 0],
                "denoise": 1.0}},
        }
        events = []
        executor.execute_sync(f"b{seed[0]}", prompt, ["3"], order=["1", "2", "3"], emit=lambda e, d: events.append(e),
                              extra_data={"preview_method": "auto"})  # previews are off unless asked for
        sync()
        assert events.count("progress") == args.steps and events.count("preview") == args.steps, events

    # Alternate the three on every repetition so drift (other load, clocks) hits them alike.
    runs = {"bare": bare, "weft": weft, "engine": weft_engine}
    for fn in runs.values():
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for key, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    # The minimum is the least disturbed run (other processes only ever add time); the median
    # is printed beside it to show how noisy the machine was.
    t_bare, t_weft, t_engine = (min(times[k]) for k in runs)
    m_bare, m_weft, m_engine = (statistics.median(times[k]) for k in runs)

    print(f"machine: {platform.machine()} {platform.processor() or ''} | {os.cpu_count()} CPUs | torch "
          f"{torch.__version__} threads={torch.get_num_threads()} | device {device} {dtype}")
    if device.type == "cuda":
        print(f"gpu: {torch.cuda.get_device_name()}")
    print(f"unet: {params / 1e6:.2f}M params, {size}x{size} image, {args.steps} steps, cfg {args.cfg}, euler/karras, "
          f"best of {args.repeats} interleaved runs (median in brackets)")
    print(f"bare diffusers loop          : {t_bare * 1000:8.1f} ms [{m_bare * 1000:.1f}]  "
          f"({t_bare / args.steps * 1000:.2f} ms/step, {args.steps / t_bare:.2f} it/s)")
    print(f"weft KSampler node           : {t_weft * 1000:8.1f} ms [{m_weft * 1000:.1f}]  "
          f"({t_weft / args.steps * 1000:.2f} ms/step)  overhead per step {100 * (t_weft / t_bare - 1):+.2f}% "
          f"[{100 * (m_weft / m_bare - 1):+.2f}%]")
    print(f"weft engine, progress+preview: {t_engine * 1000:8.1f} ms [{m_engine * 1000:.1f}]  "
          f"({t_engine / args.steps * 1000:.2f} ms/step)  overhead per step {100 * (t_engine / t_bare - 1):+.2f}% "
          f"[{100 * (m_engine / m_bare - 1):+.2f}%]  (a JPEG preview every step)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
