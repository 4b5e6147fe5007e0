"""Feynman-Kac potentials and particle resampling (Singhal et al., arXiv 2501.06848, section 3).

Particles are arranged ``[k, B]``: ``k`` particles for each of the ``B`` pictures of the
LATENT, each picture's particles resampled among themselves. At a resampling step every
particle's intermediate reward ``r`` (the reward of its decoded clean prediction) updates its
potential ``G = exp(lambda * v)``, ``v`` being, as in the paper:

* ``max``: the highest reward along the particle's path so far;
* ``sum``: the sum of its rewards so far;
* ``difference``: the change since its previous scored step (the product over steps then
  telescopes to ``exp(lambda * r)`` of the latest reward).

The log-weights accumulate ``lambda * v`` until a resampling happens (sequential Monte Carlo),
which draws ``k`` particles in proportion to the weights and resets them; with an ESS
threshold below 1 a step resamples only when the effective sample size has fallen below that
fraction of ``k`` (the paper's adaptive resampling).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

POTENTIALS = ("max", "difference", "sum")
RESAMPLING = ("systematic", "multinomial")


class Potentials:
    """The per-particle state a potential needs and the accumulated log-weights, ``[k, B]``."""

    def __init__(self, kind: str, scale: float, particles: int, batch: int) -> None:
        import torch

        if kind not in POTENTIALS:
            raise ValueError(f"potential {kind!r} is not one of {', '.join(POTENTIALS)}")
        self.kind, self.scale = kind, float(scale)
        shape = (particles, batch)
        self.best = torch.full(shape, -float("inf"))  # max: running maximum
        self.total = torch.zeros(shape)  # sum: running sum
        self.previous = torch.zeros(shape)  # difference: the last reward
        self.log_weights = torch.zeros(shape)

    def update(self, rewards: torch.Tensor) -> torch.Tensor:
        """Fold in this step's rewards ``[k, B]``; returns the log-potentials added to the weights."""
        import torch

        finite = torch.isfinite(rewards)
        if self.kind == "max":
            self.best = torch.maximum(self.best, rewards)
            value = self.best
        elif self.kind == "sum":
            self.total = self.total + rewards
            value = self.total
        else:
            value = rewards - self.previous
            self.previous = rewards
        log_g = torch.where(finite, value * self.scale, torch.full_like(value, -float("inf")))
        self.log_weights = self.log_weights + log_g
        return log_g

    def select(self, rows: torch.Tensor, resampled: torch.Tensor) -> None:
        """Keep the state of the particles drawn (``rows`` ``[k, B]``); the weights of the pictures
        that were ``resampled`` (``[B]`` bool) start afresh, the others keep accumulating."""
        import torch

        self.best = torch.gather(self.best, 0, rows)
        self.total = torch.gather(self.total, 0, rows)
        self.previous = torch.gather(self.previous, 0, rows)
        self.log_weights = torch.where(
            resampled[None, :], torch.zeros_like(self.log_weights), torch.gather(self.log_weights, 0, rows)
        )


def normalised(log_weights: torch.Tensor) -> torch.Tensor:
    """Per picture (column), the weights as probabilities; all-impossible columns become uniform."""
    import torch

    all_dead = ~torch.isfinite(log_weights).any(dim=0, keepdim=True)
    safe = torch.where(all_dead, torch.zeros_like(log_weights), log_weights)
    return torch.softmax(safe, dim=0)


def effective_sample_size(log_weights: torch.Tensor) -> torch.Tensor:
    """``1 / sum(w^2)`` of the normalised weights, per picture ``[B]`` (k when all are equal)."""
    return 1.0 / normalised(log_weights).pow(2).sum(dim=0)


def draw(probabilities: torch.Tensor, method: str, generator: torch.Generator | None) -> torch.Tensor:
    """``k`` particle indices per picture drawn in proportion to ``probabilities`` ``[k, B]``.

    ``systematic``: one uniform offset, ``k`` evenly spaced points through the cumulative
    weights (lower variance: a particle with weight w gets floor(k w) or ceil(k w) copies).
    ``multinomial``: ``k`` independent draws.
    """
    import torch

    if method not in RESAMPLING:
        raise ValueError(f"resampling {method!r} is not one of {', '.join(RESAMPLING)}")
    k, batch = probabilities.shape
    columns = []
    for b in range(batch):
        p = probabilities[:, b].double()
        if method == "multinomial":
            rows = torch.multinomial(p, k, replacement=True, generator=generator)
        else:
            offset = torch.rand((), generator=generator, dtype=torch.float64)
            points = (offset + torch.arange(k, dtype=torch.float64)) / k
            cumulative = torch.cumsum(p, 0)
            cumulative[-1] = 1.0
            rows = torch.searchsorted(cumulative, points, right=True).clamp(max=k - 1)
        columns.append(rows)
    return torch.stack(columns, dim=1)
