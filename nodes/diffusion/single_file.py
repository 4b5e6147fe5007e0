"""Original (LDM / SGM) single-file checkpoint layout <-> diffusers layout, both ways.

Stable Diffusion checkpoints as users download them keep the key names of the original
training code: ``model.diffusion_model.input_blocks.1.0.in_layers.0.weight`` for the UNet,
``first_stage_model.encoder.down.0.block.0.conv1.weight`` for the VAE,
``cond_stage_model.transformer.text_model.*`` (SD1, Hugging Face CLIP), ``cond_stage_model.model.*``
(SD2, OpenCLIP) and ``conditioner.embedders.{0,1}.*`` (SDXL). diffusers names the same tensors
differently. This module describes the correspondence as a *name function* from a diffusers
parameter name (given the model's config) to the original name; the same function serves both
directions:

* loading: build the diffusers model from a config inferred from the file's shapes, ask each of
  its parameters for its original name, read that tensor from the file;
* writing (the tiny test models, ``weft_tools.tiny_models``): rename each diffusers tensor.

Written from the layouts themselves (key names and shapes of the published checkpoints); only
the OpenCLIP fused attention (``in_proj_weight`` = q, k, v stacked) and the VAE's 1x1-conv
attention need tensor reshaping, handled by :func:`ldm_tensor` and :func:`diffusers_tensor`.

torch-free at import; functions import what they need.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer."
SD2_CLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
SDXL_CLIP_G_PREFIX = "conditioner.embedders.1.model."
CONTROLNET_PREFIX = "control_model."

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


class LayoutError(KeyError):
    """A diffusers parameter has no counterpart in the original layout (unsupported config)."""


def _layers_per_block(config: Mapping[str, Any]) -> int:
    n = config.get("layers_per_block", 2)
    if isinstance(n, (list, tuple)):
        if len(set(n)) != 1:
            raise LayoutError("per-level layers_per_block is not representable in the original layout")
        n = n[0]
    return int(n)


def _resnet_rest(rest: str) -> str:
    head, _, tail = rest.partition(".")
    if head not in _RESNET:
        raise LayoutError(rest)
    return f"{_RESNET[head]}.{tail}"


def unet_ldm_name(name: str, config: Mapping[str, Any]) -> str:
    """Original name (without ``model.diffusion_model.``) of a UNet / ControlNet parameter."""
    n = _layers_per_block(config)
    simple = {
        "conv_in.": "input_blocks.0.0.",
        "time_embedding.linear_1.": "time_embed.0.",
        "time_embedding.linear_2.": "time_embed.2.",
        "add_embedding.linear_1.": "label_emb.0.0.",
        "add_embedding.linear_2.": "label_emb.0.2.",
        "conv_norm_out.": "out.0.",
        "conv_out.": "out.2.",
        "mid_block.resnets.0.": "middle_block.0.",
        "mid_block.attentions.0.": "middle_block.1.",
        "mid_block.resnets.1.": "middle_block.2.",
        "controlnet_mid_block.": "middle_block_out.0.",
        "controlnet_cond_embedding.conv_in.": "input_hint_block.0.",
    }
    for prefix, target in simple.items():
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            if prefix.startswith("mid_block.resnets"):
                rest = _resnet_rest(rest)
            return target + rest
    if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name):
        i, j, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + i * (n + 1) + j}.0.{_resnet_rest(rest)}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", name):
        i, j, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + i * (n + 1) + j}.1.{rest}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", name):
        i, rest = int(m[1]), m[2]
        return f"input_blocks.{(i + 1) * (n + 1)}.0.op.{rest}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name):
        i, j, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{i * (n + 1) + j}.0.{_resnet_rest(rest)}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", name):
        i, j, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{i * (n + 1) + j}.1.{rest}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", name):
        i, rest = int(m[1]), m[2]
        has_attention = "CrossAttn" in config["up_block_types"][i]
        return f"output_blocks.{i * (n + 1) + n}.{2 if has_attention else 1}.conv.{rest}"
    if m := re.fullmatch(r"controlnet_down_blocks\.(\d+)\.(.+)", name):
        return f"zero_convs.{m[1]}.0.{m[2]}"
    if m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.+)", name):
        return f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"
    if m := re.fullmatch(r"controlnet_cond_embedding\.conv_out\.(.+)", name):
        blocks = 2 * (len(config.get("conditioning_embedding_out_channels", (16, 32, 96, 256))) - 1)
        return f"input_hint_block.{2 * (blocks + 1)}.{m[1]}"
    raise LayoutError(name)


def vae_ldm_name(name: str, config: Mapping[str, Any]) -> str:
    """Original name (without ``first_stage_model.``) of an AutoencoderKL parameter."""
    levels = len(config["block_out_channels"])
    if name.startswith(("quant_conv.", "post_quant_conv.")):
        return name
    part, _, rest = name.partition(".")
    if part not in ("encoder", "decoder"):
        raise LayoutError(name)
    for a, b in (("conv_in.", "conv_in."), ("conv_out.", "conv_out."), ("conv_norm_out.", "norm_out.")):
        if rest.startswith(a):
            return f"{part}.{b}{rest[len(a) :]}"

    def resnet(r: str) -> str:
        return r.replace("conv_shortcut.", "nin_shortcut.")

    if m := re.fullmatch(r"mid_block\.resnets\.(\d)\.(.+)", rest):
        return f"{part}.mid.block_{int(m[1]) + 1}.{resnet(m[2])}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", rest):
        attn = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}
        for a, b in attn.items():
            if m[1].startswith(a):
                return f"{part}.mid.attn_1.{b}{m[1][len(a) :]}"
        raise LayoutError(name)
    if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", rest):
        return f"{part}.down.{m[1]}.block.{m[2]}.{resnet(m[3])}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", rest):
        return f"{part}.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", rest):
        return f"{part}.up.{levels - 1 - int(m[1])}.block.{m[2]}.{resnet(m[3])}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", rest):
        return f"{part}.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}"
    raise LayoutError(name)


def _hf_clip_rest(name: str) -> str:
    """A Hugging Face CLIP parameter name without the optional ``text_model.`` prefix."""
    return name[len("text_model.") :] if name.startswith("text_model.") else name


def clip_hf_ldm_name(name: str) -> str:
    """Original name (after ``...transformer.``) of a CLIP-L parameter: HF layout with ``text_model.``."""
    if name == "text_projection.weight":
        return name
    return "text_model." + _hf_clip_rest(name)


def clip_openclip_ldm_names(name: str) -> tuple[str, str | None]:
    """Original OpenCLIP name of a HF CLIP parameter, and which third of a fused qkv it is.

    Returns ``(ldm_name, part)`` where ``part`` is ``"q"``, ``"k"`` or ``"v"`` when the
    parameter is a slice of OpenCLIP's fused ``in_proj_weight`` / ``in_proj_bias``.
    """
    rest = _hf_clip_rest(name)
    if name == "text_projection.weight":
        return "text_projection", None
    fixed = {
        "embeddings.token_embedding.weight": "token_embedding.weight",
        "embeddings.position_embedding.weight": "positional_embedding",
        "final_layer_norm.weight": "ln_final.weight",
        "final_layer_norm.bias": "ln_final.bias",
    }
    if rest in fixed:
        return fixed[rest], None
    m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", rest)
    if not m:
        raise LayoutError(name)
    block, inner = f"transformer.resblocks.{m[1]}", m[2]
    if q := re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", inner):
        return f"{block}.attn.in_proj_{q[2]}", q[1]
    renames = {
        "self_attn.out_proj.": "attn.out_proj.",
        "layer_norm1.": "ln_1.",
        "layer_norm2.": "ln_2.",
        "mlp.fc1.": "mlp.c_fc.",
        "mlp.fc2.": "mlp.c_proj.",
    }
    for a, b in renames.items():
        if inner.startswith(a):
            return f"{block}.{b}{inner[len(a) :]}", None
    raise LayoutError(name)


# -- tensors -------------------------------------------------------------------------------
def ldm_tensor(kind: str, name: str, tensor: Any) -> Any:
    """Reshape a diffusers tensor for the original layout (VAE attention is 1x1 conv there)."""
    if kind == "vae" and ".mid.attn_1." in name and tensor.ndim == 2:
        return tensor.reshape(*tensor.shape, 1, 1)
    if kind == "openclip" and name.endswith("text_projection"):
        return tensor.t().contiguous()
    return tensor


def diffusers_tensor(kind: str, name: str, tensor: Any, target_shape: tuple[int, ...]) -> Any:
    """Reshape an original-layout tensor to the diffusers parameter's shape."""
    if kind == "openclip" and name.endswith("text_projection"):
        tensor = tensor.t()
    if tuple(tensor.shape) != tuple(target_shape) and tensor.numel() == _prod(target_shape):
        tensor = tensor.reshape(target_shape)
    return tensor


def _prod(shape: Iterable[int]) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


# -- whole state dicts, diffusers -> original (used by weft_tools.tiny_models) ---------------
def unet_to_ldm(state: Mapping[str, Any], config: Mapping[str, Any], prefix: str = UNET_PREFIX) -> dict[str, Any]:
    return {prefix + unet_ldm_name(k, config): v for k, v in state.items()}


def vae_to_ldm(state: Mapping[str, Any], config: Mapping[str, Any], prefix: str = VAE_PREFIX) -> dict[str, Any]:
    out = {}
    for k, v in state.items():
        name = vae_ldm_name(k, config)
        out[prefix + name] = ldm_tensor("vae", name, v)
    return out


def clip_hf_to_ldm(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {prefix + clip_hf_ldm_name(k): v for k, v in state.items() if not k.endswith("position_ids")}


def clip_openclip_to_ldm(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """HF CLIP state -> OpenCLIP layout, fusing q/k/v into ``in_proj_*``."""
    import torch

    out: dict[str, Any] = {}
    fused: dict[str, dict[str, Any]] = {}
    for k, v in state.items():
        if k.endswith("position_ids"):
            continue
        name, part = clip_openclip_ldm_names(k)
        if part is None:
            out[prefix + name] = ldm_tensor("openclip", name, v)
        else:
            fused.setdefault(name, {})[part] = v
    for name, parts in fused.items():
        out[prefix + name] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


# -- reading files ------------------------------------------------------------------------------
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
TRUST_FILE_NAME = "trusted_pickles.txt"


def pickle_policy(path: Any) -> str | None:
    """How the user allowed a pickle file to load: ``"weights_only"``, ``"unsafe"`` or ``None``.

    Pickles can run arbitrary code when loaded, so Weft refuses them unless the user lists the
    file in ``<models root>/trusted_pickles.txt``: one path per line, relative to the models
    root (``checkpoints/old-model.ckpt``) or absolute; ``#`` starts a comment. A listed file is
    loaded with ``torch.load(weights_only=True)``, which only rebuilds tensors and plain
    containers; add `` unsafe`` after the path to allow a full unpickle (old checkpoints that
    saved training callbacks need it). Converting the file to .safetensors is the better fix.
    """
    from pathlib import Path

    from nodes.paths import get_paths

    path = Path(path).resolve()
    paths = get_paths()
    trust = paths.models / TRUST_FILE_NAME
    if not trust.is_file():
        return None
    for line in trust.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        entry, _, mode = line.partition(" ")
        candidate = Path(entry)
        if not candidate.is_absolute():
            candidate = paths.models / candidate
        try:
            if candidate.resolve() == path:
                return "unsafe" if mode.strip().lower() == "unsafe" else "weights_only"
        except OSError:
            continue
    return None


class TensorSource:
    """Named tensors of a weights file, read on demand (safetensors) or all at once (pickles)."""

    def __init__(self, path: Any) -> None:
        from pathlib import Path

        self.path = Path(path)
        self._state: dict[str, Any] | None = None
        self._handle: Any = None

    def __enter__(self) -> TensorSource:
        if self.path.suffix.lower() in PICKLE_SUFFIXES:
            self._state = load_pickle(self.path)
        else:
            from safetensors import safe_open

            self._handle = safe_open(str(self.path), framework="pt", device="cpu")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._handle = None
        self._state = None

    def keys(self) -> set[str]:
        if self._state is not None:
            return set(self._state)
        return set(self._handle.keys())

    def get(self, key: str) -> Any:
        if self._state is not None:
            return self._state[key]
        return self._handle.get_tensor(key)


def load_pickle(path: Any) -> dict[str, Any]:
    """A pickle's state dict, if the user allowed the file (see :func:`pickle_policy`)."""
    import torch

    from .detect import UnsafeFileError

    policy = pickle_policy(path)
    if policy is None:
        raise UnsafeFileError(
            f"{path.name}: .ckpt/.pt/.bin files are pickles that can run code when loaded, so Weft refuses them. "
            f"Convert it to .safetensors, or if you trust it add the line '{_relative(path)}' to "
            f"models/{TRUST_FILE_NAME}"
        )
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=policy == "weights_only", mmap=False)
    except Exception as exc:  # the unpickler's own exceptions vary
        hint = (
            (
                f" It needs a full unpickle: if you trust it, write '{_relative(path)} unsafe' in "
                f"models/{TRUST_FILE_NAME}."
            )
            if policy == "weights_only"
            else ""
        )
        raise UnsafeFileError(f"{path.name}: could not load the pickle ({exc}).{hint}") from exc
    if isinstance(data, dict) and isinstance(data.get("string_to_param"), dict):  # A1111 embeddings
        data = {"emb_params": next(iter(data["string_to_param"].values()))}
    # BasicSR's models (Real-ESRGAN upscalers) keep their weights under "params_ema" or "params"
    for key in ("params_ema", "params", "state_dict", "module", "model"):
        if isinstance(data, dict) and key in data and isinstance(data[key], dict) and len(data) < 10:
            data = data[key]
    if not isinstance(data, dict):
        raise UnsafeFileError(f"{path.name}: the pickle holds a {type(data).__name__}, not a state dict")
    return {k: v for k, v in data.items() if torch.is_tensor(v)}


def _relative(path: Any) -> str:
    from nodes.paths import get_paths

    models = get_paths().models
    try:
        return path.resolve().relative_to(models).as_posix()
    except ValueError:
        return str(path)


def load_module(
    path: Any,
    model: Any,
    source_name: Any,
    *,
    kind: str,
    fused: bool = False,
    what: str = "model",
) -> Any:
    """Fill ``model`` (built on the meta device) with tensors from ``path``.

    ``source_name(param_name)`` gives the file's key for each parameter (for OpenCLIP, a
    ``(key, "q"|"k"|"v"|None)`` pair when ``fused``). A missing key is an error naming the file.
    """
    import torch

    from .detect import ModelFileError

    expected = model.state_dict()
    state: dict[str, Any] = {}
    with TensorSource(path) as source:
        keys = source.keys()
        fused_cache: dict[str, Any] = {}
        for name, param in expected.items():
            if name.endswith("position_ids"):
                state[name] = torch.arange(param.shape[-1]).expand(param.shape).clone()
                continue
            if fused:
                key, part = source_name(name)
            else:
                key, part = source_name(name), None
            if key not in keys:
                raise ModelFileError(
                    f"{path.name}: {what} weight {key!r} is missing; the file is incomplete or not "
                    "the model type its other keys suggest"
                )
            if part is None:
                tensor = source.get(key)
            else:
                if key not in fused_cache:
                    fused_cache[key] = source.get(key)
                whole = fused_cache[key]
                third = whole.shape[0] // 3
                tensor = whole["qkv".index(part) * third : ("qkv".index(part) + 1) * third]
            tensor = diffusers_tensor(kind, key, tensor, tuple(param.shape))
            if tuple(tensor.shape) != tuple(param.shape):
                raise ModelFileError(
                    f"{path.name}: {what} weight {key!r} has shape {tuple(tensor.shape)}, expected {tuple(param.shape)}"
                )
            state[name] = tensor.contiguous()
    model.load_state_dict(state, strict=True, assign=True)
    return model


def empty_model(factory: Any) -> Any:
    """Build a model without allocating weights (they come from the file)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        return factory()


def load_unet(path: Any, prefix: str, config: dict[str, Any]) -> Any:
    from diffusers import UNet2DConditionModel

    model = empty_model(lambda: UNet2DConditionModel.from_config(config))
    return load_module(path, model, lambda n: prefix + unet_ldm_name(n, config), kind="unet", what="UNet")


def load_unet_diffusers_layout(path: Any, prefix: str, config: dict[str, Any]) -> Any:
    from diffusers import UNet2DConditionModel

    model = empty_model(lambda: UNet2DConditionModel.from_config(config))
    return load_module(path, model, lambda n: prefix + n, kind="unet", what="UNet")


def load_controlnet(path: Any, prefix: str, config: dict[str, Any]) -> Any:
    from diffusers import ControlNetModel

    model = empty_model(lambda: ControlNetModel.from_config(config))
    return load_module(path, model, lambda n: prefix + unet_ldm_name(n, config), kind="unet", what="ControlNet")


def load_vae(path: Any, prefix: str, config: dict[str, Any]) -> Any:
    from diffusers import AutoencoderKL

    model = empty_model(lambda: AutoencoderKL.from_config(config))
    return load_module(path, model, lambda n: prefix + vae_ldm_name(n, config), kind="vae", what="VAE")


def load_clip(path: Any, prefix: str, style: str, config: dict[str, Any], with_projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(**config)
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    model = empty_model(lambda: cls(cfg))
    if style == "openclip":

        def name(n: str) -> tuple[str, str | None]:
            key, part = clip_openclip_ldm_names(n)
            return prefix + key, part

        return load_module(path, model, name, kind="openclip", fused=True, what="text encoder")
    return load_module(path, model, lambda n: prefix + clip_hf_ldm_name(n), kind="clip", what="text encoder")
