"""Nodes that make REWARDs (and score pictures with one), for the steering samplers.

A REWARD is a value of its own socket type, like a MODEL or a SAMPLER: these nodes build one
from their widgets, and plugins add theirs the same way (see docs/plugins.md, "Rewards").
"""

from __future__ import annotations

from typing import Any

from ..api import Combo, Float, Input, Int, Node, Output, Result, String
from .builtin_rewards import JUDGE_MODES, STATISTICS
from .reward import REWARD_TYPE, RewardContext, check_reward, reward_name, score_images

CATEGORY = "sampling/steering/rewards"


class ShapesJudgeReward(Node):
    category = CATEGORY
    description = (
        "The built-in shapes model's judge (pixel statistics) as a REWARD: the fraction of the caption's "
        "attributes (shape, colour, size, position, background) the picture shows, hard (right or wrong, "
        "what the evaluation counts) or soft (graded, smoother on the blurry intermediate predictions "
        "Feynman-Kac steering scores)."
    )
    inputs = (
        String(
            "caption",
            "a large red circle in the centre, blue background",
            multiline=True,
            tooltip="What the picture should show, in the shapes model's caption words.",
        ),
        Combo("mode", list(JUDGE_MODES), tooltip="hard: fraction of attributes right; soft: graded degrees."),
    )
    outputs = (Output(REWARD_TYPE),)

    def run(self, caption: str, mode: str) -> tuple:
        from .builtin_rewards import ShapesJudgeReward as Judge

        return (Judge(caption, mode),)


class ImageStatisticsReward(Node):
    category = CATEGORY
    description = (
        "A REWARD from pixel statistics: mean brightness (Rec. 709 luma), colourfulness (Hasler and "
        "Süsstrunk, 'Measuring colourfulness in natural images', 2003) or closeness to a target colour. "
        "Model-free: steer towards brighter, more colourful or more of one colour."
    )
    inputs = (
        Combo("statistic", list(STATISTICS), tooltip="What to score."),
        Int("red", 255, min=0, max=255, tooltip="Target colour (target_colour only)."),
        Int("green", 0, min=0, max=255, tooltip="Target colour (target_colour only)."),
        Int("blue", 0, min=0, max=255, tooltip="Target colour (target_colour only)."),
    )
    outputs = (Output(REWARD_TYPE),)

    def run(self, statistic: str, red: int, green: int, blue: int) -> tuple:
        from .builtin_rewards import ImageStatisticsReward as Statistics

        return (Statistics(statistic, (red / 255.0, green / 255.0, blue / 255.0)),)


class CombineRewards(Node):
    category = CATEGORY
    description = (
        "A weighted sum of two REWARDs: several goals at once, or one turned round with a negative weight "
        "(e.g. -1 x brightness rewards darker pictures)."
    )
    inputs = (
        Input("reward_a", REWARD_TYPE),
        Float("weight_a", 1.0, min=-100.0, max=100.0, step=0.05),
        Input("reward_b", REWARD_TYPE, optional=True),
        Float("weight_b", 1.0, min=-100.0, max=100.0, step=0.05),
    )
    outputs = (Output(REWARD_TYPE),)

    def run(self, reward_a: Any, weight_a: float, weight_b: float, reward_b: Any = None) -> tuple:
        from .builtin_rewards import CombinedReward

        parts = [(check_reward(reward_a, "reward_a"), weight_a)]
        if reward_b is not None:
            parts.append((check_reward(reward_b, "reward_b"), weight_b))
        return (CombinedReward(parts),)


class ScoreImages(Node):
    category = CATEGORY
    description = "Scores pictures with a REWARD: shows each picture's score and outputs the best one."
    inputs = (Input("images", "IMAGE"), Input("reward", REWARD_TYPE))
    outputs = (Output("FLOAT", "best_score"),)
    output_node = True

    def run(self, images: Any, reward: Any) -> Result:
        scores = score_images(check_reward(reward), images, RewardContext())
        values = [round(float(s), 4) for s in scores]
        return Result(
            max(values),
            ui={"text": [f"{reward_name(reward)}: " + ", ".join(f"{v:g}" for v in values)], "scores": values},
        )


NODES = [ShapesJudgeReward, ImageStatisticsReward, CombineRewards, ScoreImages]
