"""UpscaleModelLoader and ImageUpscaleWithModel on tiny real upscale networks.

The files are written here in the published key layouts (ESRGAN's ``model.N``, BasicSR's
``conv_first/body``, Real-ESRGAN's compact ``body.N``) with seeded random weights, and the
expected pixels come from the networks and the tiling written out below from the papers and
from ComfyUI's published tiling rule, never from Weft's modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from nodes.upscale.detect import UnsupportedUpscaleModel, detect
from nodes.upscale.model import UpscaleModel
from nodes.upscale.nodes import ImageUpscaleWithModel, UpscaleModelLoader
from nodes.upscale.tiling import halving_on_oom, tile_count, tiled_scale

#: float32 on the CPU agrees to rounding; on a GPU the manager's device computes convolutions in TF32
TOL = 1e-5 if not torch.cuda.is_available() else 3e-3

# -- files in the published layouts --------------------------------------------------------------


def _conv(sd: dict, name: str, cin: int, cout: int, g: torch.Generator) -> None:
    sd[f"{name}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (0.6 / (cin * 9) ** 0.5)
    sd[f"{name}.bias"] = torch.randn(cout, generator=g) * 0.05


def rrdb_basicsr(features=8, growth=4, blocks=2, ups=2, cin=3, cout=3, seed=0) -> dict[str, torch.Tensor]:
    """Real-ESRGAN / BasicSR names; the last bias is 0.5 so outputs sit mid-range, not clamped away."""
    g, sd = torch.Generator().manual_seed(seed), {}
    _conv(sd, "conv_first", cin, features, g)
    for i in range(blocks):
        for k in (1, 2, 3):
            for j in range(1, 6):
                _conv(sd, f"body.{i}.rdb{k}.conv{j}", features + (j - 1) * growth, growth if j < 5 else features, g)
    _conv(sd, "conv_body", features, features, g)
    for u in range(ups):
        _conv(sd, f"conv_up{u + 1}", features, features, g)
    _conv(sd, "conv_hr", features, features, g)
    _conv(sd, "conv_last", features, cout, g)
    sd["conv_last.bias"] = sd["conv_last.bias"] + 0.5
    return sd


def to_esrgan(sd: dict[str, torch.Tensor], blocks: int, ups: int) -> dict[str, torch.Tensor]:
    """The same tensors under ESRGAN's original names: one Sequential ``model`` (conv, shortcut
    block of RRDBs + conv, [upsample, conv, lrelu] per x2 stage, conv, lrelu, conv)."""
    top = {"conv_first": 0, "conv_hr": 2 + 3 * ups, "conv_last": 4 + 3 * ups}
    top.update({f"conv_up{u + 1}": 3 + 3 * u for u in range(ups)})
    out = {}
    for key, value in sd.items():
        module, param = key.rsplit(".", 1)
        if module.startswith("body."):
            _, i, rdb, conv = module.split(".")
            out[f"model.1.sub.{i}.RDB{rdb[-1]}.{conv}.0.{param}"] = value
        elif module == "conv_body":
            out[f"model.1.sub.{blocks}.{param}"] = value
        else:
            out[f"model.{top[module]}.{param}"] = value
    return out


def compact(features=8, inner=3, scale=4, cin=3, seed=0) -> dict[str, torch.Tensor]:
    g, sd = torch.Generator().manual_seed(seed), {}
    _conv(sd, "body.0", cin, features, g)
    for i in range(inner + 1):
        if i:
            _conv(sd, f"body.{2 * i}", features, features, g)
        sd[f"body.{2 * i + 1}.weight"] = torch.rand(features, generator=g) * 0.3  # PReLU slopes
    _conv(sd, f"body.{2 * inner + 2}", features, cin * scale * scale, g)
    return sd


# -- the networks, written out from the papers -----------------------------------------------------


def _c(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=1)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


def ref_rrdbnet(sd: dict, x: torch.Tensor, blocks: int, ups: int, unshuffle: int = 1) -> torch.Tensor:
    if unshuffle > 1:
        x = F.pixel_unshuffle(x, unshuffle)
    fea = _c(x, sd, "conv_first")
    trunk = fea
    for i in range(blocks):
        h = trunk
        for k in (1, 2, 3):
            feats = [h]
            for j in range(1, 5):
                feats.append(_lrelu(_c(torch.cat(feats, 1), sd, f"body.{i}.rdb{k}.conv{j}")))
            h = h + 0.2 * _c(torch.cat(feats, 1), sd, f"body.{i}.rdb{k}.conv5")
        trunk = trunk + 0.2 * h
    fea = fea + _c(trunk, sd, "conv_body")
    for u in range(ups):
        fea = _lrelu(_c(F.interpolate(fea, scale_factor=2, mode="nearest"), sd, f"conv_up{u + 1}"))
    return _c(_lrelu(_c(fea, sd, "conv_hr")), sd, "conv_last")


def ref_compact(sd: dict, x: torch.Tensor, inner: int, scale: int) -> torch.Tensor:
    h = x
    for i in range(inner + 1):
        h = F.prelu(_c(h, sd, f"body.{2 * i}"), sd[f"body.{2 * i + 1}.weight"])
    out = F.pixel_shuffle(_c(h, sd, f"body.{2 * inner + 2}"), scale)
    return out + F.interpolate(x, scale_factor=scale, mode="nearest")


def ref_tiled(x: torch.Tensor, fn: Any, scale: int, tile: int, overlap: int) -> torch.Tensor:
    """ComfyUI's tiled_scale rule: tiles every tile-overlap px, each weighted by a mask rising
    (t+1)/f over f = overlap*scale px from all its edges, summed and divided by the mask sums."""
    b, c, h, w = x.shape
    out, div = torch.zeros(b, c, h * scale, w * scale), torch.zeros(b, c, h * scale, w * scale)
    if h <= tile and w <= tile:
        return fn(x)
    f = overlap * scale
    for y in range(0, h - overlap, tile - overlap) if h > tile else [0]:
        for x0 in range(0, w - overlap, tile - overlap) if w > tile else [0]:
            part = fn(x[:, :, y : y + tile, x0 : x0 + tile])
            mask = torch.ones_like(part)
            for d in (2, 3):
                if f < mask.shape[d]:
                    for t in range(f):
                        mask.narrow(d, t, 1).mul_((t + 1) / f)
                        mask.narrow(d, mask.shape[d] - 1 - t, 1).mul_((t + 1) / f)
            ys, xs = slice(y * scale, y * scale + part.shape[2]), slice(x0 * scale, x0 * scale + part.shape[3])
            out[:, :, ys, xs] += part * mask
            div[:, :, ys, xs] += mask
    return out / div


# -- helpers ----------------------------------------------------------------------------------------


def save(home: Any, name: str, sd: dict[str, torch.Tensor]) -> str:
    path = home.models / "upscale_models" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith((".safetensors", ".sft")):
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, str(path))
    return name


def image(b: int, h: int, w: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, h, w, 3, generator=torch.Generator().manual_seed(seed))


def nchw(img: torch.Tensor) -> torch.Tensor:
    return img.movedim(-1, 1)


# -- detection and the networks --------------------------------------------------------------------

RRDB_CASES = [  # (layout, ups, input channels, scale, unshuffle)
    ("basicsr", 2, 3, 4, 1),
    ("basicsr", 2, 12, 2, 2),  # Real-ESRGAN x2: the x4 trunk on a pixel-unshuffled image
    ("basicsr", 2, 48, 1, 4),
    ("esrgan", 2, 3, 4, 1),
    ("esrgan", 1, 3, 2, 1),
    ("esrgan", 0, 3, 1, 1),
    ("esrgan", 3, 3, 8, 1),
]


@pytest.mark.parametrize(("layout", "ups", "cin", "scale", "unshuffle"), RRDB_CASES)
def test_rrdbnet_layouts_load_and_match_the_paper(weft_home, layout, ups, cin, scale, unshuffle) -> None:
    sd = rrdb_basicsr(ups=ups, cin=cin, seed=ups + cin)
    file_sd = to_esrgan(sd, 2, ups) if layout == "esrgan" else sd
    (model,) = UpscaleModelLoader().run(save(weft_home, f"{layout}-{ups}-{cin}.safetensors", file_sd))
    assert (model.architecture, model.scale, model.input_channels, model.output_channels) == ("RRDBNet", scale, 3, 3)
    assert (model.spec.layout, model.spec.blocks, model.spec.features, model.spec.growth) == (layout, 2, 8, 4)
    img = image(2, 12, 8)
    (out,) = ImageUpscaleWithModel().run(model, img)
    assert out.shape == (2, 12 * scale, 8 * scale, 3) and out.dtype == torch.float32
    expected = ref_rrdbnet(sd, nchw(img), 2, ups, unshuffle).clamp(0, 1).movedim(1, -1)
    torch.testing.assert_close(out, expected, rtol=0, atol=TOL)
    assert 0 < out.min() and out.max() < 1 and out.std() > 0.01  # nothing hidden by the clamp


def test_both_rrdb_layouts_are_the_same_network(weft_home) -> None:
    sd = rrdb_basicsr(seed=7)
    (a,) = UpscaleModelLoader().run(save(weft_home, "new.safetensors", sd))
    (b,) = UpscaleModelLoader().run(save(weft_home, "old.safetensors", to_esrgan(sd, 2, 2)))
    img = image(1, 10, 14)
    assert torch.equal(ImageUpscaleWithModel().run(a, img)[0], ImageUpscaleWithModel().run(b, img)[0])


@pytest.mark.parametrize("scale", [4, 2, 1])
def test_compact_matches_the_paper(weft_home, scale) -> None:
    sd = compact(scale=scale, seed=scale)
    (model,) = UpscaleModelLoader().run(save(weft_home, f"compact-x{scale}.safetensors", sd))
    assert (model.architecture, model.scale, model.spec.blocks, model.spec.features) == ("SRVGGNetCompact", scale, 3, 8)
    img = image(1, 9, 13)
    (out,) = ImageUpscaleWithModel().run(model, img)
    expected = ref_compact(sd, nchw(img), 3, scale).clamp(0, 1).movedim(1, -1)
    assert out.shape == (1, 9 * scale, 13 * scale, 3)
    torch.testing.assert_close(out, expected, rtol=0, atol=TOL)


def test_unshuffled_models_pad_sides_that_are_not_multiples_of_four(weft_home) -> None:
    """Real-ESRGAN x2 on 13x10: padded by reflection to 16x12 (spandrel's rule), cropped back."""
    sd = rrdb_basicsr(cin=12, seed=3)
    (model,) = UpscaleModelLoader().run(save(weft_home, "x2.safetensors", sd))
    img = image(1, 13, 10)
    (out,) = ImageUpscaleWithModel().run(model, img)
    padded = F.pad(nchw(img), (0, 2, 0, 3), mode="reflect")
    expected = ref_rrdbnet(sd, padded, 2, 2, 2)[:, :, :26, :20].clamp(0, 1).movedim(1, -1)
    torch.testing.assert_close(out, expected, rtol=0, atol=TOL)


# -- tiling -------------------------------------------------------------------------------------------


def test_tiling_follows_comfyui_rule_and_matches_an_untiled_run(weft_home) -> None:
    sd = compact(scale=2, seed=5)
    (model,) = UpscaleModelLoader().run(save(weft_home, "c2.safetensors", sd))
    img = image(2, 40, 601)  # wider than a 512 tile: tiles at x = 0 and 480 (the last 121 wide)
    steps: list[tuple[int, int]] = []
    out = tiled_scale(nchw(img), model, 2, 512, 32, 3, lambda done, total: steps.append((done, total)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)] and tile_count(40, 601, 512, 32) == 2

    def net(t: torch.Tensor) -> torch.Tensor:
        return ref_compact(sd, t, 3, 2).clamp(0, 1)

    torch.testing.assert_close(out, ref_tiled(nchw(img), net, 2, 512, 32), rtol=0, atol=TOL)
    (node_out,) = ImageUpscaleWithModel().run(model, img)
    torch.testing.assert_close(node_out, out.movedim(1, -1), rtol=0, atol=0)
    # against one pass over the whole image: only where a tile edge cut the receptive field
    whole = net(nchw(img)).movedim(1, -1)
    diff = (node_out - whole).abs()
    assert diff.max() < 0.01 and diff.mean() < 1e-4
    assert diff[:, :, :900].max() < TOL  # left of the overlap (input x < 450)
    assert diff[:, :, 1040:].max() < TOL  # right of it (input x > 520)


def test_rrdb_tiled_with_small_tiles_matches_untiled(weft_home) -> None:
    sd = rrdb_basicsr(seed=11)
    (model,) = UpscaleModelLoader().run(save(weft_home, "r4.safetensors", sd))
    x = nchw(image(1, 40, 52))
    with torch.no_grad():
        tiled = tiled_scale(x, model, 4, 24, 8, 3)
        whole = model(x).cpu()
    assert tiled.shape == whole.shape == (1, 3, 160, 208)
    torch.testing.assert_close(tiled, ref_tiled(x, model, 4, 24, 8), rtol=0, atol=TOL)
    diff = (tiled - whole).abs()
    assert diff.mean() < 1e-3 and diff.max() < 0.02


def test_out_of_memory_halves_the_tile_down_to_128() -> None:
    tried: list[int] = []

    def run(tile: int) -> torch.Tensor:
        tried.append(tile)
        if tile > 200:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return torch.zeros(1)

    halving_on_oom(run)
    assert tried == [512, 256, 128]
    tried.clear()

    def never(tile: int) -> torch.Tensor:
        tried.append(tile)
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        halving_on_oom(never)
    assert tried == [512, 256, 128]


def test_the_node_retries_with_smaller_tiles_on_out_of_memory(weft_home, monkeypatch) -> None:
    sd = compact(scale=2, seed=6)
    (model,) = UpscaleModelLoader().run(save(weft_home, "oom.safetensors", sd))
    module = model.handle.on_device()
    forward = module.forward
    sizes: list[int] = []

    def limited(x: torch.Tensor) -> torch.Tensor:
        sizes.append(x.shape[-1])
        if x.shape[-1] > 300:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return forward(x)

    monkeypatch.setattr(module, "forward", limited)
    img = image(1, 20, 600)
    (out,) = ImageUpscaleWithModel().run(model, img)
    assert sizes[0] == 512 and max(sizes[1:]) == 256

    def net(t: torch.Tensor) -> torch.Tensor:
        return ref_compact(sd, t, 3, 2).clamp(0, 1)

    torch.testing.assert_close(out, ref_tiled(nchw(img), net, 2, 256, 32).movedim(1, -1), rtol=0, atol=TOL)


# -- files and errors ---------------------------------------------------------------------------------


def test_pth_files_load_when_trusted_including_real_esrgan_wrappers(weft_home) -> None:
    from nodes.diffusion.detect import UnsafeFileError

    sd = compact(scale=4, seed=8)
    save(weft_home, "general-x4v3.pth", {"params": sd})  # realesr-general-x4v3.pth's shape
    save(weft_home, "x4plus.pth", {"params_ema": rrdb_basicsr(seed=9), "params": rrdb_basicsr(seed=10)})
    save(weft_home, "dp.pt", {f"module.{k}": v for k, v in to_esrgan(rrdb_basicsr(seed=9), 2, 2).items()})
    with pytest.raises(UnsafeFileError, match=r"UpscaleModelLoader: model_name: general-x4v3.pth.*trusted_pickles"):
        UpscaleModelLoader().run("general-x4v3.pth")
    trust = "upscale_models/general-x4v3.pth\nupscale_models/x4plus.pth\nupscale_models/dp.pt\n"
    (weft_home.models / "trusted_pickles.txt").write_text(trust)
    img = image(1, 8, 8)
    (model,) = UpscaleModelLoader().run("general-x4v3.pth")
    expected = ref_compact(sd, nchw(img), 3, 4).clamp(0, 1).movedim(1, -1)
    torch.testing.assert_close(ImageUpscaleWithModel().run(model, img)[0], expected, rtol=0, atol=TOL)
    (ema,) = UpscaleModelLoader().run("x4plus.pth")  # the EMA weights, as Real-ESRGAN uses
    (wrapped,) = UpscaleModelLoader().run("dp.pt")  # DataParallel's "module." prefix
    expected = ref_rrdbnet(rrdb_basicsr(seed=9), nchw(img), 2, 2).clamp(0, 1).movedim(1, -1)
    torch.testing.assert_close(ImageUpscaleWithModel().run(ema, img)[0], expected, rtol=0, atol=TOL)
    torch.testing.assert_close(ImageUpscaleWithModel().run(wrapped, img)[0], expected, rtol=0, atol=TOL)


def test_unknown_layouts_are_refused_naming_node_file_and_architectures(weft_home) -> None:
    swinir = {
        "conv_first.weight": torch.zeros(60, 3, 3, 3),
        "layers.0.residual_group.blocks.0.norm1.weight": torch.zeros(60),
    }
    save(weft_home, "swinir.safetensors", swinir)
    with pytest.raises(UnsupportedUpscaleModel) as info:
        UpscaleModelLoader().run("swinir.safetensors")
    message = str(info.value)
    for part in ("UpscaleModelLoader", "model_name", "'swinir.safetensors'", "RRDBNet", "SRVGGNetCompact", "ESRGAN"):
        assert part in message
    broken = rrdb_basicsr()
    del broken["conv_hr.weight"]
    save(weft_home, "broken.safetensors", broken)
    with pytest.raises(UnsupportedUpscaleModel, match=r"'broken.safetensors'.*missing: conv_hr.weight"):
        UpscaleModelLoader().run("broken.safetensors")
    odd = compact(scale=4)
    odd["body.8.weight"] = odd["body.8.weight"][:40]  # 40 = 3 * s^2 has no whole scale
    odd["body.8.bias"] = odd["body.8.bias"][:40]
    save(weft_home, "odd.safetensors", odd)
    with pytest.raises(UnsupportedUpscaleModel, match="not an SRVGGNetCompact"):
        UpscaleModelLoader().run("odd.safetensors")
    with pytest.raises(ValueError, match="model_name.*not found.*upscale_models"):
        UpscaleModelLoader().run("missing.pth")


def test_detection_refuses_esrgan_trunks_of_another_shape() -> None:
    shapes = {k: tuple(v.shape) for k, v in to_esrgan(rrdb_basicsr(), 2, 2).items()}
    shapes["model.5.weight"] = (8, 8, 3, 3)  # a convolution where ESRGAN has an activation
    with pytest.raises(UnsupportedUpscaleModel, match="does not follow the RRDBNet layout"):
        detect(shapes)


def test_upscale_node_input_errors(weft_home) -> None:
    with pytest.raises(ValueError, match="ImageUpscaleWithModel: input 'upscale_model' must be an UPSCALE_MODEL"):
        ImageUpscaleWithModel().run("not a model", image(1, 4, 4))
    (model,) = UpscaleModelLoader().run(save(weft_home, "c.safetensors", compact(scale=2)))
    rgba = torch.rand(1, 4, 4, 4)
    with pytest.raises(ValueError, match="input 'image' has 4 channels but the upscale model 'c.safetensors' takes 3"):
        ImageUpscaleWithModel().run(model, rgba)
    with pytest.raises(ValueError, match="input 'image' is not an IMAGE"):
        ImageUpscaleWithModel().run(model, torch.rand(4, 4, 3))


# -- the catalogue and a whole prompt --------------------------------------------------------------------


def test_object_info_lists_the_folder_and_its_files(weft_home) -> None:
    from nodes.registry import builtin_registry
    from server.object_info import describe

    save(weft_home, "a.safetensors", compact(scale=2))
    save(weft_home, "b.sft", compact(scale=2))
    info = describe(builtin_registry()["UpscaleModelLoader"].schema)
    spec = info["input"]["required"]["model_name"]
    assert spec[0] == ["a.safetensors", "b.sft"] and spec[1]["model_folder"] == "upscale_models"
    assert info["output"] == ["UPSCALE_MODEL"] and info["category"] == "loaders"
    assert isinstance(UpscaleModelLoader().run("b.sft")[0], UpscaleModel)


def test_a_prompt_runs_loader_upscale_and_preview(weft_home) -> None:
    from PIL import Image

    from engine import Executor, normalise_prompt, validate_prompt
    from nodes.registry import builtin_registry

    save(weft_home, "c2.safetensors", compact(scale=2, seed=12))
    prompt = {
        "1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "c2.safetensors"}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 600, "height": 24, "batch_size": 1, "color": 0x336699}},
        "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["1", 0], "image": ["2", 0]}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    registry = builtin_registry()
    checked = validate_prompt(normalise_prompt(prompt), registry)
    assert checked.ok, checked.node_errors
    events: list[tuple[str, Any]] = []
    result = Executor(registry).execute_sync(
        "p", checked.prompt, checked.outputs, order=checked.order, emit=lambda e, d: events.append((e, d))
    )
    assert result.status_str == "success", result.error
    progress = [(d["value"], d["max"]) for e, d in events if e == "progress" and d["node"] == "3"]
    assert progress == [(1, 2), (2, 2)]
    (entry,) = result.outputs["4"]["images"]
    with Image.open(Path(weft_home.temp) / entry["subfolder"] / entry["filename"]) as picture:
        assert picture.size == (1200, 48)
