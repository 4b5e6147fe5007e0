"""Net2Net widening of the autoencoder: the wider one computes what the narrow one did.

The shapes model's UNet and ControlNet were trained on the encoder's latents, so a widened
autoencoder is only usable if its encoder gives the same latents (to float rounding) and its
decoder starts from the same pictures; and the decoder's copies must be able to grow apart.
"""

from __future__ import annotations

import numpy as np
import pytest

from weft_tools.shapes import dataset as ds
from weft_tools.shapes import models as sm
from weft_tools.shapes.plumbing import to_tensor
from weft_tools.shapes.widen import widen_vae


@pytest.fixture(scope="module")
def narrow():
    import torch

    with torch.random.fork_rng():  # a seeded init without touching the process's generator
        torch.manual_seed(3)
        vae = sm.make_vae((32, 32, 64, 64)).eval()
        for p in vae.parameters():  # not the init's zeros and ones: every weight matters
            p.data.add_(0.05 * torch.randn_like(p))
    return vae


@pytest.mark.parametrize("channels", [(64, 64, 128, 128), (32, 32, 128, 128)])
def test_the_wider_autoencoder_computes_what_the_narrow_one_did(narrow, channels) -> None:
    import torch

    wide = widen_vae(narrow, channels, seed=1)
    assert tuple(wide.config.block_out_channels) == channels
    assert sum(p.numel() for p in wide.decoder.parameters()) > 2 * sum(p.numel() for p in narrow.decoder.parameters())
    x = to_tensor(ds.make_arrays(4, seed=5)["images"])
    with torch.no_grad():
        z_narrow, z_wide = narrow.encode(x).latent_dist.mean, wide.encode(x).latent_dist.mean
        scale = z_narrow.abs().max()
        assert (z_narrow - z_wide).abs().max() < 1e-5 * scale
        y_narrow, y_wide = narrow.decode(z_narrow).sample, wide.decode(z_narrow).sample
        assert (y_narrow - y_wide).abs().max() < 1e-4 * y_narrow.abs().max()


def test_the_decoders_copies_can_grow_apart_and_the_encoders_are_even(narrow) -> None:
    wide = widen_vae(narrow, (32, 32, 128, 128), seed=1)
    name = "mid_block.resnets.0.conv1.weight"  # 128 <- 128: input channels 2c and 2c+1 are copies
    dec = wide.decoder.mid_block.resnets[0].conv1.weight.detach().numpy()
    enc = wide.encoder.mid_block.resnets[0].conv1.weight.detach().numpy()
    assert np.allclose(enc[:, 0::2], enc[:, 1::2]), name
    assert not np.allclose(dec[:, 0::2], dec[:, 1::2]), name
    old = narrow.decoder.mid_block.resnets[0].conv1.weight.detach().numpy()
    for copy in (0, 1):  # both copies of each output channel: each pair of splits sums to the old weight
        assert np.allclose(dec[copy::2, 0::2] + dec[copy::2, 1::2], old, atol=1e-6)


@pytest.mark.parametrize(
    "channels, reason",
    [((32, 32, 96, 96), "keep or double"), ((32, 64, 128, 128), "widened alike"), ((32, 32, 64), "keep or double")],
)
def test_widths_it_cannot_reach_exactly_are_refused(narrow, channels, reason) -> None:
    with pytest.raises(ValueError, match=reason):
        widen_vae(narrow, channels, seed=1)
