"""The new nodes in API-format prompts, validated and run by the engine with the built-in
registry on the tiny SD1 checkpoint: what a ComfyUI workflow using them goes through."""

from __future__ import annotations

from typing import Any

import pytest

from engine import Executor, normalise_prompt, validate_prompt


@pytest.fixture(scope="module")
def registry():
    from nodes.registry import builtin_registry

    return builtin_registry()


def run(registry: Any, prompt: dict[str, Any]) -> Any:
    checked = validate_prompt(normalise_prompt(prompt), registry)
    assert checked.ok, checked.node_errors
    return Executor(registry).execute_sync("p", checked.prompt, checked.outputs, order=checked.order)


def test_txt2img_with_patches_and_conditioning_nodes(registry, model_home) -> None:
    prompt = {
        "ckpt": {
            "class_type": "CheckpointLoader",
            "inputs": {"config_name": "v1-inference.yaml", "ckpt_name": "tiny-sd1.safetensors"},
        },
        "freeu": {
            "class_type": "FreeU_V2",
            "inputs": {"model": ["ckpt", 0], "b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2},
        },
        "tile": {
            "class_type": "HyperTile",
            "inputs": {"model": ["freeu", 0], "tile_size": 32, "swap_size": 2, "max_depth": 0, "scale_depth": False},
        },
        "sampling": {
            "class_type": "ModelSamplingDiscrete",
            "inputs": {"model": ["tile", 0], "sampling": "eps", "zsnr": False},
        },
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red square", "clip": ["ckpt", 1]}},
        "pos2": {"class_type": "CLIPTextEncode", "inputs": {"text": "on grey", "clip": ["ckpt", 1]}},
        "concat": {
            "class_type": "ConditioningConcat",
            "inputs": {"conditioning_to": ["pos", 0], "conditioning_from": ["pos2", 0]},
        },
        "early": {
            "class_type": "ConditioningSetTimestepRange",
            "inputs": {"conditioning": ["concat", 0], "start": 0.0, "end": 0.6},
        },
        "late": {
            "class_type": "ConditioningSetTimestepRange",
            "inputs": {"conditioning": ["pos", 0], "start": 0.6, "end": 1.0},
        },
        "both": {
            "class_type": "ConditioningCombine",
            "inputs": {"conditioning_1": ["early", 0], "conditioning_2": ["late", 0]},
        },
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "area": {
            "class_type": "ConditioningSetAreaPercentage",
            "inputs": {"conditioning": ["neg", 0], "width": 0.5, "height": 1.0, "x": 0.0, "y": 0.0, "strength": 1.0},
        },
        "empty": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
        "seed": {
            "class_type": "LatentBatchSeedBehavior",
            "inputs": {"samples": ["empty", 0], "seed_behavior": "fixed"},
        },
        "ks": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["sampling", 0],
                "seed": 3,
                "steps": 3,
                "cfg": 4.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["both", 0],
                "negative": ["area", 0],
                "latent_image": ["seed", 0],
                "denoise": 1.0,
            },
        },
        "flip": {"class_type": "LatentFlip", "inputs": {"samples": ["ks", 0], "flip_method": "y-axis: horizontally"}},
        "save_latent": {
            "class_type": "SaveLatent",
            "inputs": {"samples": ["flip", 0], "filename_prefix": "latents/ComfyUI"},
        },
        "dec": {"class_type": "VAEDecode", "inputs": {"samples": ["flip", 0], "vae": ["ckpt", 2]}},
        "blur": {"class_type": "ImageBlur", "inputs": {"image": ["dec", 0], "blur_radius": 1, "sigma": 1.0}},
        "canny": {"class_type": "Canny", "inputs": {"image": ["blur", 0], "low_threshold": 0.4, "high_threshold": 0.8}},
        "stitch": {
            "class_type": "ImageStitch",
            "inputs": {
                "image1": ["dec", 0],
                "direction": "right",
                "match_image_size": True,
                "spacing_width": 0,
                "spacing_color": "white",
                "image2": ["canny", 0],
            },
        },
        "save": {"class_type": "SaveImage", "inputs": {"images": ["stitch", 0], "filename_prefix": "parity"}},
    }
    result = run(registry, prompt)
    images = result.outputs["save"]["images"]
    assert len(images) == 2
    assert (model_home.output / images[0]["filename"]).is_file()
    assert result.outputs["save_latent"]["latents"][0]["filename"].endswith(".latent")


def test_inpainting_and_masks(registry, model_home) -> None:
    prompt = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd1.safetensors"}},
        "img": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 64, "batch_size": 1, "color": 0x336699}},
        "pad": {
            "class_type": "ImagePadForOutpaint",
            "inputs": {"image": ["img", 0], "left": 16, "top": 0, "right": 0, "bottom": 0, "feathering": 8},
        },
        "solid": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 16, "height": 16}},
        "grow": {"class_type": "GrowMask", "inputs": {"mask": ["solid", 0], "expand": 2, "tapered_corners": True}},
        "combine": {
            "class_type": "MaskComposite",
            "inputs": {"destination": ["pad", 1], "source": ["grow", 0], "x": 24, "y": 24, "operation": "add"},
        },
        "feather": {
            "class_type": "FeatherMask",
            "inputs": {"mask": ["combine", 0], "left": 4, "top": 4, "right": 4, "bottom": 4},
        },
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "fill", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "inpaint": {
            "class_type": "InpaintModelConditioning",
            "inputs": {
                "positive": ["pos", 0],
                "negative": ["neg", 0],
                "vae": ["ckpt", 2],
                "pixels": ["pad", 0],
                "mask": ["feather", 0],
                "noise_mask": True,
            },
        },
        "ks": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["ckpt", 0],
                "seed": 1,
                "steps": 2,
                "cfg": 3.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["inpaint", 0],
                "negative": ["inpaint", 1],
                "latent_image": ["inpaint", 2],
                "denoise": 1.0,
            },
        },
        "dec": {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": ["ckpt", 2]}},
        "composite": {
            "class_type": "ImageCompositeMasked",
            "inputs": {
                "destination": ["pad", 0],
                "source": ["dec", 0],
                "x": 0,
                "y": 0,
                "resize_source": False,
                "mask": ["feather", 0],
            },
        },
        "preview": {"class_type": "PreviewImage", "inputs": {"images": ["composite", 0]}},
        "mask_preview": {"class_type": "MaskPreview", "inputs": {"mask": ["feather", 0]}},
    }
    result = run(registry, prompt)
    assert len(result.outputs["preview"]["images"]) == 1
    assert len(result.outputs["mask_preview"]["images"]) == 1
