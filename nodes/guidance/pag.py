"""Perturbed-Attention Guidance (PAG).

Ahn, Cho, Min, Jang, Kim, Kim, Park, Jin, Kim, "Self-Rectifying Diffusion Sampling with
Perturbed-Attention Guidance", ECCV 2024 (arXiv:2403.17377). A second prediction is made with
the UNet's self-attention maps replaced by the identity (each token attends only to itself, so
the attention output is the value projection ``to_out(to_v(x))``): that prediction keeps the
appearance but loses the image's structure. Guiding *away* from it,
``result + scale * (cond - perturbed)``, sharpens structure, and works without a prompt too.

As in ComfyUI's node, the perturbation is the self-attention (``attn1``) of every transformer
block in the UNet's middle block (SD1.x/SD2: one block; SDXL: ten), and the term is added after
CFG (a ``sampler_post_cfg_function``), so it stacks on CFG, APG, RescaleCFG or a guidance
interval. The perturbed prediction comes from ``args["weft_predict_cond"](perturbed_model)``:
the positive conditioning under a clone of the MODEL with one more call wrapper, which swaps
the attention processors of those layers for :class:`IdentitySelfAttention` during its call
and restores them afterwards (also when the call fails). The weights are shared and untouched,
so weight patches (LoRA) apply to both passes.

Cost: one more UNet evaluation of the positive half per step (counted in the report).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, Node, Output
from nodes.diffusion.cfg_hooks import POST_CFG

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.types import UNetCall


class PAGUnsupportedError(ValueError):
    """The UNet has no self-attention in its middle block to perturb."""


class IdentitySelfAttention:
    """A diffusers attention processor whose attention map is the identity matrix.

    Softmax(QK^T)V with the identity in place of the softmax is V, so the output is
    ``to_out(to_v(x))`` with the layer's usual input handling (spatial/group norm, 4-D inputs,
    residual connection, output rescaling). Cross-attention (a context other than the input) has
    no identity map; it is delegated to the layer's own processor.
    """

    def __init__(self, original: Any) -> None:
        self.original = original

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None:
            extra = kwargs if temb is None else {**kwargs, "temb": temb}
            return self.original(
                attn, hidden_states, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask, **extra
            )
        residual = hidden_states
        if getattr(attn, "spatial_norm", None) is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        spatial = hidden_states.dim() == 4
        if spatial:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        if getattr(attn, "group_norm", None) is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        hidden_states = attn.to_out[0](attn.to_v(hidden_states))
        hidden_states = attn.to_out[1](hidden_states)  # dropout (identity in eval mode)
        if spatial:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channels, height, width)
        if getattr(attn, "residual_connection", False):
            hidden_states = hidden_states + residual
        return hidden_states / getattr(attn, "rescale_output_factor", 1.0)


def mid_self_attentions(unet: Any) -> list[Any]:
    """The ``attn1`` layers of every transformer block in ``unet``'s middle block."""
    mid = getattr(unet, "mid_block", None)
    layers = [
        block.attn1
        for transformer in getattr(mid, "attentions", None) or ()
        for block in getattr(transformer, "transformer_blocks", ())
        if getattr(block, "attn1", None) is not None
    ]
    if not layers:
        raise PAGUnsupportedError(
            "PerturbedAttentionGuidance: this UNet's middle block has no self-attention to perturb "
            "(PAG needs an SD1.x, SD2.x or SDXL-style UNet with a cross-attention middle block)"
        )
    return layers


class PerturbMidSelfAttention:
    """The call wrapper of PAG's perturbed MODEL: identity self-attention in the middle block
    for the duration of one UNet call."""

    def __call__(self, apply: Any, call: UNetCall) -> Any:
        if call.model is None:
            raise PAGUnsupportedError("PerturbedAttentionGuidance: the UNet call does not name its MODEL")
        layers = mid_self_attentions(call.model.prepare())
        originals = [layer.processor for layer in layers]
        try:
            for layer, original in zip(layers, originals, strict=True):
                layer.set_processor(IdentitySelfAttention(original))
            return apply(call)
        finally:
            for layer, original in zip(layers, originals, strict=True):
                layer.set_processor(original)

    def __repr__(self) -> str:
        return "<PAG: identity self-attention in the middle block>"


class PAGHook:
    """The post-CFG function of one :class:`PerturbedAttentionGuidance` node output."""

    def __init__(self, scale: float = 3.0) -> None:
        self.scale = float(scale)
        self.wrapper = PerturbMidSelfAttention()
        self._perturbed: tuple[Any, Any] | None = None  # (model, its perturbed clone)
        self.evaluations = 0

    def begin_run(self, sigmas: Any) -> None:
        self.evaluations = 0

    def report(self) -> dict[str, Any]:
        return (
            {"name": "PerturbedAttentionGuidance", "perturbed_evaluations": self.evaluations}
            if self.evaluations
            else {}
        )

    def perturbed_model(self, model: Any) -> Any:
        """``model`` with the perturbation as its *outermost* wrapper, so it is in effect whatever
        the other wrappers do (a feature cache that runs the UNet itself never calls the wrappers
        inside it). Built once per model: the guider caches the positive predictor per MODEL."""
        if self._perturbed is None or self._perturbed[0] is not model:
            self._perturbed = (model, model.clone(wrappers=(self.wrapper, *model.wrappers)))
        return self._perturbed[1]

    def __call__(self, args: dict[str, Any]) -> torch.Tensor:
        guided = args["denoised"]
        if self.scale == 0.0:
            return guided
        perturbed = args["weft_predict_cond"](self.perturbed_model(args["model"]))
        self.evaluations += 1
        return guided + (args["cond_denoised"] - perturbed) * self.scale

    def __repr__(self) -> str:
        return f"<PAG scale={self.scale}>"


class PerturbedAttentionGuidance(Node):
    category = "model_patches/unet"
    description = (
        'Perturbed-Attention Guidance (Ahn et al., "Self-Rectifying Diffusion Sampling with '
        'Perturbed-Attention Guidance", ECCV 2024): guides away from a prediction whose middle-block '
        "self-attention is the identity, which sharpens structure; adds scale * (cond - perturbed) after "
        "CFG, at the cost of one more UNet evaluation per step."
    )
    inputs = (
        Input("model", "MODEL"),
        Float(
            "scale",
            3.0,
            min=0.0,
            max=100.0,
            step=0.01,
            round=0.01,
            tooltip="Strength of the perturbed-attention guidance; 0 turns it off.",
        ),
    )
    outputs = (Output("MODEL"),)

    def run(self, model: Any, scale: float) -> tuple:
        return (model.with_guidance_hook(POST_CFG, PAGHook(scale)),)


NODES = [PerturbedAttentionGuidance]

__all__ = [
    "IdentitySelfAttention",
    "NODES",
    "PAGHook",
    "PAGUnsupportedError",
    "PerturbMidSelfAttention",
    "PerturbedAttentionGuidance",
    "mid_self_attentions",
]
