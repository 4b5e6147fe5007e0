"""A random-weight single-file checkpoint of SD1.5's full architecture, for cold-start benches.

    python bench/sd15_checkpoint.py OUT_DIR [--dtype fp32|fp16]

writes (seeded, so the same bytes on every run)::

    OUT_DIR/checkpoints/sd15-random.safetensors   UNet (860M), VAE (84M), CLIP ViT-L/14 text
                                                  encoder (123M) in the original LDM key layout
    OUT_DIR/diffusers/sd15-random/                configs and tokenizer only: what diffusers'
                                                  ``from_single_file(config=...)`` reads offline

No SD1.5 weights can be downloaded here, and speed and memory do not depend on the values, so
a file with SD1.5's shapes and key names stands in for ``v1-5-pruned-emaonly.safetensors``
(fp32, 4.3 GB: the file ComfyUI's examples name; ``--dtype fp16`` gives the 2.1 GB variant).
Every loader sees the same thing as with the real file: Weft's and ComfyUI's detect the family
from the keys and shapes, diffusers reads it with the SD1.5 pipeline configs written beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAME = "sd15-random"

VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
CLIP_SPEC = {"hidden_size": 768, "num_hidden_layers": 12, "hidden_act": "quick_gelu", "projection_dim": 768}


def paths(out_dir: Path) -> tuple[Path, Path]:
    """Where the checkpoint and its diffusers config folder go (or already are)."""
    return out_dir / "checkpoints" / f"{NAME}.safetensors", out_dir / "diffusers" / NAME


def build_models() -> dict[str, Any]:
    """The three modules with PyTorch's default initialisation, seeded per module."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from bench.sampling_overhead import SD15_UNET
    from weft_tools.tiny_models import clip_config

    torch.manual_seed(15)
    unet = UNet2DConditionModel(**SD15_UNET).eval()
    torch.manual_seed(115)
    vae = AutoencoderKL(**VAE_CONFIG).eval()
    torch.manual_seed(215)
    encoder = CLIPTextModel(CLIPTextConfig(**clip_config(CLIP_SPEC))).eval()
    return {"unet": unet, "vae": vae, "text_encoders": [encoder]}


def write_checkpoint(models: dict[str, Any], path: Path, dtype: str) -> None:
    """The original-layout file, one tensor converted at a time (the fp32 state is 4.3 GB already)."""
    import torch
    from safetensors.torch import save_file

    from weft_tools.tiny_models import ldm_state_dict

    state = ldm_state_dict("sd1", models)
    if dtype == "fp16":
        state = {key: value.to(torch.float16) if value.is_floating_point() else value for key, value in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))


def write_pipeline_config(models: dict[str, Any], folder: Path) -> None:
    """model_index.json, the component configs and the tokenizer: a pipeline folder without weights."""
    from nodes.diffusion.clip_text import make_tokenizer
    from weft_tools.tiny_models import scheduler_config, write_vocab_files

    models["unet"].save_config(folder / "unet")
    models["vae"].save_config(folder / "vae")
    models["text_encoders"][0].config.save_pretrained(folder / "text_encoder")
    make_tokenizer(pad_token="<|endoftext|>").save_pretrained(folder / "tokenizer")
    write_vocab_files(folder / "tokenizer")
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler_config("sd1"), indent=2))
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.30.0",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))


def ensure_sd15(out_dir: Path, dtype: str = "fp32") -> tuple[Path, Path]:
    """The checkpoint and config folder under ``out_dir``, built once (a minute or two) and reused."""
    checkpoint, config = paths(out_dir)
    if checkpoint.exists() and (config / "model_index.json").exists():
        return checkpoint, config
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with torch.no_grad():
        models = build_models()
        write_pipeline_config(models, config)
        write_checkpoint(models, checkpoint, dtype)
    return checkpoint, config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32")
    args = parser.parse_args()
    checkpoint, config = ensure_sd15(args.out_dir, args.dtype)
    print(f"checkpoint: {checkpoint} ({checkpoint.stat().st_size / 1e9:.2f} GB)\nconfig: {config}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
