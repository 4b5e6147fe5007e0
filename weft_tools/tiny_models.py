"""Build tiny Stable Diffusion models with the real architectures, for tests and benchmarks.

    python -m weft_tools.tiny_models OUT_DIR

writes, with random but seeded (hence identical on every run) weights::

    OUT_DIR/diffusers/tiny-sd1/        model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/
    OUT_DIR/diffusers/tiny-sd2/        same (v-prediction, OpenCLIP-style text encoder, linear projections)
    OUT_DIR/diffusers/tiny-sdxl/       plus text_encoder_2/, tokenizer_2/ (add_embedding "text_time")
    OUT_DIR/checkpoints/tiny-sd1.safetensors   single files in the original LDM/SGM key layout
    OUT_DIR/checkpoints/tiny-sd2.safetensors
    OUT_DIR/checkpoints/tiny-sdxl.safetensors
    OUT_DIR/loras/tiny-sd1-lora.safetensors     kohya-style LoRA for the sd1 UNet and text encoder
    OUT_DIR/controlnet/tiny-sd1-controlnet/     diffusers ControlNetModel matching the sd1 UNet
    OUT_DIR/controlnet/tiny-sd1-controlnet.safetensors  same, original ``control_model.*`` layout

The layout is a ComfyUI-style models folder, so ``nodes.paths.configure(models_dir=OUT_DIR)``
points Weft at it. The models are small enough (UNets of 0.8M (sd2), 1.1M (sd1) and 2.2M (sdxl)
parameters, a 1.0M-parameter VAE with the real 8x downscale, 64 px images) that a sampling run
takes a fraction of a second on two CPU cores, but the text encoders keep the real 49,408-token
CLIP vocabulary (most of their 1.6M-3.3M parameters) so tokenization and prompt weighting are
exercised as with the real thing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from nodes.diffusion import single_file as sf

VOCAB = 49408
SEEDS = {"sd1": 1, "sd2": 2, "sdxl": 3}

#: The tiny configs. The attention head counts follow the rules ``nodes.diffusion.detect``
#: applies to files (8 heads for SD1-layout, ``channels // 64`` (min 1) for linear-projection
#: layouts), so a single file and its diffusers folder build identical models.
UNET_CONFIGS: dict[str, dict[str, Any]] = {
    "sd1": {
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "layers_per_block": 2,
        "block_out_channels": [32, 64],
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "cross_attention_dim": 32,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
    },
    "sd2": {
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "layers_per_block": 1,
        "block_out_channels": [32, 64],
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "cross_attention_dim": 48,
        "attention_head_dim": [1, 1],
        "use_linear_projection": True,
        "upcast_attention": True,
        "norm_num_groups": 32,
    },
    "sdxl": {
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "layers_per_block": 2,
        "block_out_channels": [32, 64],
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "transformer_layers_per_block": [1, 2],
        "cross_attention_dim": 96,
        "attention_head_dim": [1, 1],
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 6 * 256 + 32,
        "norm_num_groups": 32,
    },
}

VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": [32, 32, 64, 64],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "norm_num_groups": 32,
    "sample_size": 64,
}

#: (hidden, layers, act, projection_dim) of each text encoder; OpenCLIP ones use "gelu".
CLIP_CONFIGS: dict[str, list[dict[str, Any]]] = {
    "sd1": [{"hidden_size": 32, "num_hidden_layers": 3, "hidden_act": "quick_gelu", "projection_dim": 32}],
    "sd2": [{"hidden_size": 48, "num_hidden_layers": 3, "hidden_act": "gelu", "projection_dim": 48}],
    "sdxl": [
        {"hidden_size": 32, "num_hidden_layers": 3, "hidden_act": "quick_gelu", "projection_dim": 32},
        {"hidden_size": 64, "num_hidden_layers": 3, "hidden_act": "gelu", "projection_dim": 32},
    ],
}


def clip_config(spec: dict[str, Any]) -> dict[str, Any]:
    hidden = spec["hidden_size"]
    return {
        "vocab_size": VOCAB,
        "hidden_size": hidden,
        "intermediate_size": hidden * 4,
        "num_hidden_layers": spec["num_hidden_layers"],
        "num_attention_heads": max(1, hidden // 64),
        "max_position_embeddings": 77,
        "hidden_act": spec["hidden_act"],
        "projection_dim": spec["projection_dim"],
        "layer_norm_eps": 1e-5,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 1,
    }


def scheduler_config(family: str) -> dict[str, Any]:
    from nodes.diffusion.types import default_scheduler_config

    cfg = default_scheduler_config(family, "v_prediction" if family == "sd2" else "epsilon")
    return {"_class_name": "EulerDiscreteScheduler", **cfg}


def _seeded(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _randomize_zeros(module: Any, seed: int, scale: float = 0.02) -> None:
    """Give zero-initialised weights (ControlNet zero convs...) small random values, so they act."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            if param.ndim > 1 and not param.any():
                param.copy_(torch.randn(param.shape, generator=gen) * scale)


def build_family(family: str) -> dict[str, Any]:
    """Instantiate the tiny models of a family; returns the diffusers modules and configs."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    seed = SEEDS[family]
    _seeded(seed)
    unet = UNet2DConditionModel(**UNET_CONFIGS[family]).eval()
    _randomize_zeros(unet, seed)
    _seeded(seed + 100)
    scaling = 0.13025 if family == "sdxl" else 0.18215
    vae = AutoencoderKL(**VAE_CONFIG, scaling_factor=scaling).eval()
    encoders = []
    for index, spec in enumerate(CLIP_CONFIGS[family]):
        _seeded(seed + 200 + index)
        config = CLIPTextConfig(**clip_config(spec))
        cls = CLIPTextModelWithProjection if (family == "sdxl" and index == 1) else CLIPTextModel
        encoders.append(cls(config).eval())
    return {"unet": unet, "vae": vae, "text_encoders": encoders}


def _tokenizer(pad_token: str) -> Any:
    from nodes.diffusion.clip_text import make_tokenizer

    return make_tokenizer(pad_token=pad_token)


def write_vocab_files(folder: Path) -> None:
    """vocab.json and merges.txt beside tokenizer.json, as in the published diffusers folders."""
    from nodes.diffusion.clip_text import clip_vocab

    vocab, merges = clip_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [" ".join(m) for m in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_diffusers(family: str, models: dict[str, Any], out: Path) -> Path:
    """A diffusers pipeline folder (what ``StableDiffusion[XL]Pipeline.from_pretrained`` reads)."""
    out.mkdir(parents=True, exist_ok=True)
    models["unet"].save_pretrained(out / "unet")
    models["vae"].save_pretrained(out / "vae")
    (out / "scheduler").mkdir(exist_ok=True)
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler_config(family), indent=2))
    pipeline = "StableDiffusionXLPipeline" if family == "sdxl" else "StableDiffusionPipeline"
    index: dict[str, Any] = {
        "_class_name": pipeline,
        "_diffusers_version": "0.30.0",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    }
    encoders = models["text_encoders"]
    names = [("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2")]
    for i, encoder in enumerate(encoders):
        te_name, tok_name = names[i]
        encoder.save_pretrained(out / te_name)
        pad = "!" if (family == "sd2" or i == 1) else "<|endoftext|>"
        _tokenizer(pad).save_pretrained(out / tok_name)
        write_vocab_files(out / tok_name)
        index[te_name] = ["transformers", type(encoder).__name__]
        index[tok_name] = ["transformers", "CLIPTokenizer"]
    if family == "sdxl":
        index["force_zeros_for_empty_prompt"] = True
    else:
        index["safety_checker"] = [None, None]
        index["feature_extractor"] = [None, None]
        index["requires_safety_checker"] = False
    (out / "model_index.json").write_text(json.dumps(index, indent=2))
    return out


def ldm_state_dict(family: str, models: dict[str, Any]) -> dict[str, Any]:
    """The whole family as one original-layout state dict (what users download)."""
    import torch

    unet, vae, encoders = models["unet"], models["vae"], models["text_encoders"]
    state = sf.unet_to_ldm(unet.state_dict(), unet.config)
    state.update(sf.vae_to_ldm(vae.state_dict(), vae.config))
    if family == "sd1":
        state.update(sf.clip_hf_to_ldm(encoders[0].state_dict(), sf.SD1_CLIP_PREFIX))
    elif family == "sd2":
        te_state = dict(encoders[0].state_dict())
        hidden = encoders[0].config.hidden_size
        # SD2 files carry OpenCLIP's projection and logit scale too, unused for conditioning.
        gen = torch.Generator().manual_seed(SEEDS[family] + 300)
        te_state["text_projection.weight"] = torch.randn(hidden, hidden, generator=gen) * hidden**-0.5
        state.update(sf.clip_openclip_to_ldm(te_state, sf.SD2_CLIP_PREFIX))
        state[sf.SD2_CLIP_PREFIX + "logit_scale"] = torch.tensor(4.6052)
    else:
        state.update(sf.clip_hf_to_ldm(encoders[0].state_dict(), sf.SDXL_CLIP_L_PREFIX))
        state.update(sf.clip_openclip_to_ldm(encoders[1].state_dict(), sf.SDXL_CLIP_G_PREFIX))
        state[sf.SDXL_CLIP_G_PREFIX + "logit_scale"] = torch.tensor(4.6052)
    return {k: v.detach().contiguous() for k, v in state.items()}


def write_single_file(family: str, models: dict[str, Any], path: Path) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(ldm_state_dict(family, models), str(path))
    return path


def build_lora(models: dict[str, Any], path: Path, rank: int = 4, alpha: float = 2.0) -> Path:
    """A kohya-style LoRA (``lora_unet_*`` / ``lora_te_*``, ``lora_down``/``lora_up``/``alpha``).

    It targets the attention projections and feed-forward layers of the sd1 UNet's
    transformers (including the 1x1-conv ``proj_in``/``proj_out``) and the text encoder's
    attention and MLP, as trainers do.
    """
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(77)
    state: dict[str, Any] = {}

    def add(prefix: str, module_name: str, weight: Any) -> None:
        key = prefix + module_name.replace(".", "_")
        out_f, in_f = weight.shape[0], weight.shape[1]
        kernel = tuple(weight.shape[2:])
        down = torch.randn((rank, in_f, *kernel), generator=gen) * 0.3
        up = torch.randn((out_f, rank, *((1,) * len(kernel))), generator=gen) * 0.3
        state[f"{key}.lora_down.weight"] = down
        state[f"{key}.lora_up.weight"] = up
        state[f"{key}.alpha"] = torch.tensor(alpha)

    for name, module in models["unet"].named_modules():
        if ".attentions." in name and name.endswith(
            ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.2")
        ):
            add("lora_unet_", name, module.weight)
    encoder = models["text_encoders"][0]
    for name, module in encoder.named_modules():
        if name.endswith(("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")):
            full = name if name.startswith("text_model.") else "text_model." + name
            add("lora_te_", full, module.weight)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"ss_network_dim": str(rank)})
    return path


def _audible_hint_encoder(controlnet: Any, seed: int) -> None:
    """Re-initialise the hint encoder so a random ControlNet's output depends on its hint.

    With diffusers' default initialisation the hint fades through the encoder's eight small
    convolutions: two different hints change the residuals by about 1e-4 of their size, so a
    test could not tell hints apart. He-scaled weights keep the hint's signal (about a third
    of the residuals' size), as a trained ControlNet's would be.
    """
    import math

    import torch

    gen = torch.Generator().manual_seed(seed)
    encoder = controlnet.controlnet_cond_embedding
    with torch.no_grad():
        for conv in (encoder.conv_in, *encoder.blocks, encoder.conv_out):
            gain = 1.0 if conv is encoder.conv_out else 2.0
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * math.sqrt(gain / conv.weight[0].numel()))


def build_controlnet(models: dict[str, Any], folder: Path, single: Path) -> tuple[Path, Path]:
    """A ControlNet derived from the sd1 UNet, as a diffusers folder and an original-layout file."""
    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    _seeded(SEEDS["sd1"] + 500)
    controlnet = ControlNetModel.from_unet(models["unet"], conditioning_embedding_out_channels=(8, 16, 16, 32)).eval()
    _randomize_zeros(controlnet, SEEDS["sd1"] + 501, scale=0.05)
    _audible_hint_encoder(controlnet, SEEDS["sd1"] + 502)
    controlnet.save_pretrained(folder)
    state = {
        sf.CONTROLNET_PREFIX + sf.unet_ldm_name(k, controlnet.config): v.contiguous()
        for k, v in controlnet.state_dict().items()
    }
    single.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(single))
    return folder, single


def build_all(out_dir: Path, families: tuple[str, ...] = ("sd1", "sd2", "sdxl")) -> dict[str, Path]:
    """Write every tiny model under ``out_dir`` (a models root); returns what was written."""
    import torch
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    with torch.no_grad():
        for family in families:
            models = build_family(family)
            written[f"{family}-diffusers"] = write_diffusers(family, models, out_dir / "diffusers" / f"tiny-{family}")
            written[f"{family}-checkpoint"] = write_single_file(
                family, models, out_dir / "checkpoints" / f"tiny-{family}.safetensors"
            )
            if family == "sd1":
                written["sd1-lora"] = build_lora(models, out_dir / "loras" / "tiny-sd1-lora.safetensors")
                folder, single = build_controlnet(
                    models,
                    out_dir / "controlnet" / "tiny-sd1-controlnet",
                    out_dir / "controlnet" / "tiny-sd1-controlnet.safetensors",
                )
                written["sd1-controlnet-diffusers"], written["sd1-controlnet"] = folder, single
    return written


def main(argv: list[str] | None = None) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    for name, path in build_all(Path(argv[0])).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
