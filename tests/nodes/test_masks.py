"""MASK nodes: the semantics of ComfyUI's mask nodes on small hand-made masks."""

from __future__ import annotations

import pytest
import torch

from nodes import masks as m


def square(size: int = 9, lo: int = 3, hi: int = 6) -> torch.Tensor:
    mask = torch.zeros((1, size, size))
    mask[:, lo:hi, lo:hi] = 1.0
    return mask


def test_mask_to_image_and_back() -> None:
    mask = torch.rand((2, 5, 7))
    image = m.MaskToImage().run(mask)[0]
    assert image.shape == (2, 5, 7, 3)
    assert torch.equal(image[..., 1], mask)
    for index, channel in enumerate(["red", "green", "blue"]):
        assert torch.equal(m.ImageToMask().run(image, channel)[0], image[..., index])
    rgba = torch.rand((1, 4, 4, 4))
    assert torch.equal(m.ImageToMask().run(rgba, "alpha")[0], rgba[..., 3])
    with pytest.raises(ValueError, match="channel"):
        m.ImageToMask().run(image, "alpha")
    # a 2-D mask is one mask
    assert m.MaskToImage().run(mask[0])[0].shape == (1, 5, 7, 3)


def test_image_color_to_mask_selects_one_colour() -> None:
    image = torch.zeros((1, 2, 2, 3))
    image[0, 0, 0] = torch.tensor([1.0, 0.5, 0.0])  # 0xFF8000
    out = m.ImageColorToMask().run(image, 0xFF8000)[0]
    assert out.tolist() == [[[1.0, 0.0], [0.0, 0.0]]]


def test_solid_invert_threshold() -> None:
    solid = m.SolidMask().run(0.25, 6, 4)[0]
    assert solid.shape == (1, 4, 6) and torch.all(solid == 0.25)
    assert torch.all(m.InvertMask().run(solid)[0] == 0.75)
    ramp = torch.linspace(0, 1, 11).view(1, 1, 11)
    assert m.ThresholdMask().run(ramp, 0.5)[0].tolist() == [[[0.0] * 6 + [1.0] * 5]]


def test_crop_mask() -> None:
    mask = torch.arange(30.0).view(1, 5, 6)
    assert torch.equal(m.CropMask().run(mask, 2, 1, 3, 2)[0], mask[:, 1:3, 2:5])
    assert m.CropMask().run(mask, 4, 3, 512, 512)[0].shape == (1, 2, 2)  # clipped at the edges


@pytest.mark.parametrize(
    "operation, expected",
    [
        ("multiply", 0.5 * 0.5),
        ("add", 1.0),
        ("subtract", 0.0),
    ],
)
def test_mask_composite_arithmetic(operation: str, expected: float) -> None:
    dst = torch.full((1, 4, 4), 0.5)
    src = torch.full((1, 2, 2), 0.5)
    out = m.MaskComposite().run(dst, src, 1, 2, operation)[0]
    assert torch.allclose(out[:, 2:4, 1:3], torch.tensor(expected))
    untouched = torch.ones((4, 4), dtype=torch.bool)
    untouched[2:4, 1:3] = False
    assert torch.all(out[0][untouched] == 0.5)


def test_mask_composite_logic_and_clamp() -> None:
    dst = torch.tensor([[[0.0, 0.0, 1.0, 1.0]]])
    src = torch.tensor([[[0.0, 1.0, 0.0, 1.0]]])
    results = {op: m.MaskComposite().run(dst, src, 0, 0, op)[0].flatten().tolist() for op in ("and", "or", "xor")}
    assert results == {"and": [0, 0, 0, 1], "or": [0, 1, 1, 1], "xor": [0, 1, 1, 0]}
    # add/subtract clamp to 0..1
    assert m.MaskComposite().run(dst, src, 0, 0, "add")[0].max() == 1.0
    assert m.MaskComposite().run(dst, src, 0, 0, "subtract")[0].min() == 0.0
    # a source hanging over the edge only affects the overlap
    out = m.MaskComposite().run(torch.zeros((1, 3, 3)), torch.ones((1, 3, 3)), 2, 2, "add")[0]
    assert out.sum() == 1.0 and out[0, 2, 2] == 1.0


def test_feather_mask_ramps() -> None:
    mask = torch.ones((1, 4, 8))
    out = m.FeatherMask().run(mask, 4, 0, 2, 0)[0][0, 0]
    assert out.tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 0.5])
    out = m.FeatherMask().run(mask, 0, 2, 0, 0)[0][0, :, 5]
    assert out.tolist() == pytest.approx([0.5, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("n", [1, 2])
def test_grow_mask_by_n_pixels(n: int) -> None:
    mask = square()
    square_grown = m.GrowMask().run(mask, n, False)[0]
    assert torch.equal(square_grown, square(9, 3 - n, 6 + n))  # a square grows by n on every side
    tapered = m.GrowMask().run(mask, n, True)[0]
    # the plus-shaped footprint grows edges by n but rounds the corners off
    assert tapered[0, 4, 3 - n] == 1 and tapered[0, 3 - n, 4] == 1
    assert tapered[0, 3 - n, 3 - n] == 0
    assert tapered.sum() < square_grown.sum()


def test_grow_mask_negative_shrinks_and_keeps_values() -> None:
    mask = square(9, 2, 7) * 0.8
    out = m.GrowMask().run(mask, -1, False)[0]
    assert torch.equal(out, square(9, 3, 6) * 0.8)
    assert torch.equal(m.GrowMask().run(mask, 0, True)[0], mask)
    # the border repeats outwards: a full mask stays full when shrunk
    assert torch.all(m.GrowMask().run(torch.ones((1, 5, 5)), -2, True)[0] == 1)


def test_mask_preview_writes_a_temp_image(weft_home) -> None:
    result = m.MaskPreview().run(square())
    (entry,) = result.ui["images"]
    assert entry["type"] == "temp" and (weft_home.temp / entry["filename"]).is_file()
