"""Hooks installed on the shared UNet for the length of one call.

The UNet module is shared by every clone of a MODEL, so a patch that needs to act inside it
(FreeU on the decoder's skip connections, HyperTile on self-attention) cannot change it for
good. :class:`CallHooks` is a :data:`~nodes.diffusion.types.UNetWrapper` that installs its hooks
right before the call runs (after the wrappers outside it) and removes them when it returns or
raises, so other clones, and the same clone's other wrappers, see the UNet unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodes.diffusion.types import UNetCall


class CallHooks:
    """Base class: subclasses implement :meth:`install` (yield while the hooks are in place)."""

    name = "hooks"

    def __call__(self, apply: Callable[[UNetCall], Any], call: UNetCall) -> Any:
        unet = call.model.prepare() if call.model is not None else None
        if unet is None:
            return apply(call)
        with self.install(unet, call):
            return apply(call)

    @contextmanager
    def install(self, unet: Any, call: UNetCall) -> Iterator[None]:
        yield

    def __repr__(self) -> str:
        return f"<{self.name}>"


def decoder_resnets(unet: Any) -> list[tuple[Any, int]]:
    """``(resnet, channels of the decoder state h)`` for every resnet of the UNet's up blocks.

    Each such resnet's input is ``cat([h, skip])``: the decoder's hidden state followed by the
    encoder's skip connection (ComfyUI's ``output_block_patch`` sees the two before they are
    joined). ``h`` has the mid block's channels before the first resnet and the previous
    resnet's output channels after that (upsamplers keep the channel count).
    """
    channels = int(unet.config.block_out_channels[-1])
    found = []
    for block in unet.up_blocks:
        for resnet in block.resnets:
            found.append((resnet, channels))
            channels = int(resnet.out_channels)
    return found
