"""LATENT nodes: compositing, blending, transforms, arithmetic, batching, seed behaviour."""

from __future__ import annotations

import pytest
import torch

from nodes import latent_ops as lo


def latent(value: float | torch.Tensor, shape: tuple[int, ...] = (1, 4, 8, 8), **extra: object) -> dict:
    samples = value if torch.is_tensor(value) else torch.full(shape, float(value))
    return {"samples": samples, **extra}


def test_composite_places_and_feathers() -> None:
    out = lo.LatentComposite().run(latent(0.0), latent(1.0, (1, 4, 2, 3)), 16, 8, 0)[0]["samples"]
    assert torch.all(out[:, :, 1:3, 2:5] == 1) and out.sum() == 4 * 2 * 3
    # a source larger than the space left is cut at the border
    out = lo.LatentComposite().run(latent(0.0), latent(1.0), 48, 48, 0)[0]["samples"]
    assert out.sum() == 4 * 2 * 2
    # feather 16 px = 2 latent pixels: the pasted edges inside the destination fade in
    out = lo.LatentComposite().run(latent(0.0), latent(1.0, (1, 4, 4, 4)), 16, 0, 16)[0]["samples"][0, 0]
    assert out[0, 2:6].tolist() == pytest.approx([0.5, 1.0, 1.0, 0.5])  # x edge inside: both faded
    assert out[0:4, 3].tolist() == pytest.approx([1.0, 1.0, 1.0, 0.5])  # top on the border: not faded
    assert out[4:, :].sum() == 0


def test_composite_masked() -> None:
    mask = torch.zeros((16, 16))
    mask[:, 8:] = 1.0
    out = lo.LatentCompositeMasked().run(latent(0.0), latent(1.0, (1, 4, 2, 2)), 8, 8, False, mask)[0]["samples"]
    assert out[0, 0, 1, 1:3].tolist() == pytest.approx([0.0, 1.0], abs=0.3)
    assert out[0, 0, 0].sum() == 0


def test_blend_ratio() -> None:
    a, b = latent(2.0), latent(4.0)
    assert torch.allclose(lo.LatentBlend().run(a, b, 0.25)[0]["samples"], torch.tensor(0.25 * 2 + 0.75 * 4))
    assert torch.allclose(lo.LatentBlend().run(a, b, 1.0)[0]["samples"], a["samples"])
    other = latent(4.0, (1, 4, 4, 4))
    assert lo.LatentBlend().run(a, other, 0.5)[0]["samples"].shape == (1, 4, 8, 8)


def test_crop_flip_rotate() -> None:
    s = torch.arange(1 * 1 * 16 * 16, dtype=torch.float32).view(1, 1, 16, 16)
    out = lo.LatentCrop().run(latent(s), 64, 72, 16, 8)[0]["samples"]
    assert torch.equal(out, s[:, :, 1:10, 2:10])
    out = lo.LatentCrop().run(latent(s), 64, 64, 16384, 16384)[0]["samples"]
    assert torch.equal(out, s[:, :, 8:16, 8:16])  # at least 8 latent pixels kept
    assert torch.equal(lo.LatentFlip().run(latent(s), "x-axis: vertically")[0]["samples"], s.flip(2))
    assert torch.equal(lo.LatentFlip().run(latent(s), "y-axis: horizontally")[0]["samples"], s.flip(3))
    small = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    rotated = lo.LatentRotate().run(latent(small), "90 degrees")[0]["samples"]
    assert rotated.flatten().tolist() == [3.0, 1.0, 4.0, 2.0]  # clockwise
    assert torch.equal(lo.LatentRotate().run(latent(small), "none")[0]["samples"], small)
    assert lo.LatentRotate().run(latent(torch.zeros(1, 4, 2, 6)), "270 degrees")[0]["samples"].shape == (1, 4, 6, 2)


def test_arithmetic_keeps_other_keys() -> None:
    mask = torch.ones((1, 1, 8, 8))
    a = latent(3.0, noise_mask=mask)
    out = lo.LatentAdd().run(a, latent(1.0))[0]
    assert torch.all(out["samples"] == 4) and out["noise_mask"] is mask
    assert torch.all(lo.LatentSubtract().run(a, latent(1.0))[0]["samples"] == 2)
    assert torch.all(lo.LatentMultiply().run(a, -0.5)[0]["samples"] == -1.5)
    # the second latent is resized and batched like the first
    out = lo.LatentAdd().run(latent(1.0, (2, 4, 8, 8)), latent(1.0, (1, 4, 4, 4)))[0]["samples"]
    assert out.shape == (2, 4, 8, 8) and torch.allclose(out, torch.tensor(2.0))
    assert a["samples"][0, 0, 0, 0] == 3  # inputs untouched


def test_interpolate() -> None:
    g = torch.Generator().manual_seed(0)
    s1, s2 = torch.randn((2, 4, 3, 3), generator=g), torch.randn((2, 4, 3, 3), generator=g)
    assert torch.allclose(lo.LatentInterpolate().run(latent(s1), latent(s2), 1.0)[0]["samples"], s1, atol=1e-5)
    assert torch.allclose(lo.LatentInterpolate().run(latent(s1), latent(s2), 0.0)[0]["samples"], s2, atol=1e-5)
    mid = lo.LatentInterpolate().run(latent(s1), latent(s2), 0.5)[0]["samples"]
    # per pixel, the length is the mean of the two lengths
    expected = (s1.norm(dim=1) + s2.norm(dim=1)) / 2
    assert torch.allclose(mid.norm(dim=1), expected, atol=1e-5)


def test_batch_and_seed_behaviour() -> None:
    out = lo.LatentBatch().run(latent(0.0, (2, 4, 8, 8)), latent(1.0, (1, 4, 4, 4)))[0]
    assert out["samples"].shape == (3, 4, 8, 8) and out["batch_index"] == [0, 1, 0]
    out = lo.LatentBatch().run(latent(0.0, batch_index=[3]), latent(1.0, batch_index=[5]))[0]
    assert out["batch_index"] == [3, 5]
    fixed = lo.LatentBatchSeedBehavior().run(latent(0.0, (3, 4, 8, 8), batch_index=[2, 3, 4]), "fixed")[0]
    assert fixed["batch_index"] == [2, 2, 2]
    random = lo.LatentBatchSeedBehavior().run(latent(0.0, (3, 4, 8, 8), batch_index=[2, 3, 4]), "random")[0]
    assert "batch_index" not in random


def test_fixed_seed_behaviour_gives_every_image_the_same_noise() -> None:
    from nodes.diffusion.noise import RandomNoiseSource

    batch = lo.LatentBatchSeedBehavior().run(latent(0.0, (3, 4, 8, 8)), "fixed")[0]
    noise = RandomNoiseSource(42).generate_noise(batch)
    assert torch.equal(noise[0], noise[1]) and torch.equal(noise[0], noise[2])
    single = RandomNoiseSource(42).generate_noise(latent(0.0))
    assert torch.equal(noise[:1], single)
