"""Weft's flags for where node code runs and how long it may take (docs/security.md).

Kept apart from :mod:`server.flags` (ComfyUI's flags and Weft's others) so neither module
grows past a screenful of argparse per area.
"""

from __future__ import annotations

import argparse
from typing import Any

#: argparse destinations of these flags (none is part of ``comfy.cli_args.args``)
DESTS = frozenset(
    {
        "worker_mode",
        "interrupt_grace",
        "batch_prompts",
        "max_prompt_seconds",
        "backend",
        "ray_address",
        "ray_workers",
        "ray_cpus_per_worker",
        "ray_gpus_per_worker",
    }
)


def _non_negative_seconds(value: str) -> float:
    seconds = float(value)
    if not seconds >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more seconds")
    return seconds


def add_worker_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("worker (Weft's; docs/security.md)")
    g.add_argument(
        "--worker-mode",
        choices=["process", "thread"],
        default="process",
        help="where node code runs: a worker process the server supervises and restarts (default; "
        "a node cannot freeze or crash the server), or a thread of the server process (packs "
        "that share in-process state with their routes need it; docs/plugins.md)",
    )
    g.add_argument(
        "--interrupt-grace",
        type=_non_negative_seconds,
        default=5.0,
        metavar="SECONDS",
        help="with the worker process: seconds an interrupted prompt may take to stop before its "
        "worker is killed and restarted (default 5)",
    )
    g.add_argument(
        "--max-prompt-seconds",
        type=_non_negative_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wall-clock limit of one prompt: past it the prompt is interrupted and marked failed "
        "(default 0: no limit)",
    )
    g.add_argument(
        "--batch-prompts",
        type=_batch_size,
        nargs="?",
        const=8,
        default=0,
        metavar="N",
        help="sample up to N queued prompts that differ only in seeds and texts as one batch, each "
        "with its own history, events and files (default off; the flag alone: 8; docs/scale-out.md)",
    )


#: the most prompts ``--batch-prompts`` may sample as one batch
MAX_BATCH_PROMPTS = 64


def _batch_size(value: str) -> int:
    size = int(value)
    if not 0 <= size <= MAX_BATCH_PROMPTS:
        raise argparse.ArgumentTypeError(f"must be 0 (off) to {MAX_BATCH_PROMPTS}")
    return size


def _positive(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def add_pool_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scale-out on Ray (Weft's; docs/scale-out.md)")
    g.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="where prompts run: the local worker (default; --worker-mode), or a pool of worker actors on a "
        "Ray cluster, several prompts at once, each where its model is loaded already (pip install weft[ray])",
    )
    g.add_argument(
        "--ray-address",
        default="local",
        metavar="local|auto|ADDRESS",
        help="with --backend ray: 'local' starts Ray in this process (default), 'auto' joins the cluster "
        "'ray start' runs on this machine, or the address (host:port) of its head",
    )
    g.add_argument(
        "--ray-workers",
        type=int,
        default=0,
        metavar="N",
        help="with --backend ray: worker actors to start (default 0: one per GPU of the cluster, or one per "
        "--ray-cpus-per-worker CPUs when it has none)",
    )
    g.add_argument(
        "--ray-cpus-per-worker",
        type=_positive,
        default=None,
        metavar="N",
        help="CPUs each worker actor reserves (default: 1 with GPUs, 4 without)",
    )
    g.add_argument(
        "--ray-gpus-per-worker",
        type=_positive,
        default=None,
        metavar="N",
        help="GPUs each worker actor reserves (default: 1 when the cluster has GPUs, else 0)",
    )


def worker_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~server.config.ServerConfig` fields; a parser without these flags
    (``main.py run``) runs nodes in its own process, unbounded."""
    return {
        "worker_mode": getattr(args, "worker_mode", "thread"),
        "interrupt_grace": getattr(args, "interrupt_grace", 5.0),
        "max_prompt_seconds": getattr(args, "max_prompt_seconds", 0.0),
        "batch_prompts": getattr(args, "batch_prompts", 0),
        "backend": getattr(args, "backend", "local"),
        "ray_address": getattr(args, "ray_address", "local"),
        "ray_workers": max(getattr(args, "ray_workers", 0), 0),
        "ray_cpus_per_worker": getattr(args, "ray_cpus_per_worker", None),
        "ray_gpus_per_worker": getattr(args, "ray_gpus_per_worker", None),
    }
