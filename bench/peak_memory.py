"""Peak memory of one cold txt2img on the CPU: Weft against ComfyUI 0.8.0, in one run.

    python bench/peak_memory.py [--sd15 DIR | --checkpoint FILE] [--comfyui /tmp/comfyui]
                                [--comfyui-python PYTHON] [--comfyui-path DIR]
                                [--size 512] [--steps 20] [--rounds 2] [--threads 0]

Each round starts both servers cold, one after the other (the order alternates), with
``--cpu`` on an empty base directory holding only the checkpoint, POSTs the same API-format
prompt (ComfyUI's default txt2img graph: Euler, "normal", CFG 7) and waits on the WebSocket for
its ``execution_success``. While it runs, /proc is read every 50 ms for the server and all its
children (Weft runs node code in a worker process; ComfyUI in its one process). Reported:

* *sum of VmHWM*: each process's own peak resident set (kept by the kernel), added up over the
  tree: an upper bound of the tree's peak, exact for a single process;
* *sampled peak*: the largest sum of the tree's RSS seen at one moment, split into anonymous
  memory (tensors, Python) and file-backed pages (the mmapped checkpoint, shared libraries),
  which the kernel can drop and read again and which two processes mapping the same file share.

ComfyUI runs from its own checkout with ``--comfyui-python`` (default: this Python) and
``--comfyui-path`` prepended to its ``PYTHONPATH`` for the requirements this project's
environment lacks (see bench/README.md), ``--front-end-root`` pointing at an empty folder (its
web front end is a separate package; nothing here loads a page) and its database in the base
directory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import (  # noqa: E402
    ROOT,
    TEXT,
    Server,
    TreeMemory,
    TreeSampler,
    base_directory,
    child_env,
    free_port,
    machine_line,
    median,
    run_prompt,
    saved_images,
    spread,
    txt2img_prompt,
)

GB = 1e9


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sd15", type=Path, default=None, help="folder for the random SD1.5 file (built once)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="an SD1 single-file checkpoint")
    parser.add_argument("--comfyui", type=Path, default=Path("/tmp/comfyui"), help="a ComfyUI checkout")
    parser.add_argument("--comfyui-python", default=sys.executable)
    parser.add_argument("--comfyui-path", default=None, help="prepended to ComfyUI's PYTHONPATH")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--servers", default="weft,comfyui", help="comma-separated: weft, comfyui")
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for both (0: default)")
    return parser.parse_args()


def checkpoint_file(args: argparse.Namespace) -> Path:
    if args.checkpoint is not None:
        return args.checkpoint
    if args.sd15 is not None:
        from bench.sd15_checkpoint import ensure_sd15

        return ensure_sd15(args.sd15)[0]
    from weft_tools.tiny_models import build_all

    root = Path(tempfile.mkdtemp(prefix="weft-bench-memory-"))
    build_all(root, families=("sd1",))
    return root / "checkpoints" / "tiny-sd1.safetensors"


def server_command(name: str, base: Path, port: int, args: argparse.Namespace) -> tuple[list[str], Path, dict]:
    """The command line, working directory and environment of a cold ``--cpu`` server."""
    if name == "weft":
        command = [sys.executable, "main.py", "--cpu", "--port", str(port), "--base-directory", str(base)]
        return command, ROOT, child_env(args.threads)
    front_end = base / "empty-frontend"
    front_end.mkdir()
    command = [
        args.comfyui_python,
        "main.py",
        "--cpu",
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        "--base-directory",
        str(base),
        "--front-end-root",
        str(front_end),
        "--disable-auto-launch",
        "--database-url",  # its default lies inside the checkout, which may be read-only
        f"sqlite:///{base / 'user' / 'comfyui.db'}",
    ]
    return command, args.comfyui, child_env(args.threads, args.comfyui_path)


def cold_run(name: str, checkpoint: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One server from cold to the picture saved, its process tree sampled throughout."""
    base = base_directory(checkpoint, f"{name}-memory-")
    port = free_port()
    command, cwd, env = server_command(name, base, port, args)
    with Server(command, cwd=cwd, env=env, port=port, log=base / "server.log") as server:
        sampler = TreeSampler(server.proc.pid)
        sampler.start()
        try:
            server.wait_ready()
            prompt = txt2img_prompt(
                checkpoint.name, text=TEXT, seed=1, size=args.size, steps=args.steps, cfg=args.cfg, prefix=name
            )
            run = run_prompt(server.url, prompt)
        finally:
            memory = sampler.stop()
        seconds = run.done - server.started
    if not saved_images(base):
        raise RuntimeError(f"{name} saved no picture; see {base / 'server.log'}")
    return {"memory": memory, "seconds": seconds, "log": base / "server.log"}


def describe(memory: TreeMemory) -> str:
    parts = ", ".join(
        f"{memory.names.get(pid, '?').split(' ', 2)[-1][:40]!r} {hwm / GB:.2f}" for pid, hwm in memory.hwm.items()
    )
    return f"VmHWM per process (GB): {parts}"


def report(results: dict[str, list[dict[str, Any]]], checkpoint: Path, args: argparse.Namespace) -> None:
    print(machine_line())
    print(
        f"model: {checkpoint.name} ({checkpoint.stat().st_size / GB:.2f} GB), {args.size}x{args.size}, "
        f"{args.steps} Euler steps, CFG {args.cfg}, rounds {args.rounds}, threads {args.threads or 'default'}"
    )
    print(
        "| server | sum of VmHWM GB | sampled peak GB | anonymous at peak GB | file-backed at peak GB "
        "| processes | cold to picture |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, runs in results.items():
        memories = [r["memory"] for r in runs]
        print(
            f"| {name} | {spread([m.hwm_sum for m in memories], 'GB', 1 / GB)} "
            f"| {median([m.peak_rss / GB for m in memories]):.2f} | {median([m.peak_anon / GB for m in memories]):.2f} "
            f"| {median([m.peak_file / GB for m in memories]):.2f} | {len(memories[0].hwm)} "
            f"| {spread([r['seconds'] for r in runs])} |"
        )
    for name, runs in results.items():
        for index, run in enumerate(runs):
            print(f"{name} round {index + 1}: {describe(run['memory'])}")
    weft = [r["memory"].hwm_sum for r in results.get("weft", [])]
    comfy = [r["memory"].hwm_sum for r in results.get("comfyui", [])]
    if weft and comfy:
        print(f"ratio Weft / ComfyUI (medians of the sums of VmHWM): {median(weft) / median(comfy):.2f}")


def main() -> int:
    args = parse_args()
    checkpoint = checkpoint_file(args)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    for round_index in range(args.rounds):
        for name in servers if round_index % 2 == 0 else servers[::-1]:
            result = cold_run(name, checkpoint, args)
            results[name].append(result)
            print(
                f"round {round_index + 1} {name}: sum of VmHWM {result['memory'].hwm_sum / GB:.2f} GB, "
                f"{result['seconds']:.1f} s (log {result['log']})",
                flush=True,
            )
    report(results, checkpoint, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
