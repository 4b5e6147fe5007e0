"""Loader nodes (ComfyUI names): checkpoints, diffusers folders, separate UNet/CLIP/VAE files.

A loader returns MODEL/CLIP/VAE *handles* at once: it reads the file's header (keys and
shapes, milliseconds) to detect the family and build configs, and registers a lazy loader
per component with the model manager. Weights are read the first time something runs the
model. Errors name the node input and the file.

The loading itself lives beside this module, one per kind of source: :mod:`.model_files`
(paths, file identity, headers), :mod:`.checkpoint_loading` (single-file checkpoints),
:mod:`.diffusers_loading` (pipeline folders) and :mod:`.component_loading` (UNet, CLIP,
VAE and ControlNet files). Their functions stay importable from here, where callers and
plugins have always found them.
"""

from __future__ import annotations

from typing import Any

from nodes.api import Combo, ModelFile, Node, Output
from nodes.paths import get_paths

from .checkpoint_loading import load_checkpoint, tokenizer_handle
from .component_loading import load_clip_file, load_controlnet_file, load_unet_file, load_vae_file
from .diffusers_loading import diffusers_family, folder_key, folder_schedule, load_diffusers
from .model_files import LoaderInputError, file_fingerprint, file_info, file_key, info_bytes, model_file
from .types import DiffusionModel, MissingComponent, TextEncoder, VAEModel

_UNET_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]


class CheckpointLoaderSimple(Node):
    display_name = "Load Checkpoint"
    category = "loaders"
    description = (
        "Loads a Stable Diffusion 1.x, 2.x or XL single-file checkpoint (.safetensors) from "
        "models/checkpoints; the family is detected from the file."
    )
    inputs = (ModelFile("ckpt_name", "checkpoints", tooltip="The checkpoint (model) to load."),)
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
    inputs = (ModelFile("model_path", "diffusers"),)
    outputs = (Output("MODEL"), Output("CLIP"), Output("VAE"))

    @classmethod
    def fingerprint(cls, model_path: str = "", **_: Any) -> Any:
        try:
            return folder_key(get_paths().model_path("diffusers", model_path))[1]
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
    inputs = (ModelFile("unet_name", "diffusion_models"), Combo("weight_dtype", _UNET_DTYPES))
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
    inputs = (ModelFile("clip_name", "text_encoders"), Combo("type", _CLIP_TYPES), _DEVICE)
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
        ModelFile("clip_name1", "text_encoders"),
        ModelFile("clip_name2", "text_encoders"),
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
    inputs = (ModelFile("vae_name", "vae"),)
    outputs = (Output("VAE"),)

    @classmethod
    def fingerprint(cls, vae_name: str = "", **_: Any) -> Any:
        return file_fingerprint("vae", vae_name)

    def run(self, vae_name: str) -> VAEModel:
        return load_vae_file(model_file("vae", vae_name, "vae_name"))


NODES = [CheckpointLoaderSimple, DiffusersLoader, UNETLoader, CLIPLoader, DualCLIPLoader, VAELoader]


__all__ = [
    "NODES",
    "CLIPLoader",
    "CheckpointLoaderSimple",
    "DiffusersLoader",
    "DualCLIPLoader",
    "LoaderInputError",
    "UNETLoader",
    "VAELoader",
    "diffusers_family",
    "file_fingerprint",
    "file_info",
    "file_key",
    "folder_schedule",
    "info_bytes",
    "load_checkpoint",
    "load_clip_file",
    "load_controlnet_file",
    "load_diffusers",
    "load_unet_file",
    "load_vae_file",
    "model_file",
    "tokenizer_handle",
]
