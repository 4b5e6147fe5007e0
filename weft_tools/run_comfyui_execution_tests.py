"""Run ComfyUI's own execution test suite (``tests/execution``) against Weft's server.

    python -m weft_tools.run_comfyui_execution_tests /path/to/ComfyUI [options]

ComfyUI's tests are black-box: each test class starts ``python main.py --listen ... --port
... --extra-model-paths-config tests/execution/extra_model_paths.yaml --cpu [...]`` from
the current directory, connects a WebSocket client and drives the server through
``/prompt``, ``/history``, ``/view`` and ``/api/jobs``. The YAML's ``custom_nodes:`` entry
points at ComfyUI's testing pack, so the pack is loaded through Weft's compatibility layer
exactly as a user's pack would be.

Nothing is fetched and the checkout is never written to. The script builds a staging
folder outside both repositories holding

- a copy of the checkout's ``tests/`` (the suite writes its images under it),
- ``main.py``: a shim that ``exec``s Weft's ``main.py`` with the same arguments (``exec``,
  not a child process, so the suite's ``p.kill()`` stops the real server), adding
  ``--base-directory`` so the run's input/, temp/ and user/ stay in the staging folder, and
  ``--memory-only-queue`` (ComfyUI's history is in memory: the suite's servers, one per
  parameter, each start with an empty one),
- ``pytest.ini`` with the checkout on the *test* process's ``sys.path`` (the test client
  imports ComfyUI's ``comfy_execution.graph_utils.GraphBuilder``). The server process never
  sees the checkout: ``PYTHONPATH`` is cleared, so every ComfyUI module a pack imports comes
  from Weft's ``compat/``,

then runs pytest there with ``python`` resolving to this interpreter and prints pass counts
per file. Two files are special:

- ``test_jobs.py`` unit-tests ComfyUI's internal ``comfy_execution/jobs.py`` by importing it;
  no server is involved, so it runs against the checkout's module and its count says nothing
  about Weft (reported apart; the jobs *API* is covered black-box in ``test_execution.py``).
- ``test_preview_method.py`` expects a server already running at ``COMFYUI_SERVER`` (default
  ``localhost:8988``) with ``sd_xl_base_1.0`` and ``sd_xl_refiner_1.0`` checkpoints. With
  ``--preview-models DIR`` the script starts Weft on a free port with DIR as an extra
  checkpoints folder (``--build-tiny-preview-models`` makes DIR from Weft's own tiny random
  SDXL checkpoint under both names) and points ``COMFYUI_SERVER`` at it; without either, the
  file's own ``skipif`` skips it.

Exit status: 0 when every selected test passed (or was skipped by the suite itself).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

WEFT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILES = (
    "test_execution.py",
    "test_async_nodes.py",
    "test_public_api.py",
    "test_progress_isolation.py",
    "test_jobs.py",
    "test_preview_method.py",
)
#: per-test limit for test_preview_method.py against a real model (several 1024x1024 runs)
PREVIEW_TIMEOUT_S = 1800
#: files that test ComfyUI's own modules rather than a server
UNIT_FILES = frozenset({"test_jobs.py"})

SHIM = '''"""Stand-in for ComfyUI's main.py: exec Weft's main.py with the same arguments."""
import os
import sys

WEFT_MAIN = {main!r}
BASE = {base!r}
args = sys.argv[1:]
if not any(a == "--base-directory" or a.startswith("--base-directory=") for a in args):
    args = ["--base-directory", BASE, *args]
# ComfyUI keeps its queue and history in memory; the suite starts a server per parameter and
# counts history items from empty, so Weft's durable queue (on by default) is left off here
if "--memory-only-queue" not in args:
    args = ["--memory-only-queue", *args]
os.execv(sys.executable, [sys.executable, WEFT_MAIN, *args])
'''

PYTEST_INI = """[pytest]
markers =
  inference: mark as inference test
  execution: mark as execution test
  preview_method: preview method tests
addopts = -s
pythonpath = . {checkout}
"""


@dataclass
class FileCounts:
    """Outcome counts of one test file, from pytest's JUnit XML."""

    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stage(checkout: Path, weft_main: Path, staging: Path) -> None:
    """Lay out the staging folder described in the module docstring."""
    shutil.copytree(
        checkout / "tests",
        staging / "tests",
        ignore=shutil.ignore_patterns("__pycache__", "samples"),
    )
    base = staging / "weft-base"
    base.mkdir()
    (staging / "main.py").write_text(SHIM.format(main=str(weft_main), base=str(base)), encoding="utf-8")
    (staging / "pytest.ini").write_text(PYTEST_INI.format(checkout=str(checkout)), encoding="utf-8")


def clean_env(python_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This interpreter first on PATH (the suite runs ``python main.py``), no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COMFYUI_SERVER")}
    env["PATH"] = f"{python_dir}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def python_dir_with_python() -> Path:
    """A folder where ``python`` is this interpreter (a venv's bin/ has it; else make one)."""
    here = Path(sys.executable).parent
    candidate = here / "python"
    if candidate.exists() and candidate.resolve() == Path(sys.executable).resolve():
        return here
    folder = Path(tempfile.mkdtemp(prefix="weft-python-"))
    (folder / "python").symlink_to(sys.executable)
    return folder


def read_junit(path: Path) -> dict[str, FileCounts]:
    """Per-file counts: passed, failed, error, skipped."""
    results: dict[str, FileCounts] = {}
    if not path.is_file():
        return results
    root = ElementTree.parse(path).getroot()
    for case in root.iter("testcase"):
        classname = case.get("classname", "")
        parts = classname.split(".")
        file_name = next((p + ".py" for p in parts if p.startswith("test_")), classname)
        entry = results.setdefault(file_name, FileCounts())
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                break
        entry.counts[outcome] += 1
        if outcome in ("failed", "error"):
            entry.failures.append(f"{classname.split('.')[-1]}::{case.get('name')}")
    return results


def wait_for_server(url: str, timeout: float, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/system_stats", timeout=2.0):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def build_tiny_preview_models(folder: Path) -> Path:
    """Weft's tiny random SDXL checkpoint under the two names the preview graph asks for."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is built here; nothing is fetched
    sys.path.insert(0, str(WEFT_ROOT))
    from weft_tools.tiny_models import build_all

    source = Path(build_all(folder / "tiny", ("sdxl",))["sdxl-checkpoint"])
    checkpoints = folder / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    for name in ("sd_xl_base_1.0.safetensors", "sd_xl_refiner_1.0.safetensors"):
        target = checkpoints / name
        if not target.exists():
            target.symlink_to(source)
    return checkpoints


def run_pytest(
    staging: Path,
    files: list[str],
    args: argparse.Namespace,
    python_dir: Path,
    junit: Path,
    extra_env: dict[str, str] | None = None,
    timeout: int | None = None,
) -> int:
    command = [
        sys.executable,
        "-m",
        "pytest",
        *[f"tests/execution/{f}" for f in files],
        "--listen",
        "127.0.0.1",
        "--port",
        str(args.port),
        "-p",
        "no:cacheprovider",
        # the suite's module-scoped server fixtures start one server per parameter and rely on
        # pytest's own order; a shuffling plugin (Weft's test extras bring pytest-randomly)
        # restarts servers between tests and fails most of the suite with refused connections
        "-p",
        "no:randomly",
        "-q",
        "-rfE",
        f"--junitxml={junit}",
    ]
    if args.skip_timing_checks:
        command.append("--skip-timing-checks")
    timeout = args.timeout if timeout is None else timeout
    if timeout and importlib.util.find_spec("pytest_timeout") is not None:
        # a server that never sends the final ``executing`` would leave the client's
        # ``ws.recv()`` waiting for ever; pytest-timeout turns that into one failed test
        command += ["--timeout", str(timeout)]
    if args.keyword:
        command += ["-k", args.keyword]
    log_path = staging / f"{junit.stem}.log"
    print(f"$ (cd {staging} && {' '.join(command)})  > {log_path}", flush=True)
    with open(log_path, "wb") as log:
        process = subprocess.run(
            command,
            cwd=staging,
            env=clean_env(python_dir, extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    return process.returncode


def run_preview_tests(staging: Path, args: argparse.Namespace, python_dir: Path, junit: Path) -> None:
    """Start Weft with the preview checkpoints, point ``COMFYUI_SERVER`` at it, run the file."""
    models: Path | None = args.preview_models
    if models is None and args.build_tiny_preview_models:
        models = build_tiny_preview_models(staging / "preview-models")
    if models is None:
        run_pytest(staging, ["test_preview_method.py"], args, python_dir, junit)
        return
    port = free_port()
    yaml_path = staging / "preview_model_paths.yaml"
    yaml_path.write_text(f"preview:\n    checkpoints: {models.resolve()}\n", encoding="utf-8")
    command = [
        sys.executable,
        str(args.weft / "main.py"),
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        "--base-directory",
        str(staging / "weft-base-preview"),
        "--extra-model-paths-config",
        str(yaml_path),
        "--cpu",
        "--preview-method",
        "auto",
    ]
    (staging / "weft-base-preview").mkdir(exist_ok=True)
    with open(staging / "preview-server.log", "wb") as log:
        server = subprocess.Popen(command, cwd=staging, env=clean_env(python_dir), stdout=log, stderr=subprocess.STDOUT)
        try:
            if not wait_for_server(f"http://127.0.0.1:{port}", 90.0, server):
                print("the preview server did not start; see preview-server.log", flush=True)
            # its graph is SDXL base + refiner at 1024x1024: minutes per test on a CPU
            run_pytest(
                staging,
                ["test_preview_method.py"],
                args,
                python_dir,
                junit,
                {"COMFYUI_SERVER": f"http://127.0.0.1:{port}"},
                timeout=max(args.timeout, PREVIEW_TIMEOUT_S) if args.timeout else 0,
            )
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("comfyui", type=Path, help="path of a ComfyUI checkout (its tests/execution is run)")
    parser.add_argument("--weft", type=Path, default=WEFT_ROOT, help="the Weft tree whose main.py is tested")
    parser.add_argument(
        "--files",
        default=",".join(DEFAULT_FILES),
        help="comma-separated files of tests/execution to run (default: all six)",
    )
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    parser.add_argument("--port", type=int, default=None, help="port for the suite's servers (default: a free one)")
    parser.add_argument(
        "--timeout", type=int, default=180, help="per-test limit in seconds when pytest-timeout is installed (0: none)"
    )
    parser.add_argument("--skip-timing-checks", action="store_true", help="the suite's own option")
    parser.add_argument(
        "--preview-models",
        type=Path,
        default=None,
        help="a folder holding sd_xl_base_1.0 / sd_xl_refiner_1.0 checkpoints for test_preview_method.py",
    )
    parser.add_argument(
        "--build-tiny-preview-models",
        action="store_true",
        help="make --preview-models from Weft's tiny random SDXL checkpoint (built locally)",
    )
    parser.add_argument("--staging", type=Path, default=None, help="staging folder (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the staging folder (logs, images)")
    return parser


def resolve_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Path, Path, list[str], Path]:
    """Check the command line before anything is staged: (checkout, Weft's main.py, files, staging folder).

    Resolves ``args.weft`` and picks ``args.port`` when none was given.
    """
    if importlib.util.find_spec("websocket") is None:
        parser.error(
            "ComfyUI's suite needs websocket-client in this environment: "
            "pip install websocket-client (or pip install -e '.[comfyui-suite]')"
        )
    checkout = args.comfyui.resolve()
    if not (checkout / "tests" / "execution" / "test_execution.py").is_file():
        parser.error(f"{checkout} is not a ComfyUI checkout (no tests/execution/test_execution.py)")
    args.weft = args.weft.resolve()
    weft_main = args.weft / "main.py"
    if not weft_main.is_file():
        parser.error(f"{weft_main} not found")
    if args.port is None:
        args.port = free_port()
    files = [f.strip() for f in args.files.split(",") if f.strip()]
    staging = (args.staging or Path(tempfile.mkdtemp(prefix="weft-comfyui-tests-"))).resolve()
    staging.mkdir(parents=True, exist_ok=True)
    for inside in (checkout, args.weft):
        if staging == inside or inside in staging.parents:
            parser.error(f"the staging folder must be outside {inside}")
    return checkout, weft_main, files, staging


def run_files(staging: Path, files: list[str], args: argparse.Namespace, python_dir: Path) -> dict[str, FileCounts]:
    """The server files in one pytest run, then test_preview_method.py against its own server."""
    results: dict[str, FileCounts] = {}
    server_files = [f for f in files if f != "test_preview_method.py"]
    if server_files:
        junit = staging / "junit-suite.xml"
        run_pytest(staging, server_files, args, python_dir, junit)
        results.update(read_junit(junit))
    if "test_preview_method.py" in files:
        junit = staging / "junit-preview.xml"
        run_preview_tests(staging, args, python_dir, junit)
        results.update(read_junit(junit))
    return results


def print_summary(files: list[str], results: dict[str, FileCounts], weft_main: Path, elapsed: float) -> bool:
    """Print the per-file table and what did not pass; True when every file passed."""
    print(f"\nComfyUI tests/execution against Weft ({weft_main}), {elapsed:.0f} s")
    print(f"{'file':<28} {'passed':>7} {'failed':>7} {'error':>6} {'skipped':>8} {'total':>6}")
    ok = True
    server_passed = server_total = server_skipped = 0
    for name in files:
        entry = results.get(name, FileCounts())
        c = entry.counts
        note = "  (ComfyUI's own module; no Weft code)" if name in UNIT_FILES else ""
        print(f"{name:<28} {c['passed']:>7} {c['failed']:>7} {c['error']:>6} {c['skipped']:>8} {entry.total:>6}{note}")
        if c["failed"] or c["error"] or not entry.total:
            ok = False
        if name not in UNIT_FILES:
            server_passed += c["passed"]
            server_total += entry.total - c["skipped"]
            server_skipped += c["skipped"]
    print(
        f"{'against Weft (server tests)':<28} {server_passed:>7} of {server_total} run"
        + (f" ({server_skipped} skipped by the suite)" if server_skipped else "")
    )
    for name in files:
        for failure in results.get(name, FileCounts()).failures:
            print(f"  not passed: {name}::{failure}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    checkout, weft_main, files, staging = resolve_args(parser, args)
    stage(checkout, weft_main, staging)
    python_dir = python_dir_with_python()

    started = time.monotonic()
    results = run_files(staging, files, args, python_dir)
    ok = print_summary(files, results, weft_main, time.monotonic() - started)
    print(f"logs and images: {staging}" if args.keep or not ok else "")
    if not args.keep and ok and args.staging is None:
        shutil.rmtree(staging, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
