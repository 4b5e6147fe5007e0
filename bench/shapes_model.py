"""The built-in shapes model on a fresh install: time to the first picture, and one generation.

    python bench/shapes_model.py [--repeats 10] [--threads 0]

1. *first picture*: starts ``python main.py`` in its own process on an empty base directory
   (a fresh install: only the built-in model), waits until it answers, then queues the
   canvas's default workflow (weft-shapes, 64x64, 20 Euler steps, CFG 5) and waits for its
   image. Reported: process start to server ready, and process start to the picture saved
   (model loading included), i.e. what a user waits for after ``python main.py`` + Queue,
   less the browser's own page load.
2. *one generation*: the same prompt with a new seed on the warm server (the engine re-runs
   KSampler, VAEDecode and SaveImage), against a bare diffusers ``StableDiffusionPipeline``
   built from the same weights (loaded through Weft's single-file loader), Euler, 20 steps,
   CFG 5, 64x64, in this process. Best of ``--repeats`` (median in brackets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CAPTION = "a large red circle in the centre, blue background"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=60) as response:
        return json.load(response)


async def queue_and_wait(session: Any, ws: Any, url: str, prompt: dict, client_id: str) -> float:
    """Queue ``prompt`` and wait for its ``execution_success`` on the WebSocket.

    Waiting on the socket rather than polling /history matters on a 2-core machine: a client
    polling every few milliseconds takes CPU from the worker it is timing (an earlier version
    of this script measured ~0.5 s of its own polling that way).
    """
    start = time.perf_counter()
    async with session.post(url + "/prompt", json={"prompt": prompt, "client_id": client_id}) as response:
        prompt_id = (await response.json())["prompt_id"]
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            continue  # binary preview frames
        event = json.loads(message.data)
        if event.get("data", {}).get("prompt_id") != prompt_id:
            continue
        if event["type"] == "execution_success":
            return time.perf_counter() - start
        if event["type"] in ("execution_error", "execution_interrupted"):
            raise RuntimeError(f"prompt failed: {event}")
    raise RuntimeError("the WebSocket closed before the prompt finished")


def default_prompt(seed: int) -> dict:
    from weft_tools.shapes.evaluate import txt2img_prompt

    return txt2img_prompt(CAPTION, [seed], "bench")


def server_figures(repeats: int, threads: int) -> tuple[float, float, list[float]]:
    base = Path(tempfile.mkdtemp(prefix="weft-fresh-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--base-directory", str(base), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                request(url + "/system_stats")
                break
            except OSError:
                time.sleep(0.01)
        ready = time.perf_counter() - start

        async def session_figures() -> tuple[float, list[float]]:
            async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws?clientId=bench") as ws:
                await queue_and_wait(session, ws, url, default_prompt(0), "bench")
                first = time.perf_counter() - start
                warm = [
                    await queue_and_wait(session, ws, url, default_prompt(seed), "bench")
                    for seed in range(1, repeats + 1)
                ]
                return first, warm

        first, warm = asyncio.run(session_figures())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return ready, first, warm


def engine_figures(repeats: int, threads: int) -> list[float]:
    """The same prompt through Weft's engine in this process (no server, no HTTP), for the split
    between the engine's cost and the server's."""
    import torch

    from engine import Executor, validate_prompt
    from nodes.paths import configure
    from nodes.registry import builtin_registry

    if threads:
        torch.set_num_threads(threads)
    base = Path(tempfile.mkdtemp(prefix="weft-bench-"))
    for name in ("input", "output", "temp", "user"):
        (base / name).mkdir()
    configure(base)
    executor = Executor(builtin_registry())
    times = []
    for seed in range(repeats + 1):
        prompt = default_prompt(seed)
        outputs = [key for key, node in prompt.items() if node["class_type"] == "SaveImage"]
        checked = validate_prompt(prompt, executor.registry, outputs)
        start = time.perf_counter()
        executor.execute_sync(f"bench-{seed}", checked.prompt, outputs, order=checked.order)
        times.append(time.perf_counter() - start)
    return times[1:]


def diffusers_figures(repeats: int, threads: int) -> list[float]:
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from nodes.diffusion.clip_text import make_tokenizer
    from nodes.diffusion.loaders import load_checkpoint
    from nodes.diffusion.types import default_scheduler_config
    from nodes.paths import BUILTIN_MODELS, configure
    from weft_tools.shapes.evaluate import CHECKPOINT

    if threads:
        torch.set_num_threads(threads)
    configure(Path(tempfile.mkdtemp(prefix="weft-bench-")))
    model, clip, vae = load_checkpoint(BUILTIN_MODELS / "checkpoints" / CHECKPOINT)
    unet = model.unet.load().float()
    text_encoder = clip.parts[0].handle.load().float()
    autoencoder = vae.handle.load().float()
    scheduler = EulerDiscreteScheduler.from_config(default_scheduler_config("sd1", "epsilon"))
    pipe = StableDiffusionPipeline(
        vae=autoencoder,
        text_encoder=text_encoder,
        tokenizer=make_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    times = []
    for seed in range(repeats + 1):
        start = time.perf_counter()
        pipe(
            CAPTION,
            negative_prompt="",
            height=64,
            width=64,
            num_inference_steps=20,
            guidance_scale=5.0,
            generator=torch.Generator().manual_seed(seed),
            output_type="pil",
        )
        times.append(time.perf_counter() - start)
    return times[1:]  # the first call warms up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ready, first, warm = server_figures(args.repeats, args.threads)
    in_process = engine_figures(args.repeats, args.threads)
    bare = diffusers_figures(args.repeats, args.threads)
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"fresh install: server ready {ready:.2f} s, first picture saved {first:.2f} s after `python main.py`")
    print(
        f"one 20-step 64x64 generation: Weft (HTTP, KSampler + VAEDecode + SaveImage) "
        f"{min(warm) * 1000:.0f} ms (median {statistics.median(warm) * 1000:.0f}); "
        f"Weft engine in-process {min(in_process) * 1000:.0f} ms (median {statistics.median(in_process) * 1000:.0f}); "
        f"bare diffusers pipeline {min(bare) * 1000:.0f} ms (median {statistics.median(bare) * 1000:.0f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
