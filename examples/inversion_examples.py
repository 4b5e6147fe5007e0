"""Writes the inversion/editing example workflows, each in both formats, and their input picture.

    python examples/inversion_examples.py

For every example ``NAME`` below: ``examples/NAME.api.json`` (an API-format prompt: POST it to
/prompt, or ``python main.py run``) and ``examples/NAME.json`` (a UI-format workflow the canvas
opens). They edit ``examples/shapes_red_circle.png`` (a picture the shapes dataset draws: "a large
red circle on the left, green background") with the built-in shapes model: upload the picture
first (the canvas's LoadImage upload button, or POST /upload/image), then queue the workflow.
The formats are written by the helpers of ``guidance_examples.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

PICTURE = "shapes_red_circle.png"
SOURCE = "a large red circle on the left, green background"
TARGET = "a large blue circle on the left, green background"


def _loaders(prompt: dict[str, Any]) -> dict[str, Any]:
    prompt["ckpt"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "weft-shapes.safetensors"}}
    prompt["picture"] = {"class_type": "LoadImage", "inputs": {"image": PICTURE}}
    return prompt


def edit_image_shapes() -> dict[str, Any]:
    """The one-node way: EditImage expands into the inversion graph itself."""
    prompt = _loaders({})
    prompt["edit"] = {
        "class_type": "EditImage",
        "inputs": {
            "image": ["picture", 0],
            "vae": ["ckpt", 2],
            "model": ["ckpt", 0],
            "clip": ["ckpt", 1],
            "source_prompt": SOURCE,
            "target_prompt": TARGET,
            "method": "direct_inversion",
            "steps": 20,
            "cfg": 5.0,
            "seed": 0,
            "strength": 1.0,
        },
    }
    prompt["save"] = {"class_type": "SaveImage", "inputs": {"images": ["edit", 0], "filename_prefix": "edit_image"}}
    return prompt


def _parts(prompt: dict[str, Any]) -> dict[str, Any]:
    prompt["encode"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["picture", 0], "vae": ["ckpt", 2]}}
    prompt["source"] = {"class_type": "CLIPTextEncode", "inputs": {"text": SOURCE, "clip": ["ckpt", 1]}}
    prompt["target"] = {"class_type": "CLIPTextEncode", "inputs": {"text": TARGET, "clip": ["ckpt", 1]}}
    prompt["negative"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}}
    return prompt


def _regenerate(prompt: dict[str, Any], cfg: float, skip: int, prefix: str) -> dict[str, Any]:
    prompt["sampler"] = {"class_type": "InversionSampler", "inputs": {"inversion": ["invert", 1]}}
    prompt["sigmas"] = {"class_type": "InversionSigmas", "inputs": {"inversion": ["invert", 1], "skip_steps": skip}}
    prompt["guider"] = {
        "class_type": "CFGGuider",
        "inputs": {"model": ["ckpt", 0], "positive": ["target", 0], "negative": ["negative", 0], "cfg": cfg},
    }
    prompt["noise"] = {"class_type": "DisableNoise", "inputs": {}}
    prompt["edit"] = {
        "class_type": "SamplerCustomAdvanced",
        "inputs": {
            "noise": ["noise", 0],
            "guider": ["guider", 0],
            "sampler": ["sampler", 0],
            "sigmas": ["sigmas", 0],
            "latent_image": ["invert", 0],
        },
    }
    prompt["decode"] = {"class_type": "VAEDecode", "inputs": {"samples": ["edit", 0], "vae": ["ckpt", 2]}}
    prompt["save"] = {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": prefix}}
    return prompt


def edict_edit_shapes() -> dict[str, Any]:
    """EDICT wired by hand: invert with the source prompt, regenerate with the target (cfg 1 both ways)."""
    prompt = _parts(_loaders({}))
    prompt["invert"] = {
        "class_type": "EDICTInversion",
        "inputs": {
            "model": ["ckpt", 0],
            "positive": ["source", 0],
            "negative": ["negative", 0],
            "cfg": 1.0,
            "latent": ["encode", 0],
            "steps": 20,
            "scheduler": "normal",
            "denoise": 1.0,
            "mix": 0.93,
            "precision": "model",
        },
    }
    return _regenerate(prompt, 1.0, 0, "edict_edit")


def ddpm_edit_friendly_shapes() -> dict[str, Any]:
    """Edit-friendly DDPM noise maps, reused under the target prompt from step 6 of 20 (T_skip)."""
    prompt = _parts(_loaders({}))
    prompt["invert"] = {
        "class_type": "DDPMEditFriendlyInversion",
        "inputs": {
            "model": ["ckpt", 0],
            "positive": ["source", 0],
            "negative": ["negative", 0],
            "cfg": 1.0,
            "latent": ["encode", 0],
            "steps": 20,
            "scheduler": "normal",
            "denoise": 1.0,
            "seed": 0,
            "precision": "model",
        },
    }
    return _regenerate(prompt, 5.0, 6, "ddpm_edit")


EXAMPLES = {
    "edit_image_shapes": edit_image_shapes,
    "edict_edit_shapes": edict_edit_shapes,
    "ddpm_edit_friendly_shapes": ddpm_edit_friendly_shapes,
}


def write_picture(path: Path) -> None:
    """The dataset's own rendering of SOURCE (no jitter)."""
    from PIL import Image

    from weft_tools.shapes import dataset as ds

    Image.fromarray(ds.render(ds.ShapeSpec("circle", "red", "large", "left", "green")).image).save(path)


def main() -> int:
    from guidance_examples import api_prompt, ui_workflow

    from nodes.registry import builtin_registry

    registry = builtin_registry()
    write_picture(HERE / PICTURE)
    print(f"wrote examples/{PICTURE}")
    for name, build in EXAMPLES.items():
        prompt = build()
        (HERE / f"{name}.api.json").write_text(json.dumps(api_prompt(prompt), indent=2) + "\n")
        (HERE / f"{name}.json").write_text(json.dumps(ui_workflow(prompt, registry), indent=2) + "\n")
        print(f"wrote examples/{name}.api.json and examples/{name}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
