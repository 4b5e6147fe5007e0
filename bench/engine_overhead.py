"""Engine overhead through the real HTTP + WebSocket API.

For chains and wide graphs of N StringConcatenate nodes it prints the end-to-end time per
executed node (POST /prompt until the `executing: null` done signal), uncached (a unique
head string each run, so every node runs) and fully cached (the same prompt again), plus
the time to validate a 1000-node prompt. Shapes:

* chain: PrimitiveString -> N StringConcatenate in a line -> PreviewAny  (N + 2 nodes)
* wide:  PrimitiveString -> N sibling StringConcatenate -> one PreviewAny each  (2N + 1 nodes)
* base:  PrimitiveString -> PreviewAny, the fixed cost of any prompt (HTTP, queue, events)

The server runs as ``python main.py`` in its own process; the client listens on the
WebSocket like a ComfyUI client script.

    python bench/engine_overhead.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from engine import normalise_prompt, validate_prompt  # noqa: E402
from nodes.registry import builtin_registry  # noqa: E402

SIZES = (10, 100, 500, 1000)


def chain(n: int, head: str) -> dict[str, Any]:
    prompt: dict[str, Any] = {"h": {"class_type": "PrimitiveString", "inputs": {"value": head}}}
    previous = ["h", 0]
    for i in range(n):
        prompt[f"c{i}"] = {
            "class_type": "StringConcatenate",
            "inputs": {"string_a": previous, "string_b": "x", "delimiter": ""},
        }
        previous = [f"c{i}", 0]
    prompt["out"] = {"class_type": "PreviewAny", "inputs": {"source": previous}}
    return prompt


def wide(n: int, head: str) -> dict[str, Any]:
    prompt: dict[str, Any] = {"h": {"class_type": "PrimitiveString", "inputs": {"value": head}}}
    for i in range(n):
        prompt[f"c{i}"] = {
            "class_type": "StringConcatenate",
            "inputs": {"string_a": ["h", 0], "string_b": str(i), "delimiter": ""},
        }
        prompt[f"p{i}"] = {"class_type": "PreviewAny", "inputs": {"source": [f"c{i}", 0]}}
    return prompt


async def run_once(
    session: aiohttp.ClientSession,
    url: str,
    ws: aiohttp.ClientWebSocketResponse,
    client_id: str,
    prompt: dict[str, Any],
) -> tuple[float, int]:
    """Seconds from POST to the done signal, and how many nodes executed."""
    started = time.perf_counter()
    async with session.post(url + "/prompt", json={"prompt": prompt, "client_id": client_id}) as response:
        body = await response.json()
        assert response.status == 200, body
    prompt_id = body["prompt_id"]
    executed = 0
    while True:
        message = await ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        data = json.loads(message.data)
        if data["type"] == "executing" and data["data"].get("prompt_id") == prompt_id:
            if data["data"]["node"] is None:
                return time.perf_counter() - started, executed
            executed += 1


async def measure(url: str, repeat: int) -> list[dict[str, Any]]:
    rows = []
    client_id = uuid.uuid4().hex
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws?clientId={client_id}") as ws:
        await ws.receive()  # initial status
        await run_once(session, url, ws, client_id, chain(5, "warm-up"))
        base = []
        for _ in range(max(repeat, 10)):
            seconds, _ = await run_once(session, url, ws, client_id, chain(0, uuid.uuid4().hex))
            base.append(seconds)
        baseline = statistics.median(base)
        rows.append(
            {
                "shape": "base",
                "n": 0,
                "nodes": 2,
                "uncached_ms": baseline * 1e3,
                "per_node_us": baseline / 2 * 1e6,
                "marginal_us": float("nan"),
                "cached_ms": float("nan"),
            }
        )
        for shape, build in (("chain", chain), ("wide", wide)):
            for n in SIZES:
                uncached, cached = [], []
                nodes = 0
                for _ in range(repeat):
                    prompt = build(n, uuid.uuid4().hex)
                    seconds, nodes = await run_once(session, url, ws, client_id, prompt)
                    uncached.append(seconds)
                    seconds, again = await run_once(session, url, ws, client_id, prompt)
                    assert again == 0, "the identical re-run should execute nothing"
                    cached.append(seconds)
                rows.append(
                    {
                        "shape": shape,
                        "n": n,
                        "nodes": nodes,
                        "uncached_ms": statistics.median(uncached) * 1e3,
                        "per_node_us": statistics.median(uncached) / nodes * 1e6,
                        "marginal_us": (statistics.median(uncached) - baseline) / (nodes - 2) * 1e6,
                        "cached_ms": statistics.median(cached) * 1e3,
                    }
                )
    return rows


def validation_time(repeat: int) -> tuple[float, float]:
    """Median ms to normalise+validate a 1000-node chain and a 1000-node wide prompt."""
    registry = builtin_registry()
    results = []
    for build, n in ((chain, 998), (wide, 500)):
        prompt = build(n, "v")
        assert len(prompt) in (1000, 1001)
        times = []
        for _ in range(max(repeat, 5)):
            started = time.perf_counter()
            result = validate_prompt(normalise_prompt(prompt), registry)
            times.append(time.perf_counter() - started)
            assert result.ok
        results.append(statistics.median(times) * 1e3)
    return results[0], results[1]


def start_server(base: str, worker_mode: str = "process") -> tuple[subprocess.Popen, str]:
    """``python main.py`` in its own process, so the client does not share its GIL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "--port",
            str(port),
            "--base-directory",
            base,
            "--disable-all-custom-nodes",
            "--verbose",
            "WARNING",
            "--worker-mode",
            worker_mode,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "running at" in line:
            return proc, f"http://127.0.0.1:{port}"
    raise RuntimeError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--worker-mode",
        choices=["process", "thread"],
        default="process",
        help="where the server runs node code (main.py's --worker-mode; default process, as main.py)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as base:
        proc, url = start_server(base, args.worker_mode)
        try:
            rows = asyncio.run(measure(url, args.repeat))
        finally:
            proc.terminate()
            proc.wait(30)
    chain_ms, wide_ms = validation_time(args.repeat)
    print(
        f"machine: {platform.processor() or platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    )
    print("us/node: run time / nodes; marginal: (run time - a 2-node prompt's time) / (nodes - 2)")
    print(f"{'shape':6} {'N':>5} {'nodes':>6} {'uncached ms':>12} {'us/node':>9} {'marginal':>9} {'cached ms':>10}")
    for r in rows:
        print(
            f"{r['shape']:6} {r['n']:>5} {r['nodes']:>6} {r['uncached_ms']:>12.2f} {r['per_node_us']:>9.1f}"
            f" {r['marginal_us']:>9.1f} {r['cached_ms']:>10.2f}"
        )
    print(f"validate 1000-node chain: {chain_ms:.2f} ms; 1001-node wide: {wide_ms:.2f} ms")
    print(f"worker mode: {args.worker_mode}")


if __name__ == "__main__":
    main()
