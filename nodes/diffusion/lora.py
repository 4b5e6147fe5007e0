"""LoRA: low-rank weight deltas, applied to the shared weights in place (with backups).

A LoRA file holds, per adapted layer, a ``down`` ([rank, in, *kernel]) and an ``up``
([out, rank, 1...]) matrix and optionally ``alpha``; the layer's weight becomes
``W + strength * alpha / rank * up @ down``. Key layouts read here:

* kohya / sd-scripts: ``lora_unet_<module path with _>.lora_down.weight`` / ``.lora_up.weight`` /
  ``.alpha``, text encoders as ``lora_te_`` (SD1/SD2) or ``lora_te1_`` / ``lora_te2_`` (SDXL);
  the UNet path may follow diffusers' names (SD1 trainers) or the original ones (SDXL trainers);
* diffusers / PEFT: ``unet.<module>.lora_A.weight`` / ``lora_B.weight`` (and ``text_encoder.``,
  ``text_encoder_2.``), the older ``<module>.lora.down.weight`` form, and ComfyUI's
  ``diffusion_model.<original path>.lora_down.weight``.

A :class:`LoraPatch` is a value inside MODEL/CLIP ``patches``; the model manager calls its
:meth:`LoraPatch.deltas` when the patched clone runs (see ``ModuleHandle.apply_patches``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, ModelFile, Node, Output

from . import single_file as sf
from .detect import ModelFileError
from .loaders import LoaderInputError, file_fingerprint, file_key, model_file

if TYPE_CHECKING:
    from collections.abc import Iterator

    import torch

    from .types import DiffusionModel, TextEncoder

log = logging.getLogger("weft.lora")

_SUFFIXES = (
    (".lora_down.weight", "down"),
    (".lora_up.weight", "up"),
    (".lora_mid.weight", "mid"),
    (".alpha", "alpha"),
    (".lora_A.weight", "down"),
    (".lora_B.weight", "up"),
    (".lora.down.weight", "down"),
    (".lora.up.weight", "up"),
    (".dora_scale", "dora"),
    (".lora_linear_layer.down.weight", "down"),
    (".lora_linear_layer.up.weight", "up"),
    (".down.weight", "down"),
    (".up.weight", "up"),  # diffusers' old attention-processor files
)

#: Key prefixes of each text encoder target, by family of the CLIP.
_TE_PREFIXES = {
    "clip_l": ("lora_te_", "lora_te1_", "text_encoder.", "te_"),
    "clip_h": ("lora_te_", "text_encoder.", "te_"),
    "clip_g": ("lora_te2_", "text_encoder_2.", "te2_"),
}


@dataclass
class LoraFile:
    """The parsed groups of a LoRA file: base key -> {"down", "up", "alpha"?, ...}."""

    path: Path
    groups: dict[str, dict[str, Any]]
    unrecognised: list[str] = field(default_factory=list)
    #: the file as read (path, modification time, size): what caches of patched results name it by
    key: tuple = ()


_cache: OrderedDict[tuple, LoraFile] = OrderedDict()


def read_lora(path: Path) -> LoraFile:
    """Parse a LoRA file (cached by path+mtime; a handful kept)."""
    key = file_key(path)
    cached = _cache.get(key)
    if cached is not None:
        _cache.move_to_end(key)
        return cached
    groups: dict[str, dict[str, Any]] = {}
    unrecognised: list[str] = []
    with sf.TensorSource(path) as source:
        for name in sorted(source.keys()):
            for suffix, part in _SUFFIXES:
                if name.endswith(suffix):
                    groups.setdefault(name[: -len(suffix)], {})[part] = source.get(name)
                    break
            else:
                unrecognised.append(name)
    groups = {k: v for k, v in groups.items() if "down" in v and "up" in v}
    if not groups:
        raise ModelFileError(
            f"{path.name}: no LoRA weights found (expected lora_down/lora_up or lora_A/lora_B keys; "
            "LoHa/LoKr are not supported)"
        )
    parsed = LoraFile(path, groups, unrecognised, key)
    _cache[key] = parsed
    while len(_cache) > 8:
        _cache.popitem(last=False)
    return parsed


def _unet_candidates(module_path: str, config: Any) -> list[str]:
    flat = module_path.replace(".", "_")
    names = [f"lora_unet_{flat}", f"unet.{module_path}", module_path]
    if module_path.endswith(
        (
            "attn1.to_q",
            "attn1.to_k",
            "attn1.to_v",
            "attn1.to_out.0",
            "attn2.to_q",
            "attn2.to_k",
            "attn2.to_v",
            "attn2.to_out.0",
        )
    ):
        head, _, last = module_path.rpartition(".attn")
        attn, _, proj = last.partition(".")
        proj = "to_out" if proj == "to_out.0" else proj
        names.append(f"unet.{head}.attn{attn}.processor.{proj}_lora")
    if config is not None:
        try:
            ldm = sf.unet_ldm_name(module_path + ".weight", config)[: -len(".weight")]
        except (sf.LayoutError, KeyError):
            ldm = None
        if ldm:
            names += [f"lora_unet_{ldm.replace('.', '_')}", f"diffusion_model.{ldm}", f"model.diffusion_model.{ldm}"]
    return names


def _clip_candidates(module_path: str, target: str) -> list[str]:
    full = module_path if module_path.startswith(("text_model.", "text_projection")) else "text_model." + module_path
    names = []
    for prefix in _TE_PREFIXES.get(target, ("lora_te_",)):
        if prefix.endswith("_"):
            names.append(prefix + full.replace(".", "_"))
        else:
            names.append(prefix + full)
    return names


def match_keys(lora: LoraFile, module: Any, target: str) -> dict[str, str]:
    """LoRA group key -> parameter name of ``module`` for each group that adapts it."""
    config = getattr(module, "config", None) if target == "unet" else None
    wanted: dict[str, str] = {}
    for name, param in module.named_parameters():
        if not name.endswith(".weight") or param.ndim < 2:
            continue
        path = name[: -len(".weight")]
        candidates = _unet_candidates(path, config) if target == "unet" else _clip_candidates(path, target)
        for candidate in candidates:
            group = lora.groups.get(candidate)
            if group is not None and _fits(group, param.shape):
                wanted[candidate] = name
                break
    return wanted


def _fits(group: dict[str, Any], shape: Any) -> bool:
    """Whether ``up @ down`` has the parameter's size (a same-named layer of another model may not)."""
    up, down = group["up"], group["down"]
    numel = up.shape[0] * down[0].numel()
    total = 1
    for d in shape:
        total *= d
    return numel == total and up.shape[0] == shape[0]


@dataclass(eq=False)
class LoraPatch:
    """One LoRA at one strength, for the targets it matched (``"unet"``, ``"clip_l"``...)."""

    lora: LoraFile
    strength: float
    targets: frozenset[str]

    def applies_to(self, target: str) -> bool:
        return target in self.targets

    def cache_key(self) -> tuple | None:
        """What this patch changes, by content: the text-encoding cache (:mod:`.text_cache`) keys
        on it, so the same LoRA at the same strength loaded again matches. ``None`` (identity)
        for a LoRA not read from a file."""
        if not self.lora.key:
            return None
        return ("lora", self.lora.key, self.strength, tuple(sorted(self.targets)))

    def deltas(self, module: Any, target: str) -> Iterator[tuple[str, torch.Tensor]]:
        """``(parameter name, strength * alpha/rank * up @ down)`` for each adapted weight."""
        import torch

        if target not in self.targets:
            return
        params = dict(module.named_parameters())
        for key, name in match_keys(self.lora, module, target).items():
            group = self.lora.groups[key]
            down = group["down"].float()
            up = group["up"].float()
            rank = down.shape[0]
            alpha = group.get("alpha")
            scale = float(alpha) / rank if alpha is not None else 1.0
            delta = up.flatten(1) @ down.flatten(1)
            shape = params[name].shape
            if delta.numel() != params[name].numel():
                raise ModelFileError(
                    f"{self.lora.path.name}: LoRA weights for {key} have shape {tuple(delta.shape)}, "
                    f"the model's {name} is {tuple(shape)}; is the LoRA for another model family?"
                )
            yield name, (delta.reshape(shape) * (scale * self.strength)).to(torch.float32)


def apply_lora(
    model: DiffusionModel | None,
    clip: TextEncoder | None,
    lora_name: str,
    strength_model: float,
    strength_clip: float,
) -> tuple[DiffusionModel | None, TextEncoder | None]:
    """LoraLoader's work: clones of ``model``/``clip`` with the LoRA in their patches."""
    path = model_file("loras", lora_name, "lora_name")
    try:
        lora = read_lora(path)
    except ModelFileError as exc:
        raise LoaderInputError(f"lora_name: {exc}") from exc
    modules: dict[str, Any] = {}
    if model is not None:
        modules["unet"] = model.unet.load()
    if clip is not None:
        for part in clip.parts:
            modules[part.handle.target] = part.handle.load()
    matches = {target: match_keys(lora, module, target) for target, module in modules.items()}
    used = {key for found in matches.values() for key in found}
    sides = {"MODEL": ("unet",), "CLIP": tuple(t for t in modules if t != "unet")}
    for side, targets in sides.items():
        if not targets:
            continue
        own = [k for k in lora.groups if _side(k) == ("unet" if side == "MODEL" else "te")]
        hits = sum(1 for k in own if k in used)
        if own and hits * 2 < len(own):
            sample = ", ".join([k for k in own if k not in used][:3])
            raise LoaderInputError(
                f"lora_name: {len(own) - hits} of the {len(own)} {side} layers in {path.name} match nothing in this "
                f"{side} (e.g. {sample}); is the LoRA for another model family?"
            )
    if not used:
        raise LoaderInputError(
            f"lora_name: none of the {len(lora.groups)} LoRA layers in {path.name} match this "
            f"{'MODEL' if clip is None else 'MODEL or CLIP'}; is it for another model family?"
        )
    unused = [k for k in lora.groups if k not in used and (clip is not None or _side(k) != "te")]
    if unused:
        log.warning("%s: %d LoRA layers matched nothing (e.g. %s)", path.name, len(unused), unused[:3])
    targets = frozenset(t for t, found in matches.items() if found)
    patch = LoraPatch(lora, 1.0, targets)
    new_model, new_clip = model, clip
    if model is not None and strength_model != 0 and "unet" in patch.targets:
        new_model = model.with_patch(LoraPatch(lora, strength_model, frozenset({"unet"})))
    if clip is not None and strength_clip != 0:
        clip_targets = frozenset(t for t in patch.targets if t != "unet")
        if clip_targets:
            new_clip = clip.with_patch(LoraPatch(lora, strength_clip, clip_targets))
    return new_model, new_clip


def _side(key: str) -> str:
    """Which model a LoRA layer is for, from its key: "unet", "te" or "" (unknown)."""
    if key.startswith(("lora_unet_", "unet.", "diffusion_model.", "model.diffusion_model.")):
        return "unet"
    if key.startswith(("lora_te", "text_encoder", "te_", "te1_", "te2_")):
        return "te"
    return ""


class LoraLoader(Node):
    display_name = "Load LoRA"
    category = "loaders"
    description = (
        "Applies a LoRA to the diffusion model and the text encoder. Strengths scale the change; "
        "0 leaves that side untouched. The base weights are shared, not copied."
    )
    inputs = (
        Input("model", "MODEL", tooltip="The diffusion model the LoRA will be applied to."),
        Input("clip", "CLIP", tooltip="The CLIP model the LoRA will be applied to."),
        ModelFile("lora_name", "loras", tooltip="The name of the LoRA."),
        Float("strength_model", 1.0, min=-100.0, max=100.0, step=0.01),
        Float("strength_clip", 1.0, min=-100.0, max=100.0, step=0.01),
    )
    outputs = (Output("MODEL"), Output("CLIP"))

    @classmethod
    def fingerprint(cls, lora_name: str = "", **_: Any) -> Any:
        return file_fingerprint("loras", lora_name)

    def run(
        self, model: DiffusionModel, clip: TextEncoder, lora_name: str, strength_model: float, strength_clip: float
    ) -> tuple[Any, Any]:
        if strength_model == 0 and strength_clip == 0:
            return model, clip
        return apply_lora(model, clip, lora_name, strength_model, strength_clip)


class LoraLoaderModelOnly(Node):
    display_name = "LoraLoaderModelOnly"
    category = "loaders"
    description = "Applies a LoRA to the diffusion model only."
    inputs = (
        Input("model", "MODEL"),
        ModelFile("lora_name", "loras"),
        Float("strength_model", 1.0, min=-100.0, max=100.0, step=0.01),
    )
    outputs = (Output("MODEL"),)

    @classmethod
    def fingerprint(cls, lora_name: str = "", **_: Any) -> Any:
        return file_fingerprint("loras", lora_name)

    def run(self, model: DiffusionModel, lora_name: str, strength_model: float) -> Any:
        if strength_model == 0:
            return model
        return apply_lora(model, None, lora_name, strength_model, 0.0)[0]


NODES = [LoraLoader, LoraLoaderModelOnly]
