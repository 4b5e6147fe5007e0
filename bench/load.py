"""Many clients at once through the real API: throughput, latency, and that nothing goes astray.

``python main.py`` runs in its own process (``--worker-mode`` as asked, process by default).
Each of ``--clients`` WebSocket clients sends ``--prompts`` small prompts one after another
(PrimitiveString with a unique value -> PreviewAny), each as soon as its previous one's done
signal arrived (a closed loop, like a UI or a script waiting on its results). Measured:

* throughput: prompts finished per second over the whole run;
* latency: POST /prompt until the prompt's done signal (``executing`` with ``node: null``),
  p50 and p99;
* correctness: every prompt's done signal reached its own client exactly once (none lost or
  duplicated), no client saw an event of another client's prompt (none misrouted), and every
  prompt's history entry holds its own value (each ran, with its inputs);
* the server's resident memory (and its worker process's) at the end.

    python bench/load.py [--clients 50] [--prompts 20] [--worker-mode process|thread]
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
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def start_server(base: str, *flags: str) -> tuple[subprocess.Popen, str]:
    """``python main.py`` on a free port; returns the process and its URL once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(ROOT / "main.py"), "--port", str(port), "--base-directory", base]
    command += ["--disable-all-custom-nodes", "--verbose", "WARNING", *flags]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "running at" in line:
            return proc, f"http://127.0.0.1:{port}"
    raise RuntimeError("the server did not start")


def rss_mb(pid: int | None) -> float:
    """Resident memory of process ``pid`` in MB (Linux), NaN when unknown."""
    if pid is None:
        return float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def small_prompt(value: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": value}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }


@dataclass
class Client:
    """One WebSocket client's prompts and what it heard."""

    client_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    sent: dict[str, str] = field(default_factory=dict)  # prompt id -> value
    latencies: list[float] = field(default_factory=list)
    done: dict[str, int] = field(default_factory=dict)  # prompt id -> done signals received
    foreign: int = 0  # events naming a prompt this client did not send


async def run_client(session: aiohttp.ClientSession, url: str, client: Client, count: int) -> None:
    async with session.ws_connect(f"{url}/ws?clientId={client.client_id}", max_msg_size=0) as ws:
        for _ in range(count):
            value = uuid.uuid4().hex
            started = time.perf_counter()
            body = {"prompt": small_prompt(value), "client_id": client.client_id}
            async with session.post(url + "/prompt", json=body) as response:
                answer = await response.json()
                assert response.status == 200, answer
            prompt_id = answer["prompt_id"]
            client.sent[prompt_id] = value
            await _until_done(ws, client, prompt_id)
            client.latencies.append(time.perf_counter() - started)
        # a moment more, to catch a late duplicate or a stray event
        try:
            await asyncio.wait_for(_until_done(ws, client, None), 0.5)
        except TimeoutError:
            pass


async def _until_done(ws: aiohttp.ClientWebSocketResponse, client: Client, prompt_id: str | None) -> None:
    while True:
        message = await ws.receive()
        if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            raise ConnectionError(f"client {client.client_id}'s socket closed")
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        event = json.loads(message.data)
        data = event.get("data") or {}
        pid = data.get("prompt_id") if isinstance(data, dict) else None
        if pid is None:
            continue
        if pid not in client.sent:
            client.foreign += 1
            continue
        if event["type"] == "executing" and data.get("node") is None:
            client.done[pid] = client.done.get(pid, 0) + 1
            if pid == prompt_id:
                return


async def check_history(session: aiohttp.ClientSession, url: str, clients: list[Client]) -> int:
    """Prompts whose history entry is missing, failed, or holds another prompt's value."""
    async with session.get(url + "/history", params={"max_items": "100000"}) as response:
        history = await response.json()
    wrong = 0
    for client in clients:
        for prompt_id, value in client.sent.items():
            entry = history.get(prompt_id)
            ok = entry is not None and entry["status"]["status_str"] == "success"
            wrong += not (ok and value in json.dumps(entry["outputs"]))
    return wrong


async def worker_pid(session: aiohttp.ClientSession, url: str) -> int | None:
    async with session.get(url + "/system_stats") as response:
        return (await response.json()).get("worker", {}).get("pid")


async def measure(url: str, clients: int, prompts: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        # warm-up, not measured: the worker process loads its nodes after the server answers
        await run_client(session, url, Client(), 3)
        everyone = [Client() for _ in range(clients)]
        started = time.perf_counter()
        await asyncio.gather(*(run_client(session, url, c, prompts) for c in everyone))
        elapsed = time.perf_counter() - started - 0.5  # less the wait for stragglers
        latencies = sorted(t for c in everyone for t in c.latencies)
        sent = sum(len(c.sent) for c in everyone)
        return {
            "prompts": sent,
            "seconds": elapsed,
            "per_second": sent / elapsed,
            "p50_ms": statistics.median(latencies) * 1e3,
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
            "lost": sum(1 for c in everyone for p in c.sent if c.done.get(p, 0) == 0),
            "duplicated": sum(1 for c in everyone for n in c.done.values() if n > 1),
            "misrouted": sum(c.foreign for c in everyone),
            "history_wrong": await check_history(session, url, everyone),
            "worker_pid": await worker_pid(session, url),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--prompts", type=int, default=20, help="prompts per client")
    parser.add_argument("--worker-mode", choices=["process", "thread"], default="process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as base:
        proc, url = start_server(base, "--worker-mode", args.worker_mode)
        try:
            result = asyncio.run(measure(url, args.clients, args.prompts))
            server_mb, worker_mb = rss_mb(proc.pid), rss_mb(result["worker_pid"])
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"worker mode {args.worker_mode}: {args.clients} clients x {args.prompts} prompts")
    print(
        f"{result['prompts']} prompts in {result['seconds']:.2f} s: {result['per_second']:.0f} prompts/s, "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
    )
    print(
        f"lost {result['lost']}, duplicated {result['duplicated']}, misrouted {result['misrouted']}, "
        f"history wrong {result['history_wrong']}; RSS server {server_mb:.0f} MB, worker {worker_mb:.0f} MB"
    )
    if result["lost"] or result["duplicated"] or result["misrouted"] or result["history_wrong"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
