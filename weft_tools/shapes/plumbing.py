"""What every training stage shares: seeded batches, checkpoints, step budgets, the log.

A stage must resume to the bit: its batches come from generators seeded by (seed, stage,
step), never from a generator carried across steps, and :class:`StageRun` saves the modules,
the optimiser and the step under the same keys it reads them back from.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .plan import STAGE_IDS, Plan


class Paused(Exception):
    """The run's step budget is spent; every stage has saved where it stopped."""


class Budget:
    """How many optimiser steps this invocation may take (``None``: all), for training in slices."""

    def __init__(self, steps: int | None = None) -> None:
        self.left = steps

    def spend(self) -> bool:
        """Count one step; True when the budget is now spent (save, then raise :class:`Paused`)."""
        if self.left is None:
            return False
        self.left -= 1
        return self.left <= 0


def log(work: Path, message: str, **figures: Any) -> None:
    line = time.strftime("%H:%M:%S ") + message
    if figures:
        line += " " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(line, flush=True)
    with open(work / "train.log", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def batch_rng(plan: Plan, stage: str, step: int) -> np.random.Generator:
    return np.random.default_rng([plan.seed, STAGE_IDS[stage], step])


def torch_generator(plan: Plan, stage: str, step: int) -> Any:
    import torch

    return torch.Generator().manual_seed(int(batch_rng(plan, stage, step).integers(0, 2**62)))


def save_atomic(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> dict[str, Any] | None:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


def cosine_lr(base: float, step: int, total: int, warmup: int = 0, floor: float = 0.1) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def set_lr(optimizer: Any, lr: float) -> None:
    """Every group's rate to ``lr``, times the group's ``scale`` where it has one."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("scale", 1.0)


def optimise(optimizer: Any, loss: Any, params: Any) -> None:
    """One optimiser step on ``loss``, the gradients' norm clipped to 1 (every stage does so)."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()


def to_tensor(images: np.ndarray) -> Any:
    """uint8 NHWC -> float NCHW in [-1, 1] (what AutoencoderKL expects)."""
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def record_time(work: Path, stage: str, seconds: float) -> None:
    """Add ``seconds`` to ``stage``'s entry in ``times.json``; the file is locked while it is read
    and written, because the two lanes (:mod:`.lanes`) may finish a stage at the same moment."""
    path = work / "times.json"
    with open(work / "times.json.lock", "a") as lock:
        _lock(lock)
        times = json.loads(path.read_text()) if path.exists() else {}
        times[stage] = times.get(stage, 0.0) + seconds
        path.write_text(json.dumps(times, indent=2))


def _lock(handle: Any) -> None:
    """An exclusive advisory lock on ``handle``, released when it is closed (POSIX; elsewhere none)."""
    try:
        import fcntl
    except ImportError:
        return
    fcntl.flock(handle, fcntl.LOCK_EX)


class StageRun:
    """The bookkeeping around one stage's optimisation loop, the same for every stage.

    The stage's checkpoint (``<workdir>/<stage>.pt``) holds its modules under their keys, the
    optimiser and the step; one is saved every ``plan.checkpoint_every`` steps, at the last step
    and when the budget is spent, and then :class:`Paused` stops the run so that the next call
    goes on from it. Progress lines and the time spent go to the workdir's log and ``times.json``.
    """

    def __init__(self, plan: Plan, work: Path, budget: Budget, name: str, total: int) -> None:
        self.plan, self.work, self.budget, self.name, self.total = plan, work, budget, name, total
        self.path = work / f"{name}.pt"
        self.modules: dict[str, Any] = {}
        self.optimizer: Any = None
        self.start = 0
        self.began = time.time()

    def resume(self, state: dict[str, Any] | None, modules: dict[str, Any], optimizer: Any) -> None:
        """Track ``modules`` (checkpoint key -> module) and ``optimizer``; load them from ``state`` if any."""
        self.modules, self.optimizer = modules, optimizer
        if state:
            for key, module in modules.items():
                module.load_state_dict(state[key])
            optimizer.load_state_dict(state["optimizer"])
            self.start = state["step"]
            log(self.work, f"{self.name}: resuming at step {self.start}")

    def steps(self) -> range:
        """The steps left to take; the stage's clock starts here."""
        self.began = time.time()
        return range(self.start, self.total)

    def due(self, step: int, every: int) -> bool:
        return (step + 1) % every == 0 or step + 1 == self.total

    def progress(self, step: int, **figures: Any) -> None:
        log(
            self.work,
            f"{self.name} step {step + 1}/{self.total}",
            **figures,
            s_per_step=(time.time() - self.began) / (step + 1 - self.start),
        )

    def checkpoint_or_pause(self, step: int) -> None:
        """After ``step``: spend one step of the budget, save when due, stop when the budget is spent."""
        spent = self.budget.spend()
        if self.due(step, self.plan.checkpoint_every) or spent:
            state = {key: module.state_dict() for key, module in self.modules.items()}
            save_atomic({**state, "optimizer": self.optimizer.state_dict(), "step": step + 1}, self.path)
        if spent and step + 1 < self.total:
            self.finish()
            raise Paused

    def finish(self) -> None:
        record_time(self.work, self.name, time.time() - self.began)
