"""Model merging as weight patches (ComfyUI's ModelMergeSimple, CLIPMergeSimple and relatives).

ComfyUI merges by adding the second model's weights to the first's patch list; the first
model's weights are not copied. Weft does the same with its weight-patch mechanism (see
:class:`nodes.diffusion.model_manager.ModuleHandle.apply_patches`): a :class:`MergePatch` in
the clone's ``patches`` yields, for each parameter, the delta that turns the current weight
``W`` into ``strength_model * W + strength_patch * W2``, where ``W2`` is the other model's
weight with *its* patches (LoRAs, earlier merges) applied. Patches apply in order, so a
LoRA before the merge is merged, and one after it is added to the merged weights, as in
ComfyUI. Parameters that the other model lacks or has in another shape are left alone.

When both MODELs share one UNet (two clones of the same file, e.g. one with a LoRA), ``W2``
is built from the base weights plus the other clone's own patches; those must not depend on
the current weights (LoRAs do not; a merge nested inside that clone would see the first
clone's weights and is not supported there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, Node, Output

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.types import DiffusionModel, TextEncoder

log = logging.getLogger("weft.merge")

#: ``strengths(parameter name, the patched module's config) -> (strength_model, strength_patch)``
Strengths = Callable[[str, Any], tuple[float, float]]


@dataclass(frozen=True)
class MergeSource:
    """The other model's module for one target and the patches its clone applies to it."""

    handle: Any  # nodes.diffusion.model_manager.ModuleHandle
    patches: tuple[Any, ...] = ()


@dataclass(eq=False)
class MergePatch:
    """``W <- strength_model * W + strength_patch * W2`` for each parameter of the targets in ``sources``."""

    sources: dict[str, MergeSource]
    strengths: Strengths
    skip: Callable[[str], bool] = field(default=lambda name: False)
    label: str = "merge"

    def applies_to(self, target: str) -> bool:
        return target in self.sources

    def __repr__(self) -> str:
        return f"<MergePatch {self.label} targets={sorted(self.sources)}>"

    def _other_weights(self, module: Any, target: str) -> Callable[[str], torch.Tensor | None]:
        source = self.sources[target]
        if source.handle.module is not module:
            other = source.handle.load()
            source.handle.apply_patches(source.patches)
            params = dict(other.named_parameters())
            return lambda name: params[name].detach() if name in params else None
        # the same shared module: the other clone's weights are the base ones plus its own patches
        backup: dict[str, torch.Tensor] = getattr(source.handle, "_backup", {})
        current = dict(module.named_parameters())
        added: dict[str, torch.Tensor] = {}
        for patch in source.patches:
            if getattr(patch, "applies_to", lambda t: True)(target):
                for name, delta in patch.deltas(module, target):
                    added[name] = added.get(name, 0) + delta.float()

        def weight(name: str) -> torch.Tensor | None:
            if name not in current:
                return None
            base = backup.get(name)
            base = current[name].detach() if base is None else base.to(current[name].device)
            return base.float() + added[name].to(base.device) if name in added else base

        return weight

    def deltas(self, module: Any, target: str) -> Iterator[tuple[str, torch.Tensor]]:
        import torch

        if target not in self.sources:
            return
        other = self._other_weights(module, target)
        config = getattr(module, "config", None)
        skipped = 0
        for name, param in list(module.named_parameters()):
            if self.skip(name):
                continue
            w2 = other(name)
            if w2 is None or tuple(w2.shape) != tuple(param.shape):
                skipped += 1
                continue
            keep, add = self.strengths(name, config)
            if keep == 1.0 and add == 0.0:
                continue
            w = param.detach().float()
            yield name, w * (keep - 1.0) + w2.to(device=w.device, dtype=torch.float32) * add
        if skipped:
            log.warning(
                "%s: %d %s weights have no counterpart of the same shape in the other model; kept as they are",
                self.label,
                skipped,
                target,
            )


def _model_patch(model1: DiffusionModel, model2: DiffusionModel, strengths: Strengths, label: str) -> DiffusionModel:
    for name, value in (("model1", model1), ("model2", model2)):
        if not hasattr(value, "unet") or not hasattr(value, "with_patch"):
            raise ValueError(f"input '{name}' is not a MODEL")
    if model1.family != model2.family:
        log.warning(
            "%s: merging a %s model with a %s one; only same-shaped weights merge", label, model1.family, model2.family
        )
    source = MergeSource(model2.unet, tuple(model2.patches))
    return model1.with_patch(MergePatch({"unet": source}, strengths, label=label))


def _clip_patch(clip1: TextEncoder, clip2: TextEncoder, strengths: Strengths, label: str) -> TextEncoder:
    for name, value in (("clip1", clip1), ("clip2", clip2)):
        if not hasattr(value, "parts") or not hasattr(value, "with_patch"):
            raise ValueError(f"input '{name}' is not a CLIP")
    own = {part.handle.target for part in clip1.parts}
    sources = {}
    for part in clip2.parts:
        target = part.handle.target
        if target in own:
            patches = tuple(p for p in clip2.patches if getattr(p, "applies_to", lambda t: True)(target))
            sources[target] = MergeSource(part.handle, patches)
    if not sources:
        log.warning(
            "%s: the two CLIPs have no text encoder in common (%s vs %s); nothing merged",
            label,
            sorted(own),
            sorted(p.handle.target for p in clip2.parts),
        )
        return clip1
    return clip1.with_patch(MergePatch(sources, strengths, skip=_clip_skip, label=label))


def _clip_skip(name: str) -> bool:
    return name.endswith((".position_ids", ".logit_scale"))


def _constant(keep: float, add: float) -> Strengths:
    return lambda name, config: (keep, add)


class ModelMergeSimple(Node):
    category = "advanced/model_merging"
    description = "Merges two models' weights: ratio x model1 + (1 - ratio) x model2 (model1's weights are not copied)."
    inputs = (Input("model1", "MODEL"), Input("model2", "MODEL"), Float("ratio", 1.0, min=0.0, max=1.0, step=0.01))
    outputs = (Output("MODEL"),)

    def run(self, model1: DiffusionModel, model2: DiffusionModel, ratio: float) -> tuple:
        return (_model_patch(model1, model2, _constant(ratio, 1.0 - ratio), "ModelMergeSimple"),)


class ModelMergeSubtract(Node):
    category = "advanced/model_merging"
    description = "multiplier x (model1 - model2): the difference of two models, e.g. what a finetune learned."
    inputs = (
        Input("model1", "MODEL"),
        Input("model2", "MODEL"),
        Float("multiplier", 1.0, min=-10.0, max=10.0, step=0.01),
    )
    outputs = (Output("MODEL"),)

    def run(self, model1: DiffusionModel, model2: DiffusionModel, multiplier: float) -> tuple:
        return (_model_patch(model1, model2, _constant(multiplier, -multiplier), "ModelMergeSubtract"),)


class ModelMergeAdd(Node):
    category = "advanced/model_merging"
    description = "model1 + model2, weight by weight (add a difference made by ModelMergeSubtract)."
    inputs = (Input("model1", "MODEL"), Input("model2", "MODEL"))
    outputs = (Output("MODEL"),)

    def run(self, model1: DiffusionModel, model2: DiffusionModel) -> tuple:
        return (_model_patch(model1, model2, _constant(1.0, 1.0), "ModelMergeAdd"),)


def block_strengths(ratios: dict[str, float]) -> Strengths:
    """Per-weight ratios by the original (LDM) layout's block names: the longest of the
    ``ratios``' prefixes that starts the weight's original name wins; others take the first."""
    from nodes.diffusion import single_file as sf

    default = next(iter(ratios.values()))

    def strengths(name: str, unet_config: Any) -> tuple[float, float]:
        try:
            original = sf.unet_ldm_name(name, unet_config)
        except (sf.LayoutError, KeyError, ValueError, TypeError, AttributeError):
            original = name
        ratio, best = default, 0
        for prefix, value in ratios.items():
            if original.startswith(prefix) and len(prefix) > best:
                ratio, best = value, len(prefix)
        return ratio, 1.0 - ratio

    return strengths


class ModelMergeBlocks(Node):
    category = "advanced/model_merging"
    description = (
        "Like ModelMergeSimple with one ratio per part of the UNet: input (encoder) blocks, the middle "
        "block, and the output (decoder) blocks with the final layers."
    )
    inputs = (
        Input("model1", "MODEL"),
        Input("model2", "MODEL"),
        Float("input", 1.0, min=0.0, max=1.0, step=0.01),
        Float("middle", 1.0, min=0.0, max=1.0, step=0.01),
        Float("out", 1.0, min=0.0, max=1.0, step=0.01),
    )
    outputs = (Output("MODEL"),)

    def run(self, model1: DiffusionModel, model2: DiffusionModel, input: float, middle: float, out: float) -> tuple:
        strengths = block_strengths({"input": input, "middle": middle, "out": out})
        return (_model_patch(model1, model2, strengths, "ModelMergeBlocks"),)


class CLIPMergeSimple(Node):
    category = "advanced/model_merging"
    description = "Merges two text encoders' weights: ratio x clip1 + (1 - ratio) x clip2."
    inputs = (Input("clip1", "CLIP"), Input("clip2", "CLIP"), Float("ratio", 1.0, min=0.0, max=1.0, step=0.01))
    outputs = (Output("CLIP"),)

    def run(self, clip1: TextEncoder, clip2: TextEncoder, ratio: float) -> tuple:
        return (_clip_patch(clip1, clip2, _constant(ratio, 1.0 - ratio), "CLIPMergeSimple"),)


class CLIPMergeSubtract(Node):
    category = "advanced/model_merging"
    description = "multiplier x (clip1 - clip2), weight by weight."
    inputs = (Input("clip1", "CLIP"), Input("clip2", "CLIP"), Float("multiplier", 1.0, min=-10.0, max=10.0, step=0.01))
    outputs = (Output("CLIP"),)

    def run(self, clip1: TextEncoder, clip2: TextEncoder, multiplier: float) -> tuple:
        return (_clip_patch(clip1, clip2, _constant(multiplier, -multiplier), "CLIPMergeSubtract"),)


class CLIPMergeAdd(Node):
    category = "advanced/model_merging"
    description = "clip1 + clip2, weight by weight."
    inputs = (Input("clip1", "CLIP"), Input("clip2", "CLIP"))
    outputs = (Output("CLIP"),)

    def run(self, clip1: TextEncoder, clip2: TextEncoder) -> tuple:
        return (_clip_patch(clip1, clip2, _constant(1.0, 1.0), "CLIPMergeAdd"),)


NODES = [
    ModelMergeSimple,
    ModelMergeSubtract,
    ModelMergeAdd,
    ModelMergeBlocks,
    CLIPMergeSimple,
    CLIPMergeSubtract,
    CLIPMergeAdd,
]
