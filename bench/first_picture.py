"""Time to the first picture from a cold start: Weft against diffusers' own pipeline, in one run.

    python bench/first_picture.py [--sd15 DIR | --checkpoint FILE --config DIR]
                                  [--size 512] [--steps 20] [--cfg 7] [--rounds 3]
                                  [--modes weft,weft-run,diffusers] [--threads 0]

Each cold run is a fresh process that loads the checkpoint, encodes the prompt, samples,
decodes and saves one PNG; the figure is the wall time from spawning it to the picture saved:

* ``weft``: ``python main.py --cpu`` on an empty base directory, then the API prompt (ComfyUI's
  default txt2img graph: Euler, "normal" schedule, CFG, empty negative prompt) POSTed as soon as
  the server answers; done at its ``execution_success`` (what a canvas or script user waits for).
* ``weft-run``: the headless ``python main.py run prompt.json --cpu``, until the process exits.
* ``diffusers``: a fresh Python running ``StableDiffusionPipeline.from_single_file`` on the same
  file (its configs from the folder beside it, offline), the pipeline call with the same
  prompt, size, steps and CFG (EulerDiscreteScheduler), then ``image.save``, until it exits.

The modes alternate round by round (the order reversed every other round) and the medians and
the ratio to diffusers' median are printed, with the stage times each side can tell: Weft's
from the WebSocket events (model weights load lazily, so the text encoder's load is in
*encode*, the UNet's in *load* (KSampler's time before its first step), the VAE's in
*decode*), diffusers' from timers around ``encode_prompt`` and ``vae.decode``. The first
``weft`` round then checks the text encoding cache: the same text with a new seed, the same
text with different spacing (same tokens: a new node signature but the same encoding) and a
new text, each 1 step at 64x64.

By default the model is the project's tiny SD1 checkpoint (a validation of the bench itself);
``--sd15 DIR`` uses (and builds once) a random-weight SD1.5-architecture file
(``bench/sd15_checkpoint.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_start import (  # noqa: E402
    ROOT,
    TEXT,
    Run,
    Server,
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

MODES = ("weft", "weft-run", "diffusers")
STAGES = ("startup", "load", "encode", "sample", "decode", "save")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sd15", type=Path, default=None, help="folder for the random SD1.5 file (built once)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="an SD1 single-file checkpoint")
    parser.add_argument("--config", type=Path, default=None, help="its diffusers pipeline folder (configs)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, of " + ", ".join(MODES))
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for every contender (0: default)")
    parser.add_argument("--no-text-cache-check", action="store_true")
    parser.add_argument("--child", choices=("diffusers",), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def model_files(args: argparse.Namespace) -> tuple[Path, Path]:
    """The checkpoint and its diffusers config folder: given, the SD1.5 stand-in, or tiny SD1."""
    if args.checkpoint is not None:
        if args.config is None:
            raise SystemExit("--checkpoint needs --config (a diffusers pipeline folder for from_single_file)")
        return args.checkpoint, args.config
    if args.sd15 is not None:
        from bench.sd15_checkpoint import ensure_sd15

        return ensure_sd15(args.sd15)
    from weft_tools.tiny_models import build_all

    root = Path(tempfile.mkdtemp(prefix="weft-bench-first-"))
    build_all(root, families=("sd1",))
    return root / "checkpoints" / "tiny-sd1.safetensors", root / "diffusers" / "tiny-sd1"


# --- Weft through its server ------------------------------------------------------------------


def weft_stages(run: Run, ready: float, steps: int) -> dict[str, float]:
    """Stage times from one run's events; see the module docstring for what each one holds."""
    seconds = run.node_seconds()
    sampler = seconds.get("3", 0.0)
    ticks = run.step_times("3")
    sampling = (ticks[-1] - ticks[0]) * steps / (len(ticks) - 1) if len(ticks) > 1 else sampler
    return {
        "startup": ready,
        "load": seconds.get("4", 0.0) + max(sampler - sampling, 0.0),
        "encode": seconds.get("6", 0.0) + seconds.get("7", 0.0),
        "sample": sampling,
        "decode": seconds.get("8", 0.0),
        "save": seconds.get("9", 0.0),
    }


def cold_weft(checkpoint: Path, args: argparse.Namespace, text_check: bool) -> dict[str, Any]:
    """``python main.py`` from cold to the first picture saved, then (once) the text-cache check."""
    base = base_directory(checkpoint, "weft-first-")
    port = free_port()
    command = [sys.executable, "main.py", "--cpu", "--port", str(port), "--base-directory", str(base)]
    with Server(command, cwd=ROOT, env=child_env(args.threads), port=port, log=base / "server.log") as server:
        ready = server.wait_ready()
        prompt = txt2img_prompt(
            checkpoint.name, text=TEXT, seed=1, size=args.size, steps=args.steps, cfg=args.cfg, prefix="weft"
        )
        run = run_prompt(server.url, prompt)
        total = run.done - server.started
        if not saved_images(base):
            raise RuntimeError(f"Weft saved no picture; see {base / 'server.log'}")
        result = {"total": total, "stages": weft_stages(run, ready, args.steps)}
        if text_check:
            result["text_cache"] = text_cache_check(server.url, checkpoint, args)
    return result


def text_cache_check(url: str, checkpoint: Path, args: argparse.Namespace) -> list[tuple[str, str, float]]:
    """What the positive prompt's CLIPTextEncode cost in three follow-up prompts (1 step at 64x64
    each: the encoding does not depend on the picture, and a full-size one would cost minutes).

    The same text hits the engine's output cache; the same tokens under a new signature (extra
    spaces) can only be served by the text-encoding cache (``nodes/diffusion/text_cache.py``);
    a new text shows what an encode costs with the encoder already loaded.
    """
    cases = [
        ("same text, new seed", TEXT, 2),
        ("same tokens, new spacing", "  " + TEXT.replace(" ", "  ") + " ", 3),
        ("new text", "a watercolour of a lighthouse at dusk", 4),
    ]
    rows = []
    for label, text, seed in cases:
        prompt = txt2img_prompt(checkpoint.name, text=text, seed=seed, size=64, steps=1, cfg=args.cfg, prefix="w")
        run = run_prompt(url, prompt)
        status = "cached (output cache)" if "6" in run.cached() else "executed"
        rows.append((label, status, run.node_seconds().get("6", 0.0)))
    return rows


# --- Weft headless ----------------------------------------------------------------------------


def cold_weft_run(checkpoint: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``python main.py run prompt.json``: node times from its progress lines' arrival times."""
    base = base_directory(checkpoint, "weft-run-")
    prompt = txt2img_prompt(
        checkpoint.name, text=TEXT, seed=1, size=args.size, steps=args.steps, cfg=args.cfg, prefix="weft"
    )
    (base / "prompt.json").write_text(json.dumps(prompt))
    command = [sys.executable, "main.py", "run", str(base / "prompt.json"), "--cpu", "--base-directory", str(base)]
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=ROOT, env=child_env(args.threads), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    marks: list[tuple[float, str]] = []

    def watch() -> None:
        for line in proc.stderr:  # "running node 3 (KSampler)"
            if line.startswith("running node "):
                marks.append((time.perf_counter(), line.split()[2]))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out = proc.stdout.read()
    proc.wait()
    watcher.join()
    total = time.perf_counter() - started
    if proc.returncode != 0 or not saved_images(base):
        raise RuntimeError(f"weft run failed ({proc.returncode}): {out}")
    ends = [t for t, _ in marks[1:]] + [started + total]
    seconds = {node: end - t for (t, node), end in zip(marks, ends, strict=True)}
    stages = {
        "startup": marks[0][0] - started if marks else total,
        "load": seconds.get("4", 0.0),
        "encode": seconds.get("6", 0.0) + seconds.get("7", 0.0),
        "sample": seconds.get("3", 0.0),  # the UNet's load included: no step events without a terminal
        "decode": seconds.get("8", 0.0),
        "save": seconds.get("9", 0.0),  # and the interpreter's exit
    }
    return {"total": total, "stages": stages}


# --- diffusers --------------------------------------------------------------------------------


def cold_diffusers(checkpoint: Path, config: Path, args: argparse.Namespace) -> dict[str, Any]:
    """This script again as a fresh process (``--child diffusers``), timed from spawn to exit."""
    out = Path(tempfile.mkdtemp(prefix="diffusers-first-"))
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "diffusers",
        "--checkpoint",
        str(checkpoint),
        "--config",
        str(config),
        "--out",
        str(out),
        *("--size", str(args.size), "--steps", str(args.steps), "--cfg", str(args.cfg)),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=child_env(args.threads), capture_output=True, text=True)
    total = time.perf_counter() - started
    if done.returncode != 0 or not (out / "diffusers.png").exists():
        raise RuntimeError(f"diffusers child failed ({done.returncode}): {done.stderr[-3000:]}")
    stages = json.loads(done.stdout.strip().splitlines()[-1])
    return {"total": total, "stages": stages}


def diffusers_child(args: argparse.Namespace) -> None:
    """What a diffusers user writes: from_single_file, one pipeline call, save. Prints stage times."""
    started = time.perf_counter()
    import torch
    from diffusers import StableDiffusionPipeline

    imported = time.perf_counter()
    pipe = StableDiffusionPipeline.from_single_file(
        str(args.checkpoint),
        config=str(args.config),
        local_files_only=True,
        safety_checker=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    loaded = time.perf_counter()
    marks: dict[str, float] = {}
    pipe.encode_prompt = timed(pipe.encode_prompt, marks, "encode")
    pipe.vae.decode = timed(pipe.vae.decode, marks, "decode")
    image = pipe(
        TEXT,
        negative_prompt="",
        height=args.size,
        width=args.size,
        num_inference_steps=args.steps,
        guidance_scale=args.cfg,
        generator=torch.Generator().manual_seed(1),
    ).images[0]
    called = time.perf_counter()
    image.save(args.out / "diffusers.png")
    saved = time.perf_counter()
    stages = {
        "startup": imported - started,
        "load": loaded - imported,
        "encode": marks["encode_end"] - marks["encode_start"],
        "sample": marks["decode_start"] - marks["encode_end"],
        "decode": marks["decode_end"] - marks["decode_start"],
        "save": (called - marks["decode_end"]) + (saved - called),  # postprocess to PIL, PNG write
    }
    print(json.dumps(stages))


def timed(function: Any, marks: dict[str, float], name: str) -> Any:
    """``function`` noting when its first call starts and its last call ends."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        marks.setdefault(f"{name}_start", time.perf_counter())
        result = function(*args, **kwargs)
        marks[f"{name}_end"] = time.perf_counter()
        return result

    return wrapper


# --- the rounds and the report ----------------------------------------------------------------


def cold_run(mode: str, checkpoint: Path, config: Path, args: argparse.Namespace, first: bool) -> dict[str, Any]:
    if mode == "weft":
        return cold_weft(checkpoint, args, first and not args.no_text_cache_check)
    if mode == "weft-run":
        return cold_weft_run(checkpoint, args)
    return cold_diffusers(checkpoint, config, args)


def run_rounds(checkpoint: Path, config: Path, args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Every mode once per round, the order reversed every other round; each run is printed as
    it ends (with the load average), so a long run that breaks off still leaves its figures."""
    import os

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for round_index in range(args.rounds):
        for mode in modes if round_index % 2 == 0 else modes[::-1]:
            result = cold_run(mode, checkpoint, config, args, round_index == 0)
            results[mode].append(result)
            stages = ", ".join(f"{k} {v:.2f}" for k, v in result["stages"].items())
            print(
                f"round {round_index + 1} {mode}: {result['total']:.2f} s ({stages}; "
                f"load average {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    return results


def report(results: dict[str, list[dict[str, Any]]], checkpoint: Path, args: argparse.Namespace) -> None:
    print(machine_line())
    print(
        f"model: {checkpoint.name} ({checkpoint.stat().st_size / 1e9:.2f} GB), {args.size}x{args.size}, "
        f"{args.steps} Euler steps, CFG {args.cfg}, rounds {args.rounds}, threads {args.threads or 'default'}"
    )
    base = median([r["total"] for r in results.get("diffusers", [])])
    print("| mode | cold to picture saved, median (min-max) | ratio to diffusers | " + " | ".join(STAGES) + " |")
    print("|---|---|---:|" + "---:|" * len(STAGES))
    for mode, runs in results.items():
        totals = [r["total"] for r in runs]
        ratio = median(totals) / base if base == base and base > 0 else float("nan")
        stages = [median([r["stages"][stage] for r in runs]) for stage in STAGES]
        print(f"| {mode} | {spread(totals)} | {ratio:.2f} | " + " | ".join(f"{s:.2f}" for s in stages) + " |")
    for mode, runs in results.items():
        for row in runs[0].get("text_cache", []) if runs else []:
            print(
                f"text cache ({mode}, 1-step 64x64 follow-up prompt): {row[0]}: CLIPTextEncode {row[1]}, {row[2]:.3f} s"
            )


def main() -> int:
    args = parse_args()
    if args.child == "diffusers":
        diffusers_child(args)
        return 0
    checkpoint, config = model_files(args)
    results = run_rounds(checkpoint, config, args)
    report(results, checkpoint, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
