"""Server start-up time with many custom node packs: ``python main.py`` until it answers.

Generates ``--packs`` dummy packs (default 20) in a temporary folder, half in ComfyUI's
classic contract and half in Weft's, shaped like real packs: five nodes each, a
``requirements.txt`` or ``pyproject.toml`` with installed requirements, relative imports, a
``WEB_DIRECTORY``, and the classic ones import ``folder_paths``, ``comfy.utils``,
``comfy.model_management`` and register a route on ``PromptServer.instance``. No models
are loaded. Then it starts ``python main.py --custom-nodes-directory <tmp>`` ``--repeat``
times and measures, from process spawn, the time until ``GET /api/plugins`` answers (the
routes are added after the packs load, so an answer means "ready with plugins"). For
comparison the same with ``--disable-all-custom-nodes``. It also prints the loader's own
total and the slowest packs' import times from the report.

    python bench/startup.py [--packs 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CLASSIC_NODE = """
class {cls}:
    CATEGORY = "bench/{pack}"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("image", "info")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {{
            "required": {{
                "image": ("IMAGE",),
                "model": (folder_paths.get_filename_list("checkpoints") or ["none"],),
                "strength": ("FLOAT", {{"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.01}}),
                "mode": (["a", "b", "c"],),
            }},
            "optional": {{"mask": ("MASK",)}},
            "hidden": {{"unique_id": "UNIQUE_ID"}},
        }}

    def run(self, image, model, strength, mode, mask=None, unique_id=None):
        comfy.model_management.throw_exception_if_processing_interrupted()
        return (image * strength, f"{{model}} {{mode}}")
"""

WEFT_NODE = """
class {cls}(Node):
    category = "bench/{pack}"
    description = "A generated benchmark node."
    inputs = (String("text", multiline=True), Int("count", 1, min=0, max=100), Combo("mode", ["x", "y"]))
    outputs = (Output("STRING"),)

    def run(self, text: str, count: int, mode: str) -> str:
        return text * count
"""


def make_packs(folder: Path, count: int) -> None:
    for index in range(count):
        name = f"bench_pack_{index:02d}"
        pack = folder / name
        (pack / "web").mkdir(parents=True)
        (pack / "web" / "ext.js").write_text(f"// {name}\n")
        classes = [f"Bench{index:02d}Node{n}" for n in range(5)]
        if index % 2 == 0:
            body = "import comfy.model_management\nimport comfy.utils  # noqa: F401\nimport folder_paths\n"
            body += "".join(CLASSIC_NODE.format(cls=c, pack=name) for c in classes)
            body += "\nNODE_CLASS_MAPPINGS = {" + ", ".join(f"{c!r}: {c}" for c in classes) + "}\n"
            body += "NODE_DISPLAY_NAME_MAPPINGS = {" + ", ".join(f"{c!r}: {c + ' (bench)'!r}" for c in classes) + "}\n"
            (pack / "nodes.py").write_text(body)
            (pack / "__init__.py").write_text(
                "from aiohttp import web\nfrom server import PromptServer\n\n"
                "from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS\n\n"
                "WEB_DIRECTORY = './web'\n\n\n"
                f"@PromptServer.instance.routes.get('/{name}/ping')\n"
                "async def ping(request):\n    return web.json_response({'ok': True})\n"
            )
            (pack / "requirements.txt").write_text("numpy\npillow>=9\naiohttp\n")
        else:
            body = "from nodes.api import Combo, Int, Node, Output, String\n"
            body += "".join(WEFT_NODE.format(cls=c, pack=name) for c in classes)
            body += "\nWEFT_NODES = [" + ", ".join(classes) + "]\n"
            (pack / "nodes.py").write_text(body)
            (pack / "__init__.py").write_text("from .nodes import WEFT_NODES\n\nWEB_DIRECTORY = './web'\n")
            (pack / "pyproject.toml").write_text(
                f'[project]\nname = "{name}"\nversion = "1.0.{index}"\ndependencies = ["numpy", "pyyaml>=6"]\n'
            )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_to_ready(base: Path, packs: Path | None, disable_all: bool) -> tuple[float, dict]:
    port = free_port()
    args = [sys.executable, "main.py", "--port", str(port), "--base-directory", str(base), "--verbose", "WARNING"]
    if packs is not None:
        args += ["--custom-nodes-directory", str(packs)]
    if disable_all:
        args.append("--disable-all-custom-nodes")
    started = time.perf_counter()
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/plugins", timeout=1) as response:
                    report = json.loads(response.read())
                    return time.perf_counter() - started, report
            except OSError:
                time.sleep(0.005)
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base, packs = Path(tmp) / "home", Path(tmp) / "packs"
        base.mkdir()
        packs.mkdir()
        make_packs(packs, options.packs)
        time_to_ready(base, packs, False)  # warm the OS file cache and __pycache__
        with_packs, without = [], []
        report: dict = {}
        for _ in range(options.repeat):
            seconds, report = time_to_ready(base, packs, False)
            with_packs.append(seconds)
            without.append(time_to_ready(base, packs, True)[0])
    ours = [p for p in report["packs"] if p["name"].startswith("bench_pack_")]
    assert len(ours) == options.packs and all(p["status"] == "loaded" for p in ours), [
        (p["name"], p["status"], p["error"]) for p in ours if p["status"] != "loaded"
    ]
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"{len(__import__('os').sched_getaffinity(0))} cores"
    )
    print(f"packs: {options.packs} generated ({sum(len(p['nodes']) for p in ours)} nodes) + repo custom_nodes/")
    print(
        f"ready with packs      : median {statistics.median(with_packs) * 1000:7.1f} ms, "
        f"min {min(with_packs) * 1000:7.1f} ms over {options.repeat} runs"
    )
    print(
        f"ready, packs disabled : median {statistics.median(without) * 1000:7.1f} ms, min {min(without) * 1000:7.1f} ms"
    )
    print(f"plugin loader total (last run): {report['total_ms']:.1f} ms")
    slowest = sorted(report["packs"], key=lambda p: -p["import_ms"])[:3]
    print("slowest imports: " + ", ".join(f"{p['name']} {p['import_ms']:.1f} ms" for p in slowest))


if __name__ == "__main__":
    main()
