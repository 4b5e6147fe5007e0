"""REWARDs (the protocol, the built-in ones, their nodes) and the Feynman-Kac arithmetic
(potentials, effective sample size, resampling draws), without a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nodes.steering import builtin_rewards as br
from nodes.steering import resampling as rs
from nodes.steering.reward import Reward, RewardContext, reward_from_function, score_images
from nodes.steering.reward_nodes import CombineRewards, ImageStatisticsReward, ScoreImages, ShapesJudgeReward
from weft_tools.shapes import dataset as ds
from weft_tools.shapes import evaluate as ev


def _flat(rgb: tuple[float, float, float], batch: int = 1) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32).expand(batch, 8, 8, 3).clone()


def test_image_statistics():
    grey, black, red = _flat((0.5, 0.5, 0.5)), _flat((0.0, 0.0, 0.0)), _flat((1.0, 0.0, 0.0))
    assert float(br.brightness(grey)) == pytest.approx(0.5)
    assert float(br.brightness(black)) == 0.0
    assert float(br.colourfulness(grey)) == pytest.approx(0.0, abs=1e-6)  # no chroma, no spread
    # pure red: rg = 1, yb = 0.5, no spread -> 0.3 * sqrt(1.25)
    assert float(br.colourfulness(red)) == pytest.approx(0.3 * 1.25**0.5, rel=1e-5)
    half = torch.cat([_flat((1.0, 0.0, 0.0))[:, :4], _flat((0.0, 0.0, 1.0))[:, 4:]], dim=1)
    assert float(br.colourfulness(half)) > float(br.colourfulness(red))  # spread of opponent colours counts
    assert float(br.target_colour_closeness(red, (1.0, 0.0, 0.0))) == pytest.approx(1.0)
    assert float(br.target_colour_closeness(_flat((0.0, 1.0, 1.0)), (1.0, 0.0, 0.0))) == pytest.approx(0.0, abs=1e-6)


def test_reward_nodes_build_rewards_that_follow_the_protocol():
    images = torch.cat([_flat((0.2, 0.2, 0.2)), _flat((0.9, 0.1, 0.1))])
    bright = ImageStatisticsReward().run("brightness", 0, 0, 0)[0]
    reddish = ImageStatisticsReward().run("target_colour", 255, 0, 0)[0]
    assert isinstance(bright, Reward) and isinstance(reddish, Reward)
    combined = CombineRewards().run(bright, 1.0, -2.0, reddish)[0]
    expected = br.brightness(images) - 2.0 * br.target_colour_closeness(images, (1.0, 0.0, 0.0))
    torch.testing.assert_close(score_images(combined, images, RewardContext()), expected)
    assert combined.name == "1*brightness + -2*target_colour(1.00,0.00,0.00)"
    only = CombineRewards().run(bright, -1.0, 1.0)[0]
    torch.testing.assert_close(only(images, RewardContext()), -br.brightness(images))
    shown = ScoreImages().run(images, bright)
    assert shown.outputs[0] == pytest.approx(float(br.brightness(images).max()), abs=1e-4)
    assert shown.ui["text"][0].startswith("brightness: ")


def test_a_plugin_reward_is_a_function_and_bad_answers_name_it():
    darkness = reward_from_function(lambda images: 1 - images.mean(dim=(1, 2, 3)), "darkness")
    images = torch.cat([_flat((0.2, 0.2, 0.2)), _flat((0.8, 0.8, 0.8))])
    torch.testing.assert_close(score_images(darkness, images, RewardContext()), torch.tensor([0.8, 0.2]))
    nan = reward_from_function(lambda images: torch.tensor([float("nan"), 1.0]), "flaky")
    assert score_images(nan, images, RewardContext())[0] == -float("inf")  # never preferred
    wrong = reward_from_function(lambda images: torch.zeros(3), "wrong")
    with pytest.raises(ValueError, match="reward 'wrong' returned 3 scores for 2 pictures"):
        score_images(wrong, images, RewardContext())
    with pytest.raises(ValueError, match="input 'reward_a' is not a REWARD"):
        CombineRewards().run("brightness", 1.0, 1.0)


def _picture(spec: ds.ShapeSpec) -> torch.Tensor:
    return torch.from_numpy(ds.render(spec).image).float()[None] / 255.0


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_the_shapes_judge_reward_scores_the_caption(mode):
    spec = ev.heldout_specs(1)[0]
    reward = ShapesJudgeReward().run(spec.caption(), mode)[0]
    right = _picture(spec)
    wrong_colour = _picture(
        ds.ShapeSpec(
            spec.shape,
            "green" if spec.colour != "green" else "red",
            spec.size,
            spec.position,
            spec.background if spec.background != "green" else "white",
        )
    )
    moved = _picture(ev.moved_spec(spec))
    scores = reward(torch.cat([right, wrong_colour, moved]), RewardContext())
    assert float(scores[0]) > 0.95
    assert float(scores[1]) < float(scores[0]) and float(scores[2]) < float(scores[0])
    if mode == "hard":
        assert float(scores[0]) == 1.0 and float(scores[1]) == pytest.approx(0.8)


def test_the_soft_judge_grades_what_the_hard_one_counts():
    from weft_tools.shapes import judge as J

    rng = np.random.default_rng(0)
    agree = 0
    specs = [ds.random_spec(rng) for _ in range(20)]
    for spec in specs:
        picture = ds.render(spec).image
        hard, soft = J.score(spec.caption(), picture), J.soft_score(spec.caption(), picture)
        assert set(hard) == set(soft) and all(0.0 <= v <= 1.0 for v in soft.values())
        agree += sum((soft[key] > 0.5) == hard[key] for key in hard)
    assert agree >= 0.95 * 5 * len(specs)
    blank = np.full((64, 64, 3), 128, dtype=np.uint8)
    assert J.soft_score("a small red circle on the left, white background", blank)["shape"] == 0.0
    with pytest.raises(ValueError, match="names nothing the shapes judge reads"):
        ShapesJudgeReward().run("a photograph of a cat", "hard")


def test_potentials_follow_the_paper():
    rewards = [torch.tensor([[0.2], [0.5]]), torch.tensor([[0.6], [0.1]])]  # two steps, two particles, one picture
    maxed = rs.Potentials("max", 2.0, 2, 1)
    assert maxed.update(rewards[0]).flatten().tolist() == pytest.approx([0.4, 1.0])
    assert maxed.update(rewards[1]).flatten().tolist() == pytest.approx([1.2, 1.0])  # the best so far
    summed = rs.Potentials("sum", 2.0, 2, 1)
    summed.update(rewards[0])
    assert summed.update(rewards[1]).flatten().tolist() == pytest.approx([1.6, 1.2])
    diff = rs.Potentials("difference", 2.0, 2, 1)
    diff.update(rewards[0])
    diff.update(rewards[1])
    # the product of difference potentials telescopes to exp(lambda * latest reward)
    assert diff.log_weights.flatten().tolist() == pytest.approx([1.2, 0.2])
    diff.select(torch.tensor([[1], [1]]), torch.tensor([True]))
    assert diff.previous.flatten().tolist() == pytest.approx([0.1, 0.1])
    assert diff.log_weights.abs().sum() == 0
    kept = rs.Potentials("max", 1.0, 2, 2)
    kept.update(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    kept.select(torch.tensor([[0, 0], [0, 1]]), torch.tensor([True, False]))
    assert kept.log_weights[:, 1].tolist() == [1.0, 0.0] and kept.log_weights[:, 0].abs().sum() == 0


def test_effective_sample_size_and_impossible_particles():
    assert rs.effective_sample_size(torch.zeros(4, 1)).item() == pytest.approx(4.0)
    assert rs.effective_sample_size(torch.tensor([[0.0], [-1e9], [-1e9], [-1e9]])).item() == pytest.approx(1.0)
    dead = torch.full((3, 1), -float("inf"))
    assert rs.normalised(dead).flatten().tolist() == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize("method", ["systematic", "multinomial"])
def test_resampling_draws_in_proportion_to_the_weights(method):
    p = torch.tensor([[0.5, 0.0], [0.25, 1.0], [0.125, 0.0], [0.125, 0.0]])
    generator = torch.Generator().manual_seed(0)
    counts = torch.zeros(4)
    for _ in range(400):
        rows = rs.draw(p, method, generator)
        assert rows.shape == (4, 2) and bool((rows[:, 1] == 1).all())  # a certain particle is always kept
        counts += torch.bincount(rows[:, 0], minlength=4)
        if method == "systematic":  # floor(k w) or ceil(k w) copies of each
            assert rows[:, 0].tolist().count(0) == 2 and rows[:, 0].tolist().count(1) == 1
    torch.testing.assert_close(counts / counts.sum(), p[:, 0], atol=0.03, rtol=0.0)


def test_systematic_resampling_of_equal_weights_keeps_every_particle():
    """lambda 0 (all weights equal) with systematic resampling changes nothing: best-of-N exactly."""
    rows = rs.draw(rs.normalised(torch.zeros(4, 3)), "systematic", torch.Generator().manual_seed(1))
    assert rows.tolist() == [[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]]
