"""Loader nodes (ComfyUI names): checkpoints, diffusers folders, separate UNet/CLIP/VAE files.

A loader returns MODEL/CLIP/VAE *handles* at once: it reads the file's header (keys and
shapes, milliseconds) to detect the family and build configs, and registers a lazy loader
per component with the model manager. Weights are read the first time something runs the
model. Errors name the node input and the file.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from nodes.api import Combo, Node, Output
from nodes.paths import get_paths

from . import detect
from . import single_file as sf
from .detect import FileInfo, ModelFileError, UnknownModelError
from .model_manager import ModelManager, get_manager
from .types import ClipPart, DiffusionModel, MissingComponent, TextEncoder, VAEModel

# -- file helpers ---------------------------------------------------------------------------------


class LoaderInputError(ModelFileError):
    """A loader input names a file that is missing or unusable; says which input."""


def model_file(folder: str, name: str, input_name: str) -> Path:
    """The path behind a combo value, or an error naming the input and the folders searched."""
    try:
        return get_paths().model_path(folder, name)
    except FileNotFoundError as exc:
        raise LoaderInputError(f"{input_name}: {exc}. Put the file in models/{folder} or pick another") from exc
    except ValueError as exc:
        raise LoaderInputError(f"{input_name}: {exc}") from exc


def file_key(path: Path) -> tuple[str, int, int]:
    """Identity of a file's contents for caching: path, modification time, size."""
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


def file_fingerprint(folder: str, name: str) -> Any:
    """What a loader node's output depends on outside the prompt: the file's mtime and size."""
    try:
        return file_key(get_paths().model_path(folder, name))[1:]
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=64)
def _file_info(key: tuple[str, int, int]) -> FileInfo:
    path = Path(key[0])
    if path.suffix.lower() in sf.PICKLE_SUFFIXES:
        import torch

        state = sf.load_pickle(path)
        return FileInfo(path, {k: tuple(v.shape) for k, v in state.items() if torch.is_tensor(v)})
    return detect.read_safetensors_header(path)


def file_info(path: Path) -> FileInfo:
    """Header of a weights file (cached by path+mtime+size); pickles only if the user allowed them."""
    if path.suffix.lower() in sf.PICKLE_SUFFIXES and sf.pickle_policy(path) is None:
        sf.load_pickle(path)  # raises the explanatory error
    return _file_info(file_key(path))


def _with_input(input_name: str, exc: Exception) -> LoaderInputError:
    return LoaderInputError(f"{input_name}: {exc}")


# -- building MODEL / CLIP / VAE from a single file -------------------------------------------------
def _clip_part(
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
        raise _with_input(input_name, exc) from exc
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
            _clip_part(manager, key, path, c, layout.family, i, info.nbytes(c.prefix))
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


# -- diffusers folders --------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path.parent.name}/{path.name}: cannot read ({exc})") from exc


def _folder_key(folder: Path) -> tuple[str, int]:
    newest = max((p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()), default=0)
    return (str(folder.resolve()), newest)


def _safe_pretrained(cls: Any, folder: Path) -> Any:
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
    index = _read_json(folder / "model_index.json") if (folder / "model_index.json").exists() else {}
    unet_cfg = _read_json(folder / "unet" / "config.json")
    sched = folder / "scheduler" / "scheduler_config.json"
    prediction = _read_json(sched).get("prediction_type", "epsilon") if sched.exists() else "epsilon"
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
        own = _read_json(path)
        config.update({k: own[k] for k in _SCHEDULE_KEYS if own.get(k) is not None})
    return config


def load_diffusers(folder: Path, input_name: str = "model_path") -> tuple[DiffusionModel, TextEncoder, VAEModel]:
    """MODEL, CLIP and VAE handles for a diffusers pipeline folder (loaded lazily, offline)."""
    family, prediction = _check_diffusers_folder(folder, input_name)
    manager = get_manager()
    key = _folder_key(folder)

    def load_unet() -> Any:
        from diffusers import UNet2DConditionModel

        return _safe_pretrained(UNet2DConditionModel, folder / "unet")

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
        raise _with_input(input_name, exc) from exc
    return family, prediction


def _diffusers_vae(folder: Path, key: tuple[str, int]) -> VAEModel:
    def load_vae() -> Any:
        from diffusers import AutoencoderKL

        return _safe_pretrained(AutoencoderKL, folder / "vae")

    vae_cfg = _read_json(folder / "vae" / "config.json")
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
        te_cfg = _read_json(folder / te / "config.json")
        projection = family == "sdxl" and index == 1

        def load_te(te: str = te, projection: bool = projection) -> Any:
            from transformers import CLIPTextModel, CLIPTextModelWithProjection
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
            cls = CLIPTextModelWithProjection if projection else CLIPTextModel
            return _safe_pretrained(cls, folder / te)

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


# -- separate files: UNet, CLIP, VAE ----------------------------------------------------------------
_UNET_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]


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
        raise _with_input(input_name, exc) from exc
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
            raise _with_input(input_name, exc) from exc
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
            _clip_part(
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


def info_bytes(path: Path, prefix: str) -> int:
    return file_info(path).nbytes(prefix)


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
        raise _with_input(input_name, exc) from exc

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
        config = _read_json(path / "config.json")
        family = (
            "sdxl"
            if config.get("addition_embed_type") == "text_time"
            else ("sd2" if config.get("use_linear_projection") else "sd1")
        )

        def load_folder() -> Any:
            from diffusers import ControlNetModel

            return _safe_pretrained(ControlNetModel, path)

        return manager.handle(
            ("controlnet", *_folder_key(path)), "controlnet", load_folder, name=path.name, target="controlnet"
        ), family
    try:
        info = file_info(path)
        prefix = detect.controlnet_prefix(info)
        config = detect.infer_controlnet_config(info.strip(prefix), path.name)
    except ModelFileError as exc:
        raise _with_input(input_name, exc) from exc
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


# -- nodes ----------------------------------------------------------------------------------------------
def _lister(folder: str) -> Any:
    return lambda: get_paths().list_models(folder)


class CheckpointLoaderSimple(Node):
    display_name = "Load Checkpoint"
    category = "loaders"
    description = (
        "Loads a Stable Diffusion 1.x, 2.x or XL single-file checkpoint (.safetensors) from "
        "models/checkpoints; the family is detected from the file."
    )
    inputs = (Combo("ckpt_name", _lister("checkpoints"), tooltip="The checkpoint (model) to load."),)
    outputs = (Output("MODEL"), Output("CLIP"), Output("VAE"))

    @classmethod
    def fingerprint(cls, ckpt_name: str = "", **_: Any) -> Any:
        return file_fingerprint("checkpoints", ckpt_name)

    def run(self, ckpt_name: str) -> tuple[Any, ...]:
        path = model_file("checkpoints", ckpt_name, "ckpt_name")
        model, clip, vae = load_checkpoint(path)
        # Like ComfyUI, a checkpoint without a text encoder or VAE still gives its MODEL; the
        # missing output only fails (with this message) if something uses it.
        if clip is None:
            clip = MissingComponent("CLIP", f"ckpt_name: {path.name} has no text encoder; load one with CLIPLoader")
        if vae is None:
            vae = MissingComponent("VAE", f"ckpt_name: {path.name} has no VAE; load one with VAELoader")
        return model, clip, vae


class DiffusersLoader(Node):
    display_name = "Diffusers Loader"
    category = "advanced/loaders/deprecated"
    description = (
        "Loads a diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/...) from models/diffusers."
    )
    inputs = (Combo("model_path", _lister("diffusers")),)
    outputs = (Output("MODEL"), Output("CLIP"), Output("VAE"))

    @classmethod
    def fingerprint(cls, model_path: str = "", **_: Any) -> Any:
        try:
            return _folder_key(get_paths().model_path("diffusers", model_path))[1]
        except (OSError, ValueError):
            return None

    def run(self, model_path: str) -> tuple[Any, ...]:
        folder = model_file("diffusers", model_path, "model_path")
        return load_diffusers(folder)


class UNETLoader(Node):
    display_name = "Load Diffusion Model"
    category = "advanced/loaders"
    description = (
        "Loads a UNet alone (models/diffusion_models or models/unet), in the original or the diffusers "
        "layout. fp8 weight dtypes store the weights in 8 bits and compute in 16/32."
    )
    inputs = (Combo("unet_name", _lister("diffusion_models")), Combo("weight_dtype", _UNET_DTYPES))
    outputs = (Output("MODEL"),)

    @classmethod
    def fingerprint(cls, unet_name: str = "", **_: Any) -> Any:
        return file_fingerprint("diffusion_models", unet_name)

    def run(self, unet_name: str, weight_dtype: str) -> DiffusionModel:
        path = model_file("diffusion_models", unet_name, "unet_name")
        return load_unet_file(path, weight_dtype)


_CLIP_TYPES = ["stable_diffusion"]


_DEVICE = Combo(
    "device",
    ["default", "cpu"],
    optional=True,
    advanced=True,
    tooltip="cpu keeps the text encoder on the CPU, saving GPU memory for the diffusion model.",
)


class CLIPLoader(Node):
    display_name = "Load CLIP"
    category = "advanced/loaders"
    description = (
        "Loads a text encoder file from models/text_encoders (or models/clip): OpenAI CLIP-L gives an "
        "SD1.x CLIP, OpenCLIP ViT-H an SD2.x CLIP."
    )
    inputs = (Combo("clip_name", _lister("text_encoders")), Combo("type", _CLIP_TYPES), _DEVICE)
    outputs = (Output("CLIP"),)

    @classmethod
    def fingerprint(cls, clip_name: str = "", **_: Any) -> Any:
        return file_fingerprint("text_encoders", clip_name)

    def run(self, clip_name: str, type: str, device: str = "default") -> TextEncoder:
        path = model_file("text_encoders", clip_name, "clip_name")
        return load_clip_file([path], ["clip_name"], type, device)


class DualCLIPLoader(Node):
    display_name = "DualCLIPLoader"
    category = "advanced/loaders"
    description = "Loads SDXL's two text encoders (CLIP-L and OpenCLIP bigG) from models/text_encoders."
    inputs = (
        Combo("clip_name1", _lister("text_encoders")),
        Combo("clip_name2", _lister("text_encoders")),
        Combo("type", ["sdxl"]),
        _DEVICE,
    )
    outputs = (Output("CLIP"),)

    @classmethod
    def fingerprint(cls, clip_name1: str = "", clip_name2: str = "", **_: Any) -> Any:
        return (file_fingerprint("text_encoders", clip_name1), file_fingerprint("text_encoders", clip_name2))

    def run(self, clip_name1: str, clip_name2: str, type: str, device: str = "default") -> TextEncoder:
        paths = [
            model_file("text_encoders", clip_name1, "clip_name1"),
            model_file("text_encoders", clip_name2, "clip_name2"),
        ]
        return load_clip_file(paths, ["clip_name1", "clip_name2"], type, device)


class VAELoader(Node):
    display_name = "Load VAE"
    category = "loaders"
    description = "Loads a VAE file (original layout) from models/vae."
    inputs = (Combo("vae_name", _lister("vae")),)
    outputs = (Output("VAE"),)

    @classmethod
    def fingerprint(cls, vae_name: str = "", **_: Any) -> Any:
        return file_fingerprint("vae", vae_name)

    def run(self, vae_name: str) -> VAEModel:
        return load_vae_file(model_file("vae", vae_name, "vae_name"))


NODES = [CheckpointLoaderSimple, DiffusersLoader, UNETLoader, CLIPLoader, DualCLIPLoader, VAELoader]
