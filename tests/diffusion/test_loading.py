"""Loading the tiny models through the loader nodes: single files, diffusers folders, separate
UNet/CLIP/VAE files, pickles, errors, and the model manager's lifecycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from nodes.diffusion import detect
from nodes.diffusion import single_file as sf
from nodes.diffusion.loaders import (
    CheckpointLoaderSimple,
    CLIPLoader,
    DiffusersLoader,
    DualCLIPLoader,
    LoaderInputError,
    UNETLoader,
    VAELoader,
)
from nodes.diffusion.model_manager import ManagerSettings, reset_manager
from nodes.diffusion.types import DiffusionModel, TextEncoder, VAEModel
from weft_tools.tiny_models import UNET_CONFIGS

FAMILIES = ["sd1", "sd2", "sdxl"]


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, different[:5]


@pytest.mark.parametrize("family", FAMILIES)
def test_single_file_loads_to_the_same_weights_as_the_diffusers_folder(tiny_paths, manager, family):
    model, clip, vae = CheckpointLoaderSimple().run(f"tiny-{family}.safetensors")
    ref_model, ref_clip, ref_vae = DiffusersLoader().run(f"tiny-{family}")
    assert isinstance(model, DiffusionModel) and isinstance(clip, TextEncoder) and isinstance(vae, VAEModel)
    assert model.family == ref_model.family == family
    assert model.prediction_type == ref_model.prediction_type == ("v_prediction" if family == "sd2" else "epsilon")
    assert model.scheduler_config["prediction_type"] == model.prediction_type
    _same_state(model.unet.load(), ref_model.unet.load())
    _same_state(vae.handle.load(), ref_vae.handle.load())
    assert len(clip.parts) == len(ref_clip.parts) == (2 if family == "sdxl" else 1)
    for part, ref_part in zip(clip.parts, ref_clip.parts, strict=True):
        _same_state(part.handle.load(), ref_part.handle.load())
    # and they compute the same thing
    cond, pooled = clip.encode("a tiny (red:1.2) robot")
    ref_cond, ref_pooled = ref_clip.encode("a tiny (red:1.2) robot")
    assert torch.equal(cond, ref_cond)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    out = model.predict_noise(x, 500, cond, pooled)
    # same weights; kernels may pick a different summation order for differently laid-out tensors
    assert torch.allclose(out, ref_model.predict_noise(x, 500, ref_cond, ref_pooled), atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_single_file_layout_is_the_one_diffusers_reads(tiny_models, family):
    """Our LDM writer agrees with diffusers' own converter (an independent reference)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    folder = tiny_models / "diffusers" / f"tiny-{family}"
    single = tiny_models / "checkpoints" / f"tiny-{family}.safetensors"
    for cls, sub in ((UNet2DConditionModel, "unet"), (AutoencoderKL, "vae")):
        theirs = cls.from_single_file(str(single), config=str(folder), subfolder=sub, local_files_only=True)
        _same_state(theirs, cls.from_pretrained(folder / sub, local_files_only=True))


def test_the_controlnet_single_file_layout_is_the_one_diffusers_reads(tiny_models):
    from diffusers import ControlNetModel

    folder = tiny_models / "controlnet" / "tiny-sd1-controlnet"
    single = tiny_models / "controlnet" / "tiny-sd1-controlnet.safetensors"
    ours = ControlNetModel.from_pretrained(folder, local_files_only=True)
    theirs = ControlNetModel.from_single_file(str(single), config=str(folder), local_files_only=True)
    _same_state(theirs, ours)
    assert any(k.startswith("control_model.zero_convs.") for k in load_file(single))


@pytest.mark.parametrize("family", FAMILIES)
def test_family_and_unet_layout_are_inferred_from_shapes(tiny_models, family):
    info = detect.read_safetensors_header(tiny_models / "checkpoints" / f"tiny-{family}.safetensors")
    layout = detect.detect_checkpoint(info)
    assert layout.family == family
    expected = UNET_CONFIGS[family]
    for key in ("block_out_channels", "layers_per_block", "down_block_types", "up_block_types", "cross_attention_dim"):
        assert (
            list(layout.unet_config[key]) == list(expected[key])
            if isinstance(expected[key], list)
            else layout.unet_config[key] == expected[key]
        )
    assert layout.unet_config.get("use_linear_projection", False) == expected.get("use_linear_projection", False)
    assert [c.style for c in layout.clips] == {"sd1": ["hf"], "sd2": ["openclip"], "sdxl": ["hf", "openclip"]}[family]


def test_loader_returns_handles_without_reading_weights(tiny_paths, manager):
    model, clip, vae = CheckpointLoaderSimple().run("tiny-sd1.safetensors")
    assert model.unet.module is None and vae.handle.module is None and clip.parts[0].handle.module is None
    # the same file again shares the handles (loaded once per file)
    again = CheckpointLoaderSimple().run("tiny-sd1.safetensors")
    assert again[0].unet is model.unet and again[2].handle is vae.handle
    model.unet.load()
    assert model.unet.module is not None and model.unet.loads == 1
    # the output cache counts handles, not weights: the model manager owns those
    from engine.sizeof import estimate_size

    assert estimate_size([[model], [clip], [vae]]) < 10_000


def test_unknown_file_names_the_input_and_the_file(tiny_paths, manager):
    path = tiny_paths.models / "checkpoints" / "not-a-model.safetensors"
    save_file({"transformer.blocks.0.weight": torch.zeros(4, 4)}, str(path))
    try:
        with pytest.raises(LoaderInputError) as err:
            CheckpointLoaderSimple().run("not-a-model.safetensors")
        message = str(err.value)
        assert "ckpt_name" in message and "not-a-model.safetensors" in message and "Stable Diffusion" in message
    finally:
        path.unlink()


def test_missing_file_names_the_input(tiny_paths, manager):
    with pytest.raises(LoaderInputError, match="ckpt_name.*nope.safetensors"):
        CheckpointLoaderSimple().run("nope.safetensors")


def test_garbage_file_is_a_clear_error(tiny_paths, manager):
    path = tiny_paths.models / "checkpoints" / "garbage.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    try:
        with pytest.raises(LoaderInputError, match="ckpt_name.*garbage.safetensors"):
            CheckpointLoaderSimple().run("garbage.safetensors")
    finally:
        path.unlink()


def test_pickles_are_refused_unless_listed_in_trusted_pickles(tiny_paths, tiny_models, manager):
    state = load_file(tiny_models / "checkpoints" / "tiny-sd1.safetensors")
    ckpt = tiny_paths.models / "checkpoints" / "old-model.ckpt"
    torch.save({"state_dict": state}, ckpt)
    trust = tiny_paths.models / "trusted_pickles.txt"
    try:
        with pytest.raises(LoaderInputError) as err:
            CheckpointLoaderSimple().run("old-model.ckpt")
        assert "old-model.ckpt" in str(err.value) and "trusted_pickles.txt" in str(err.value)
        assert "checkpoints/old-model.ckpt" in str(err.value)  # the line to add
        trust.write_text("# files I trust\ncheckpoints/old-model.ckpt\n")
        model, clip, vae = CheckpointLoaderSimple().run("old-model.ckpt")
        ref_model = CheckpointLoaderSimple().run("tiny-sd1.safetensors")[0]
        _same_state(model.unet.load(), ref_model.unet.load())
    finally:
        ckpt.unlink()
        trust.unlink(missing_ok=True)


def _extract(source: Path, prefix: str, target: Path, *, keep_prefix: bool = False) -> Path:
    state = load_file(source)
    part = {(k if keep_prefix else k[len(prefix) :]): v for k, v in state.items() if k.startswith(prefix)}
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(part, str(target))
    return target


def test_separate_unet_clip_and_vae_files(tiny_paths, tiny_models, manager):
    models = tiny_paths.models
    single = tiny_models / "checkpoints" / "tiny-sdxl.safetensors"
    files = [
        _extract(single, sf.UNET_PREFIX, models / "diffusion_models" / "xl-unet.safetensors"),
        _extract(single, sf.VAE_PREFIX, models / "vae" / "xl-vae.safetensors"),
        _extract(single, "conditioner.embedders.0.transformer.", models / "text_encoders" / "xl-clip-l.safetensors"),
        _extract(single, "conditioner.embedders.1.model.", models / "text_encoders" / "xl-clip-g.safetensors"),
    ]
    try:
        ref_model, ref_clip, ref_vae = CheckpointLoaderSimple().run("tiny-sdxl.safetensors")
        (model,) = (UNETLoader().run("xl-unet.safetensors", "default"),)
        assert model.family == "sdxl"
        _same_state(model.unet.load(), ref_model.unet.load())
        vae = VAELoader().run("xl-vae.safetensors")
        _same_state(vae.handle.load(), ref_vae.handle.load())
        clip = DualCLIPLoader().run("xl-clip-g.safetensors", "xl-clip-l.safetensors", "sdxl")  # order-insensitive
        assert clip.family == "sdxl"
        assert torch.equal(clip.encode("hello")[0], ref_clip.encode("hello")[0])
        with pytest.raises(LoaderInputError, match="clip_name"):
            CLIPLoader().run("missing.safetensors", "stable_diffusion")
    finally:
        for f in files:
            f.unlink()


def test_sd1_clip_loader_and_diffusers_layout_unet_and_vae_files(tiny_paths, tiny_models, manager):
    models = tiny_paths.models
    single = tiny_models / "checkpoints" / "tiny-sd1.safetensors"
    clip_file = _extract(single, sf.SD1_CLIP_PREFIX, models / "clip" / "sd1-clip.safetensors")
    unet_file = models / "unet" / "sd1-unet-diffusers.safetensors"
    unet_file.parent.mkdir(parents=True, exist_ok=True)
    unet_file.write_bytes(
        (tiny_models / "diffusers" / "tiny-sd1" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    )
    vae_file = models / "vae" / "sd1-vae-diffusers.safetensors"
    vae_file.parent.mkdir(parents=True, exist_ok=True)
    vae_file.write_bytes(
        (tiny_models / "diffusers" / "tiny-sd1" / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    )
    try:
        ref_model, ref_clip, ref_vae = CheckpointLoaderSimple().run("tiny-sd1.safetensors")
        _same_state(VAELoader().run("sd1-vae-diffusers.safetensors").handle.load(), ref_vae.handle.load())
        clip = CLIPLoader().run("sd1-clip.safetensors", "stable_diffusion")
        assert clip.family == "sd1"
        assert torch.equal(clip.encode("a cat")[0], ref_clip.encode("a cat")[0])
        pinned = CLIPLoader().run("sd1-clip.safetensors", "stable_diffusion", "cpu")
        handle = pinned.parts[0].handle
        assert handle.device_override == "cpu" and handle.device.type == "cpu" and handle.compute_dtype == torch.float32
        assert torch.equal(pinned.encode("a cat")[0], ref_clip.encode("a cat")[0])
        model = UNETLoader().run("sd1-unet-diffusers.safetensors", "default")
        assert model.family == "sd1"
        _same_state(model.unet.load(), ref_model.unet.load())
    finally:
        clip_file.unlink()
        unet_file.unlink()
        vae_file.unlink()


def test_unet_loader_fp8_storage_runs(tiny_paths, tiny_models, manager):
    path = _extract(
        tiny_models / "checkpoints" / "tiny-sd1.safetensors",
        sf.UNET_PREFIX,
        tiny_paths.models / "unet" / "sd1-unet.safetensors",
    )
    try:
        model = UNETLoader().run("sd1-unet.safetensors", "fp8_e4m3fn")
        base = UNETLoader().run("sd1-unet.safetensors", "default")
        x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
        cond = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(4))
        out, ref = model.predict_noise(x, 400, cond), base.predict_noise(x, 400, cond)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
        assert torch.allclose(out, ref, atol=0.2) and not torch.equal(out, ref)  # quantised weights
    finally:
        path.unlink()


def test_model_manager_free_and_reload(tiny_paths, manager):
    model, clip, vae = CheckpointLoaderSimple().run("tiny-sd1.safetensors")
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    cond, _ = clip.encode("a cat")
    before = model.predict_noise(x, 10, cond)
    stats = manager.stats()
    assert stats["devices"][0]["type"] == "cpu"
    assert {m["kind"] for m in stats["models"]} >= {"unet", "clip"}
    manager.free(unload_models=True)
    assert model.unet.module is None and manager.stats()["models"] == []
    # the handles held by the output cache stay valid: they reload from the file
    assert torch.equal(model.predict_noise(x, 10, cond), before)
    assert model.unet.loads == 2


def test_model_manager_ram_budget_evicts_least_recently_used(tiny_paths):
    manager = reset_manager(ManagerSettings(ram_budget=1))  # nothing fits beside the one in use
    try:
        model, clip, vae = CheckpointLoaderSimple().run("tiny-sd1.safetensors")
        model.unet.load()
        vae.handle.load()
        assert model.unet.module is None and vae.handle.module is not None
        assert manager.evictions >= 1
    finally:
        reset_manager()


def test_force_cpu_setting(manager):
    manager.configure(force_cpu=True)
    assert manager.compute_device().type == "cpu"
    assert manager.dtype_for("unet") == torch.float32
    with pytest.raises(TypeError):
        manager.configure(no_such_setting=1)


def test_registry_import_does_not_import_torch():
    code = (
        "import sys, nodes.registry; r = nodes.registry.builtin_registry(); "
        "assert 'CheckpointLoaderSimple' in r and 'LoraLoader' in r and 'CLIPTextEncode' in r; "
        # what a server does at start for --cpu and /free must not import torch either
        "import nodes.diffusion.model_manager as mm; mm.configure(force_cpu=True); mm.get_manager().free(True); "
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_combo_lists_are_read_fresh(tiny_paths):
    from nodes.registry import builtin_registry

    registry = builtin_registry()
    spec = {s.name: s for s in registry["CheckpointLoaderSimple"].schema.inputs}["ckpt_name"]
    assert "tiny-sd1.safetensors" in spec.options["choices"]
    extra = tiny_paths.models / "checkpoints" / "zz-new.safetensors"
    extra.write_bytes(b"")
    try:
        spec = {s.name: s for s in registry["CheckpointLoaderSimple"].schema.inputs}["ckpt_name"]
        assert "zz-new.safetensors" in spec.options["choices"]
    finally:
        extra.unlink()
    diffusers = {s.name: s for s in registry["DiffusersLoader"].schema.inputs}["model_path"]
    assert "tiny-sdxl" in diffusers.options["choices"]


def test_vae_round_trip_and_tiled_decode(tiny_paths, manager):
    _, _, vae = CheckpointLoaderSimple().run("tiny-sd1.safetensors")
    image = torch.rand(2, 70, 64, 3, generator=torch.Generator().manual_seed(2))  # 70 is cropped to 64
    latents = vae.encode(image)
    assert latents.shape == (2, 4, 8, 8) and latents.dtype == torch.float32
    assert torch.equal(vae.encode(image), latents)  # deterministic: the posterior mean
    decoded = vae.decode(latents)
    assert decoded.shape == (2, 64, 64, 3) and decoded.min() >= 0 and decoded.max() <= 1
    # one tile covering everything is the plain decode; smaller tiles blend to the same size
    assert torch.allclose(vae.decode_tiled(latents, tile_size=64, overlap=0), decoded, atol=1e-6)
    tiled = vae.decode_tiled(latents, tile_size=32, overlap=16)
    assert tiled.shape == decoded.shape and torch.isfinite(tiled).all()
    assert vae.encode_tiled(decoded, tile_size=32, overlap=16).shape == latents.shape
    assert torch.allclose(vae.encode_tiled(decoded, tile_size=64, overlap=0), vae.encode(decoded), atol=1e-6)
    # ComfyUI's signatures, as plugins call them (latent units for decode, pixels for encode)
    assert torch.equal(vae.decode_tiled(latents, tile_x=4, tile_y=4, overlap=2), tiled)
    assert torch.equal(
        vae.encode_tiled(decoded, tile_x=32, tile_y=32, overlap=16), vae.encode_tiled(decoded, tile_size=32, overlap=16)
    )
    assert vae.spacial_compression_decode() == vae.downscale_ratio == 8


@pytest.mark.parametrize(
    ("spread", "metadata", "expected"),
    [
        (0.2, None, "v_prediction"),
        (0.01, None, "epsilon"),
        (0.01, "v", "v_prediction"),
        (0.2, "epsilon", "epsilon"),
    ],
)
def test_sd2_prediction_type_from_weights_or_metadata(tmp_path, spread, metadata, expected):
    """SD2 768-v and 512-base share a layout; the weights (or the file's metadata) tell them apart."""
    g = torch.Generator().manual_seed(0)
    state = {
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
        "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias": torch.randn(320, generator=g)
        * spread,
        "cond_stage_model.model.token_embedding.weight": torch.zeros(8, 4),
    }
    path = tmp_path / "sd2-like.safetensors"
    save_file(state, str(path), metadata={"modelspec.prediction_type": metadata} if metadata else None)
    info = detect.read_safetensors_header(path)
    assert detect._checkpoint_family(info) == "sd2"
    assert detect.prediction_type(info, "sd2") == expected


def test_server_memory_hooks_reach_the_manager(tiny_paths, manager):
    """POST /free and GET /system_stats go through nodes.memory, which the manager registers with."""
    from nodes import memory

    model, _, _ = CheckpointLoaderSimple().run("tiny-sd1.safetensors")
    model.unet.load()
    devices = memory.device_stats()
    assert devices and devices[0]["type"] == "cpu" and devices[0]["vram_total"] > 0
    memory.free_models(False)  # nothing to offload on a CPU: stays loaded
    assert model.unet.module is not None
    memory.free_models(True)
    assert model.unet.module is None


def test_checkpoint_without_vae_or_clip_gives_its_model(tiny_paths, tiny_models, manager):
    from nodes.diffusion.conditioning import CLIPTextEncode, ConditioningInputError
    from nodes.diffusion.types import MissingComponentError

    path = _extract(
        tiny_models / "checkpoints" / "tiny-sd1.safetensors",
        sf.UNET_PREFIX,
        tiny_paths.models / "checkpoints" / "unet-only.safetensors",
        keep_prefix=True,
    )
    try:
        model, clip, vae = CheckpointLoaderSimple().run("unet-only.safetensors")
        assert model.family == "sd1"
        with pytest.raises(ConditioningInputError, match="clip: ckpt_name: unet-only.safetensors has no text encoder"):
            CLIPTextEncode().run("a cat", clip)
        with pytest.raises(MissingComponentError, match="ckpt_name: unet-only.safetensors has no VAE"):
            vae.decode(torch.zeros(1, 4, 8, 8))
    finally:
        path.unlink()


def test_diffusers_folder_schedule_comes_from_its_scheduler_config(tiny_paths, tiny_models, manager, tmp_path):
    import json
    import shutil

    folder = tiny_paths.models / "diffusers" / "zsnr-copy"
    shutil.copytree(tiny_models / "diffusers" / "tiny-sd1", folder)
    try:
        config_path = folder / "scheduler" / "scheduler_config.json"
        config = json.loads(config_path.read_text())
        config.update(rescale_betas_zero_snr=True, prediction_type="v_prediction", beta_end=0.02)
        config_path.write_text(json.dumps(config))
        model = DiffusersLoader().run("zsnr-copy")[0]
        assert model.prediction_type == "v_prediction"
        assert model.scheduler_config["rescale_betas_zero_snr"] is True
        assert model.scheduler_config["beta_end"] == 0.02 and model.scheduler_config["beta_start"] == 0.00085
    finally:
        shutil.rmtree(folder)


def test_controlnet_residuals_pass_through_predict_noise(tiny_paths, tiny_models, manager):
    from diffusers import ControlNetModel

    model, clip, _ = CheckpointLoaderSimple().run("tiny-sd1.safetensors")
    controlnet = ControlNetModel.from_pretrained(
        tiny_models / "controlnet" / "tiny-sd1-controlnet", local_files_only=True
    )
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(8))
    hint = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    cond, _ = clip.encode("a cat")
    with torch.no_grad():
        down, mid = controlnet(x, 500, encoder_hidden_states=cond, controlnet_cond=hint, return_dict=False)
    plain = model.predict_noise(x, 500, cond)
    guided = model.predict_noise(x, 500, cond, down_block_additional_residuals=down, mid_block_additional_residual=mid)
    assert guided.shape == plain.shape and not torch.allclose(guided, plain)


def test_controlnet_single_file_loads_like_its_folder(tiny_paths, tiny_models, manager):
    from nodes.diffusion.loaders import load_controlnet_file

    single, family = load_controlnet_file(tiny_models / "controlnet" / "tiny-sd1-controlnet.safetensors")
    folder, folder_family = load_controlnet_file(tiny_models / "controlnet" / "tiny-sd1-controlnet")
    assert family == folder_family == "sd1" and single.kind == "controlnet"
    _same_state(single.load(), folder.load())
    with pytest.raises(LoaderInputError, match="control_net_name.*tiny-sd1.safetensors"):
        load_controlnet_file(tiny_models / "checkpoints" / "tiny-sd1.safetensors")


def test_switching_force_cpu_keeps_loaded_models_usable(tiny_paths, manager):
    model, clip, _ = CheckpointLoaderSimple().run("tiny-sd1.safetensors")
    cond, _ = clip.encode("a cat")
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    before = model.predict_noise(x, 100, cond)
    manager.configure(force_cpu=True)
    assert model.unet.location == "cpu"
    assert torch.equal(model.predict_noise(x, 100, cond), before)
    assert model.unet.location == "device" and model.unet.loads == 1


def test_tiny_models_are_deterministic(tiny_models):
    from weft_tools.tiny_models import build_family, ldm_state_dict

    state = ldm_state_dict("sd1", build_family("sd1"))
    written = load_file(tiny_models / "checkpoints" / "tiny-sd1.safetensors")
    assert state.keys() == written.keys()
    assert all(torch.equal(state[k], written[k]) for k in state)


def test_diffusers_folders_with_only_pickles_are_refused(tiny_paths, tiny_models, manager):
    import shutil

    folder = tiny_paths.models / "diffusers" / "pickled"
    shutil.copytree(tiny_models / "diffusers" / "tiny-sd1", folder)
    try:
        weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
        torch.save(load_file(weights), folder / "unet" / "diffusion_pytorch_model.bin")
        weights.unlink()
        with pytest.raises(LoaderInputError, match="model_path: pickled/unet: only .bin"):
            DiffusersLoader().run("pickled")
    finally:
        shutil.rmtree(folder)


def test_vram_budget_offloads_least_recently_used_to_cpu():
    """The accelerator path's bookkeeping, with a pretend GPU (moves are recorded, not made)."""
    from nodes.diffusion.model_manager import ModelManager

    class PretendGPU(ModelManager):
        def compute_device(self) -> torch.device:
            return torch.device("cuda", 0)

        def _cast(self, handle, device):
            handle.where = device.type

        def _cast_to_cpu(self, handle):
            handle.where = "cpu"
            handle.location = "cpu"

    size = torch.nn.Linear(100, 100).weight.numel() * 4 + 400
    manager = PretendGPU(ManagerSettings(vram_budget=int(size * 2.5), ram_budget=size * 100))
    a, b, c = (manager.handle(name, "unet", lambda: torch.nn.Linear(100, 100), name=name) for name in "abc")
    a.on_device()
    b.on_device()
    assert (a.location, b.location) == ("device", "device") and a.where == b.where == "cuda"
    c.on_device()  # over budget: the least recently used (a) goes to the CPU
    assert (a.location, b.location, c.location) == ("cpu", "device", "device") and a.where == "cpu"
    assert a.module is not None and manager.evictions == 1  # offloaded, not dropped
    a.on_device()  # now b is the oldest on the device
    assert (a.location, b.location, c.location) == ("device", "cpu", "device")
    assert a.loads == 1
    manager.free(unload_models=False)  # POST /free without unloading: everything to the CPU
    assert {h.location for h in (a, b, c)} == {"cpu"} and all(h.module is not None for h in (a, b, c))


def test_inpainting_layout_needs_the_extra_channels(tiny_paths, tiny_models, manager):
    """A 9-channel (inpainting) UNet loads; predict_noise takes the extra channels as concat=."""
    state = load_file(tiny_models / "checkpoints" / "tiny-sd1.safetensors")
    key = sf.UNET_PREFIX + "input_blocks.0.0.weight"
    state[key] = torch.cat([state[key], torch.randn(32, 5, 3, 3, generator=torch.Generator().manual_seed(0))], 1)
    path = tiny_paths.models / "checkpoints" / "inpaint-like.safetensors"
    save_file(state, str(path))
    try:
        model, clip, _ = CheckpointLoaderSimple().run("inpaint-like.safetensors")
        cond, _ = clip.encode("a cat")
        x = torch.randn(1, 4, 8, 8)
        with pytest.raises(ValueError, match="inpaint-like.safetensors is an inpainting model"):
            model.predict_noise(x, 10, cond)
        out = model.predict_noise(x, 10, cond, concat=torch.zeros(1, 5, 8, 8))
        assert out.shape == (1, 4, 8, 8)
    finally:
        path.unlink()
