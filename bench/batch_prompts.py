"""Cross-prompt batching (``--batch-prompts``): 8 txt2img prompts that differ in seed and text,
sampled as one batch against one by one, in the same run.

    python bench/batch_prompts.py [--prompts 8] [--steps 20] [--size 64] [--repeats 3]
                                  [--sd15-width] [--models DIR] [--threads N]

Each prompt is a whole txt2img graph (checkpoint loader, two CLIPTextEncode, EmptyLatentImage,
KSampler euler/karras with CFG, VAEDecode, SaveImage writing its PNG). "one by one" runs the 8
through ``Executor.execute`` after each other, as the worker does without the flag; "batched"
runs them through ``Executor.execute_group``, as the worker does with ``--batch-prompts 8``
(each prompt its own run, the sampler and the decoder called once for all). Every repetition
uses fresh seeds, so no sampler result comes from the cache; the loader and the text
encodings are cached alike for both (a warm-up run fills them). The two alternate, and the
medians are printed as images per second, with the speed-up and the largest difference
between a prompt's batched latent and its one-by-one latent (relative to the latent's scale).

The model is the project's tiny SD1 checkpoint (``weft_tools.tiny_models``; ``--models`` or
``WEFT_TINY_MODELS`` reuses a built folder), or with ``--sd15-width`` a random-weight UNet of
SD1.5's architecture (860M parameters; text embeddings drawn from the text, the tiny VAE).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXTS = [
    "a red fox in the snow",
    "a lighthouse at dusk",
    "a bowl of oranges",
    "a (green:1.2) forest path",
    "an old bicycle against a wall",
    "a cat asleep on a windowsill",
    "mountains above the clouds",
    "a sailing boat on a calm sea",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (latent is size/8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each mode (they alternate)")
    parser.add_argument("--sd15-width", action="store_true", help="a random UNet of SD1.5's architecture")
    parser.add_argument("--models", type=Path, default=None, help="a folder built by weft_tools.tiny_models")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return parser.parse_args()


def models_dir(args: argparse.Namespace) -> Path:
    found = args.models or (Path(os.environ["WEFT_TINY_MODELS"]) if os.environ.get("WEFT_TINY_MODELS") else None)
    if found is not None and (found / "checkpoints" / "tiny-sd1.safetensors").exists():
        return found
    from weft_tools.tiny_models import build_all

    root = Path(tempfile.mkdtemp(prefix="weft-bench-models-"))
    build_all(root, families=("sd1",))
    return root


def bench_nodes(sd15: bool) -> list[type]:
    """With ``--sd15-width``: a random SD1.5-architecture MODEL and text embeddings of its width."""
    from nodes.api import Input, Node, Output, String

    class BenchSD15(Node):
        inputs = (Input("model", "MODEL"),)
        outputs = (Output("MODEL"),)
        made: Any = None

        def run(self, model: Any) -> tuple:
            if BenchSD15.made is None:
                BenchSD15.made = sd15_model()
            return (BenchSD15.made,)

    class BenchText(Node):
        inputs = (String("text"), Input("clip", "CLIP"))
        outputs = (Output("CONDITIONING"),)

        def run(self, text: str, clip: Any) -> tuple:
            import torch

            generator = torch.Generator().manual_seed(zlib.crc32(text.encode()))
            return ([[torch.randn((1, 77, 768), generator=generator), {}]],)

    return [BenchSD15, BenchText] if sd15 else []


def sd15_model() -> Any:
    import torch
    from diffusers import UNet2DConditionModel

    from bench.sampling_overhead import SD15_UNET
    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import DiffusionModel

    torch.manual_seed(0)
    module = UNet2DConditionModel(**SD15_UNET)
    handle = get_manager().handle(("bench", "sd15-unet"), "unet", lambda: module, name="bench-sd15")
    return DiffusionModel(handle, family="sd1", name="bench-sd15")


def graph(seed: int, text: str, args: argparse.Namespace) -> dict[str, Any]:
    encode = "BenchText" if args.sd15_width else "CLIPTextEncode"
    prompt: dict[str, Any] = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd1.safetensors"}},
        "2": {"class_type": encode, "inputs": {"text": text, "clip": ["1", 1]}},
        "3": {"class_type": encode, "inputs": {"text": "blurry, lowres", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": args.size, "height": args.size, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["10", 0] if args.sd15_width else ["1", 0],
                "seed": seed,
                "steps": args.steps,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "karras",
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "bench/p"}},
    }
    if args.sd15_width:
        prompt["10"] = {"class_type": "BenchSD15", "inputs": {"model": ["1", 0]}}
    return prompt


class Runner:
    """The executor and the prompts; keeps every run's sampled latents for the comparison."""

    def __init__(self, args: argparse.Namespace) -> None:
        from engine import Executor
        from nodes.registry import builtin_registry

        self.args = args
        registry = builtin_registry()
        for cls in bench_nodes(args.sd15_width):
            registry.register(cls, pack="bench")
        self.registry = registry
        self.executor = Executor(registry)
        self.seed = 1000
        self.latents: dict[tuple[str, int], Any] = {}

    def prompts(self) -> list[tuple[str, dict[str, Any], list[str], list[str]]]:
        from engine import normalise_prompt, validate_prompt

        out = []
        for index in range(self.args.prompts):
            self.seed += 1
            checked = validate_prompt(
                normalise_prompt(graph(self.seed, TEXTS[index % len(TEXTS)], self.args)), self.registry
            )
            assert checked.ok, checked.node_errors
            out.append((f"p{self.seed}", checked.prompt, checked.outputs, checked.order))
        return out

    def one_by_one(self) -> float:
        prompts = self.prompts()
        started = time.perf_counter()
        for prompt_id, prompt, outputs, order in prompts:
            result = self.executor.execute_sync(prompt_id, prompt, outputs, order=order, announce_end=False)
            assert result.status_str == "success", result.error
        return time.perf_counter() - started

    def batched(self) -> float:
        from engine.batch import GroupMember

        members = [GroupMember(pid, prompt, outputs, order=order) for pid, prompt, outputs, order in self.prompts()]
        started = time.perf_counter()
        results = asyncio.run(self.executor.execute_group(members))
        elapsed = time.perf_counter() - started
        for result in results:
            assert result.status_str == "success", result.error
            assert any(m[0] == "execution_batched" for m in result.messages), "the prompts were not batched"
        return elapsed

    def agreement(self) -> float:
        """Largest relative difference between a prompt's latent batched and alone."""
        from engine.batch import GroupMember

        prompts = self.prompts()
        alone = []
        for _, prompt, _, _ in prompts:
            alone.append(self.sample(prompt))
        self.executor.cache.clear()
        members = [GroupMember(pid, p, ["5"], order=o) for pid, p, _, o in prompts]
        asyncio.run(self.executor.execute_group(members))
        worst = 0.0
        for (_, prompt, _, _), want in zip(prompts, alone, strict=True):
            got = self.cached_latent(prompt)
            worst = max(worst, float((got - want).abs().max() / want.abs().max()))
        return worst

    def sample(self, prompt: dict[str, Any]) -> Any:
        self.executor.execute_sync("alone", prompt, ["5"], announce_end=False)
        return self.cached_latent(prompt)

    def cached_latent(self, prompt: dict[str, Any]) -> Any:
        from engine.signature import compute_signatures
        from engine.validation import validate_prompt

        order = validate_prompt(prompt, self.registry, ["5"]).order
        signature = compute_signatures(prompt, order, self.registry)["5"]
        return self.executor.cache.get(signature).outputs[0][0]["samples"]


def main() -> None:
    args = parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import nodes.paths as paths_module

    base = Path(tempfile.mkdtemp(prefix="weft-bench-batch-"))
    for name in ("input", "output", "temp", "user"):
        (base / name).mkdir()
    with paths_module.using(paths_module.Paths.at(base, models_dir=models_dir(args), create=False)):
        runner = Runner(args)
        runner.one_by_one()  # warm-up: the loader, the text encodings, the UNet's first call
        runner.batched()
        times: dict[str, list[float]] = {"one by one": [], "batched": []}
        for _ in range(args.repeats):
            times["one by one"].append(runner.one_by_one())
            times["batched"].append(runner.batched())
        worst = runner.agreement()
    model = "SD1.5-width random UNet (860M)" if args.sd15_width else "tiny SD1 checkpoint"
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, ")
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"{args.prompts} prompts, {model}, {args.size}x{args.size}, {args.steps} steps euler/karras, CFG 7")
    rates = {}
    for mode, runs in times.items():
        seconds = statistics.median(runs)
        rates[mode] = args.prompts / seconds
        spread = ", ".join(f"{r:.2f}" for r in runs)
        print(f"  {mode:11s} {seconds:8.2f} s for {args.prompts} images = {rates[mode]:.3g} images/s  ({spread} s)")
    print(f"  speed-up    {rates['batched'] / rates['one by one']:.2f}x")
    print(f"  batched vs alone: largest latent difference {worst:.1e} of the latent's scale")


if __name__ == "__main__":
    main()
