"""Guidance on the built-in shapes model (trained weights), judged by pixel statistics.

Held-out captions (``weft_tools.shapes.evaluate.heldout_specs``), 8 seeds each, drawn as one batch
per caption at the model's native settings (64x64, Euler, 20 "normal" steps), decoded by the
checkpoint's VAE and read back by the judge. Each test prints what it measured.

* APG against plain CFG at a high scale (15): CFG's colours drift off the palette the model was
  trained on (oversaturation); APG's stay closer. Measured as the mean RGB distance of every
  pixel to the nearest palette colour, and as the judged colour accuracy.
* AdaptiveGuidance (default threshold) against full CFG at 5: how many UNet evaluations it
  saves, and the judged accuracies it keeps.

About two minutes on two CPU cores.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.shapes_drawing import CAPTIONS as AG_CAPTIONS
from tests.support.shapes_drawing import SEEDS, cfg_guider, draw
from weft_tools.shapes import evaluate as ev

APG_CAPTIONS = 4


# -- APG ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def high_cfg(shapes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from nodes.guidance.apg import APG

    apg_model = APG().run(shapes["model"], 0.0, 5.0, 0.0)[0]
    runs = {
        "CFG 15": draw(shapes, cfg_guider(shapes["model"], 15.0), APG_CAPTIONS),
        "APG 15 (eta 0, norm_threshold 5)": draw(shapes, cfg_guider(apg_model, 15.0), APG_CAPTIONS),
    }
    print(f"\n{APG_CAPTIONS} held-out captions x {len(SEEDS)} seeds:")
    for name, run in runs.items():
        print(f"  {name}: palette distance {run['palette_distance']:.2f}; {run['tally'].report()}")
    return runs


def test_apg_at_cfg_15_keeps_colours_closer_to_the_palette_than_cfg(high_cfg: dict[str, dict[str, Any]]) -> None:
    cfg, apg = high_cfg["CFG 15"], high_cfg["APG 15 (eta 0, norm_threshold 5)"]
    assert apg["palette_distance"] < 0.85 * cfg["palette_distance"]
    assert apg["tally"].rates()["colour"] >= cfg["tally"].rates()["colour"]
    assert apg["tally"].rates()["background"] >= cfg["tally"].rates()["background"]


# -- AdaptiveGuidance -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adaptive(shapes: dict[str, Any], shapes_cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from nodes.guidance.adaptive import DEFAULT_THRESHOLD, AdaptiveGuider

    def make_adaptive(positive: Any, negative: Any) -> Any:
        guider = AdaptiveGuider(shapes["model"], ev.SETTINGS["cfg"], DEFAULT_THRESHOLD)
        guider.set_conds(positive, negative)
        return guider

    runs = {"CFG": shapes_cfg, "AdaptiveGuidance": draw(shapes, make_adaptive, AG_CAPTIONS)}
    reports = runs["AdaptiveGuidance"]["reports"]
    made = sum(r["unet_evaluations"] for r in reports)
    saved = sum(r["saved"] for r in reports)
    runs["AdaptiveGuidance"]["saved_share"] = saved / (made + saved)
    print(
        f"\n{AG_CAPTIONS} held-out captions x {len(SEEDS)} seeds, CFG {ev.SETTINGS['cfg']:g}, threshold "
        f"{DEFAULT_THRESHOLD}: AdaptiveGuidance made {made} UNet evaluations, saved {saved} "
        f"({saved / (made + saved):.1%})"
    )
    for name in ("CFG", "AdaptiveGuidance"):
        print(f"  {name}: {runs[name]['tally'].report()}")
    return runs


def _points(adaptive: dict[str, dict[str, Any]], attribute: str) -> float:
    """AdaptiveGuidance's accuracy minus CFG's, in percentage points."""
    return 100 * (
        adaptive["AdaptiveGuidance"]["tally"].rates()[attribute] - adaptive["CFG"]["tally"].rates()[attribute]
    )


@pytest.mark.parametrize("attribute", ["colour", "position", "size", "background"])
def test_adaptive_guidance_keeps_judged_accuracy_within_2_points_of_cfg(
    adaptive: dict[str, dict[str, Any]], attribute: str
) -> None:
    assert _points(adaptive, attribute) >= -2.0


@pytest.mark.xfail(
    strict=True,
    reason="measured 52/80 against CFG's 58/80 (-7.5 points; earlier weights: -5, and -2.5 on 200 pictures): "
    "guidance on the last steps sharpens the corners the judge's shape class "
    "reads, and this model's similarity passes the threshold mid-run",
)
def test_adaptive_guidance_keeps_the_judged_shape_class_within_2_points_of_cfg(
    adaptive: dict[str, dict[str, Any]],
) -> None:
    assert _points(adaptive, "shape") >= -2.0


def test_adaptive_guidance_at_default_saves_unet_evaluations_on_a_trained_model(
    adaptive: dict[str, dict[str, Any]],
) -> None:
    assert adaptive["AdaptiveGuidance"]["saved_share"] >= 0.10
    assert any(r["switched_at_step"] != [None] * len(SEEDS) for r in adaptive["AdaptiveGuidance"]["reports"])


@pytest.mark.xfail(
    strict=True,
    reason="measured 12 % (earlier weights: 17 %, 13 % on 25 captions): on this model the cosine similarity of "
    "the guided and conditional noise predictions peaks near 0.99 mid-run and "
    "falls after, so the paper's ~0.99 threshold is passed by only some pictures",
)
def test_adaptive_guidance_at_default_saves_at_least_20_percent_of_unet_evaluations(
    adaptive: dict[str, dict[str, Any]],
) -> None:
    assert adaptive["AdaptiveGuidance"]["saved_share"] >= 0.20


def test_adaptive_guidance_reports_its_savings_in_the_sampler_nodes_ui(shapes: dict[str, Any]) -> None:
    """The example caption through the nodes a workflow uses, at a threshold this model passes."""
    from nodes.diffusion import sampler_nodes as sn
    from nodes.diffusion.latent import EmptyLatentImage
    from nodes.guidance.adaptive import AdaptiveGuidance

    model, clip = shapes["model"], shapes["clip"]
    positive = clip.encode_conditioning("a large red circle in the centre, blue background")
    guider = AdaptiveGuidance().run(model, positive, shapes["negative"], 0.98, 5.0)[0]
    sigmas = sn.BasicScheduler().run(model, "normal", 20, 1.0)[0]
    out = sn.SamplerCustomAdvanced().run(
        sn.RandomNoise().run(1)[0],
        guider,
        sn.KSamplerSelect().run("euler")[0],
        sigmas,
        EmptyLatentImage().run(64, 64, 1)[0],
    )
    (report,) = out.ui["weft_report"]
    assert report["unet_evaluations"] + report["saved"] == 40 and report["saved"] >= 8
    assert out.ui["text"] == [
        f"AdaptiveGuidance: unet_evaluations={report['unet_evaluations']}, "
        f"saved={report['saved']}, switched_at_step={report['switched_at_step']}"
    ]
    print(f"\nexample caption, threshold 0.98: {out.ui['text'][0]}")
