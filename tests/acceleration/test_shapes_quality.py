"""DeepCache and FasterDiffusion on the built-in shapes model (trained weights): the judged
accuracy of their pictures stays within 2 points of the full run's (issue 9), on the same
held-out captions, seeds and settings as ``shapes_cfg``. Each test prints what it measured."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.shapes_drawing import CAPTIONS, SEEDS, cfg_guider, draw, points
from weft_tools.shapes import evaluate as ev

ATTRIBUTES = ["colour", "background", "position", "shape"]


@pytest.fixture(scope="module")
def deepcache(shapes: dict[str, Any], shapes_cfg: dict[str, Any]) -> dict[str, Any]:
    from nodes.acceleration.deepcache import DeepCache

    model = DeepCache().run(shapes["model"], 3, 3, 0.0, 1.0)[0]
    run = draw(shapes, cfg_guider(model, ev.SETTINGS["cfg"]), CAPTIONS)
    full = sum(r["full_calls"] for r in run["reports"])
    calls = sum(r["unet_calls"] for r in run["reports"])
    print(
        f"\n{CAPTIONS} held-out captions x {len(SEEDS)} seeds, DeepCache interval 3 depth 3: "
        f"{full} of {calls} UNet calls full\n  CFG: {shapes_cfg['tally'].report()}\n"
        f"  DeepCache: {run['tally'].report()}"
    )
    return run


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_deepcache_keeps_judged_accuracy_within_2_points_of_the_full_run(
    deepcache: dict[str, Any], shapes_cfg: dict[str, Any], attribute: str
) -> None:
    assert points(deepcache, shapes_cfg, attribute) >= -2.0
    assert (
        sum(r["full_calls"] for r in deepcache["reports"]) * 3
        <= sum(r["unet_calls"] for r in deepcache["reports"]) + 3 * CAPTIONS
    )
