"""REWARD: the node type that says how good a picture is, for steering and selection.

A REWARD is any object called as ``reward(images, context)`` that returns one score per
picture, higher meaning better:

* ``images``: an IMAGE tensor ``[B, H, W, C]`` in 0..1 (float32, CPU), the same layout every
  image node uses, so a reward is written like any image node's code;
* ``context``: a :class:`RewardContext` saying where in sampling the pictures come from
  (a steering sampler scores the *intermediate clean predictions* of noisy samples, which
  are blurrier the earlier they are; a reward may ignore it or be lenient early on);
* the result: a float tensor ``[B]`` (anything ``torch.as_tensor`` turns into one).

Why a protocol and not a base class: a plugin's reward then needs nothing from Weft, and a
plain function becomes one with :func:`reward_from_function`. :func:`score_images` is the one
place that calls rewards: it checks what comes back and names the reward in the error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

#: The socket type name of rewards (an output of reward nodes, an input of steering samplers).
REWARD_TYPE = "REWARD"


@dataclass(frozen=True)
class RewardContext:
    """Where the pictures being scored come from.

    ``step`` steps of ``steps`` are done; ``sigma`` is the noise level of the sample whose clean
    prediction was decoded (0 for a finished picture); ``final`` marks the finished pictures,
    which decide which particle a sampler returns.
    """

    step: int = 0
    steps: int = 0
    sigma: float = 0.0
    final: bool = True


@runtime_checkable
class Reward(Protocol):
    """What a REWARD value is. ``name`` appears in reports and error messages."""

    name: str

    def __call__(self, images: torch.Tensor, context: RewardContext) -> torch.Tensor: ...


class FunctionReward:
    """A REWARD made of a function of the images alone (the context is not passed on)."""

    def __init__(self, fn: Callable[[Any], Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "reward")

    def __call__(self, images: torch.Tensor, context: RewardContext) -> torch.Tensor:
        import torch

        return torch.as_tensor(self.fn(images), dtype=torch.float32)

    def __repr__(self) -> str:
        return f"<REWARD {self.name}>"


def reward_from_function(fn: Callable[[Any], Any], name: str | None = None) -> FunctionReward:
    """Wrap ``fn(images) -> scores`` as a REWARD, for plugins that need no context."""
    return FunctionReward(fn, name)


def is_reward(value: Any) -> bool:
    return callable(value) and not isinstance(value, type)


def reward_name(reward: Any) -> str:
    return str(getattr(reward, "name", None) or type(reward).__name__)


def score_images(reward: Any, images: torch.Tensor, context: RewardContext) -> torch.Tensor:
    """``reward(images, context)`` as a float32 CPU tensor ``[B]``; NaN scores become -inf, so a
    picture a reward cannot score is never preferred."""
    import torch

    scores = torch.as_tensor(reward(images, context)).detach().to("cpu", torch.float32).flatten()
    if scores.numel() != images.shape[0]:
        raise ValueError(
            f"reward {reward_name(reward)!r} returned {scores.numel()} scores for "
            f"{images.shape[0]} pictures: a REWARD must return one score per picture"
        )
    return torch.nan_to_num(scores, nan=float("-inf"))


def check_reward(value: Any, input_name: str = "reward") -> Any:
    """``value`` if it can be called as a REWARD, else an error naming the input."""
    if not is_reward(value):
        raise ValueError(
            f"input '{input_name}' is not a REWARD (connect a reward node such as ShapesJudgeReward "
            "or ImageStatisticsReward)"
        )
    return value
