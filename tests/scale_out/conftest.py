"""A Weft server on a Ray pool of two worker actors, started once per test module.

``python main.py --backend ray --ray-address local --ray-workers 2`` starts a local Ray
instance in the server process (two CPUs, Ray's dashboard off, a small object store); the
fixture waits until both worker actors are ready and stops the server with SIGINT, so it shuts
Ray down. Its models folder holds two checkpoints (the tiny SD1 model under two names: two
files, two fingerprints) and its custom nodes folder a pack of slow nodes for the interrupt and
fault tests. The whole module is skipped, with the reason, where Ray is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.main_process import MainProcess

#: a pack of test nodes: a sleep that looks at the interrupt flag, one that does not, a node that kills its worker
PACK = """
import os
import sys
import signal
import time

import comfy.model_management as mm


class PoolSleep:
    CATEGORY = "tests"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seconds": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 600.0}), "tag": ("STRING", {})}}

    def run(self, seconds, tag):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            mm.throw_exception_if_processing_interrupted()
            time.sleep(0.02)
        text = f"{tag} {os.getpid()}"
        return {"ui": {"text": [text]}, "result": (text,)}


class PoolDeafSleep(PoolSleep):
    # never looks at the interrupt flag
    def run(self, seconds, tag):
        time.sleep(seconds)
        return {"ui": {"text": [tag]}, "result": (tag,)}


class PoolKillWorker(PoolSleep):
    def run(self, seconds, tag):
        os.kill(os.getpid(), signal.SIGKILL)


NODE_CLASS_MAPPINGS = {"PoolSleep": PoolSleep, "PoolDeafSleep": PoolDeafSleep, "PoolKillWorker": PoolKillWorker}
"""

CHECKPOINTS = ("tiny-a.safetensors", "tiny-b.safetensors")


def _build_checkpoint(path: Path) -> None:
    """The tiny SD1 checkpoint (weft_tools.tiny_models), built in a child process: the test
    process need not import torch."""
    prebuilt = os.environ.get("WEFT_TINY_MODELS")
    if prebuilt and (Path(prebuilt) / "checkpoints" / "tiny-sd1.safetensors").exists():
        shutil.copyfile(Path(prebuilt) / "checkpoints" / "tiny-sd1.safetensors", path)
        return
    code = (
        "import sys; from pathlib import Path; from weft_tools import tiny_models as t; "
        "t.write_single_file('sd1', t.build_family('sd1'), Path(sys.argv[1]))"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code, str(path)], cwd=root, check=True, timeout=600)


def stats(server: MainProcess) -> dict[str, Any]:
    return server.request("GET", "/system_stats")[1]["worker"]


def workers(server: MainProcess) -> list[dict[str, Any]]:
    return stats(server)["workers"]


def all_idle(server: MainProcess, timeout: float = 240) -> list[dict[str, Any]]:
    """Every worker ready and idle (a replaced one takes a while to start)."""

    def idle() -> list[dict[str, Any]] | None:
        found = workers(server)
        return found if len(found) == 2 and all(w["state"] == "idle" for w in found) else None

    return server.wait(idle, "both Ray workers to be idle", timeout)


def stop(server: MainProcess) -> None:
    """SIGINT: the server stops its pool and shuts down the Ray instance it started."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGINT)
        try:
            server.proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    server.kill()


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MainProcess]:
    pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]' to run the scale-out tests")
    base = tmp_path_factory.mktemp("ray-pool")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    flags = ("--backend", "ray", "--ray-address", "local", "--ray-workers", "2", "--ray-cpus-per-worker", "1")
    started = time.monotonic()
    server = MainProcess(base, *flags, "--interrupt-grace", "2", "--cpu", packs={"pool_nodes.py": PACK})
    try:
        # while Ray starts (model folders are read at each use, so the files may come later)
        _build_checkpoint(checkpoints / "building.tmp")
        shutil.copyfile(checkpoints / "building.tmp", checkpoints / CHECKPOINTS[1])
        (checkpoints / "building.tmp").rename(checkpoints / CHECKPOINTS[0])
        all_idle(server)
        print(f"Ray pool ready in {time.monotonic() - started:.1f} s")
        yield server
    finally:
        stop(server)
