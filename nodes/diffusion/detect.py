"""What is in a model file: family, layout and the diffusers configs, from keys and shapes alone.

Reading a safetensors header costs a few milliseconds and no torch import, so loader nodes
can tell the family (and fail with a clear message) before any weight is read. Configs are
*inferred* from shapes (channels, levels, blocks per level, transformer depth, context width,
projection style), so every SD1.x / SD2.x / SDXL-layout file loads, whatever its widths,
including the tiny test models. What shapes cannot tell is fixed by family rules:

* attention heads: 8 per block for SD1-layout UNets; ``channels // 64`` (at least 1) for
  linear-projection (SD2/SDXL) UNets; ``hidden // 64`` (at least 1) for text encoders;
* prediction type: v-prediction for SD2 (the 768 px models), epsilon otherwise; a file's
  ``modelspec.prediction_type`` metadata or a ``v_pred`` key overrides it;
* SDXL's size embedding uses 256 channels per number (every SDXL-layout model).
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import single_file as sf

FAMILY_NAMES = {"sd1": "Stable Diffusion 1.x", "sd2": "Stable Diffusion 2.x", "sdxl": "Stable Diffusion XL"}


class ModelFileError(ValueError):
    """A model file cannot be used; the message names the file and says what to do."""


class UnknownModelError(ModelFileError):
    """The file's keys match no supported family."""


class UnsafeFileError(ModelFileError):
    """A pickle (.ckpt/.pt/.bin) the user has not allowed."""


@dataclass
class FileInfo:
    """A weights file's tensor names and shapes (and safetensors metadata), without the data."""

    path: Path
    shapes: dict[str, tuple[int, ...]]
    metadata: dict[str, str] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)

    def strip(self, prefix: str) -> dict[str, tuple[int, ...]]:
        """Shapes of the keys under ``prefix``, with the prefix removed."""
        n = len(prefix)
        return {k[n:]: v for k, v in self.shapes.items() if k.startswith(prefix)}

    def has_prefix(self, prefix: str) -> bool:
        return any(k.startswith(prefix) for k in self.shapes)

    def nbytes(self, prefix: str = "") -> int:
        """Bytes of the tensors under ``prefix`` as stored (a size hint for the model manager)."""
        total = 0
        for key, shape in self.shapes.items():
            if key.startswith(prefix):
                count = 1
                for d in shape:
                    count *= d
                total += count * _DTYPE_SIZES.get(self.dtypes.get(key, "F32"), 4)
        return total


_DTYPE_SIZES = {
    "F64": 8,
    "I64": 8,
    "F32": 4,
    "I32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "BOOL": 1,
}


def read_safetensors_header(path: Path) -> FileInfo:
    """Parse a ``.safetensors`` header (8-byte length + JSON); no tensor data is read."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise ModelFileError(f"{path.name}: file is too short to be a safetensors file")
            (length,) = struct.unpack("<Q", raw)
            if length > 100_000_000:
                raise ModelFileError(f"{path.name}: not a safetensors file (header length {length})")
            header = json.loads(f.read(length))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path.name}: not a valid safetensors file ({exc})") from exc
    metadata = header.pop("__metadata__", None) or {}
    shapes = {k: tuple(v["shape"]) for k, v in header.items()}
    dtypes = {k: v["dtype"] for k, v in header.items()}
    return FileInfo(Path(path), shapes, dict(metadata), dtypes)


# -- checkpoints ---------------------------------------------------------------------------------
@dataclass
class ClipLayout:
    prefix: str
    style: str  # "hf" (OpenAI CLIP in transformers layout) or "openclip"
    config: dict[str, Any]
    target: str  # name for weight patches: "clip_l", "clip_g"


@dataclass
class CheckpointLayout:
    """Where each component lives in a single-file checkpoint, and its diffusers config."""

    family: str
    prediction_type: str
    unet_prefix: str | None = None
    unet_config: dict[str, Any] | None = None
    vae_prefix: str | None = None
    vae_config: dict[str, Any] | None = None
    clips: list[ClipLayout] = field(default_factory=list)


def detect_checkpoint(info: FileInfo) -> CheckpointLayout:
    """The family and component layout of a full checkpoint (UNet, VAE, text encoders)."""
    name = info.path.name
    family = _checkpoint_family(info)
    unet_shapes = info.strip(sf.UNET_PREFIX)
    layout = CheckpointLayout(family=family, prediction_type=prediction_type(info, family))
    if unet_shapes:
        layout.unet_prefix = sf.UNET_PREFIX
        layout.unet_config = infer_unet_config(unet_shapes, family, name)
    vae_shapes = info.strip(sf.VAE_PREFIX)
    if vae_shapes:
        layout.vae_prefix = sf.VAE_PREFIX
        layout.vae_config = infer_vae_config(vae_shapes, family, name)
    if family == "sd1" and info.has_prefix(sf.SD1_CLIP_PREFIX):
        layout.clips.append(
            ClipLayout(
                sf.SD1_CLIP_PREFIX, "hf", infer_clip_config(info.strip(sf.SD1_CLIP_PREFIX), "hf", name), "clip_l"
            )
        )
    elif family == "sd2" and info.has_prefix(sf.SD2_CLIP_PREFIX):
        layout.clips.append(
            ClipLayout(
                sf.SD2_CLIP_PREFIX,
                "openclip",
                infer_clip_config(info.strip(sf.SD2_CLIP_PREFIX), "openclip", name),
                "clip_h",
            )
        )
    elif family == "sdxl":
        if info.has_prefix(sf.SDXL_CLIP_L_PREFIX):
            layout.clips.append(
                ClipLayout(
                    sf.SDXL_CLIP_L_PREFIX,
                    "hf",
                    infer_clip_config(info.strip(sf.SDXL_CLIP_L_PREFIX), "hf", name),
                    "clip_l",
                )
            )
        if info.has_prefix(sf.SDXL_CLIP_G_PREFIX):
            layout.clips.append(
                ClipLayout(
                    sf.SDXL_CLIP_G_PREFIX,
                    "openclip",
                    infer_clip_config(info.strip(sf.SDXL_CLIP_G_PREFIX), "openclip", name),
                    "clip_g",
                )
            )
    if layout.unet_config is None:
        raise UnknownModelError(
            f"{name}: no UNet found (no keys under {sf.UNET_PREFIX!r}); is it a VAE, LoRA or "
            "text encoder file? Put it in the matching models folder and use that loader"
        )
    return layout


def _checkpoint_family(info: FileInfo) -> str:
    name = info.path.name
    if info.has_prefix("conditioner.embedders."):
        if info.has_prefix(sf.SDXL_CLIP_G_PREFIX) and info.has_prefix(sf.SDXL_CLIP_L_PREFIX):
            return "sdxl"
        raise UnknownModelError(
            f"{name}: looks like an SDXL refiner or another SGM model, which Weft does not "
            "support yet; supported families: " + ", ".join(FAMILY_NAMES.values())
        )
    if info.has_prefix(sf.SD2_CLIP_PREFIX):
        return "sd2"
    if info.has_prefix(sf.SD1_CLIP_PREFIX):
        return "sd1"
    unet = info.strip(sf.UNET_PREFIX)
    if unet:
        return unet_family(unet, name)
    raise UnknownModelError(
        f"{name}: not a Stable Diffusion checkpoint Weft recognises (no model.diffusion_model.* keys). "
        f"Supported: {', '.join(FAMILY_NAMES.values())} in the original single-file layout, or diffusers folders "
        "(models/diffusers). Flux, SD3 and other architectures are not supported yet"
    )


def unet_family(unet: dict[str, tuple[int, ...]], name: str) -> str:
    """sd1/sd2/sdxl from an original-layout UNet's keys (prefix removed)."""
    if "input_blocks.0.0.weight" not in unet:
        raise UnknownModelError(
            f"{name}: not a UNet in the original Stable Diffusion layout (no input_blocks.0.0.weight)"
        )
    if "label_emb.0.0.weight" in unet:
        return "sdxl"
    context = _context_dim(unet)
    if context == 1024 or _linear_projection(unet):
        return "sd2"
    return "sd1"


def prediction_type(info: FileInfo, family: str) -> str:
    spec = info.metadata.get("modelspec.prediction_type", "").lower()
    if spec.startswith("v"):
        return "v_prediction"
    if spec.startswith("eps"):
        return "epsilon"
    if "v_pred" in info.shapes:
        return "v_prediction"
    if family != "sd2":
        return "epsilon"
    return _sd2_prediction_from_weights(info)


def _sd2_prediction_from_weights(info: FileInfo, prefix: str | None = None) -> str:
    """SD 2.x comes as 512 px epsilon ("base") and 768 px v-prediction models of one layout.

    Their weights tell them apart: in the v-prediction models the biases of the first layer
    norm in the last output block's transformer are spread wider (standard deviation above
    0.09, the threshold ComfyUI uses as well). Only the real SD2 layout (320 channels, 12
    output blocks) is checked; anything else (the tiny test models) keeps SD2's usual
    v-prediction, and a file's ``modelspec.prediction_type`` metadata overrides both.
    """
    if prefix is None:
        prefix = UNET_PREFIX_GUESSES[0] if any(k.startswith(UNET_PREFIX_GUESSES[0]) for k in info.shapes) else ""
    key = f"{prefix}output_blocks.11.1.transformer_blocks.0.norm1.bias"
    if info.shapes.get(key) != (320,) or info.shapes.get(f"{prefix}input_blocks.0.0.weight", (0, 0))[1] != 4:
        return "v_prediction"
    try:
        with sf.TensorSource(info.path) as source:
            bias = source.get(key).float()
    except Exception:  # unreadable here means unreadable later too, with a better message
        return "v_prediction"
    return "v_prediction" if float(bias.std(unbiased=False)) > 0.09 else "epsilon"


UNET_PREFIX_GUESSES = (sf.UNET_PREFIX, "")


# -- UNet --------------------------------------------------------------------------------------
def _context_dim(unet: dict[str, tuple[int, ...]]) -> int | None:
    for key, shape in unet.items():
        if key.endswith("attn2.to_k.weight"):
            return shape[1]
    return None


def _linear_projection(unet: dict[str, tuple[int, ...]]) -> bool:
    for key, shape in unet.items():
        if key.endswith(".proj_in.weight"):
            return len(shape) == 2
    return False


def _indices(keys: Any, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m[1]) for k in keys if (m := rx.match(k))})


@dataclass
class _UNetLayout:
    """What an original-layout UNet's shapes say about its levels and blocks."""

    model_channels: int
    in_channels: int
    out_channels: int
    layers_per_block: int
    channels: list[int]  # per level
    attention: list[bool]  # per level: has cross-attention blocks
    depth: list[int]  # per level: transformer blocks per attention block (0 without)
    mid_depth: int


def infer_unet_config(unet: dict[str, tuple[int, ...]], family: str, name: str = "model") -> dict[str, Any]:
    """A ``UNet2DConditionModel`` config matching an original-layout UNet's shapes."""
    layout = _unet_layout(unet, name)
    linear = _linear_projection(unet)
    context = _context_dim(unet)
    if context is None:
        raise UnknownModelError(f"{name}: UNet has no cross-attention; not a text-to-image Stable Diffusion UNet")
    heads: Any = [max(1, c // 64) for c in layout.channels] if linear else 8
    attention = layout.attention
    config: dict[str, Any] = {
        "sample_size": {"sd1": 64, "sd2": 96, "sdxl": 128}[family],
        "in_channels": layout.in_channels,
        "out_channels": layout.out_channels,
        "layers_per_block": layout.layers_per_block,
        "block_out_channels": layout.channels,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
        "cross_attention_dim": context,
        "attention_head_dim": heads,
        "use_linear_projection": linear,
        "transformer_layers_per_block": _transformer_depths(layout, name),
        "norm_num_groups": 32,
    }
    if time_embed := unet.get("time_embed.0.weight"):
        if time_embed[0] != 4 * layout.model_channels:
            config["time_embedding_dim"] = time_embed[0]
    if family == "sd2":
        config["upcast_attention"] = True
    if "label_emb.0.0.weight" in unet:
        config["addition_embed_type"] = "text_time"
        config["addition_time_embed_dim"] = 256
        config["projection_class_embeddings_input_dim"] = unet["label_emb.0.0.weight"][1]
    if not any(attention) and layout.mid_depth == 0:
        raise UnknownModelError(f"{name}: UNet without attention blocks is not a Stable Diffusion UNet")
    return config


def _unet_layout(unet: dict[str, tuple[int, ...]], name: str) -> _UNetLayout:
    try:
        conv_in = unet["input_blocks.0.0.weight"]
        model_channels, in_channels = conv_in[0], conv_in[1]
        out_channels = unet["out.2.weight"][0] if "out.2.weight" in unet else in_channels  # ControlNets: no out
        blocks = [i for i in _indices(unet, r"input_blocks\.(\d+)\.") if i > 0]
        levels: list[list[int]] = [[]]
        for i in blocks:
            if f"input_blocks.{i}.0.op.weight" in unet:
                levels.append([])
            else:
                levels[-1].append(i)
        per_level = {len(level) for level in levels}
        if len(per_level) != 1:
            raise UnknownModelError(f"{name}: UNet levels have different block counts {sorted(per_level)}")
        channels, attention, depth = [], [], []
        for level in levels:
            first = level[0]
            channels.append(unet[f"input_blocks.{first}.0.out_layers.3.weight"][0])
            tb = _indices(unet, rf"input_blocks\.{first}\.1\.transformer_blocks\.(\d+)\.")
            attention.append(bool(tb))
            depth.append(len(tb) if tb else 0)
        mid_depth = len(_indices(unet, r"middle_block\.1\.transformer_blocks\.(\d+)\."))
    except KeyError as exc:
        raise UnknownModelError(f"{name}: UNet layout not recognised (missing {exc.args[0]!r})") from exc
    return _UNetLayout(
        model_channels, in_channels, out_channels, per_level.pop(), channels, attention, depth, mid_depth
    )


def _transformer_depths(layout: _UNetLayout, name: str) -> list[int]:
    """Transformer blocks per level; a level without attention takes the middle block's depth."""
    mid_depth = layout.mid_depth
    depth = [d if d else (mid_depth or 1) for d in layout.depth]
    if mid_depth and depth[-1] != mid_depth:
        if layout.attention[-1]:
            raise UnknownModelError(
                f"{name}: middle block depth {mid_depth} differs from the last level's {depth[-1]}; not representable"
            )
        depth[-1] = mid_depth
    return depth


# -- ControlNet --------------------------------------------------------------------------------
def controlnet_prefix(info: FileInfo) -> str:
    """Where a ControlNet's original-layout keys start (``control_model.`` or nothing)."""
    for prefix in (sf.CONTROLNET_PREFIX, ""):
        if f"{prefix}input_hint_block.0.weight" in info.shapes and f"{prefix}zero_convs.0.0.weight" in info.shapes:
            return prefix
    raise UnknownModelError(
        f"{info.path.name}: not a ControlNet in the original layout (no input_hint_block / "
        "zero_convs weights); T2I adapters, control LoRAs and Flux/SD3 ControlNets are not "
        "supported yet"
    )


def infer_controlnet_config(shapes: dict[str, tuple[int, ...]], name: str = "model") -> dict[str, Any]:
    """A ``ControlNetModel`` config for an original-layout ControlNet (prefix removed)."""
    family = unet_family(shapes, name)
    unet = infer_unet_config(shapes, family, name)
    hint = _indices(shapes, r"input_hint_block\.(\d+)\.weight")
    if not hint or hint != list(range(0, hint[-1] + 1, 2)) or len(hint) % 2:
        raise UnknownModelError(f"{name}: ControlNet hint encoder layout not recognised (convs {hint})")
    embedding = [shapes[f"input_hint_block.{i}.weight"][0] for i in [hint[0], *hint[2:-1:2]]]
    config = {
        k: unet[k]
        for k in (
            "in_channels",
            "layers_per_block",
            "block_out_channels",
            "down_block_types",
            "cross_attention_dim",
            "attention_head_dim",
            "use_linear_projection",
            "transformer_layers_per_block",
            "norm_num_groups",
            "upcast_attention",
            "addition_embed_type",
            "addition_time_embed_dim",
            "projection_class_embeddings_input_dim",
        )
        if k in unet
    }
    config["conditioning_channels"] = shapes["input_hint_block.0.weight"][1]
    config["conditioning_embedding_out_channels"] = embedding
    config["_family"] = family
    return config


# -- VAE ---------------------------------------------------------------------------------------
def infer_vae_config(vae: dict[str, tuple[int, ...]], family: str, name: str = "model") -> dict[str, Any]:
    """An ``AutoencoderKL`` config matching an original-layout VAE's shapes."""
    try:
        levels = _indices(vae, r"encoder\.down\.(\d+)\.")
        channels = [vae[f"encoder.down.{i}.block.0.conv2.weight"][0] for i in levels]
        layers = len(_indices(vae, r"encoder\.down\.0\.block\.(\d+)\."))
        latent = (
            vae["quant_conv.weight"][0] // 2 if "quant_conv.weight" in vae else vae["encoder.conv_out.weight"][0] // 2
        )
        config = {
            "in_channels": vae["encoder.conv_in.weight"][1],
            "out_channels": vae["decoder.conv_out.weight"][0],
            "latent_channels": latent,
            "layers_per_block": layers,
            "block_out_channels": channels,
            "down_block_types": ["DownEncoderBlock2D"] * len(channels),
            "up_block_types": ["UpDecoderBlock2D"] * len(channels),
            "norm_num_groups": 32,
            "sample_size": 1024 if family == "sdxl" else 512,
            "scaling_factor": 0.13025 if family == "sdxl" else 0.18215,
        }
    except KeyError as exc:
        raise UnknownModelError(f"{name}: VAE layout not recognised (missing {exc.args[0]!r})") from exc
    if "quant_conv.weight" not in vae:
        config["use_quant_conv"] = False
        config["use_post_quant_conv"] = False
    return config


def vae_prefix(info: FileInfo) -> str:
    """Where the VAE keys start in a standalone VAE file (bare, ``first_stage_model.`` or ``vae.``)."""
    for prefix in ("", sf.VAE_PREFIX, "vae."):
        if f"{prefix}encoder.conv_in.weight" in info.shapes and f"{prefix}decoder.conv_out.weight" in info.shapes:
            return prefix
    raise UnknownModelError(
        f"{info.path.name}: not a VAE in the original Stable Diffusion layout "
        "(no encoder.conv_in / decoder.conv_out weights)"
    )


# -- text encoders -----------------------------------------------------------------------------
def infer_clip_config(shapes: dict[str, tuple[int, ...]], style: str, name: str = "model") -> dict[str, Any]:
    """A transformers ``CLIPTextConfig`` (as a dict) for an original-layout text encoder."""
    try:
        if style == "hf":
            vocab, hidden = shapes["text_model.embeddings.token_embedding.weight"]
            positions = shapes["text_model.embeddings.position_embedding.weight"][0]
            layers = len(_indices(shapes, r"text_model\.encoder\.layers\.(\d+)\."))
            intermediate = shapes["text_model.encoder.layers.0.mlp.fc1.weight"][0]
            projection = shapes.get("text_projection.weight", (hidden,))[0]
            act = "quick_gelu"
        else:
            vocab, hidden = shapes["token_embedding.weight"]
            positions = shapes["positional_embedding"][0]
            layers = len(_indices(shapes, r"transformer\.resblocks\.(\d+)\."))
            intermediate = shapes["transformer.resblocks.0.mlp.c_fc.weight"][0]
            projection = shapes.get("text_projection", (hidden, hidden))[1]
            act = "gelu"
    except KeyError as exc:
        raise UnknownModelError(f"{name}: text encoder layout not recognised (missing {exc.args[0]!r})") from exc
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": max(1, hidden // 64),
        "max_position_embeddings": positions,
        "hidden_act": act,
        "projection_dim": projection,
        "layer_norm_eps": 1e-5,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 1,
    }


def clip_file_layout(info: FileInfo) -> tuple[str, str]:
    """``(prefix, style)`` of a standalone text encoder file (CLIPLoader)."""
    candidates = [
        ("", "hf"),
        (sf.SD1_CLIP_PREFIX, "hf"),
        (sf.SDXL_CLIP_L_PREFIX, "hf"),
        ("", "openclip"),
        (sf.SD2_CLIP_PREFIX, "openclip"),
        (sf.SDXL_CLIP_G_PREFIX, "openclip"),
    ]
    for prefix, style in candidates:
        if style == "hf" and f"{prefix}text_model.embeddings.token_embedding.weight" in info.shapes:
            return prefix, "hf"
        if style == "openclip" and f"{prefix}token_embedding.weight" in info.shapes:
            return prefix, "openclip"
    raise UnknownModelError(
        f"{info.path.name}: not a CLIP text encoder Weft recognises (expected OpenAI CLIP "
        "text_model.* keys or OpenCLIP token_embedding/transformer.resblocks keys)"
    )
