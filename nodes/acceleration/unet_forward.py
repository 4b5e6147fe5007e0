"""A diffusers ``UNet2DConditionModel`` forward pass, piece by piece.

Feature caches (DeepCache, Faster Diffusion) need what ``unet(...)`` hides: the features at a
given depth, and the ability to start or stop the pass there. :class:`UNetPass` prepares one
evaluation (time embedding, SDXL's added conditioning, text embeddings, masks, ControlNet
residuals) and then runs it in three pieces that reproduce diffusers' forward exactly (same
modules, same order of operations, hence bitwise-equal outputs):

* :meth:`UNetPass.encode` runs ``conv_in`` and the down blocks, layer by layer, returning the
  *skip entries*, optionally stopping after entry ``upto``;
* :meth:`UNetPass.middle` runs the mid block;
* :meth:`UNetPass.decode` runs the up blocks from decoder step ``start`` on, optionally
  returning the feature that enters step ``capture``; :meth:`UNetPass.finish` is the output head.

Vocabulary (ComfyUI/LDM's "input blocks" and "output blocks", one per skip connection): skip
entry 0 is ``conv_in``'s output, then every down-block layer (resnet + its attention) and every
downsampler adds one. SD1.5 has 12 entries (0..11), as many as LDM's ``input_blocks``; the tiny
test UNets have 6. Decoder step ``j`` is one up-block layer (resnet + attention, and the
block's upsampler after its last layer); it concatenates skip entry ``E - 1 - j`` to its input,
so skip entry ``d`` and decoder step ``E - 1 - d`` form "skip branch ``d``" of the DeepCache paper.

ControlNet residuals (``down_block_additional_residuals`` / ``mid_block_additional_residual``)
are added where diffusers adds them: to the skip entries and to the mid block's output, never
to the feature flowing down the encoder. :meth:`UNetPass.with_control` and
:meth:`UNetPass.with_mid_control` apply them, so a cache can keep the raw features and add the
current call's residuals.

What a pass cannot do is listed by :func:`unsupported_reason` (T2I-Adapter intrablock
residuals, GLIGEN, PEFT LoRA scales, inpainting ``concat`` channels hidden from wrappers, block
types other than SD's four); callers then run the ordinary UNet instead.

torch and diffusers are imported inside functions; importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.types import UNetCall

#: ``UNet2DConditionModel.forward`` keyword arguments a :class:`UNetPass` understands.
SUPPORTED_KWARGS = frozenset(
    {
        "added_cond_kwargs",
        "down_block_additional_residuals",
        "mid_block_additional_residual",
        "cross_attention_kwargs",
        "timestep_cond",
        "class_labels",
        "attention_mask",
        "encoder_attention_mask",
        "return_dict",
    }
)

_DOWN_TYPES = ("CrossAttnDownBlock2D", "DownBlock2D")
_UP_TYPES = ("CrossAttnUpBlock2D", "UpBlock2D")
_UNET_METHODS = ("get_time_embed", "get_class_embed", "get_aug_embed", "process_encoder_hidden_states")


def _block_types() -> dict[str, type]:
    from diffusers.models.unets import unet_2d_blocks as blocks

    return {name: getattr(blocks, name) for name in (*_DOWN_TYPES, *_UP_TYPES)}


def skip_count(unet: Any) -> int:
    """The number of skip entries (LDM "input blocks") of ``unet``'s encoder."""
    count = 1
    for block in unet.down_blocks:
        count += len(block.resnets) + (1 if getattr(block, "downsamplers", None) is not None else 0)
    return count


def unsupported_reason(unet: Any, sample: Any, kwargs: Mapping[str, Any]) -> str | None:
    """Why a piecewise pass cannot reproduce ``unet(sample, ..., **kwargs)``, or ``None`` if it can.

    Checked per call (it costs a few attribute look-ups), so an unusual call falls back to the
    plain UNet instead of computing something subtly different.
    """
    if not all(hasattr(unet, name) for name in ("down_blocks", "up_blocks", "conv_in", "conv_out", *_UNET_METHODS)):
        return f"{type(unet).__name__} is not a diffusers UNet2DConditionModel"
    unknown = sorted(set(kwargs) - SUPPORTED_KWARGS)
    if unknown:
        return f"UNet arguments {', '.join(unknown)} are not supported by the partial forward"
    in_channels = unet.config.in_channels
    if sample.shape[1] != in_channels:
        return (
            f"the UNet takes {in_channels} input channels but the wrapper sees {sample.shape[1]} "
            "(an inpainting model's extra channels are added after the wrappers)"
        )
    if unet.config.get("addition_embed_type") == "image_hint":
        return "image_hint UNets (Kandinsky) are not supported"
    if (
        kwargs.get("down_block_additional_residuals") is not None
        and kwargs.get("mid_block_additional_residual") is None
    ):
        return "adapter-style residuals (down residuals without a mid residual) are not supported"
    cross = kwargs.get("cross_attention_kwargs") or {}
    if cross.get("gligen") is not None or cross.get("scale") is not None:
        return "cross_attention_kwargs 'gligen' and 'scale' are not supported"
    kinds = _block_types()
    for block in unet.down_blocks:
        if type(block) not in tuple(kinds[name] for name in _DOWN_TYPES):
            return f"down block type {type(block).__name__} is not supported"
    for block in unet.up_blocks:
        if type(block) not in tuple(kinds[name] for name in _UP_TYPES):
            return f"up block type {type(block).__name__} is not supported"
    if sum(len(block.resnets) for block in unet.up_blocks) != skip_count(unet):
        return "the decoder's layers do not match the encoder's skip connections"
    return None


class UNetPass:
    """One UNet evaluation, prepared once and run in pieces.

    Arguments are those of ``UNet2DConditionModel.forward`` (``sample`` and tensors already on
    the UNet's device and dtype). The constructor does what diffusers does before ``conv_in``:
    the timestep embedding (plus class and SDXL ``text_time`` embeddings), the text embeddings'
    projection, the attention-mask biases and whether upsamplers need explicit sizes.
    """

    def __init__(
        self, unet: Any, sample: torch.Tensor, timestep: Any, encoder_hidden_states: torch.Tensor, **kwargs: Any
    ) -> None:
        import torch

        self.unet = unet
        config = unet.config
        if config.center_input_sample:
            sample = 2 * sample - 1.0
        self.sample = sample
        factor = 2**unet.num_upsamplers
        self.forward_upsample_size = any(dim % factor != 0 for dim in sample.shape[-2:])

        attention_mask = kwargs.get("attention_mask")
        if attention_mask is not None:
            attention_mask = ((1 - attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)
        encoder_attention_mask = kwargs.get("encoder_attention_mask")
        if encoder_attention_mask is not None:
            encoder_attention_mask = ((1 - encoder_attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)
        self.attention_mask = attention_mask
        self.encoder_attention_mask = encoder_attention_mask
        self.cross_attention_kwargs = kwargs.get("cross_attention_kwargs")

        added_cond_kwargs = kwargs.get("added_cond_kwargs")
        t_emb = unet.get_time_embed(sample=sample, timestep=timestep)
        emb = unet.time_embedding(t_emb, kwargs.get("timestep_cond"))
        class_emb = unet.get_class_embed(sample=sample, class_labels=kwargs.get("class_labels"))
        if class_emb is not None:
            emb = torch.cat([emb, class_emb], dim=-1) if config.class_embeddings_concat else emb + class_emb
        aug_emb = unet.get_aug_embed(
            emb=emb, encoder_hidden_states=encoder_hidden_states, added_cond_kwargs=added_cond_kwargs
        )
        emb = emb + aug_emb if aug_emb is not None else emb
        if unet.time_embed_act is not None:
            emb = unet.time_embed_act(emb)
        self.emb = emb
        self.context = unet.process_encoder_hidden_states(
            encoder_hidden_states=encoder_hidden_states, added_cond_kwargs=added_cond_kwargs
        )
        self.down_residuals: Sequence[torch.Tensor] | None = kwargs.get("down_block_additional_residuals")
        self.mid_residual: torch.Tensor | None = kwargs.get("mid_block_additional_residual")
        self.skip_count = skip_count(unet)

    @classmethod
    def from_call(cls, unet: Any, call: UNetCall) -> UNetPass:
        """The pass for a wrapper's :class:`~nodes.diffusion.types.UNetCall` (its kwargs are
        what ``predict_noise`` passes to the UNet: SDXL's ``added_cond_kwargs``, residuals...)."""
        kwargs = {k: v for k, v in call.kwargs.items() if k != "return_dict"}
        return cls(unet, call.x, call.timestep, call.cond, **kwargs)

    # -- pieces ----------------------------------------------------------------------------------
    def _attend(self, attention: Any, h: torch.Tensor) -> torch.Tensor:
        return attention(
            h,
            encoder_hidden_states=self.context,
            cross_attention_kwargs=self.cross_attention_kwargs,
            attention_mask=self.attention_mask,
            encoder_attention_mask=self.encoder_attention_mask,
            return_dict=False,
        )[0]

    def encode(self, upto: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``conv_in`` and the down blocks; returns the last feature and the raw skip entries.

        ``upto`` stops after skip entry ``upto`` (0 = after ``conv_in``); ``None`` runs the
        whole encoder. The skips have no ControlNet residuals yet (see :meth:`with_control`).
        """
        unet = self.unet
        last = self.skip_count - 1 if upto is None else max(0, min(upto, self.skip_count - 1))
        h = unet.conv_in(self.sample)
        skips = [h]
        if last == 0:
            return h, skips
        for block in unet.down_blocks:
            attentions = block.attentions if getattr(block, "has_cross_attention", False) else None
            for index, resnet in enumerate(block.resnets):
                h = resnet(h, self.emb)
                if attentions is not None:
                    h = self._attend(attentions[index], h)
                skips.append(h)
                if len(skips) > last:
                    return h, skips
            if block.downsamplers is not None:
                for downsampler in block.downsamplers:
                    h = downsampler(h)
                skips.append(h)
                if len(skips) > last:
                    return h, skips
        return h, skips

    def middle(self, h: torch.Tensor) -> torch.Tensor:
        """The mid block on the encoder's last feature (raw: no ControlNet residual added)."""
        mid = self.unet.mid_block
        if mid is None:
            return h
        if getattr(mid, "has_cross_attention", False):
            return mid(
                h,
                self.emb,
                encoder_hidden_states=self.context,
                attention_mask=self.attention_mask,
                cross_attention_kwargs=self.cross_attention_kwargs,
                encoder_attention_mask=self.encoder_attention_mask,
            )
        return mid(h, self.emb)

    def with_control(self, skips: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """A new list of ``skips`` with this call's ControlNet residuals added (entry by entry;
        a shallow encoder's first entries get the first residuals)."""
        if self.down_residuals is None:
            return list(skips)
        return [s + r for s, r in zip(skips, self.down_residuals, strict=False)] + list(
            skips[len(self.down_residuals) :]
        )

    def with_mid_control(self, h: torch.Tensor) -> torch.Tensor:
        """The mid block's output with this call's ControlNet mid residual added."""
        return h if self.mid_residual is None else h + self.mid_residual

    def decode(
        self, h: torch.Tensor, skips: list[torch.Tensor], start: int = 0, capture: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The up blocks from decoder step ``start`` on, ``h`` being the feature entering that step.

        ``skips`` must hold skip entries ``0 .. E - 1 - start`` (with residuals); they are popped
        from the end, so pass a list the caller does not need afterwards. Returns the decoder's
        output and, if ``capture`` is a step index, the feature that entered that step.
        """
        import torch
        from diffusers.utils.torch_utils import apply_freeu

        captured = None
        step = 0
        upsample_size = None
        blocks = self.unet.up_blocks
        for block_index, block in enumerate(blocks):
            count = len(block.resnets)
            if step + count <= start:
                step += count
                continue
            freeu = all(getattr(block, name, None) for name in ("s1", "s2", "b1", "b2"))
            attentions = block.attentions if getattr(block, "has_cross_attention", False) else None
            for index, resnet in enumerate(block.resnets):
                if step < start:
                    step += 1
                    continue
                if step == capture:
                    captured = h
                res = skips.pop()
                if freeu:
                    h, res = apply_freeu(
                        block.resolution_idx, h, res, s1=block.s1, s2=block.s2, b1=block.b1, b2=block.b2
                    )
                h = resnet(torch.cat([h, res], dim=1), self.emb)
                if attentions is not None:
                    h = self._attend(attentions[index], h)
                step += 1
            if block.upsamplers is not None:
                if block_index < len(blocks) - 1 and self.forward_upsample_size:
                    upsample_size = skips[-1].shape[2:]
                for upsampler in block.upsamplers:
                    h = upsampler(h, upsample_size)
        return h, captured

    def finish(self, h: torch.Tensor) -> torch.Tensor:
        """The output head: norm, activation, ``conv_out``."""
        unet = self.unet
        if unet.conv_norm_out:
            h = unet.conv_act(unet.conv_norm_out(h))
        return unet.conv_out(h)

    def run(self) -> torch.Tensor:
        """The whole forward pass (what ``unet(...)[0]`` returns)."""
        h, skips = self.encode()
        h = self.with_mid_control(self.middle(h))
        out, _ = self.decode(h, self.with_control(skips))
        return self.finish(out)


def forward(
    unet: Any, sample: torch.Tensor, timestep: Any, encoder_hidden_states: torch.Tensor, **kwargs: Any
) -> torch.Tensor:
    """``unet(sample, timestep, encoder_hidden_states, **kwargs, return_dict=False)[0]``, piecewise.

    Raises ``ValueError`` with :func:`unsupported_reason`'s message when the call is outside
    what a pass reproduces.
    """
    reason = unsupported_reason(unet, sample, kwargs)
    if reason is not None:
        raise ValueError(reason)
    kwargs.pop("return_dict", None)
    return UNetPass(unet, sample, timestep, encoder_hidden_states, **kwargs).run()


__all__ = ["SUPPORTED_KWARGS", "UNetPass", "forward", "skip_count", "unsupported_reason"]
