"""What the cold-start benches share (``first_picture.py``, ``peak_memory.py``).

A cold run is a fresh process that loads a checkpoint file, makes one picture and saves it:
what a user waits for (and what the machine must hold) after launching a program. Weft and
ComfyUI are driven the way their clients drive them, through ``POST /prompt`` and the
WebSocket, with the same API-format prompt (ComfyUI's node names and inputs, which Weft keeps);
each server runs on a temporary base directory whose ``models/checkpoints`` links to the file.
Memory is read from ``/proc`` for the whole process tree, since Weft runs node code in a worker
process beside its server process and a figure for one of them would flatter it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEXT = "a photograph of an astronaut riding a horse"
STATUS_FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def txt2img_prompt(ckpt: str, *, text: str, seed: int, size: int, steps: int, cfg: float, prefix: str) -> dict:
    """ComfyUI's default txt2img graph (its node ids too), Euler with the "normal" schedule."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
                "seed": seed,
                "steps": steps,
                "cfg": cfg,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
    }


def base_directory(checkpoint: Path, prefix: str) -> Path:
    """A fresh base directory (no outputs, no custom nodes, no caches) holding only the checkpoint.

    The file is linked, not copied: both servers follow a symlinked model file, and the copy
    would only warm the page cache for whichever program ran first.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
    for name in ("input", "output", "temp", "user", "custom_nodes", "models/checkpoints"):
        (base / name).mkdir(parents=True, exist_ok=True)
    (base / "models" / "checkpoints" / checkpoint.name).symlink_to(checkpoint.resolve())
    return base


def child_env(threads: int, extra_path: str | None = None) -> dict[str, str]:
    """The environment every contender gets: offline, the same torch thread count, no .pyc writes
    into a read-only checkout."""
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPATH", None)
    if extra_path:
        env["PYTHONPATH"] = extra_path
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


# --- memory of a process tree -----------------------------------------------------------------


def read_status(pid: int) -> dict[str, int]:
    """The memory lines of /proc/PID/status in bytes (empty once the process is gone)."""
    figures: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in STATUS_FIELDS:
                    figures[key] = int(rest.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return {}
    return figures


def tree_pids(root: int) -> list[int]:
    import psutil

    try:
        process = psutil.Process(root)
        return [root, *(child.pid for child in process.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


@dataclass
class TreeMemory:
    """Peaks of a process tree: the largest sampled sum of RSS (with its anonymous and file-backed
    parts at that moment) and each process's own high-water mark (VmHWM, kept by the kernel, so
    exact however often we sample)."""

    peak_rss: int = 0
    peak_anon: int = 0
    peak_file: int = 0
    hwm: dict[int, int] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)

    @property
    def hwm_sum(self) -> int:
        return sum(self.hwm.values())


class TreeSampler(threading.Thread):
    """Samples a process tree's memory every ``interval`` seconds until stopped.

    Reading /proc/PID/status is cheap (no page-table walk), so sampling often costs the
    measured processes little; the per-process VmHWM makes the result exact for a single
    process whatever the interval.
    """

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.memory = TreeMemory()
        self._stop_event = threading.Event()

    def sample(self) -> None:
        total = anon = file = 0
        for pid in tree_pids(self.root):
            figures = read_status(pid)
            if not figures:
                continue
            total += figures.get("VmRSS", 0)
            anon += figures.get("RssAnon", 0)
            file += figures.get("RssFile", 0) + figures.get("RssShmem", 0)
            self.memory.hwm[pid] = max(self.memory.hwm.get(pid, 0), figures.get("VmHWM", 0))
            if pid not in self.memory.names:
                self.memory.names[pid] = process_name(pid)
        if total > self.memory.peak_rss:
            self.memory.peak_rss, self.memory.peak_anon, self.memory.peak_file = total, anon, file

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> TreeMemory:
        self.sample()  # the last word before the processes exit: their VmHWM is final now
        self._stop_event.set()
        self.join()
        return self.memory


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:80]
    except OSError:
        return "?"


# --- servers and prompts ----------------------------------------------------------------------


class Server:
    """A server process started cold, its output in a log file; stopped on exit of the block."""

    def __init__(self, command: list[str], *, cwd: Path, env: dict[str, str], port: int, log: Path) -> None:
        self.command, self.cwd, self.env, self.port, self.log_path = command, cwd, env, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def __enter__(self) -> Server:
        self._log = self.log_path.open("wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command, cwd=self.cwd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def wait_ready(self, timeout: float = 600.0) -> float:
        """Seconds from spawn to the first answer of GET /system_stats (both servers have it)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/system_stats", timeout=5):
                    return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout:.0f} s; see {self.log_path}")

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass
class Run:
    """One prompt's events as the client saw them, each with its arrival time (perf_counter)."""

    posted: float
    events: list[tuple[float, str, dict]]

    @property
    def done(self) -> float:
        return self.events[-1][0]

    def cached(self) -> set[str]:
        return {str(n) for _, kind, data in self.events if kind == "execution_cached" for n in data.get("nodes", [])}

    def node_seconds(self) -> dict[str, float]:
        """Each executed node's time: from its ``executing`` event to the next one."""
        marks = [(t, data.get("node")) for t, kind, data in self.events if kind == "executing"]
        marks.append((self.done, None))
        return {str(node): later - t for (t, node), (later, _) in zip(marks, marks[1:], strict=False) if node}

    def step_times(self, node: str) -> list[float]:
        """Arrival times of ``node``'s progress events (one per sampling step)."""
        return [t for t, kind, data in self.events if kind == "progress" and str(data.get("node")) == node]


async def _post_and_collect(url: str, prompt: dict) -> Run:
    import aiohttp

    client_id = uuid.uuid4().hex
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws?clientId={client_id}") as ws:
        posted = time.perf_counter()
        async with session.post(url + "/prompt", json={"prompt": prompt, "client_id": client_id}) as response:
            body = await response.json()
        if "prompt_id" not in body:
            raise RuntimeError(f"prompt refused: {body}")
        events: list[tuple[float, str, dict]] = []
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue  # binary preview frames (none are asked for)
            event = json.loads(message.data)
            data = event.get("data") or {}
            if data.get("prompt_id") not in (None, body["prompt_id"]):
                continue
            events.append((time.perf_counter(), event["type"], data))
            if event["type"] == "execution_success":
                return Run(posted, events)
            if event["type"] in ("execution_error", "execution_interrupted"):
                raise RuntimeError(f"prompt failed: {event}")
    raise RuntimeError("the WebSocket closed before the prompt finished")


def run_prompt(url: str, prompt: dict, timeout: float = 3600.0) -> Run:
    """POST ``prompt`` and wait on the WebSocket for its ``execution_success``.

    Waiting on the socket, not polling /history, matters on 2 cores: a polling client takes
    CPU from the process it is timing.
    """
    return asyncio.run(asyncio.wait_for(_post_and_collect(url, prompt), timeout))


def saved_images(base: Path) -> list[Path]:
    return sorted((base / "output").rglob("*.png"))


# --- reporting --------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    """``median (min-max)`` of a list, for the printed tables."""
    if not values:
        return "-"
    shown = [v * scale for v in values]
    if len(shown) == 1:
        return f"{shown[0]:.1f} {unit}"
    return f"{statistics.median(shown):.1f} {unit} ({min(shown):.1f}-{max(shown):.1f})"


def machine_line() -> str:
    import platform

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {platform.machine()} {os.cpu_count()} cores, {platform.processor() or 'cpu'}, "
        f"Python {platform.python_version()}, load average {load}"
    )
