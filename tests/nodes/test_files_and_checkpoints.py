"""File and checkpoint nodes on the tiny checkpoints: .latent files, LoadImageOutput,
VAEEncodeTiled, CheckpointLoader's config, CLIPMergeSimple, CheckpointSave round trips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from nodes import checkpoints, file_io
from nodes.model_patches import merging
from nodes.vae_tiled import VAEEncodeTiled


def test_save_and_load_latent(weft_home) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    samples = torch.randn((2, 4, 8, 8))
    result = file_io.SaveLatent().run(
        {"samples": samples}, "latents/test", prompt={"1": {}}, extra_pnginfo={"workflow": {"nodes": []}}
    )
    (entry,) = result.ui["latents"]
    assert entry == {"filename": "test_00001_.latent", "subfolder": "latents", "type": "output"}
    path = weft_home.output / "latents" / entry["filename"]
    with safe_open(str(path), "pt") as f:  # ComfyUI's format
        assert set(f.keys()) == {"latent_tensor", "latent_format_version_0"}
        assert json.loads(f.metadata()["workflow"]) == {"nodes": []}
    assert (
        file_io.SaveLatent().run({"samples": samples}, "latents/test").ui["latents"][0]["filename"]
        == "test_00002_.latent"
    )
    shutil.copy(path, weft_home.input / "a.latent")
    assert file_io.latent_files() == ["a.latent"]
    assert file_io.LoadLatent.validate(latent="a.latent") is True
    assert torch.equal(file_io.LoadLatent().run("a.latent")[0]["samples"], samples)
    assert torch.equal(file_io.LoadLatent().run(f"latents/{entry['filename']} [output]")[0]["samples"], samples)
    # files from before the format marker stored scaled latents
    save_file({"latent_tensor": samples * 0.18215}, str(weft_home.input / "old.latent"))
    torch.testing.assert_close(file_io.LoadLatent().run("old.latent")[0]["samples"], samples)
    assert "not found" in file_io.LoadLatent.validate(latent="missing.latent")
    assert file_io.LoadLatent.fingerprint(latent="a.latent") != file_io.LoadLatent.fingerprint(latent="old.latent")


def test_load_image_output(weft_home) -> None:
    from nodes.diffusion.image import SaveImage

    image = torch.rand((1, 6, 5, 3))
    SaveImage().run(image, "run/pic")
    choices = file_io.output_images()
    assert choices == ["run/pic_00001_.png [output]"]
    assert file_io.LoadImageOutput.validate(image=choices[0]) is True
    loaded, mask = file_io.LoadImageOutput().run(choices[0])
    assert loaded.shape == (1, 6, 5, 3) and (loaded - image).abs().max() <= 1 / 255 + 1e-6
    assert mask.shape == (1, 64, 64)  # no alpha: ComfyUI's empty mask


def test_vae_encode_tiled(model_home) -> None:
    from nodes.diffusion.loaders import CheckpointLoaderSimple

    _, _, vae = CheckpointLoaderSimple().run("tiny-sd1.safetensors")
    pixels = torch.rand((1, 128, 128, 3), generator=torch.Generator().manual_seed(2))
    whole = VAEEncodeTiled().run(pixels, vae, 512, 64)[0]["samples"]
    torch.testing.assert_close(whole, vae.encode(pixels), rtol=1e-4, atol=1e-4)
    tiled = VAEEncodeTiled().run(pixels, vae, 64, 32)[0]["samples"]
    assert tiled.shape == (1, 4, 16, 16)
    assert (tiled - whole).abs().mean() < (whole.abs().mean() * 0.5)


def test_checkpoint_loader_applies_the_config(model_home, tmp_path: Path) -> None:
    import nodes.paths as paths_module

    assert "v2-inference-v.yaml" in checkpoints.config_names()
    model, clip, vae = checkpoints.CheckpointLoader().run("v1-inference.yaml", "tiny-sd1.safetensors")
    assert model.prediction_type == "epsilon" and clip.clip_skip is None and vae is not None
    model, clip, _ = checkpoints.CheckpointLoader().run("v2-inference-v.yaml", "tiny-sd1.safetensors")
    assert model.prediction_type == "v_prediction"
    _, clip, _ = checkpoints.CheckpointLoader().run("v1-inference_clip_skip_2.yaml", "tiny-sd1.safetensors")
    assert clip.clip_skip == -2
    # a user's config file is read: parameterization and layer_idx
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "mine.yaml").write_text(
        "model:\n  params:\n    parameterization: v\n    cond_stage_config:\n      params:\n        layer_idx: -3\n"
    )
    paths_module.get_paths().extra_model_dirs["configs"] = [configs]
    assert checkpoints.config_names()[0] == "mine.yaml"
    model, clip, _ = checkpoints.CheckpointLoader().run("mine.yaml", "tiny-sd1.safetensors")
    assert model.prediction_type == "v_prediction" and clip.clip_skip == -3
    with pytest.raises(ValueError, match="config_name"):
        checkpoints.CheckpointLoader().run("nonexistent.yaml", "tiny-sd1.safetensors")


class AddConstant:
    def __init__(self, name: str, value: float) -> None:
        self.name, self.value = name, value

    def applies_to(self, target: str) -> bool:
        return True

    def deltas(self, module: Any, target: str):
        param = dict(module.named_parameters())[self.name]
        yield self.name, torch.full_like(param, self.value, dtype=torch.float32)


def test_clip_merge_simple(model_home) -> None:
    from nodes.diffusion.loaders import CheckpointLoaderSimple, DiffusersLoader

    _, clip1, _ = CheckpointLoaderSimple().run("tiny-sd1.safetensors")
    _, clip2, _ = DiffusersLoader().run("tiny-sd1")  # the same weights, another copy
    # the handle is shared through the model manager: another test may have left its patches
    # applied, and the merge is checked against the file's own weights
    clip1.parts[0].handle.apply_patches(())
    params = dict(clip1.parts[0].handle.load().named_parameters())
    name = next(n for n in params if n.endswith("layers.0.mlp.fc1.weight"))
    base = params[name].detach().clone()
    clip2 = clip2.with_patch(AddConstant(name, 1.0))
    merged = merging.CLIPMergeSimple().run(clip1, clip2, 0.25)[0]
    handle = merged.parts[0].handle
    handle.apply_patches(merged.patches)
    torch.testing.assert_close(dict(handle.module.named_parameters())[name].detach(), base + 0.75)
    same = merging.CLIPMergeSimple().run(clip1, clip2, 1.0)[0]
    torch.testing.assert_close(same.encode("a cat")[0], clip1.encode("a cat")[0])
    assert not torch.allclose(merged.encode("a cat")[0], clip1.encode("a cat")[0])


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_checkpoint_save_round_trip(model_home, family: str) -> None:
    from nodes.diffusion.loaders import CheckpointLoaderSimple, load_checkpoint
    from nodes.diffusion.lora import LoraLoader

    model, clip, vae = CheckpointLoaderSimple().run(f"tiny-{family}.safetensors")
    if family == "sd1":  # bake a LoRA in
        model, clip = LoraLoader().run(model, clip, "tiny-sd1-lora.safetensors", 0.8, 0.5)
    result = checkpoints.CheckpointSave().run(model, clip, vae, "checkpoints/test", prompt={"1": {}})
    (entry,) = result.ui["checkpoints"]
    path = model_home.output / "checkpoints" / entry["filename"]
    assert path.is_file() and entry["filename"] == "test_00001_.safetensors"
    model2, clip2, vae2 = load_checkpoint(path)
    assert model2.family == family and clip2 is not None and vae2 is not None
    g = torch.Generator().manual_seed(0)
    x = torch.randn((1, 4, 8, 8), generator=g)
    text = "a red square"
    cond, pooled = clip.encode(text)
    cond2, pooled2 = clip2.encode(text)
    torch.testing.assert_close(cond2, cond)
    if family == "sdxl":
        torch.testing.assert_close(pooled2, pooled)
    t = torch.tensor([500.0])
    torch.testing.assert_close(
        model2.predict_noise(x, t, cond, pooled), model.predict_noise(x, t, cond, pooled), rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(vae2.decode(x), vae.decode(x), rtol=1e-4, atol=1e-5)
