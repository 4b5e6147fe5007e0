"""``from comfy.cli_args import args``: ComfyUI's parsed command line, with Weft's defaults.

Packs read a few flags (``args.cpu``, ``args.disable_metadata``, ``args.listen``...) to
adapt their behaviour. Weft has its own command line; this object answers with neutral
values, and ``None`` for any flag it does not know, so reading a flag never crashes a pack.
"""

from __future__ import annotations

import enum
from typing import Any


class LatentPreviewMethod(enum.Enum):
    NoPreviews = "none"
    Auto = "auto"
    Latent2RGB = "latent2rgb"
    TAESD = "taesd"


class _Args:
    listen = "127.0.0.1"
    port = 8188
    cpu = False
    disable_metadata = False
    disable_all_custom_nodes = False
    preview_method = LatentPreviewMethod.Latent2RGB
    lowvram = False
    highvram = False
    novram = False
    gpu_only = False
    force_fp16 = False
    force_fp32 = False
    fp16_vae = False
    bf16_vae = False
    dont_print_server = False
    verbose = "INFO"
    multi_user = False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None


args = _Args()
