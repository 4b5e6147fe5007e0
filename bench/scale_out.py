"""Scale-out on Ray against the local backend: throughput and per-prompt dispatch overhead.

Each configuration is a real ``python main.py`` (``--cpu``) driven over HTTP and a WebSocket:

* ``local``: the default backend (one worker process);
* ``ray 1`` / ``ray 2``: ``--backend ray --ray-address local`` with 1 or 2 worker actors of
  ``--cpus-per-worker`` CPUs (a Ray instance started in the server process).

Per configuration:

* *latency*: cheap prompts (PrimitiveString -> PreviewAny) one at a time; the median POST to
  done-signal time. For a Ray configuration the local server (kept running) takes turns with it,
  prompt by prompt; the Ray median minus that local median is the pool's per-prompt dispatch
  overhead (the dispatcher, the actor calls, the slot's thread);
* *cheap throughput*: ``--burst`` cheap prompts queued at once, prompts finished per second;
* *tiny-model throughput*: ``--images`` txt2img prompts of the tiny SD1 model (64 px, 4 steps)
  queued at once, alternating two checkpoint files, after a warm-up of two images per worker (so
  the figure is sampling, not model loads).

With ``--gpu`` (on a machine with CUDA) the tiny-model case runs without ``--cpu``, ``ray 1`` with
``--ray-gpus-per-worker 1``: one worker against the local backend on the same GPU.

    python bench/scale_out.py [--latency 60] [--burst 200] [--images 16] [--gpu]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.main_process import MainProcess  # noqa: E402

CHECKPOINTS = ("tiny-a.safetensors", "tiny-b.safetensors")


def cheap(value: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": value}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }


def txt2img(ckpt: str, seed: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": f"a red fox {seed}", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": seed,
                "steps": 4,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "bench"}},
    }


class Client:
    """One WebSocket client: queues prompts, resolves each one's done signal."""

    def __init__(self, url: str) -> None:
        self.url, self.client_id = url, uuid.uuid4().hex
        self.done: dict[str, asyncio.Future[float]] = {}

    async def __aenter__(self) -> Client:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(f"{self.url}/ws?clientId={self.client_id}", max_msg_size=0)
        self.reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.reader.cancel()
        await self.ws.close()
        await self.session.close()

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            data = event.get("data") or {}
            if event["type"] == "executing" and isinstance(data, dict) and data.get("node") is None:
                self._future(data.get("prompt_id"), loop).set_result(time.perf_counter())

    def _future(self, prompt_id: Any, loop: asyncio.AbstractEventLoop) -> asyncio.Future[float]:
        return self.done.setdefault(prompt_id, loop.create_future())

    async def queue(self, prompt: dict[str, Any]) -> str:
        body = {"prompt": prompt, "client_id": self.client_id}
        async with self.session.post(self.url + "/prompt", json=body) as response:
            answer = await response.json()
            assert response.status == 200, answer
        self._future(answer["prompt_id"], asyncio.get_running_loop())
        return answer["prompt_id"]


async def latency(urls: list[str], count: int) -> list[float]:
    """Median ms from POST /prompt to the done signal per server, one cheap prompt at a time,
    the servers taking turns (so a change in the machine's load hits them alike)."""
    times: list[list[float]] = [[] for _ in urls]
    clients = [Client(url) for url in urls]
    for client in clients:
        await client.__aenter__()
    try:
        for _ in range(count):
            for client, measured in zip(clients, times, strict=True):
                started = time.perf_counter()
                prompt_id = await client.queue(cheap(uuid.uuid4().hex))
                measured.append(await asyncio.wait_for(client.done[prompt_id], 120) - started)
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)
    return [1000 * statistics.median(measured[3:]) for measured in times]  # the first ones warm up


async def throughput(url: str, prompts: list[dict[str, Any]], timeout: float = 1800) -> float:
    """Prompts finished per second, all queued at once."""
    async with Client(url) as client:
        started = time.perf_counter()
        ids = [await client.queue(p) for p in prompts]
        ends = await asyncio.wait_for(asyncio.gather(*(client.done[i] for i in ids)), timeout)
    return len(prompts) / (max(ends) - started)


def ready(server: MainProcess, ray: bool, timeout: float = 600) -> float:
    """Seconds until every worker is idle (the Ray pool starts after the server answers)."""
    started = time.monotonic()
    if ray:

        def idle() -> bool:
            workers = server.request("GET", "/system_stats")[1]["worker"].get("workers") or []
            return bool(workers) and all(w["state"] == "idle" for w in workers)

        server.wait(idle, "the Ray workers", timeout)
    return time.monotonic() - started


def build_models(base: Path) -> None:
    folder = base / "models" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    prebuilt = Path(os.environ.get("WEFT_TINY_MODELS", "/nonexistent")) / "checkpoints" / "tiny-sd1.safetensors"
    if prebuilt.exists():
        shutil.copyfile(prebuilt, folder / CHECKPOINTS[0])
    else:
        code = (
            "import sys; from pathlib import Path; from weft_tools import tiny_models as t; "
            "t.write_single_file('sd1', t.build_family('sd1'), Path(sys.argv[1]))"
        )
        subprocess.run([sys.executable, "-c", code, str(folder / CHECKPOINTS[0])], cwd=ROOT, check=True)
    shutil.copyfile(folder / CHECKPOINTS[0], folder / CHECKPOINTS[1])


def start(name: str, flags: list[str], base: Path) -> tuple[MainProcess, float]:
    """A server of one configuration, and the seconds until every worker was ready."""
    home = base / name.replace(" ", "-")
    home.mkdir()
    (home / "models").symlink_to(base / "models", target_is_directory=True)
    started = time.monotonic()
    server = MainProcess(home, *flags, "--verbose", "WARNING")
    ready(server, "--backend" in flags)
    return server, time.monotonic() - started


def stop(server: MainProcess) -> None:
    server.proc.send_signal(2)
    try:
        server.proc.wait(60)
    except subprocess.TimeoutExpired:
        pass
    server.kill()


async def measure(
    name: str, server: MainProcess, local: MainProcess | None, args: argparse.Namespace
) -> dict[str, Any]:
    """The figures of one configuration; its latency in turns with the local server's."""
    result: dict[str, Any] = {"name": name}
    if local is None:
        result["latency_ms"] = (await latency([server.url], args.latency))[0]
    else:
        result["local_ms"], result["latency_ms"] = await latency([local.url, server.url], args.latency)
    result["cheap_per_s"] = await throughput(server.url, [cheap(uuid.uuid4().hex) for _ in range(args.burst)])
    # each worker loads both checkpoints first (the load is not what is measured here)
    workers = max(1, len(server.request("GET", "/system_stats")[1]["worker"].get("workers") or []))
    await throughput(server.url, [txt2img(CHECKPOINTS[i % 2], 10_000 + i) for i in range(2 * workers)])
    images = [txt2img(CHECKPOINTS[i % 2], i) for i in range(args.images)]
    result["images_per_s"] = await throughput(server.url, images)
    return result


def configurations(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    device = [] if args.gpu else ["--cpu"]
    ray = ["--backend", "ray", "--ray-address", "local", "--ray-cpus-per-worker", str(args.cpus_per_worker)]
    if args.gpu:
        return [("local", device), ("ray 1", [*device, *ray, "--ray-workers", "1", "--ray-gpus-per-worker", "1"])]
    return [
        ("local", device),
        ("ray 1", [*device, *ray, "--ray-workers", "1"]),
        ("ray 2", [*device, *ray, "--ray-workers", "2"]),
    ]


async def main_async(args: argparse.Namespace) -> None:
    # the same torch threads everywhere (Ray gives an actor as many as its CPUs): the local
    # worker would otherwise run 2 OpenMP threads, which a loaded machine makes far slower
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory(prefix="weft-scale-out-") as tmp:
        base = Path(tmp)
        build_models(base)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load}; {args.threads} torch thread(s)"
        )
        print(f"{'config':<8} {'startup s':>9} {'latency ms':>10} {'cheap /s':>9} {'images /s':>9}")
        (local_name, local_flags), *pools = configurations(args)
        local, startup = start(local_name, local_flags, base)
        try:
            results = [{**await measure(local_name, local, None, args), "startup_s": startup}]
            show(results[-1])
            for name, flags in pools:
                server, startup = start(name, flags, base)
                try:
                    results.append({**await measure(name, server, local, args), "startup_s": startup})
                finally:
                    stop(server)
                show(results[-1])
        finally:
            stop(local)
        for r in results[1:]:
            overhead = r["latency_ms"] - r["local_ms"]
            print(
                f"dispatch overhead of {r['name']}: {overhead:+.2f} ms per prompt over local ({r['local_ms']:.2f} ms)"
            )
        print("load average at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))


def show(r: dict[str, Any]) -> None:
    print(
        f"{r['name']:<8} {r['startup_s']:>9.1f} {r['latency_ms']:>10.2f} {r['cheap_per_s']:>9.1f} "
        f"{r['images_per_s']:>9.2f}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=int, default=60, help="cheap prompts run one at a time, per server")
    parser.add_argument("--burst", type=int, default=200, help="cheap prompts queued at once")
    parser.add_argument("--images", type=int, default=16, help="tiny-model prompts queued at once")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every worker (OMP_NUM_THREADS)")
    parser.add_argument("--gpu", action="store_true", help="local vs one Ray worker on the GPU")
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
