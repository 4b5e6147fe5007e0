"""The shapes dataset draws what its captions say, and the judge reads it back.

The judge is the yardstick of the built-in model's tests, so it is tested first on the
dataset's own pictures (clean, noisy and blurred) and on pictures that contradict their
captions, where it must say so.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from weft_tools.shapes import dataset as ds
from weft_tools.shapes import judge as J


def test_vocabulary_meets_the_brief() -> None:
    assert {"circle", "square", "triangle"} < set(ds.SHAPES) and len(ds.SHAPES) >= 4
    assert len(ds.COLOURS) >= 8
    assert set(ds.SIZES) == {"small", "large"}
    assert set(ds.POSITIONS) == {"left", "right", "top", "bottom", "centre"}


def test_samples_are_seeded_and_complete() -> None:
    a, b = ds.make_arrays(16, seed=3), ds.make_arrays(16, seed=3)
    assert np.array_equal(a["images"], b["images"]) and a["specs"] == b["specs"]
    assert not np.array_equal(a["images"], ds.make_arrays(16, seed=4)["images"])
    assert a["images"].shape == (16, 64, 64, 3) and a["images"].dtype == np.uint8
    assert a["masks"].shape == a["edges"].shape == (16, 64, 64)
    for spec, mask, edges in zip(a["specs"], a["masks"], a["edges"], strict=True):
        assert mask.max() == 1.0 and mask.min() == 0.0
        inside = mask >= 0.5
        assert edges.sum() > 0 and np.all(inside[edges > 0])  # the outline lies on the shape
        assert not is_bad_caption(spec.caption())


def is_bad_caption(text: str) -> bool:
    return "  " in text or not text.startswith("a ") or not text.endswith(" background")


def test_caption_reads_like_the_brief() -> None:
    spec = ds.ShapeSpec("circle", "red", "small", "left", "blue")
    assert spec.caption() == "a small red circle on the left, blue background"


def test_held_out_split_is_disjoint_and_made_of_seen_words() -> None:
    combos = ds.all_combinations()
    held = [c for c in combos if ds.is_held_out(c)]
    train = [c for c in combos if not ds.is_held_out(c)]
    assert 0.05 < len(held) / len(combos) < 0.15
    rng = np.random.default_rng(0)
    assert all(not ds.is_held_out(ds.random_spec(rng)) for _ in range(300))
    assert all(ds.is_held_out(ds.random_spec(rng, held_out=True)) for _ in range(100))
    for attribute in ("shape", "colour", "size", "position", "background"):
        assert {getattr(c, attribute) for c in held} <= {getattr(c, attribute) for c in train}


def test_partial_captions_keep_the_shape_and_name_only_true_words() -> None:
    rng = np.random.default_rng(1)
    spec = ds.ShapeSpec("diamond", "green", "large", "top", "white")
    for _ in range(50):
        named = J.parse_caption(ds.partial_caption(spec, rng))
        assert named["shape"] == "diamond"
        assert all(value in (None, getattr(spec, key)) for key, value in named.items())


def test_parse_caption() -> None:
    assert J.parse_caption("a small red circle on the left, blue background") == {
        "shape": "circle",
        "colour": "red",
        "size": "small",
        "position": "left",
        "background": "blue",
    }
    assert J.parse_caption("a square in the center") == {
        "shape": "square",
        "colour": None,
        "size": None,
        "position": "centre",
        "background": None,
    }


@pytest.mark.parametrize("degrade", ["clean", "noise", "blur"])
def test_judge_reads_every_attribute_of_dataset_pictures(degrade: str) -> None:
    rng = np.random.default_rng(7)
    misses: dict[str, int] = {}
    for i in range(200):
        spec = ds.random_spec(rng, held_out=bool(i % 2))
        image = ds.render(spec).image
        if degrade == "noise":
            image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
        elif degrade == "blur":
            image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(1.0)))
        for key, ok in J.score(spec.caption(), image).items():
            misses[key] = misses.get(key, 0) + (not ok)
    if degrade == "blur":  # a 16 px diamond blurred by a 1 px Gaussian is nearly round: allow 2 %
        assert misses.pop("shape") <= 4, misses
    assert misses == dict.fromkeys(misses, 0), misses


def test_judge_notices_pictures_that_contradict_their_caption() -> None:
    picture = ds.render(ds.ShapeSpec("triangle", "yellow", "large", "right", "purple")).image
    result = J.score("a small blue circle on the left, green background", picture)
    assert result == {"shape": False, "colour": False, "size": False, "position": False, "background": False}
    verdict = J.judge(picture)
    assert verdict.words() == {
        "shape": "triangle",
        "colour": "yellow",
        "size": "large",
        "position": "right",
        "background": "purple",
    }


def test_judge_on_a_plain_picture_finds_no_shape() -> None:
    plain = np.full((64, 64, 3), ds.COLOURS["cyan"], dtype=np.uint8)
    verdict = J.judge(plain)
    assert verdict.background == "cyan" and verdict.shape is None and verdict.position is None


def test_judge_accepts_weft_images_and_measures_overlap_with_a_hint() -> None:
    sample = ds.render(ds.ShapeSpec("square", "black", "large", "bottom", "white"))
    as_weft = (sample.image.astype(np.float32) / 255.0)[None]  # IMAGE: [B, H, W, C] in 0..1
    verdict = J.judge(as_weft)
    assert verdict.shape == "square"
    assert J.mask_iou(verdict, sample.mask) > 0.9
    elsewhere = ds.render_mask("square", ds.POSITIONS["top"], ds.SIZES["large"])
    assert J.mask_iou(verdict, elsewhere) < 0.1
