"""Weft's flags for where node code runs and how long it may take (docs/security.md).

Kept apart from :mod:`server.flags` (ComfyUI's flags and Weft's others) so neither module
grows past a screenful of argparse per area.
"""

from __future__ import annotations

import argparse
from typing import Any

#: argparse destinations of these flags (none is part of ``comfy.cli_args.args``)
DESTS = frozenset({"worker_mode", "interrupt_grace", "max_prompt_seconds"})


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


def worker_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~server.config.ServerConfig` fields; a parser without these flags
    (``main.py run``) runs nodes in its own process, unbounded."""
    return {
        "worker_mode": getattr(args, "worker_mode", "thread"),
        "interrupt_grace": getattr(args, "interrupt_grace", 5.0),
        "max_prompt_seconds": getattr(args, "max_prompt_seconds", 0.0),
    }
