"""MODEL, CLIP and VAE handles for a single-file checkpoint, from its header alone.

The header's keys and shapes give the family and the configs; each component becomes a lazy
handle with the model manager, so the file's weights are read only when something runs.
Separate text encoder files (:mod:`.component_loading`) reuse :func:`clip_part`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import detect
from . import single_file as sf
from .detect import ModelFileError
from .model_files import file_info, file_key, with_input
from .model_manager import ModelManager, get_manager
from .types import ClipPart, DiffusionModel, TextEncoder, VAEModel


def clip_part(
    manager: ModelManager,
    key: tuple,
    path: Path,
    layout: detect.ClipLayout,
    family: str,
    index: int,
    size_hint: int = 0,
    device: str | None = None,
) -> ClipPart:
    with_projection = family == "sdxl" and layout.style == "openclip"
    handle = manager.handle(
        ("clip", *key, layout.prefix, device),
        "clip",
        lambda: sf.load_clip(path, layout.prefix, layout.style, layout.config, with_projection),
        name=f"{path.name}:{layout.target}",
        target=layout.target,
        size_hint=size_hint,
        device=device,
    )
    openclip = layout.style == "openclip"
    tokenizer = tokenizer_handle(manager, "!" if openclip else "<|endoftext|>")
    if family == "sdxl":
        return ClipPart(
            handle,
            tokenizer,
            default_layer=-2,
            final_norm_on_hidden=False,
            pad_token="!" if openclip else "end",
            pooled="projection" if openclip else "none",
        )
    if family == "sd2":
        return ClipPart(handle, tokenizer, default_layer=-2, pad_token="!")
    return ClipPart(handle, tokenizer, default_layer=-1, pad_token="end")


def tokenizer_handle(manager: ModelManager, pad_token: str) -> Any:
    from .clip_text import make_tokenizer

    return manager.handle(
        ("tokenizer", pad_token),
        "tokenizer",
        lambda: make_tokenizer(pad_token),
        name=f"CLIP tokenizer (pad {pad_token})",
    )


def load_checkpoint(
    path: Path, input_name: str = "ckpt_name"
) -> tuple[DiffusionModel, TextEncoder | None, VAEModel | None]:
    """MODEL, CLIP and VAE handles for a single-file checkpoint (nothing is read but the header)."""
    manager = get_manager()
    try:
        info = file_info(path)
        layout = detect.detect_checkpoint(info)
    except ModelFileError as exc:
        raise with_input(input_name, exc) from exc
    key = file_key(path)
    unet_config = layout.unet_config or {}
    unet = manager.handle(
        ("unet", *key),
        "unet",
        lambda: sf.load_unet(path, sf.UNET_PREFIX, unet_config),
        name=path.name,
        target="unet",
        size_hint=info.nbytes(sf.UNET_PREFIX),
    )
    model = DiffusionModel(unet, family=layout.family, prediction_type=layout.prediction_type, name=path.name)
    clip = None
    if layout.clips:
        parts = [
            clip_part(manager, key, path, c, layout.family, i, info.nbytes(c.prefix))
            for i, c in enumerate(layout.clips)
        ]
        expected = 2 if layout.family == "sdxl" else 1
        if len(parts) == expected:
            clip = TextEncoder(layout.family, parts, name=path.name)
    vae = None
    if layout.vae_config is not None:
        vae_config = layout.vae_config
        handle = manager.handle(
            ("vae", *key),
            "vae",
            lambda: sf.load_vae(path, sf.VAE_PREFIX, vae_config),
            name=path.name,
            target="vae",
            size_hint=info.nbytes(sf.VAE_PREFIX),
        )
        vae = VAEModel(
            handle,
            scaling_factor=vae_config["scaling_factor"],
            latent_channels=vae_config["latent_channels"],
            downscale=2 ** (len(vae_config["block_out_channels"]) - 1),
            name=path.name,
        )
    return model, clip, vae
