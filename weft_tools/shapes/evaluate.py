"""How well the built-in shapes model draws what it is asked: the prompts and the tallies.

The evaluation runs the model as a user would, through ordinary API-format prompts
(CheckpointLoaderSimple -> CLIPTextEncode -> KSampler -> VAEDecode -> SaveImage, and
ControlNetLoader/ControlNetApplyAdvanced for the hint), on captions of the held-out split:
combinations of words the model never saw together. ``Tally`` counts, per attribute, how
often the judge agrees with the caption. The tests (``tests/shapes``) drive these prompts
through the real server and hold the rates to the floors below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import dataset as ds
from . import judge as J

CHECKPOINT = "weft-shapes.safetensors"
CONTROLNET = "weft-shapes-controlnet-mask.safetensors"
#: The native settings (also the canvas's default workflow for this model).
SETTINGS = {"steps": 20, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal"}
#: What the model must reach on held-out captions (issue 8).
FLOORS = {"colour": 0.90, "background": 0.90, "position": 0.75, "shape": 0.70}


def heldout_specs(count: int = 40, seed: int = 2026) -> list[ds.ShapeSpec]:
    """``count`` distinct held-out combinations (no jitter: the caption's canonical picture)."""
    rng = np.random.default_rng(seed)
    chosen: dict[str, ds.ShapeSpec] = {}
    while len(chosen) < count:
        spec = ds.random_spec(rng, held_out=True, jitter=False)
        chosen.setdefault(spec.caption(), spec)
    return list(chosen.values())


def txt2img_prompt(
    caption: str,
    seeds: list[int],
    prefix: str,
    *,
    hint_image: str | None = None,
    strength: float = 1.0,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One prompt that draws ``caption`` once per seed (the encoders and the loader run once).

    With ``hint_image`` (a file in input/), the mask ControlNet is applied to both conditionings
    through ControlNetApplyAdvanced at ``strength``.
    """
    opts = {**SETTINGS, **(settings or {})}
    prompt: dict[str, Any] = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": caption, "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    }
    positive, negative = ["pos", 0], ["neg", 0]
    if hint_image is not None:
        prompt["cn"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": CONTROLNET}}
        prompt["hint"] = {"class_type": "LoadImage", "inputs": {"image": hint_image}}
        prompt["apply"] = {
            "class_type": "ControlNetApplyAdvanced",
            "inputs": {
                "positive": positive,
                "negative": negative,
                "control_net": ["cn", 0],
                "image": ["hint", 0],
                "strength": strength,
                "start_percent": 0.0,
                "end_percent": 1.0,
            },
        }
        positive, negative = ["apply", 0], ["apply", 1]
    for seed in seeds:
        prompt[f"sample{seed}"] = {
            "class_type": "KSampler",
            "inputs": {
                "model": ["ckpt", 0],
                "positive": positive,
                "negative": negative,
                "latent_image": ["latent", 0],
                "seed": seed,
                "denoise": 1.0,
                **opts,
            },
        }
        prompt[f"decode{seed}"] = {
            "class_type": "VAEDecode",
            "inputs": {"samples": [f"sample{seed}", 0], "vae": ["ckpt", 2]},
        }
        prompt[f"save{seed}"] = {
            "class_type": "SaveImage",
            "inputs": {"images": [f"decode{seed}", 0], "filename_prefix": f"{prefix}_{seed}"},
        }
    return prompt


@dataclass
class Tally:
    """Per attribute: how many pictures the judge found matching their caption, of how many."""

    hits: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)

    def add(self, caption: str, image: np.ndarray, attributes: tuple[str, ...] | None = None) -> dict[str, bool]:
        result = J.score(caption, image)
        for key, ok in result.items():
            if attributes is None or key in attributes:
                self.hits[key] = self.hits.get(key, 0) + int(ok)
                self.total[key] = self.total.get(key, 0) + 1
        return result

    def rates(self) -> dict[str, float]:
        return {key: self.hits[key] / self.total[key] for key in self.total}

    def report(self) -> str:
        return ", ".join(f"{key} {self.hits[key]}/{self.total[key]} ({rate:.0%})" for key, rate in self.rates().items())


def moved_spec(spec: ds.ShapeSpec) -> ds.ShapeSpec:
    """The same shape at another position (the one after it in the list): where the hint will say."""
    positions = list(ds.POSITIONS)
    return ds.ShapeSpec(
        spec.shape, spec.colour, spec.size, positions[(positions.index(spec.position) + 1) % 5], spec.background
    )


def hint_picture(spec: ds.ShapeSpec) -> np.ndarray:
    """The mask hint for ``spec`` as an RGB picture (white shape on black), what LoadImage reads."""
    mask = ds.render(spec).mask
    return np.repeat((np.rint(mask * 255)).astype(np.uint8)[..., None], 3, axis=-1)
