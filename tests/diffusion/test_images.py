"""Image file and IMAGE nodes: LoadImage/LoadImageMask, SaveImage/PreviewImage naming and
metadata, resizing, batches, and file fingerprints through the engine's cache."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import nodes.paths as paths_module
from engine import Executor, validate_prompt
from nodes.diffusion import image as im
from nodes.registry import builtin_registry


@pytest.fixture
def home(tmp_path):
    with paths_module.using(paths_module.Paths.at(tmp_path)) as paths:
        yield paths


def _write_rgba(path, size=(20, 12), alpha=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGBA", size, (255, 0, 0, alpha))
    img.putpixel((0, 0), (0, 255, 0, 255))
    img.save(path)
    return path


def test_load_image_gives_image_and_inverted_alpha_mask(home):
    _write_rgba(home.input / "red.png")
    image, mask = im.LoadImage().run("red.png")
    assert image.shape == (1, 12, 20, 3) and image.dtype == torch.float32
    assert torch.allclose(image[0, 5, 5], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(image[0, 0, 0], torch.tensor([0.0, 1.0, 0.0]))
    assert mask.shape == (1, 12, 20)
    assert abs(float(mask[0, 5, 5]) - (1 - 128 / 255)) < 1e-6 and float(mask[0, 0, 0]) == 0.0


def test_load_image_without_alpha_has_empty_mask_and_lists_subfolders(home):
    (home.input / "sub").mkdir()
    Image.new("RGB", (16, 16), (0, 0, 255)).save(home.input / "sub" / "blue.jpg")
    (home.input / "notes.txt").write_text("not an image")
    assert im.input_images() == ["sub/blue.jpg"]
    image, mask = im.LoadImage().run("sub/blue.jpg")
    assert image.shape == (1, 16, 16, 3) and float(image[..., 2].mean()) > 0.9
    assert mask.shape == (1, 64, 64) and float(mask.abs().sum()) == 0.0


def test_load_image_errors_name_the_input(home):
    message = im.LoadImage.validate(image="missing.png")
    assert "image" in message and "missing.png" in message
    with pytest.raises(FileNotFoundError, match="input 'image'"):
        im.LoadImage().run("missing.png")
    with pytest.raises(ValueError, match="input 'image'"):
        im.LoadImage().run("../outside.png")
    (home.input / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="input 'image'.*not a readable image"):
        im.LoadImage().run("broken.png")


def test_load_image_mask_channels(home):
    img = Image.new("RGBA", (8, 8), (255, 51, 0, 0))
    img.save(home.input / "m.png")
    assert float(im.LoadImageMask().run("m.png", "alpha")[0].mean()) == 1.0
    assert float(im.LoadImageMask().run("m.png", "red")[0].mean()) == 1.0
    assert abs(float(im.LoadImageMask().run("m.png", "green")[0].mean()) - 0.2) < 1e-6
    Image.new("RGB", (8, 8)).save(home.input / "rgb.png")
    assert im.LoadImageMask().run("rgb.png", "alpha")[0].shape == (1, 64, 64)


def test_save_image_names_counters_subfolders_and_metadata(home):
    images = torch.rand((2, 10, 14, 3))
    prompt = {"1": {"class_type": "X", "inputs": {}}}
    extra = {"workflow": {"nodes": [], "links": []}}
    ui = im.SaveImage().run(images, "run/pic", prompt, extra).ui
    assert ui == {
        "images": [
            {"filename": "pic_00001_.png", "subfolder": "run", "type": "output"},
            {"filename": "pic_00002_.png", "subfolder": "run", "type": "output"},
        ]
    }
    again = im.SaveImage().run(images[:1], "run/pic", prompt, extra).ui
    assert again["images"][0]["filename"] == "pic_00003_.png"
    saved = Image.open(home.output / "run" / "pic_00001_.png")
    assert saved.size == (14, 10)
    assert json.loads(saved.text["prompt"]) == prompt
    assert json.loads(saved.text["workflow"]) == extra["workflow"]
    pixels = torch.from_numpy(np.asarray(saved.convert("RGB"), dtype=np.float32)).reshape(10, 14, 3) / 255
    assert torch.allclose(pixels, images[0], atol=1 / 255)
    sized = im.SaveImage().run(images[:1], "%width%x%height%", None, None).ui
    assert sized["images"][0]["filename"] == "14x10_00001_.png"
    assert "prompt" not in Image.open(home.output / "14x10_00001_.png").text


def test_save_image_refuses_to_leave_the_output_folder(home):
    with pytest.raises(ValueError, match="filename_prefix"):
        im.SaveImage().run(torch.rand((1, 8, 8, 3)), "../escape", None, None)
    with pytest.raises(ValueError, match="images"):
        im.SaveImage().run(torch.rand((8, 8, 3)), "x", None, None)


def test_preview_image_goes_to_temp(home):
    ui = im.PreviewImage().run(torch.rand((1, 8, 8, 3))).ui
    entry = ui["images"][0]
    assert entry["type"] == "temp" and (home.temp / entry["filename"]).is_file()


def test_scale_invert_batch():
    image = torch.rand((2, 16, 32, 3))
    assert im.ImageScale().run(image, "bilinear", 64, 0, "disabled")[0].shape == (2, 32, 64, 3)
    assert im.ImageScale().run(image, "nearest-exact", 16, 16, "center")[0].shape == (2, 16, 16, 3)
    lanczos = im.ImageScaleBy().run(image, "lanczos", 0.5)[0]
    assert lanczos.shape == (2, 8, 16, 3) and 0 <= float(lanczos.min()) and float(lanczos.max()) <= 1
    assert im.ImageScaleBy().run(image, "area", 2.0)[0].shape == (2, 32, 64, 3)
    assert torch.allclose(im.ImageInvert().run(image)[0], 1 - image)
    other = torch.rand((1, 8, 8, 3))
    batch = im.ImageBatch().run(image, other)[0]
    assert batch.shape == (3, 16, 32, 3)
    with pytest.raises(ValueError, match="image2"):
        im.ImageBatch().run(image, torch.rand((1, 16, 32, 4)))


def test_engine_save_carries_prompt_and_load_image_follows_the_file(home):
    registry = builtin_registry()
    executor = Executor(registry)
    _write_rgba(home.input / "src.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "src.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}},
    }
    checked = validate_prompt(prompt, registry, ["3"])
    assert checked.ok, checked.node_errors
    extra = {"extra_pnginfo": {"workflow": {"version": 0.4}}}
    first = executor.execute_sync("a", checked.prompt, ["3"], order=checked.order, extra_data=extra)
    assert first.status_str == "success", first.error
    saved = first.outputs["3"]["images"][0]
    png = Image.open(home.output / saved["filename"])
    assert json.loads(png.text["prompt"])["1"]["inputs"]["image"] == "src.png"
    assert json.loads(png.text["workflow"]) == {"version": 0.4}
    same = executor.execute_sync("b", checked.prompt, ["3"], order=checked.order, extra_data=extra)
    assert same.executed == [] and "3" in same.cached  # nothing re-ran, nothing re-saved
    # new content (and mtime) under the same name: LoadImage and what follows run again
    Image.new("RGB", (20, 12), (0, 0, 0)).save(home.input / "src.png")
    stat = os.stat(home.input / "src.png")
    os.utime(home.input / "src.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = executor.execute_sync("c", checked.prompt, ["3"], order=checked.order, extra_data=extra)
    assert {"1", "2"} <= set(changed.executed)
    missing = dict(prompt, **{"1": {"class_type": "LoadImage", "inputs": {"image": "gone.png"}}})
    bad = validate_prompt(missing, registry, ["3"])
    assert not bad.ok and "1" in bad.node_errors


def test_load_image_accepts_comfyui_annotated_names(home):
    registry = builtin_registry()
    _write_rgba(home.output / "made.png", size=(8, 6))
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "made.png [output]"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    checked = validate_prompt(prompt, registry)
    assert checked.ok, checked.node_errors
    result = Executor(registry).execute_sync("a", checked.prompt, checked.outputs, order=checked.order)
    assert result.status_str == "success", result.error
    for bad in ("made.png [input]", "../made.png [output]", 5):
        prompt["1"]["inputs"]["image"] = bad
        errors = validate_prompt(prompt, registry).node_errors
        assert errors["1"]["errors"][0]["type"] == "custom_validation_failed"
        assert "image" in errors["1"]["errors"][0]["details"]
