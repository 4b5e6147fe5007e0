"""Self-Attention Guidance (SAG).

Hong, Lee, Jang, Kim, "Improving Sample Quality of Diffusion Models Using Self-Attention
Guidance", ICCV 2023 (arXiv:2210.00939). The regions the UNet's self-attention attends to most
carry the image's fine detail; SAG blurs exactly those regions of the model's clean estimate,
noises the blurred estimate back to the step's noise level, and guides away from what the model
predicts for it: ``result + scale * (degraded - prediction(degraded))``.

As ComfyUI's node does (comfy_extras/nodes_sag.py):

* the map is the self-attention (``attn1``) of the first transformer block of the UNet's middle
  block, recorded during the unconditional half of the step's own UNet call: averaged over
  heads, summed over queries, it says how much attention each position receives; positions
  above 1 (the mean) are blurred (a 9x9 Gaussian of ``blur_sigma``, latent pixels);
* the term is added after CFG (a ``sampler_post_cfg_function``, so it stacks on the other
  guidance patches) and needs the unconditional half: the cfg-1 shortcut is off for the MODEL;
* it costs one more UNet evaluation of the negative prompt per step (the degraded input), and is
  skipped on latents of 4 pixels or less a side.

How it is recorded here: the MODEL gets a call wrapper (:class:`RecordMidSelfAttention`) that,
for the duration of each UNet call, puts a processor on that layer which computes the attention
map beside the layer's own processor (whose output is used unchanged, so the predictions are
the same as without SAG) and keeps, per latent of the call, the attention each position
receives. The hook picks the rows of the unconditional prompt in the calls since the previous
step (compared by their text embedding). When no call had them at the latent's full size (a
regional prompt, a feature cache that skipped the middle block), it evaluates the negative
prompt once more to record them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nodes.api import Float, Input, Node, Output
from nodes.diffusion.cfg_hooks import POST_CFG

from .pag import PAGUnsupportedError, mid_self_attentions

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.types import UNetCall

#: positions receiving more attention than this (the mean is 1) are blurred, as in ComfyUI
THRESHOLD = 1.0
KERNEL_SIZE = 9


class SAGError(ValueError):
    """SelfAttentionGuidance cannot run on this model or run; the message says what to change."""


def attention_received(attn: Any, hidden_states: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, tokens]``: the self-attention each position of ``attn``'s input receives (softmax
    over keys, averaged over heads, summed over queries), in float32, one head at a time."""
    import torch

    h = hidden_states
    if getattr(attn, "spatial_norm", None) is not None:
        h = attn.spatial_norm(h, temb)
    if h.dim() == 4:
        batch, channels, height, width = h.shape
        h = h.view(batch, channels, height * width).transpose(1, 2)
    if getattr(attn, "group_norm", None) is not None:
        h = attn.group_norm(h.transpose(1, 2)).transpose(1, 2)
    query, key = attn.to_q(h), attn.to_k(h)
    batch, tokens, inner = key.shape
    head_dim = inner // attn.heads
    query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    if getattr(attn, "norm_q", None) is not None:
        query = attn.norm_q(query)
    if getattr(attn, "norm_k", None) is not None:
        key = attn.norm_k(key)
    total = torch.zeros((batch, tokens), dtype=torch.float32, device=h.device)
    for head in range(attn.heads):
        scores = query[:, head].float() @ key[:, head].float().transpose(-1, -2) * head_dim**-0.5
        total += scores.softmax(dim=-1).sum(dim=1)
    return total / attn.heads


class RecordingSelfAttention:
    """A diffusers attention processor: the layer's own processor, plus :func:`attention_received`
    of every self-attention call handed to ``sink``."""

    def __init__(self, original: Any, sink: Any) -> None:
        self.original, self.sink = original, sink

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        if encoder_hidden_states is None:
            self.sink(attention_received(attn, hidden_states, temb))
        extra = kwargs if temb is None else {**kwargs, "temb": temb}
        return self.original(
            attn, hidden_states, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask, **extra
        )


@dataclass
class Record:
    cond: Any  # the call's text embeddings [N, T, D]
    received: Any  # [N, tokens]
    size: tuple[int, int]  # the call's latent height and width


def _rows_of(cond: torch.Tensor, conditioning: Any) -> list[int]:
    """The rows of a UNet call's text embeddings ``cond`` [N, T, D] that are one of the entries of
    ``conditioning`` (the guider repeats an embedding's 77-token chunks to the call's length)."""
    import torch

    candidates = []
    for entry in conditioning or ():
        embedding = entry[0] if isinstance(entry, (list, tuple)) and entry else None
        if torch.is_tensor(embedding) and cond.shape[1] % embedding.shape[-2] == 0:
            rows = embedding.reshape(-1, *embedding.shape[-2:]).to(cond.device, cond.dtype)
            candidates.extend(rows.repeat(1, cond.shape[1] // rows.shape[1], 1))
    return [i for i in range(cond.shape[0]) if any(torch.equal(cond[i], c) for c in candidates)]


class RecordMidSelfAttention:
    """The call wrapper of a SAG MODEL: records the middle block's first self-attention map of
    each UNet call (the last few calls are kept)."""

    def __init__(self) -> None:
        self.records: deque[Record] = deque(maxlen=8)

    def __call__(self, apply: Any, call: UNetCall) -> Any:
        if call.model is None:
            raise SAGError("SelfAttentionGuidance: the UNet call does not name its MODEL")
        try:
            layer = mid_self_attentions(call.model.prepare())[0]
        except PAGUnsupportedError as exc:
            raise SAGError(
                "SelfAttentionGuidance: this UNet's middle block has no self-attention to read "
                "(SAG needs an SD1.x, SD2.x or SDXL-style UNet)"
            ) from exc
        original = layer.processor
        size = (int(call.x.shape[-2]), int(call.x.shape[-1]))
        layer.set_processor(
            RecordingSelfAttention(original, lambda got: self.records.append(Record(call.cond, got, size)))
        )
        try:
            return apply(call)
        finally:
            layer.set_processor(original)

    def take(self, conditioning: Any, batch: int, size: tuple[int, int]) -> torch.Tensor | None:
        """The recorded ``[batch, tokens]`` map of rows of ``conditioning`` (any of its entries) at
        the full latent ``size``, from the first call that had them, or ``None``; forgets every record."""
        found = None
        for record in self.records:
            if record.size == size:
                same = _rows_of(record.cond, conditioning)
                if len(same) >= batch:
                    found = record.received[same[:batch]]
                    break
        self.records.clear()
        return found

    def __repr__(self) -> str:
        return "<SAG: records the middle block's self-attention>"


def gaussian_blur(image: torch.Tensor, sigma: float, size: int = KERNEL_SIZE) -> torch.Tensor:
    """Each channel blurred by a ``size`` x ``size`` Gaussian, edges reflected; ``sigma`` 0 is no blur."""
    import torch
    import torch.nn.functional as F

    if sigma <= 0:
        return image
    half = (size - 1) * 0.5
    pdf = torch.exp(-0.5 * (torch.linspace(-half, half, size) / sigma) ** 2)
    line = (pdf / pdf.sum()).to(device=image.device, dtype=image.dtype)
    kernel = (line[:, None] * line[None, :]).expand(image.shape[1], 1, size, size)
    pad = size // 2
    return F.conv2d(F.pad(image, [pad] * 4, mode="reflect"), kernel, groups=image.shape[1])


def _grid_rows(height: int, width: int, tokens: int) -> int:
    """How many rows the middle block's ``tokens`` form for a ``height`` x ``width`` latent
    (ComfyUI's search for a divisor near the aspect ratio; then the nearest divisor)."""
    guess = round(math.sqrt(height / width * tokens))
    for i in range(math.floor(math.sqrt(tokens) / 2)):
        for rows in (guess + i, max(1, guess - i)):
            if tokens % rows == 0:
                return rows
    return min((d for d in range(1, tokens + 1) if tokens % d == 0), key=lambda d: abs(d - guess))


def blur_attended(x0: torch.Tensor, received: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x0`` blurred where the attention ``received`` (``[B, tokens]``) is above :data:`THRESHOLD`."""
    import torch.nn.functional as F

    batch, _, height, width = x0.shape
    tokens = received.shape[-1]
    rows = _grid_rows(height, width, tokens)
    mask = (received > THRESHOLD).to(device=x0.device, dtype=x0.dtype).reshape(batch, 1, rows, tokens // rows)
    mask = F.interpolate(mask, (height, width))
    return gaussian_blur(x0, sigma) * mask + x0 * (1 - mask)


class SAGHook:
    """The post-CFG function of one :class:`SelfAttentionGuidance` node output."""

    def __init__(self, scale: float, blur_sigma: float, recorder: RecordMidSelfAttention | None) -> None:
        self.scale, self.blur_sigma, self.recorder = float(scale), float(blur_sigma), recorder
        self.evaluations = 0

    def begin_run(self, sigmas: Any) -> None:
        self.evaluations = 0
        if self.recorder is not None:
            self.recorder.records.clear()

    def report(self) -> dict[str, Any]:
        return {"name": "SelfAttentionGuidance", "extra_evaluations": self.evaluations} if self.evaluations else {}

    def __call__(self, args: dict[str, Any]) -> torch.Tensor:
        guided = args["denoised"]
        if self.recorder is None or min(guided.shape[2:]) <= 4:
            return guided
        uncond = args["uncond"]
        if uncond is None:
            raise SAGError("SelfAttentionGuidance needs a negative prompt: use it with KSampler or CFGGuider")
        x, uncond_d = args["input"], args["uncond_denoised"]
        size = (int(x.shape[-2]), int(x.shape[-1]))
        received = self.recorder.take(uncond, x.shape[0], size)
        if received is None:  # no call had the negative prompt's rows: evaluate it to record them
            args["weft_predict"](uncond)
            self.evaluations += 1
            received = self.recorder.take(uncond, x.shape[0], size)
            if received is None:
                return guided
        degraded = blur_attended(uncond_d, received, self.blur_sigma)
        prediction = args["weft_predict"](uncond, degraded + x - uncond_d)
        self.evaluations += 1
        self.recorder.records.clear()
        return guided + (degraded - prediction) * self.scale

    def __repr__(self) -> str:
        return f"<SAG scale={self.scale} blur_sigma={self.blur_sigma}>"


class SelfAttentionGuidance(Node):
    display_name = "Self-Attention Guidance"
    category = "_for_testing"
    experimental = True
    description = (
        'Self-Attention Guidance (Hong et al., "Improving Sample Quality of Diffusion Models Using '
        "Self-Attention Guidance\", ICCV 2023): blurs the regions the middle block's self-attention "
        "attends to and guides away from the model's prediction for that degraded image, which "
        "sharpens detail; one more UNet evaluation of the negative prompt per step."
    )
    inputs = (
        Input("model", "MODEL"),
        Float("scale", 0.5, min=-2.0, max=5.0, step=0.01, tooltip="Strength of the guidance; 0 turns it off."),
        Float(
            "blur_sigma", 2.0, min=0.0, max=10.0, step=0.1, tooltip="Blur of the attended regions, in latent pixels."
        ),
    )
    outputs = (Output("MODEL"),)

    def run(self, model: Any, scale: float, blur_sigma: float) -> tuple:
        recorder = RecordMidSelfAttention() if scale != 0 else None
        if recorder is not None:
            model = model.clone(wrappers=(recorder, *model.wrappers))  # outermost, as PAG's
        hook = SAGHook(scale, blur_sigma, recorder)
        return (model.with_guidance_hook(POST_CFG, hook, disable_cfg1_optimization=True),)


NODES = [SelfAttentionGuidance]

__all__ = [
    "NODES",
    "RecordMidSelfAttention",
    "RecordingSelfAttention",
    "SAGError",
    "SAGHook",
    "SelfAttentionGuidance",
    "attention_received",
    "blur_attended",
    "gaussian_blur",
]
