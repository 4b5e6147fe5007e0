"""The built-in shapes model (trained weights) drawn on held-out captions and judged, for the
research nodes' quality tests (guidance, acceleration...).

``shapes`` (session fixture) is the checkpoint loaded once; :func:`draw` draws ``count``
held-out captions x :data:`SEEDS` as one batch per caption at the model's native settings
(64x64, Euler, 20 "normal" steps), decodes them with the checkpoint's VAE and reads them back
with the judge; ``shapes_cfg`` (session fixture) is plain CFG 5 on :data:`CAPTIONS` captions,
the reference the accelerated and adaptive runs are held to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from weft_tools.shapes import dataset as ds
from weft_tools.shapes import evaluate as ev

#: held-out captions the "within N points of CFG" comparisons use
CAPTIONS = 10

SEEDS = list(range(8))
_PALETTE = np.asarray(list(ds.COLOURS.values()), dtype=np.float32)


def palette_distance(image: np.ndarray) -> float:
    """Mean distance (RGB, 0..255) of the picture's pixels to the nearest colour of the palette."""
    rgb = np.asarray(image, dtype=np.float32).reshape(-1, 3) * 255.0
    return float(np.sqrt(((rgb[:, None, :] - _PALETTE[None]) ** 2).sum(-1)).min(1).mean())


def draw(shapes: dict[str, Any], make_guider: Callable[[Any, Any], Any], count: int) -> dict[str, Any]:
    """Draw ``count`` held-out captions x :data:`SEEDS`; the tally, palette distances and reports."""
    import torch

    from nodes.diffusion.noise import RandomNoiseSource
    from nodes.diffusion.samplers import SAMPLERS, compute_sigmas
    from nodes.diffusion.sampling import sample

    model, clip, vae = shapes["model"], shapes["clip"], shapes["vae"]
    sigmas = compute_sigmas(model.scheduler_config, ev.SETTINGS["scheduler"], ev.SETTINGS["steps"])
    zeros = torch.zeros(1, 4, 8, 8)
    noise = torch.cat([RandomNoiseSource(seed).generate_noise({"samples": zeros}) for seed in SEEDS])
    tally, distances, reports = ev.Tally(), [], []
    for spec in ev.heldout_specs(count):
        guider = make_guider(clip.encode_conditioning(spec.caption()), shapes["negative"])
        result = sample(guider, SAMPLERS[ev.SETTINGS["sampler_name"]], sigmas, noise, torch.zeros_like(noise), seed=0)
        reports.extend(result.reports)
        for image in vae.decode(result.samples).numpy():
            tally.add(spec.caption(), image)
            distances.append(palette_distance(image))
    return {"tally": tally, "palette_distance": float(np.mean(distances)), "reports": reports}


def cfg_guider(model: Any, cfg: float) -> Callable[[Any, Any], Any]:
    from nodes.diffusion.guidance import Guider

    def make(positive: Any, negative: Any) -> Any:
        guider = Guider(model, cfg)
        guider.set_conds(positive, negative)
        return guider

    return make


@pytest.fixture(scope="session")
def shapes() -> dict[str, Any]:
    """``{"model", "clip", "vae", "negative"}`` of ``models_builtin/checkpoints/weft-shapes.safetensors``."""
    from nodes.diffusion.loaders import load_checkpoint
    from nodes.paths import BUILTIN_MODELS

    model, clip, vae = load_checkpoint(BUILTIN_MODELS / "checkpoints" / ev.CHECKPOINT)
    return {"model": model, "clip": clip, "vae": vae, "negative": clip.encode_conditioning("")}


@pytest.fixture(scope="session")
def shapes_cfg(shapes: dict[str, Any]) -> dict[str, Any]:
    """Plain CFG at the model's native scale on :data:`CAPTIONS` held-out captions x :data:`SEEDS`."""
    return draw(shapes, cfg_guider(shapes["model"], ev.SETTINGS["cfg"]), CAPTIONS)


def points(run: dict[str, Any], reference: dict[str, Any], attribute: str) -> float:
    """``run``'s judged accuracy minus ``reference``'s, in percentage points."""
    return 100 * (run["tally"].rates()[attribute] - reference["tally"].rates()[attribute])
