"""Model files that are only a safetensors header (plus zero bytes for a size): enough for
everything that reads headers alone (the model catalogue, family detection), never for loading."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

#: key -> shape of each kind of file, the keys that tell their family apart
SDXL_CHECKPOINT = {
    "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (49408, 768),
    "conditioner.embedders.1.model.token_embedding.weight": (49408, 1280),
    "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
    "model.diffusion_model.label_emb.0.0.weight": (1280, 2816),
}
SD2_CHECKPOINT = {
    "cond_stage_model.model.token_embedding.weight": (49408, 1024),
    "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
}
SD1_LORA = {
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 768),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": (320, 4),
}
SDXL_LORA = {
    "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 2048),
    "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight": (640, 4),
}
CLIP_G = {"text_model.embeddings.token_embedding.weight": (49408, 1280)}
VAE = {"encoder.conv_in.weight": (128, 3, 3, 3), "decoder.conv_out.weight": (3, 128, 3, 3)}


def write_safetensors(
    path: Path, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str] | None = None, payload: int = 0
) -> Path:
    """A safetensors file with ``shapes`` in its header and ``payload`` zero bytes after it."""
    header: dict[str, Any] = {k: {"dtype": "F16", "shape": list(s), "data_offsets": [0, 0]} for k, s in shapes.items()}
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(payload))
    return path
