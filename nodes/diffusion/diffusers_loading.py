"""MODEL, CLIP and VAE handles for a diffusers pipeline folder, loaded lazily and offline.

A folder's configs (model_index.json, unet/, scheduler/, text_encoder*/) tell its family,
prediction type and training schedule; its weights are read with ``from_pretrained`` from
``.safetensors`` only, so Weft's pickle policy holds for folders as for single files.
Diffusers-format ControlNet folders (:mod:`.component_loading`) reuse the helpers here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .detect import ModelFileError, UnknownModelError
from .model_files import LoaderInputError, with_input
from .model_manager import get_manager
from .types import ClipPart, DiffusionModel, TextEncoder, VAEModel


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path.parent.name}/{path.name}: cannot read ({exc})") from exc


def folder_key(folder: Path) -> tuple[str, int]:
    newest = max((p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()), default=0)
    return (str(folder.resolve()), newest)


def safe_pretrained(cls: Any, folder: Path) -> Any:
    """``cls.from_pretrained(folder)`` offline and from .safetensors only.

    Older diffusers folders may hold only ``.bin`` pickles, which from_pretrained would
    unpickle; Weft's pickle policy (see ``single_file.pickle_policy``) applies to them too.
    """
    if not any(folder.glob("*.safetensors")) and any(folder.glob("*.bin")):
        raise ModelFileError(
            f"{folder.parent.name}/{folder.name}: only .bin (pickle) weights; Weft loads diffusers folders from "
            ".safetensors files. Convert the folder (for example by loading and saving it with diffusers)"
        )
    return cls.from_pretrained(folder, local_files_only=True, use_safetensors=True)


def diffusers_family(folder: Path) -> tuple[str, str]:
    """(family, prediction_type) of a diffusers pipeline folder, from its configs."""
    index = read_json(folder / "model_index.json") if (folder / "model_index.json").exists() else {}
    unet_cfg = read_json(folder / "unet" / "config.json")
    sched = folder / "scheduler" / "scheduler_config.json"
    prediction = read_json(sched).get("prediction_type", "epsilon") if sched.exists() else "epsilon"
    cls = str(index.get("_class_name", ""))
    if unet_cfg.get("addition_embed_type") == "text_time" or "XL" in cls:
        if not (folder / "text_encoder_2").is_dir() or not (folder / "text_encoder").is_dir():
            raise UnknownModelError(
                f"{folder.name}: SDXL folders without both text encoders (refiner) are not supported yet"
            )
        family = "sdxl"
    elif unet_cfg.get("cross_attention_dim") == 1024 or unet_cfg.get("use_linear_projection"):
        family = "sd2"
    else:
        family = "sd1"
    if prediction not in ("epsilon", "v_prediction"):
        prediction = "epsilon"
    return family, prediction


#: Keys of a folder's scheduler config that describe the training noise schedule.
_SCHEDULE_KEYS = (
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "trained_betas",
    "rescale_betas_zero_snr",
    "timestep_spacing",
    "steps_offset",
)


def folder_schedule(folder: Path, family: str, prediction: str) -> dict[str, Any]:
    """The family's training schedule, with what the folder's scheduler config says about it."""
    from .types import default_scheduler_config

    config = default_scheduler_config(family, prediction)
    path = folder / "scheduler" / "scheduler_config.json"
    if path.is_file():
        own = read_json(path)
        config.update({k: own[k] for k in _SCHEDULE_KEYS if own.get(k) is not None})
    return config


def load_diffusers(folder: Path, input_name: str = "model_path") -> tuple[DiffusionModel, TextEncoder, VAEModel]:
    """MODEL, CLIP and VAE handles for a diffusers pipeline folder (loaded lazily, offline)."""
    family, prediction = _check_diffusers_folder(folder, input_name)
    manager = get_manager()
    key = folder_key(folder)

    def load_unet() -> Any:
        from diffusers import UNet2DConditionModel

        return safe_pretrained(UNet2DConditionModel, folder / "unet")

    unet = manager.handle(("diffusers-unet", *key), "unet", load_unet, name=folder.name, target="unet")
    model = DiffusionModel(
        unet,
        family=family,
        prediction_type=prediction,
        name=folder.name,
        scheduler_config=folder_schedule(folder, family, prediction),
    )
    vae = _diffusers_vae(folder, key)
    return model, _diffusers_clip(folder, family, key), vae


def _check_diffusers_folder(folder: Path, input_name: str) -> tuple[str, str]:
    """The folder's (family, prediction type), or an error naming the input if Weft cannot load it."""
    if not (folder / "unet" / "config.json").is_file():
        raise LoaderInputError(f"{input_name}: {folder.name} is not a diffusers pipeline folder (no unet/config.json)")
    try:
        family, prediction = diffusers_family(folder)
        for sub in ("unet", "vae", "text_encoder", "text_encoder_2"):
            part = folder / sub
            if part.is_dir() and not any(part.glob("*.safetensors")) and any(part.glob("*.bin")):
                raise ModelFileError(
                    f"{folder.name}/{sub}: only .bin (pickle) weights; Weft loads diffusers folders "
                    "from .safetensors files. Convert the folder (load and save it with diffusers)"
                )
    except ModelFileError as exc:
        raise with_input(input_name, exc) from exc
    return family, prediction


def _diffusers_vae(folder: Path, key: tuple[str, int]) -> VAEModel:
    def load_vae() -> Any:
        from diffusers import AutoencoderKL

        return safe_pretrained(AutoencoderKL, folder / "vae")

    vae_cfg = read_json(folder / "vae" / "config.json")
    vae_handle = get_manager().handle(("diffusers-vae", *key), "vae", load_vae, name=folder.name, target="vae")
    return VAEModel(
        vae_handle,
        scaling_factor=float(vae_cfg.get("scaling_factor", 0.18215)),
        shift_factor=float(vae_cfg.get("shift_factor") or 0.0),
        latent_channels=int(vae_cfg.get("latent_channels", 4)),
        downscale=2 ** (len(vae_cfg.get("block_out_channels", [0, 0, 0, 0])) - 1),
        name=folder.name,
    )


def _diffusers_clip(folder: Path, family: str, key: tuple[str, int]) -> TextEncoder:
    """The folder's text encoder(s) and tokenizer(s): one for SD1/SD2, two for SDXL."""
    manager = get_manager()
    parts = []
    encoders = [("text_encoder", "tokenizer")] + ([("text_encoder_2", "tokenizer_2")] if family == "sdxl" else [])
    for index, (te, tok) in enumerate(encoders):
        te_cfg = read_json(folder / te / "config.json")
        projection = family == "sdxl" and index == 1

        def load_te(te: str = te, projection: bool = projection) -> Any:
            from transformers import CLIPTextModel, CLIPTextModelWithProjection
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
            cls = CLIPTextModelWithProjection if projection else CLIPTextModel
            return safe_pretrained(cls, folder / te)

        def load_tok(tok: str = tok) -> Any:
            from transformers import CLIPTokenizer

            return CLIPTokenizer.from_pretrained(folder / tok, local_files_only=True, model_max_length=77)

        target = ("clip_l", "clip_g")[index] if family == "sdxl" else ("clip_h" if family == "sd2" else "clip_l")
        handle = manager.handle(("diffusers-te", *key, te), "clip", load_te, name=f"{folder.name}:{te}", target=target)
        tokenizer = manager.handle(("diffusers-tok", *key, tok), "tokenizer", load_tok, name=f"{folder.name}:{tok}")
        parts.append(_diffusers_clip_part(family, index, te_cfg, handle, tokenizer))
    return TextEncoder(family, parts, name=folder.name)


def _diffusers_clip_part(family: str, index: int, te_cfg: dict[str, Any], handle: Any, tokenizer: Any) -> ClipPart:
    """How the family drives encoder ``index`` (layer, padding, pooling; see :class:`ClipPart`)."""
    if family == "sdxl":
        return ClipPart(
            handle,
            tokenizer,
            default_layer=-2,
            final_norm_on_hidden=False,
            pad_token="!" if index == 1 else "end",
            pooled="projection" if index == 1 else "none",
        )
    if family == "sd2":
        # diffusers' SD2 folders drop OpenCLIP's last layer (23 of 24 stored).
        offset = 1 if te_cfg.get("num_hidden_layers") == 23 else 0
        openclip = te_cfg.get("hidden_act") == "gelu"
        return ClipPart(handle, tokenizer, default_layer=-2, layer_offset=offset, pad_token="!" if openclip else "end")
    return ClipPart(handle, tokenizer, default_layer=-1, pad_token="end")
