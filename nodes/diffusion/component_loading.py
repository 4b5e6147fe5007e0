"""Handles for components stored alone: a UNet, one or two text encoders, a VAE, a ControlNet.

Such files come in the original (LDM) layout, with or without their checkpoint prefix, or in
diffusers' layout; diffusers-layout shapes are renamed to the original ones so that one
family and config inference (:mod:`.detect`) serves both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import detect
from . import single_file as sf
from .checkpoint_loading import clip_part
from .detect import ModelFileError, UnknownModelError
from .diffusers_loading import folder_key, read_json, safe_pretrained
from .model_files import LoaderInputError, file_info, file_key, info_bytes, with_input
from .model_manager import get_manager
from .types import DiffusionModel, TextEncoder, VAEModel


def _diffusers_unet_shapes_to_ldm(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Rename a diffusers-layout UNet's shapes to the original layout, to reuse the inference."""
    levels = detect._indices(shapes, r"down_blocks\.(\d+)\.")
    n = len(detect._indices(shapes, r"down_blocks\.0\.resnets\.(\d+)\."))
    up_levels = detect._indices(shapes, r"up_blocks\.(\d+)\.")
    up_types = [
        "CrossAttnUpBlock2D" if any(k.startswith(f"up_blocks.{i}.attentions.") for k in shapes) else "UpBlock2D"
        for i in up_levels
    ]
    config = {"layers_per_block": n, "up_block_types": up_types, "block_out_channels": [0] * len(levels)}
    out = {}
    for key, shape in shapes.items():
        try:
            out[sf.unet_ldm_name(key, config)] = shape
        except sf.LayoutError:
            continue
    return out


def load_unet_file(path: Path, weight_dtype: str = "default", input_name: str = "unet_name") -> DiffusionModel:
    """MODEL from a UNet-only file: original layout (with or without prefix) or diffusers layout."""
    try:
        info = file_info(path)
        shapes = info.shapes
        if any(k.startswith(sf.UNET_PREFIX) for k in shapes):
            prefix, ldm = sf.UNET_PREFIX, True
        elif "input_blocks.0.0.weight" in shapes:
            prefix, ldm = "", True
        elif "conv_in.weight" in shapes and any(k.startswith("down_blocks.") for k in shapes):
            prefix, ldm = "", False
        else:
            raise UnknownModelError(
                f"{path.name}: not a Stable Diffusion UNet (no input_blocks/down_blocks keys); "
                "Flux, SD3 and other diffusion models are not supported yet"
            )
        stripped = {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}
        ldm_shapes = stripped if ldm else _diffusers_unet_shapes_to_ldm(stripped)
        family = detect.unet_family(ldm_shapes, path.name)
        config = detect.infer_unet_config(ldm_shapes, family, path.name)
        prediction = detect.prediction_type(info, family)
    except ModelFileError as exc:
        raise with_input(input_name, exc) from exc
    manager = get_manager()
    key = file_key(path)
    loader = sf.load_unet if ldm else sf.load_unet_diffusers_layout
    dtype = None if weight_dtype == "default" else weight_dtype
    handle = manager.handle(
        ("unet", *key, weight_dtype),
        "unet",
        lambda: loader(path, prefix, config),
        name=path.name,
        target="unet",
        dtype=dtype,
    )
    return DiffusionModel(handle, family=family, prediction_type=prediction, name=path.name)


def load_clip_file(paths: list[Path], input_names: list[str], clip_type: str, device: str = "default") -> TextEncoder:
    """CLIP from one (SD1 CLIP-L or SD2 OpenCLIP-H) or two (SDXL: CLIP-L + bigG) encoder files."""
    manager = get_manager()
    layouts = []
    for path, input_name in zip(paths, input_names, strict=True):
        try:
            info = file_info(path)
            prefix, style = detect.clip_file_layout(info)
            config = detect.infer_clip_config(info.strip(prefix), style, path.name)
        except ModelFileError as exc:
            raise with_input(input_name, exc) from exc
        layouts.append((path, prefix, style, config))
    if clip_type == "sdxl":
        styles = sorted(s for _, _, s, _ in layouts)
        if styles != ["hf", "openclip"]:
            raise LoaderInputError(
                f"{input_names[0]}/{input_names[1]}: SDXL needs one CLIP-L and one OpenCLIP bigG "
                f"text encoder; got {' and '.join(styles)} layouts"
            )
        layouts.sort(key=lambda item: item[2] != "hf")
        family = "sdxl"
    else:
        family = "sd2" if layouts[0][2] == "openclip" else "sd1"
    parts = []
    for path, prefix, style, config in layouts:
        target = "clip_l" if style == "hf" else ("clip_g" if family == "sdxl" else "clip_h")
        layout = detect.ClipLayout(prefix, style, config, target)
        parts.append(
            clip_part(
                manager,
                file_key(path),
                path,
                layout,
                family,
                len(parts),
                info_bytes(path, prefix),
                "cpu" if device == "cpu" else None,
            )
        )
    return TextEncoder(family, parts, name="+".join(p.name for p in paths))


def _diffusers_vae_shapes_to_ldm(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    levels = detect._indices(shapes, r"encoder\.down_blocks\.(\d+)\.")
    config = {"block_out_channels": [0] * len(levels)}
    out = {}
    for key, shape in shapes.items():
        try:
            out[sf.vae_ldm_name(key, config)] = shape
        except sf.LayoutError:
            continue
    return out


def load_vae_file(path: Path, input_name: str = "vae_name") -> VAEModel:
    """VAE from a standalone file in the original layout or in diffusers' (AutoencoderKL) layout."""
    try:
        info = file_info(path)
        prefix = detect.vae_prefix(info)
        shapes = info.strip(prefix)
        diffusers_layout = "encoder.down_blocks.0.resnets.0.conv1.weight" in shapes
        if diffusers_layout:
            shapes = _diffusers_vae_shapes_to_ldm(shapes)
        config = detect.infer_vae_config(shapes, "sd1", path.name)
    except ModelFileError as exc:
        raise with_input(input_name, exc) from exc

    def load() -> Any:
        if diffusers_layout:
            from diffusers import AutoencoderKL

            model = sf.empty_model(lambda: AutoencoderKL.from_config(config))
            return sf.load_module(path, model, lambda n: prefix + n, kind="vae", what="VAE")
        return sf.load_vae(path, prefix, config)

    handle = get_manager().handle(
        ("vae", *file_key(path), prefix), "vae", load, name=path.name, target="vae", size_hint=info.nbytes(prefix)
    )
    return VAEModel(
        handle,
        scaling_factor=config["scaling_factor"],
        latent_channels=config["latent_channels"],
        downscale=2 ** (len(config["block_out_channels"]) - 1),
        name=path.name,
    )


def load_controlnet_file(path: Path, input_name: str = "control_net_name") -> tuple[Any, str]:
    """``(handle, family)`` for a ControlNet file (original layout) or diffusers folder.

    The handle's module is a diffusers ``ControlNetModel`` (kind "controlnet"); call it as
    diffusers does and pass its residuals to :meth:`DiffusionModel.predict_noise`.
    """
    manager = get_manager()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LoaderInputError(f"{input_name}: {path.name} is not a diffusers ControlNet folder (no config.json)")
        config = read_json(path / "config.json")
        family = (
            "sdxl"
            if config.get("addition_embed_type") == "text_time"
            else ("sd2" if config.get("use_linear_projection") else "sd1")
        )

        def load_folder() -> Any:
            from diffusers import ControlNetModel

            return safe_pretrained(ControlNetModel, path)

        return manager.handle(
            ("controlnet", *folder_key(path)), "controlnet", load_folder, name=path.name, target="controlnet"
        ), family
    try:
        info = file_info(path)
        prefix = detect.controlnet_prefix(info)
        config = detect.infer_controlnet_config(info.strip(prefix), path.name)
    except ModelFileError as exc:
        raise with_input(input_name, exc) from exc
    family = config.pop("_family")
    handle = manager.handle(
        ("controlnet", *file_key(path), prefix),
        "controlnet",
        lambda: sf.load_controlnet(path, prefix, config),
        name=path.name,
        target="controlnet",
        size_hint=info.nbytes(prefix),
    )
    return handle, family
