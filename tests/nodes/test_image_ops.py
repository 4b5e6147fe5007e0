"""IMAGE nodes: compositing, cropping, batches, blending, filters, quantization, stitching, Canny."""

from __future__ import annotations

import pytest
import torch

from nodes import image_ops as io
from nodes.canny import Canny, canny_edges


def test_empty_image_colour() -> None:
    image = io.EmptyImage().run(5, 3, 2, 0xFF8000)[0]
    assert image.shape == (2, 3, 5, 3)
    assert image[1, 2, 4].tolist() == pytest.approx([1.0, 128 / 255, 0.0])


def test_pad_for_outpaint() -> None:
    image = torch.rand((1, 20, 30, 3))
    padded, mask = io.ImagePadForOutpaint().run(image, 8, 0, 0, 16, 0)
    assert padded.shape == (1, 36, 38, 3) and mask.shape == (1, 36, 38)
    assert torch.equal(padded[:, :20, 8:, :], image)
    assert torch.all(padded[:, 20:, :, :] == 0.5) and torch.all(padded[:, :, :8, :] == 0.5)
    assert torch.all(mask[0, :20, 8:] == 0) and torch.all(mask[0, 20:] == 1) and torch.all(mask[0, :, :8] == 1)
    # feathering: the mask fades in quadratically towards the padded sides only
    _, mask = io.ImagePadForOutpaint().run(image, 8, 0, 0, 0, 4)
    inside = mask[0, :, 8:]
    assert inside[10, 0] == 1.0 and inside[10, 1] == pytest.approx((3 / 4) ** 2) and inside[10, 4] == 0
    assert inside[0, 10] == 0  # the top was not padded: no fade there


def test_image_composite_masked() -> None:
    dst = torch.zeros((1, 6, 6, 3))
    src = torch.ones((1, 2, 3, 3))
    out = io.ImageCompositeMasked().run(dst, src, 2, 1, False)[0]
    assert out.sum() == 2 * 3 * 3 and torch.all(out[:, 1:3, 2:5] == 1)
    mask = torch.tensor([[[0.0, 1.0, 0.5], [1.0, 0.0, 0.25]]])
    out = io.ImageCompositeMasked().run(dst, src, 4, 4, False, mask)[0]
    assert out[0, 4:6, 4:6, 0].tolist() == [[0.0, 1.0], [1.0, 0.0]]  # mask weights; the third column is off-image
    out = io.ImageCompositeMasked().run(dst, src, 0, 0, True)[0]
    assert torch.all(out == 1)  # resize_source stretches the source over the destination
    # an RGBA destination gets an RGB source pasted; an RGB one gets an opaque alpha first
    assert io.ImageCompositeMasked().run(torch.zeros((1, 4, 4, 4)), src, 0, 0, False)[0].shape == (1, 4, 4, 4)


def test_crop_repeat_from_batch() -> None:
    image = torch.rand((3, 8, 10, 3))
    assert torch.equal(io.ImageCrop().run(image, 4, 3, 2, 1)[0], image[:, 1:4, 2:6])
    assert io.ImageCrop().run(image, 512, 512, 100, 100)[0].shape == (3, 1, 1, 3)  # x, y moved to the last pixel
    assert io.RepeatImageBatch().run(image, 2)[0].shape == (6, 8, 10, 3)
    assert torch.equal(io.ImageFromBatch().run(image, 1, 5)[0], image[1:])
    assert torch.equal(io.ImageFromBatch().run(image, 10, 1)[0], image[2:])


def test_blend_modes() -> None:
    a = torch.full((1, 2, 2, 3), 0.4)
    b = torch.full((1, 2, 2, 3), 0.8)
    expect = {
        "normal": 0.8,
        "multiply": 0.32,
        "screen": 1 - 0.6 * 0.2,
        "overlay": 2 * 0.4 * 0.8,
        "difference": 0.0,
    }  # 0.4 - 0.8 clamps to 0
    for mode, value in expect.items():
        out = io.ImageBlend().run(a, b, 1.0, mode)[0]
        assert torch.allclose(out, torch.tensor(value)), mode
    half = io.ImageBlend().run(a, b, 0.5, "normal")[0]
    assert torch.allclose(half, torch.tensor(0.6))
    # soft light with a mid-grey layer leaves the base unchanged
    assert torch.allclose(io.ImageBlend().run(a, torch.full_like(a, 0.5), 1.0, "soft_light")[0], a)
    # a differently sized image2 is resized to image1
    assert io.ImageBlend().run(a, torch.rand((1, 5, 7, 3)), 0.5, "multiply")[0].shape == a.shape


def test_blur_and_sharpen() -> None:
    flat = torch.full((1, 7, 7, 3), 0.3)
    assert torch.allclose(io.ImageBlur().run(flat, 2, 1.0)[0], flat)
    assert torch.allclose(io.ImageSharpen().run(flat, 2, 1.0, 1.0)[0], flat)
    dot = torch.zeros((1, 9, 9, 3))
    dot[0, 4, 4] = 1.0
    blurred = io.ImageBlur().run(dot, 1, 1.0)[0]
    assert blurred.sum().item() == pytest.approx(3.0, abs=1e-5)  # energy kept
    assert blurred[0, 4, 4, 0] < 1.0 and blurred[0, 3, 4, 0] > 0 and blurred[0, 2, 4, 0] == 0
    edge = torch.zeros((1, 8, 8, 1))
    edge[:, :, 4:] = 0.6
    sharp = io.ImageSharpen().run(edge, 1, 1.0, 0.5)[0]
    assert sharp[0, 3, 3, 0] == 0 and sharp[0, 3, 4, 0] > 0.6  # overshoot on the bright side, clamped at 0


def test_quantize() -> None:
    gradient = torch.linspace(0, 1, 64).view(1, 1, 64, 1).expand(1, 8, 64, 3).contiguous()
    for dither in ["none", "floyd-steinberg", "bayer-4"]:
        out = io.ImageQuantize().run(gradient, 4, dither)[0]
        assert out.shape == gradient.shape
        assert len(torch.unique(out[..., 0])) <= 4, dither
    assert (io.ImageQuantize().run(gradient, 256, "none")[0] - gradient).abs().max() < 6 / 255  # PIL median cut
    matrix = io.bayer_matrix(4)
    # an ordered-dither matrix: the 16 thresholds are evenly spaced and centred on 0
    assert matrix.shape == (4, 4)
    assert sorted(matrix.flatten().tolist()) == pytest.approx([(k - 7.5) / 16 for k in range(16)])


def test_stitch() -> None:
    a = torch.zeros((1, 4, 6, 3))
    b = torch.ones((2, 4, 2, 3))
    out = io.ImageStitch().run(a, "right", True, 0, "white", b)[0]
    assert out.shape == (2, 4, 8, 3) and torch.all(out[:, :, 6:] == 1) and torch.all(out[:, :, :6] == 0)
    out = io.ImageStitch().run(a, "left", False, 2, "red", b)[0]
    assert out.shape == (2, 4, 10, 3)
    assert out[0, 0, 2].tolist() == [1.0, 0.0, 0.0] and torch.all(out[:, :, :2] == 1)
    out = io.ImageStitch().run(a, "down", True, 0, "black", b)[0]
    assert out.shape == (2, 4 + 12, 6, 3)  # image2 scaled to image1's width, its aspect kept
    out = io.ImageStitch().run(a, "up", False, 0, "black", torch.ones((1, 2, 3, 3)))[0]
    assert out.shape == (1, 6, 6, 3) and torch.all(out[0, :2, :1] == 0) and torch.all(out[0, :2, 1:4] == 1)
    assert io.ImageStitch().run(a, "right", True, 0, "white")[0] is a


def test_canny_finds_the_edges_of_a_square() -> None:
    image = torch.zeros((1, 32, 32, 3))
    image[:, 8:24, 8:24] = 1.0
    edges = Canny().run(image, 0.4, 0.8)[0]
    assert edges.shape == (1, 32, 32, 3) and torch.equal(edges[..., 0], edges[..., 2])
    e = edges[0, :, :, 0]
    assert set(e.unique().tolist()) <= {0.0, 1.0}
    assert e[:, 2:6].sum() == 0 and e[12:20, 12:20].sum() == 0  # nothing in flat areas
    rows = e[8:24].sum(dim=1)
    assert torch.all(rows >= 2)  # each row of the square has its left and right edge
    assert e[16].nonzero().flatten().tolist() in ([7, 23], [8, 24], [7, 24], [8, 23])  # thin: one pixel
    cols = e[:, 16].nonzero().flatten().tolist()
    assert len(cols) == 2


def test_canny_thresholds_and_hysteresis() -> None:
    # a step whose strength varies along it: strong at the top, weak at the bottom
    image = torch.zeros((1, 1, 24, 24))
    image[0, 0, :, 12:] = torch.linspace(1.0, 0.3, 24).view(24, 1)
    magnitude, _ = canny_edges(image, 0.1, 0.2)
    strong_row, weak_row = magnitude[0, 0, 2].max(), magnitude[0, 0, 21].max()
    low, high = float(weak_row) * 0.9, float(strong_row) * 0.9
    _, edges = canny_edges(image, low, high)
    assert edges[0, 0, 21].sum() >= 1  # weak, but connected to the strong part: kept
    _, edges = canny_edges(image, float(weak_row) * 1.01, high)
    assert edges[0, 0, 21].sum() == 0
    with pytest.raises(ValueError, match="low_threshold"):
        Canny().run(torch.zeros((1, 8, 8, 3)), 0.8, 0.4)
    # raising the high threshold past every magnitude leaves nothing
    _, edges = canny_edges(image, 0.01, float(magnitude.max()) * 1.1)
    assert edges.sum() == 0
