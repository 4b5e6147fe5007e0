"""A long run through the real API: does anything grow that should not?

``python main.py`` (``--worker-mode`` as asked) runs ``--prompts`` small prompts from
``--clients`` WebSocket clients in a closed loop (bench/load.py's client), with the default
history bound (10,000 entries). Printed: the server's and its worker's resident memory after a
warm-up and at the end, the state file's size (queue and history, SQLite) and the bytes of
``GET /history`` at the end, throughput, and the checks of bench/load.py (nothing lost,
duplicated or misrouted).

    python bench/soak.py [--prompts 10000] [--clients 10] [--worker-mode process|thread]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import Client, check_history, rss_mb, run_client, start_server, worker_pid  # noqa: E402


async def soak(url: str, server_pid: int, prompts: int, clients: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await run_client(session, url, Client(), 20)  # warm-up: the worker's imports, the first allocations
        worker = await worker_pid(session, url)
        start = {"server": rss_mb(server_pid), "worker": rss_mb(worker)}
        everyone = [Client() for _ in range(clients)]
        each = prompts // clients
        started = time.perf_counter()
        await asyncio.gather(*(run_client(session, url, c, each) for c in everyone))
        elapsed = time.perf_counter() - started - 0.5
        end = {"server": rss_mb(server_pid), "worker": rss_mb(await worker_pid(session, url))}
        async with session.get(url + "/history") as response:
            history_bytes = len(await response.read())
        return {
            "prompts": each * clients,
            "per_second": each * clients / elapsed,
            "start": start,
            "end": end,
            "history_bytes": history_bytes,
            "lost": sum(1 for c in everyone for p in c.sent if c.done.get(p, 0) == 0),
            "duplicated": sum(1 for c in everyone for n in c.done.values() if n > 1),
            "misrouted": sum(c.foreign for c in everyone),
            "history_wrong": await check_history(session, url, everyone),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--worker-mode", choices=["process", "thread"], default="process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as base:
        proc, url = start_server(base, "--worker-mode", args.worker_mode)
        try:
            result = asyncio.run(soak(url, proc.pid, args.prompts, args.clients))
            state_mb = sum(f.stat().st_size for f in (Path(base) / "user").glob("weft-state.sqlite3*")) / 1e6
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; worker mode {args.worker_mode}")
    print(f"{result['prompts']} prompts from {args.clients} clients: {result['per_second']:.0f} prompts/s")
    for who in ("server", "worker"):
        print(f"RSS {who}: {result['start'][who]:.0f} MB after warm-up, {result['end'][who]:.0f} MB at the end")
    print(f"state file {state_mb:.1f} MB; GET /history {result['history_bytes'] / 1e6:.1f} MB")
    print(
        f"lost {result['lost']}, duplicated {result['duplicated']}, misrouted {result['misrouted']}, "
        f"history wrong {result['history_wrong']}"
    )
    if result["lost"] or result["duplicated"] or result["misrouted"] or result["history_wrong"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
