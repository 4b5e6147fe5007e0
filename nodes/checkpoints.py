"""Checkpoint files: the deprecated CheckpointLoader (with a model config) and CheckpointSave.

CheckpointLoader is CheckpointLoaderSimple plus ``config_name``. ComfyUI itself now builds the
model from the weights and reads only two settings from the config: ``parameterization: "v"``
(the model predicts v) and the text encoder's ``layer_idx`` (CLIP skip). Weft does the same:
the architecture comes from the file (the config's layout description is not needed), and
those two settings are applied, from the YAML file in ``models/configs`` when there is one or,
for the config names ComfyUI ships, from what those files say.

CheckpointSave writes MODEL + CLIP + VAE as one original-layout (LDM/SGM) ``.safetensors``
file, the layout every loader reads: the diffusers modules are renamed with
:mod:`nodes.diffusion.single_file`'s key mapping, with the clones' weight patches (LoRAs,
merges) applied, in the dtype the weights have in memory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .api import Combo, Hidden, Input, ModelFile, Node, Output, Result, String
from .paths import get_paths

if TYPE_CHECKING:
    import torch

log = logging.getLogger("weft.checkpoints")

#: What the configs shipped with ComfyUI (models/configs) set, for workflows naming one that
#: is not in the user's models/configs: (parameterization, CLIP layer_idx).
STOCK_CONFIGS: dict[str, tuple[str | None, int | None]] = {
    "anything_v3.yaml": (None, -2),
    "v1-inference.yaml": (None, None),
    "v1-inference_clip_skip_2.yaml": (None, -2),
    "v1-inference_clip_skip_2_fp16.yaml": (None, -2),
    "v1-inference_fp16.yaml": (None, None),
    "v1-inpainting-inference.yaml": (None, None),
    "v2-inference-v.yaml": ("v", None),
    "v2-inference-v_fp32.yaml": ("v", None),
    "v2-inference.yaml": (None, None),
    "v2-inference_fp32.yaml": (None, None),
    "v2-inpainting-inference.yaml": (None, None),
}


def config_names() -> list[str]:
    """The user's configs, then ComfyUI's stock names not shadowed by one."""
    own = get_paths().list_models("configs")
    return own + [name for name in STOCK_CONFIGS if name not in own]


def config_settings(config_name: str) -> tuple[str | None, int | None]:
    """``(parameterization, layer_idx)`` of a model config, the two settings ComfyUI applies."""
    try:
        path: Path | None = get_paths().model_path("configs", config_name)
    except (FileNotFoundError, ValueError):
        path = None
    if path is None:
        if config_name in STOCK_CONFIGS:
            return STOCK_CONFIGS[config_name]
        raise ValueError(f"input 'config_name': {config_name!r} is not in models/configs")
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        params = config["model"]["params"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ValueError(f"input 'config_name': {config_name} is not a model config ({exc})") from exc
    layer = (params.get("cond_stage_config") or {}).get("params", {}).get("layer_idx")
    return params.get("parameterization"), (int(layer) if layer is not None else None)


class CheckpointLoader(Node):
    display_name = "Load Checkpoint With Config (DEPRECATED)"
    category = "advanced/loaders"
    deprecated = True
    description = (
        "Loads a checkpoint like Load Checkpoint; from the config only v-prediction "
        "(parameterization: v) and the CLIP layer (layer_idx) are applied, as in ComfyUI."
    )
    inputs = (Combo("config_name", config_names, model_folder="configs"), ModelFile("ckpt_name", "checkpoints"))
    outputs = (Output("MODEL"), Output("CLIP"), Output("VAE"))

    @classmethod
    def fingerprint(cls, config_name: str = "", ckpt_name: str = "", **_: Any) -> Any:
        from .diffusion.loaders import file_fingerprint

        return file_fingerprint("checkpoints", ckpt_name), file_fingerprint("configs", config_name)

    def run(self, config_name: str, ckpt_name: str) -> tuple:
        from .diffusion.loaders import CheckpointLoaderSimple

        parameterization, layer_idx = config_settings(config_name)
        model, clip, vae = CheckpointLoaderSimple().run(ckpt_name)
        if parameterization == "v":
            model = model.clone(prediction_type="v_prediction")
        if layer_idx is not None and hasattr(clip, "clone"):
            clip = clip.clone(clip_skip=int(layer_idx))
        return model, clip, vae


# -- saving ----------------------------------------------------------------------------------------


def _state(handle: Any, patches: tuple[Any, ...]) -> dict[str, torch.Tensor]:
    """The module's weights with ``patches`` applied, detached on the CPU."""
    module = handle.load()
    handle.apply_patches(patches)
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def checkpoint_state(model: Any, clip: Any, vae: Any) -> dict[str, torch.Tensor]:
    """MODEL, CLIP and VAE as one original-layout state dict (what CheckpointLoaderSimple reads)."""
    from .diffusion import single_file as sf

    unet = model.unet.load()
    state = sf.unet_to_ldm(_state(model.unet, tuple(model.patches)), unet.config)
    if vae is not None and hasattr(vae, "handle"):
        module = vae.handle.load()
        state.update(sf.vae_to_ldm(_state(vae.handle, ()), module.config))
    if clip is not None and hasattr(clip, "parts"):
        family = clip.family
        for index, part in enumerate(clip.parts):
            patches = tuple(p for p in clip.patches if getattr(p, "applies_to", lambda t: True)(part.handle.target))
            te = _state(part.handle, patches)
            if family == "sd1":
                state.update(sf.clip_hf_to_ldm(te, sf.SD1_CLIP_PREFIX))
            elif family == "sd2":
                state.update(sf.clip_openclip_to_ldm(te, sf.SD2_CLIP_PREFIX))
            elif index == 0:
                state.update(sf.clip_hf_to_ldm(te, sf.SDXL_CLIP_L_PREFIX))
            else:
                state.update(sf.clip_openclip_to_ldm(te, sf.SDXL_CLIP_G_PREFIX))
    return {k: v.contiguous() for k, v in state.items()}


def checkpoint_metadata(
    model: Any, title: str, prompt: Any, extra_pnginfo: Any
) -> tuple[dict[str, str], dict[str, Any]]:
    """(safetensors metadata, extra tensors) as ComfyUI writes them: the model spec for SDXL,
    the prediction type (``v_pred``/``ztsnr`` marker keys for v-prediction), prompt and workflow."""
    import torch

    metadata: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if model.family == "sdxl":
        metadata.update(
            {
                "modelspec.architecture": "stable-diffusion-xl-v1-base",
                "modelspec.sai_model_spec": "1.0.0",
                "modelspec.implementation": "sgm",
                "modelspec.title": title,
            }
        )
    v_pred = model.prediction_type == "v_prediction"
    metadata["modelspec.predict_key"] = "v" if v_pred else "epsilon"
    metadata["modelspec.prediction_type"] = "v" if v_pred else "epsilon"  # the key Weft's loader reads
    if v_pred:
        extra["v_pred"] = torch.tensor([])
        if model.scheduler_config.get("rescale_betas_zero_snr"):
            extra["ztsnr"] = torch.tensor([])
    metadata["prompt"] = json.dumps(prompt) if prompt is not None else ""
    if isinstance(extra_pnginfo, dict):
        for key, value in extra_pnginfo.items():
            metadata[str(key)] = json.dumps(value)
    return metadata, extra


class CheckpointSave(Node):
    display_name = "Save Checkpoint"
    category = "advanced/model_merging"
    description = (
        "Saves MODEL, CLIP and VAE as one single-file checkpoint (original key layout, .safetensors) in "
        "the output folder, with LoRAs and merges baked in."
    )
    output_node = True
    inputs = (
        Input("model", "MODEL"),
        Input("clip", "CLIP"),
        Input("vae", "VAE"),
        String("filename_prefix", "checkpoints/ComfyUI"),
        Hidden("prompt", "PROMPT"),
        Hidden("extra_pnginfo", "EXTRA_PNGINFO"),
    )
    outputs = ()

    def run(
        self, model: Any, clip: Any, vae: Any, filename_prefix: str, prompt: Any = None, extra_pnginfo: Any = None
    ) -> Result:
        import torch
        from safetensors.torch import save_file

        from .diffusion.image import save_path

        if not hasattr(model, "unet"):
            raise ValueError("input 'model' is not a MODEL")
        folder, subfolder, base, counter = save_path("output", filename_prefix, torch.zeros((0, 0, 3)))
        filename = f"{base}_{counter:05}_.safetensors"
        state = checkpoint_state(model, clip if clip else None, vae if vae else None)
        metadata, extra = checkpoint_metadata(model, f"{base} {counter}", prompt, extra_pnginfo)
        state.update(extra)
        save_file(state, str(folder / filename), metadata=metadata)
        log.info("saved checkpoint %s (%d tensors)", folder / filename, len(state))
        return Result(ui={"checkpoints": [{"filename": filename, "subfolder": subfolder, "type": "output"}]})


NODES = [CheckpointLoader, CheckpointSave]
