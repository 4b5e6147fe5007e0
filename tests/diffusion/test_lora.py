"""LoRA on the tiny SD1 model: it changes the outputs, strength 0 is no LoRA, unpatching restores
the exact weights, clones share the base weights, other key layouts give the same result."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from nodes.diffusion import single_file as sf
from nodes.diffusion.loaders import CheckpointLoaderSimple, LoaderInputError
from nodes.diffusion.lora import LoraLoader, LoraLoaderModelOnly, LoraPatch, match_keys, read_lora

LORA = "tiny-sd1-lora.safetensors"


@pytest.fixture
def sd1(tiny_paths, manager):
    return CheckpointLoaderSimple().run("tiny-sd1.safetensors")


def _x() -> torch.Tensor:
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))


def _cond() -> torch.Tensor:
    return torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(6))


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_lora_changes_the_output_and_unpatching_restores_the_weights(sd1):
    model, clip, _ = sd1
    base_out = model.predict_noise(_x(), 300, _cond())
    original = _snapshot(model.unet.load())
    lora_model, lora_clip = LoraLoader().run(model, clip, LORA, 1.0, 1.0)
    assert lora_model is not model and lora_model.unet is model.unet  # shared weights, no copy
    assert len(lora_model.patches) == 1 and isinstance(lora_model.patches[0], LoraPatch)
    patched_out = lora_model.predict_noise(_x(), 300, _cond())
    assert not torch.allclose(patched_out, base_out, atol=1e-4)
    changed = [k for k, v in model.unet.module.state_dict().items() if not torch.equal(v, original[k])]
    assert changed and all(("attentions" in k) for k in changed)
    # running the unpatched clone puts the exact original weights back
    assert torch.equal(model.predict_noise(_x(), 300, _cond()), base_out)
    assert all(torch.equal(v, original[k]) for k, v in model.unet.module.state_dict().items())
    # and the LoRA clone re-applies its patch
    assert torch.equal(lora_model.predict_noise(_x(), 300, _cond()), patched_out)


def test_strength_zero_equals_no_lora(sd1):
    model, clip, _ = sd1
    out_model, out_clip = LoraLoader().run(model, clip, LORA, 0.0, 0.0)
    assert out_model is model and out_clip is clip
    half_model, half_clip = LoraLoader().run(model, clip, LORA, 0.0, 1.0)
    assert half_model is model and half_clip is not clip
    assert torch.equal(model.predict_noise(_x(), 300, _cond()), half_model.predict_noise(_x(), 300, _cond()))


def test_strength_scales_the_delta_linearly(sd1):
    model, clip, _ = sd1
    unet = model.unet.load()
    name = next(n for n, _ in unet.named_parameters() if n.endswith("attn1.to_q.weight"))
    base = unet.get_parameter(name).detach().clone()
    deltas = []
    for strength in (0.5, 1.0, -1.0):
        patched = LoraLoaderModelOnly().run(model, LORA, strength)
        patched.prepare()
        deltas.append(unet.get_parameter(name).detach() - base)
    assert torch.allclose(deltas[1], 2 * deltas[0], atol=1e-6)
    assert torch.allclose(deltas[2], -deltas[1], atol=1e-6)
    model.prepare()
    assert torch.equal(unet.get_parameter(name), base)


def test_lora_on_the_text_encoder(sd1):
    _, clip, _ = sd1
    base, _ = clip.encode("a cat")
    _, lora_clip = LoraLoader().run(sd1[0], clip, LORA, 1.0, 1.0)
    changed, _ = lora_clip.encode("a cat")
    assert not torch.allclose(changed, base, atol=1e-4)
    assert torch.equal(clip.encode("a cat")[0], base)  # the original CLIP restores its weights
    _, weaker = LoraLoader().run(sd1[0], clip, LORA, 1.0, 0.5)
    assert not torch.allclose(weaker.encode("a cat")[0], changed, atol=1e-4)


def test_stacked_loras_and_alpha_scaling(sd1):
    model, _, _ = sd1
    unet = model.unet.load()
    once = LoraLoaderModelOnly().run(model, LORA, 1.0)
    twice = LoraLoaderModelOnly().run(LoraLoaderModelOnly().run(model, LORA, 0.5), LORA, 0.5)
    assert len(twice.patches) == 2
    once.prepare()
    a = _snapshot(unet)
    twice.prepare()
    b = _snapshot(unet)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # alpha/rank scaling: this LoRA has rank 4, alpha 2
    lora = read_lora(once.patches[0].lora.path)
    group = next(iter(lora.groups.values()))
    assert group["down"].shape[0] == 4 and float(group["alpha"]) == 2.0
    model.prepare()


def _relayout(tiny_paths, tiny_models, name: str, rename) -> str:
    state = load_file(tiny_models / "loras" / LORA)
    out = {}
    for key, value in state.items():
        new = rename(key)
        if new is not None:
            out[new] = value
    save_file(out, str(tiny_paths.models / "loras" / name))
    return name


def test_other_key_layouts_give_the_same_weights(sd1, tiny_paths, tiny_models):
    model, _, _ = sd1
    unet = model.unet.load()
    lora = read_lora(tiny_models / "loras" / LORA)
    module_of = {k: v[: -len(".weight")] for k, v in match_keys(lora, unet, "unet").items()}
    config = unet.config

    def peft(key: str) -> str | None:
        base, _, suffix = key.partition(".")
        if base not in module_of:
            return None
        part = {"lora_down.weight": "lora_A.weight", "lora_up.weight": "lora_B.weight", "alpha": "alpha"}[suffix]
        return f"unet.{module_of[base]}.{part}"

    def original_names(key: str) -> str | None:
        base, _, suffix = key.partition(".")
        if base not in module_of:
            return None
        ldm = sf.unet_ldm_name(module_of[base] + ".weight", config)[: -len(".weight")]
        return f"lora_unet_{ldm.replace('.', '_')}.{suffix}"

    def attn_processors(key: str) -> str | None:
        """diffusers' old files: attention as ``processor.to_q_lora.down``, the rest ``X.lora.down``."""
        base, _, suffix = key.partition(".")
        path = module_of.get(base)
        if path is None:
            return None
        if ".attn" not in path or not path.endswith(("to_q", "to_k", "to_v", "to_out.0")):
            part = {"lora_down.weight": "lora.down.weight", "lora_up.weight": "lora.up.weight"}.get(suffix, suffix)
            return f"unet.{path}.{part}"
        head, _, proj = path.rpartition(".to_")
        proj = "to_out" if proj == "out.0" else "to_" + proj
        part = {"lora_down.weight": "down.weight", "lora_up.weight": "up.weight", "alpha": "alpha"}[suffix]
        return f"unet.{head}.processor.{proj}_lora.{part}"

    names = [
        _relayout(tiny_paths, tiny_models, "peft.safetensors", peft),
        _relayout(tiny_paths, tiny_models, "ldm-names.safetensors", original_names),
        _relayout(tiny_paths, tiny_models, "attn-procs.safetensors", attn_processors),
    ]
    try:
        LoraLoaderModelOnly().run(model, LORA, 1.0).prepare()
        reference = _snapshot(unet)
        for name in names:
            LoraLoaderModelOnly().run(model, name, 1.0).prepare()
            assert all(torch.equal(reference[k], v) for k, v in unet.state_dict().items()), name
    finally:
        model.prepare()
        for name in names:
            (tiny_paths.models / "loras" / name).unlink()


def test_lora_for_another_model_is_a_clear_error(tiny_paths, manager):
    sdxl_model, sdxl_clip, _ = CheckpointLoaderSimple().run("tiny-sdxl.safetensors")
    with pytest.raises(LoaderInputError) as err:
        LoraLoaderModelOnly().run(sdxl_model, LORA, 1.0)
    assert "lora_name" in str(err.value) and LORA in str(err.value)
    with pytest.raises(LoaderInputError, match="lora_name.*missing.safetensors"):
        LoraLoader().run(sdxl_model, sdxl_clip, "missing.safetensors", 1.0, 1.0)


def test_a_file_without_lora_weights_is_a_clear_error(tiny_paths, sd1):
    path = tiny_paths.models / "loras" / "not-a-lora.safetensors"
    save_file({"something.weight": torch.zeros(2, 2)}, str(path))
    try:
        with pytest.raises(LoaderInputError, match="lora_name.*not-a-lora.safetensors.*no LoRA weights"):
            LoraLoader().run(sd1[0], sd1[1], "not-a-lora.safetensors", 1.0, 1.0)
    finally:
        path.unlink()


def test_sdxl_kohya_lora_with_original_unet_names_and_two_text_encoders(tiny_paths, manager):
    """SDXL trainers name UNet layers by the original layout and the encoders te1 (CLIP-L) / te2 (bigG)."""
    model, clip, _ = CheckpointLoaderSimple().run("tiny-sdxl.safetensors")
    unet = model.unet.load()
    g = torch.Generator().manual_seed(11)
    state: dict[str, torch.Tensor] = {}

    def add(key: str, weight: torch.Tensor) -> None:
        state[f"{key}.lora_down.weight"] = torch.randn(2, weight.shape[1], generator=g) * 0.5
        state[f"{key}.lora_up.weight"] = torch.randn(weight.shape[0], 2, generator=g) * 0.5
        state[f"{key}.alpha"] = torch.tensor(2.0)

    for name, module in unet.named_modules():
        if name.endswith(("attn1.to_q", "attn2.to_k", "ff.net.2")):
            ldm = sf.unet_ldm_name(name + ".weight", unet.config)[: -len(".weight")]
            add("lora_unet_" + ldm.replace(".", "_"), module.weight)
    for prefix, part in (("lora_te1_", clip.parts[0]), ("lora_te2_", clip.parts[1])):
        for name, module in part.handle.load().named_modules():
            if name.endswith("self_attn.q_proj"):
                full = name if name.startswith("text_model.") else "text_model." + name
                add(prefix + full.replace(".", "_"), module.weight)
    save_file(state, str(tiny_paths.models / "loras" / "xl-kohya.safetensors"))
    try:
        lora = read_lora(tiny_paths.models / "loras" / "xl-kohya.safetensors")
        matched = (
            set(match_keys(lora, unet, "unet"))
            | set(match_keys(lora, clip.parts[0].handle.load(), "clip_l"))
            | set(match_keys(lora, clip.parts[1].handle.load(), "clip_g"))
        )
        assert matched == set(lora.groups)  # every layer found its target
        x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
        cond, pooled = clip.encode("a cat")
        base = model.predict_noise(x, 500, cond, pooled)
        new_model, new_clip = LoraLoader().run(model, clip, "xl-kohya.safetensors", 1.0, 1.0)
        new_cond, new_pooled = new_clip.encode("a cat")
        assert not torch.allclose(new_cond[..., :32], cond[..., :32]) and not torch.allclose(new_pooled, pooled)
        assert not torch.allclose(new_model.predict_noise(x, 500, cond, pooled), base)
        assert torch.equal(model.predict_noise(x, 500, cond, pooled), base)
    finally:
        (tiny_paths.models / "loras" / "xl-kohya.safetensors").unlink()
