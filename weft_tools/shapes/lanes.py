"""The UNet stage and the decoder stages side by side, each with half the cores.

Why: on this project's 2-core training machine a stage's second thread buys about 1.5x, not 2x
(a UNet step of 128 takes 3.1-3.3 s on one thread and 2.1 s on two; a decoder step of 8, 0.43 s
and 0.28 s), two one-thread processes side by side barely slow each other, and the decoder
stages need nothing the UNet learns (the encoder they decode for is frozen after stage 1).
So the UNet (stage 3, in this process) and the decoder stages (5 and 6,
in a second process) train at the same time, one thread each, and the ControlNet (stage 4,
which needs the finished UNet) follows with every thread.

Each lane's stages always run with the same thread count, whether or not the other lane still
has work, so a run in slices computes what a straight one does. Each lane spends its own copy
of the step budget; when either is spent, both save and the run pauses.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path
from typing import Any

from .plan import Plan
from .plumbing import Budget, Paused, load_state, log
from .train_autoencoder import train_decoder, train_vae, train_wide_decoder
from .train_diffusion import train_unet

#: the decoder lane's exit status when its step budget was spent (it saved; run again)
PAUSED_EXIT = 3


def lane_threads(threads: int) -> int:
    return max(1, threads // 2)


def decoder_stages_done(plan: Plan, work: Path, through: str) -> bool:
    stages = ["decoder"] + (["widen"] if through == "widen" and plan.widen_channels is not None else [])
    return all((state := load_state(work / f"{name}.pt")) is not None and state.get("done") for name in stages)


def train_side_by_side(
    plan: Plan,
    work: Path,
    bank: dict[str, Any],
    vae: Any,
    budget: Budget,
    threads: int,
    through: str | None,
) -> tuple[Any, Any, Any]:
    """(UNet, text encoder, autoencoder): stage 3 here while a child process trains the decoder
    stages ``through`` ``"decoder"`` or ``"widen"`` (``None``: the UNet alone, ``vae`` as given)."""
    import torch

    child = None
    if through is not None and not decoder_stages_done(plan, work, through):
        context = multiprocessing.get_context("spawn")  # forking a process whose torch runs threads can hang
        child = context.Process(
            target=decoder_lane,
            args=(plan, work, budget.left, lane_threads(threads), through == "widen"),
            name="weft-decoder-lane",
            daemon=True,
        )
        child.start()
    torch.set_num_threads(lane_threads(threads))
    try:
        unet, text = train_unet(plan, work, bank, budget)
    except Paused:
        _join(child, work)
        raise
    except BaseException:
        if child is not None:
            child.terminate()  # it loses at most the steps since its last checkpoint
            child.join()
        raise
    finally:
        torch.set_num_threads(threads)
    _join(child, work)
    if through is not None:  # done by now: these load what the lane saved
        vae = train_decoder(plan, work, bank, vae, budget)
    if through == "widen":
        vae = train_wide_decoder(plan, work, bank, vae, budget)
    return unet, text, vae


def _join(child: Any, work: Path) -> None:
    if child is None:
        return
    child.join()
    if child.exitcode == PAUSED_EXIT:
        raise Paused
    if child.exitcode != 0:
        why = _last_failure(work) if child.exitcode > 0 else f"killed by signal {-child.exitcode}"
        raise RuntimeError(
            f"the decoder lane (stages 5 and 6, a second process) failed with exit status {child.exitcode}: "
            f"{why}; what its stages saved is kept, run again to go on"
        )


def _last_failure(work: Path) -> str:
    lines = (work / "train.log").read_text(encoding="utf-8").splitlines() if (work / "train.log").exists() else []
    failures = [line.split(" decoder lane failed: ", 1)[1] for line in lines if " decoder lane failed: " in line]
    return failures[-1] if failures else "it left no message"


def decoder_lane(plan: Plan, work: Path, steps_left: int | None, threads: int, through_widen: bool) -> None:
    """The child process: stages 5 and 6 on ``threads`` threads, from the stage-1 autoencoder."""
    import torch

    torch.set_num_threads(threads)
    budget = Budget(steps_left)
    try:
        vae = train_vae(plan, work, Budget(None))  # done: loads it
        bank = load_state(work / "bank.pt")
        vae = train_decoder(plan, work, bank, vae, budget)
        if through_widen:
            train_wide_decoder(plan, work, bank, vae, budget)
    except Paused:
        log(work, "decoder lane paused with the step budget spent")
        sys.exit(PAUSED_EXIT)
    except Exception as error:
        log(work, f"decoder lane failed: {type(error).__name__}: {error}")
        raise
