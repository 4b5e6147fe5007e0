"""The built-in REWARDs: the shapes judge, image statistics, and a weighted sum of rewards.

Each is a small callable object (see :mod:`.reward` for the protocol) holding its settings, so
a steering sampler can call it on every resampling step without going through the graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .reward import RewardContext, reward_name, score_images

if TYPE_CHECKING:
    import torch

JUDGE_MODES = ("hard", "soft")
STATISTICS = ("brightness", "colourfulness", "target_colour")


class ShapesJudgeReward:
    """The built-in shapes model's judge as a reward: how much of ``caption`` a picture shows.

    ``hard``: the fraction of the caption's attributes (shape, colour, size, position,
    background) the judge reads back right, the number the shapes evaluation reports.
    ``soft``: the mean of the judge's graded degrees (:func:`weft_tools.shapes.judge.soft_score`),
    smoother on the blurry intermediate predictions a steering sampler scores.
    """

    def __init__(self, caption: str, mode: str = "hard") -> None:
        if mode not in JUDGE_MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(JUDGE_MODES)}")
        from weft_tools.shapes import judge

        if not any(v is not None for v in judge.parse_caption(caption).values()):
            raise ValueError(
                f"caption {caption!r} names nothing the shapes judge reads (a shape, colour, size, "
                "position or background, e.g. 'a large red circle in the centre, blue background')"
            )
        self.caption, self.mode = caption, mode
        self.name = f"ShapesJudge({mode})"

    def __call__(self, images: torch.Tensor, context: RewardContext) -> torch.Tensor:
        import numpy as np
        import torch

        from weft_tools.shapes import judge

        pictures = (images[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        scores = []
        for picture in pictures:
            result: dict[str, Any] = (
                judge.score(self.caption, picture) if self.mode == "hard" else judge.soft_score(self.caption, picture)
            )
            scores.append(float(np.mean([float(v) for v in result.values()])) if result else 0.0)
        return torch.tensor(scores, dtype=torch.float32)

    def __repr__(self) -> str:
        return f"<REWARD {self.name} {self.caption!r}>"


def brightness(images: torch.Tensor) -> torch.Tensor:
    """Mean Rec. 709 luma per picture, 0..1."""
    rgb = images[..., :3].float()
    luma = rgb[..., 0] * 0.2126 + rgb[..., 1] * 0.7152 + rgb[..., 2] * 0.0722
    return luma.mean(dim=(1, 2))


def colourfulness(images: torch.Tensor) -> torch.Tensor:
    """Hasler and Süsstrunk's colourfulness metric ("Measuring colourfulness in natural images",
    2003) on the 0..1 scale (their 0..255 values divided by 255): the spread plus 0.3 times the
    mean distance from grey of the opponent colour components rg = R - G and yb = (R + G) / 2 - B.
    """
    rgb = images[..., :3].float()
    rg = (rgb[..., 0] - rgb[..., 1]).flatten(1)
    yb = (0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]).flatten(1)
    spread = (rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False)).sqrt()
    mean = (rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2).sqrt()
    return spread + 0.3 * mean


def target_colour_closeness(images: torch.Tensor, rgb: Sequence[float]) -> torch.Tensor:
    """1 minus the mean per-pixel RGB distance to ``rgb`` (0..1 per channel), over the largest
    possible distance: 1 when every pixel is that colour, 0 at the opposite corner of the cube."""
    import torch

    target = torch.tensor([float(v) for v in rgb], dtype=torch.float32)
    distance = (images[..., :3].float() - target).pow(2).sum(dim=-1).sqrt().mean(dim=(1, 2))
    return 1.0 - distance / 3**0.5


class ImageStatisticsReward:
    """A reward from pixel statistics alone: brightness, colourfulness or closeness to a colour.

    Cheap and model-free, it is what the steering tests optimise on the tiny random models,
    and a simple knob for users ("brighter", "more colourful", "more teal").
    """

    def __init__(self, statistic: str, target_rgb: Sequence[float] = (1.0, 0.0, 0.0)) -> None:
        if statistic not in STATISTICS:
            raise ValueError(f"statistic {statistic!r} is not one of {', '.join(STATISTICS)}")
        self.statistic = statistic
        self.target_rgb = tuple(float(v) for v in target_rgb)
        self.name = (
            statistic
            if statistic != "target_colour"
            else ("target_colour(" + ",".join(f"{v:.2f}" for v in self.target_rgb) + ")")
        )

    def __call__(self, images: torch.Tensor, context: RewardContext) -> torch.Tensor:
        if self.statistic == "brightness":
            return brightness(images)
        if self.statistic == "colourfulness":
            return colourfulness(images)
        return target_colour_closeness(images, self.target_rgb)

    def __repr__(self) -> str:
        return f"<REWARD {self.name}>"


class CombinedReward:
    """A weighted sum of rewards: several goals at once, or a reward turned round (weight < 0)."""

    def __init__(self, parts: Sequence[tuple[Any, float]]) -> None:
        self.parts = [(reward, float(weight)) for reward, weight in parts if reward is not None]
        if not self.parts:
            raise ValueError("CombineRewards needs at least one reward")
        self.name = " + ".join(f"{weight:g}*{reward_name(reward)}" for reward, weight in self.parts)

    def __call__(self, images: torch.Tensor, context: RewardContext) -> torch.Tensor:
        import torch

        total = torch.zeros(images.shape[0], dtype=torch.float32)
        for reward, weight in self.parts:
            scores = score_images(reward, images, context)
            # a picture one part cannot score stays unwanted whatever the sign of the weight
            total = torch.where(torch.isfinite(scores), total + scores * weight, torch.full_like(total, -float("inf")))
        return total

    def __repr__(self) -> str:
        return f"<REWARD {self.name}>"
