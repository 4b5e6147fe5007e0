"""A wider autoencoder that computes the same function: Net2Net's "wider" transform.

Chen, Goodfellow and Shlens, "Net2Net: Accelerating Learning via Knowledge Transfer" (ICLR
2016), section 2.2: a layer is widened by copying some of its units, and the next layer's
weights from a copied unit are shared out between the copies, so the wider network computes
exactly what the narrow one did and training goes on from there instead of from scratch.

Why here: the diffusion stages learnt the encoder's latents, so the encoder must not change,
yet the decoder (which shares its widths with the encoder in AutoencoderKL and in the SD1 file
layout) is what turns uncertain latents into blurred corners. Widening both with Net2Net keeps
the encoder's function (its latents change only by float rounding) and gives the decoder room.

Every widened level doubles: each channel ``c`` becomes ``2c`` and ``2c + 1`` (interleaved, so
each GroupNorm group holds the copies of exactly one old group and its statistics are
unchanged). The weights reading a copied channel are split between the two copies: halves in
the encoder (frozen afterwards), a random split in the decoder, which preserves the function
just as exactly but gives the copies different gradients, so they can grow apart (the paper
adds noise for that; a split that still sums to the old weight needs none). The mid-block's
single-head attention scales ``q.k`` by ``1/sqrt(width)``: doubling the width doubles ``q.k``
and shrinks the scale by ``sqrt(2)``, so the query projection is divided by ``sqrt(2)``.
"""

from __future__ import annotations

import math
from typing import Any

from . import models as sm


def widen_vae(narrow: Any, channels: tuple[int, ...], seed: int) -> Any:
    """A new AutoencoderKL of widths ``channels`` (each level the same or twice ``narrow``'s)
    computing what ``narrow`` computes."""
    import torch

    old_widths = tuple(narrow.config.block_out_channels)
    if len(channels) != len(old_widths) or any(n not in (o, 2 * o) for o, n in zip(old_widths, channels, strict=True)):
        raise ValueError(f"each level must keep or double its width: {old_widths} -> {tuple(channels)}")
    for i in range(1, len(channels)):
        # a residual block's shortcut is a convolution exactly where its input and output widths
        # differ, so neighbouring levels must stay equal (or unequal) in width
        if (old_widths[i - 1] == old_widths[i]) != (channels[i - 1] == channels[i]):
            raise ValueError(
                f"levels {i - 1} and {i} must be widened alike where they had the same width: {old_widths} -> {tuple(channels)}"
            )
    wide = sm.make_vae(tuple(channels))
    generator = torch.Generator().manual_seed(seed)
    old_state = narrow.state_dict()
    state = {}
    for key, target in wide.state_dict().items():
        weight = old_state[key].detach().clone()
        if weight.shape[0] != target.shape[0]:
            weight = weight.repeat_interleave(2, dim=0)
        if weight.dim() > 1 and weight.shape[1] != target.shape[1]:
            weight = weight.repeat_interleave(2, dim=1)
            weight = weight * _split(weight.shape, key.startswith("decoder."), generator)
        if key.endswith(("to_q.weight", "to_q.bias")) and target.shape != old_state[key].shape:
            weight = weight / math.sqrt(2)
        state[key] = weight
    wide.load_state_dict(state)
    return wide.eval()


def _split(shape: Any, random: bool, generator: Any) -> Any:
    """Multipliers for a weight whose input channels were copied: each pair sums to one."""
    import torch

    if not random:
        return torch.full(shape, 0.5)
    # (out, in / 2, 2, ...) -> (out, in, ...) puts copy j of input channel c at 2c + j
    first = torch.rand((shape[0], shape[1] // 2, 1, *shape[2:]), generator=generator) * 0.6 + 0.2
    return torch.cat([first, 1.0 - first], dim=2).reshape(shape)
