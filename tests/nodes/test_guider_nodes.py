"""DualCFGGuider, PerpNeg, PerpNegGuider, AddNoise and CLIPTextEncodeSDXLRefiner on real tiny
models: each against its formula, against the guider it reduces to, and through the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from engine import Executor, normalise_prompt, validate_prompt
from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.cfg_hooks import POST_CFG
from nodes.guidance.dual_cfg import DualCFG, DualCFGGuider
from nodes.guidance.perp_neg import PerpNeg, PerpNegGuide, PerpNegGuider, perp_neg
from nodes.guidance.rescale_cfg import RescaleCFG
from nodes.sigma_ops import AddNoise
from tests.support.tiny_unet import conditioning, empty

TOL = {"rtol": 1e-4, "atol": 2e-4}
STEPS = 3


def assert_same_run(ours: torch.Tensor, reference: torch.Tensor) -> None:
    """Two runs of one computation through different code (a hook's arithmetic, a guider's): a
    few 1e-6 of the latent's scale apart in float32, which an element near 0 can exceed ``TOL``
    by; a real difference (another prompt, scale or timestep) is 1e-3 of it or more."""
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5 * float(reference.abs().max()))


def outputs(result: Any) -> tuple:
    return result.outputs if hasattr(result, "outputs") else result


def sca(
    guider: Any, latent: dict | None = None, *, seed: int = 3, noise: Any = None, sigmas: Any = None
) -> torch.Tensor:
    """SamplerCustomAdvanced's output samples: euler over BasicScheduler's karras schedule."""
    model = guider.model
    sigmas = sn.BasicScheduler().run(model, "karras", STEPS, 1.0)[0] if sigmas is None else sigmas
    noise = sn.RandomNoise().run(seed)[0] if noise is None else noise
    sampler = sn.KSamplerSelect().run("euler")[0]
    return outputs(sn.SamplerCustomAdvanced().run(noise, guider, sampler, sigmas, latent or empty()))[0]["samples"]


def cfg_guider(model: Any, positive: Any, negative: Any, cfg: float) -> Any:
    return sn.CFGGuider().run(model, positive, negative, cfg)[0]


class CallRows:
    """A MODEL call wrapper that records the batch size of every UNet call."""

    def __init__(self) -> None:
        self.rows: list[int] = []

    def __call__(self, apply: Any, call: Any) -> Any:
        self.rows.append(int(call.x.shape[0]))
        return apply(call)


@pytest.fixture(scope="module")
def conds() -> dict[str, list]:
    return {"pos": conditioning(1), "neg": conditioning(2), "mid": conditioning(3), "empty": conditioning(4)}


def _bare(model: Any, cond: list, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return model.predict_noise(x, t, cond[0][0].expand(x.shape[0], -1, -1))


# -- DualCFGGuider --------------------------------------------------------------------------------
def test_dual_cfg_with_both_scales_equal_is_cfg(tiny_model, conds) -> None:
    reference = sca(cfg_guider(tiny_model, conds["pos"], conds["neg"], 5.0))
    dual = outputs(DualCFGGuider().run(tiny_model, conds["pos"], conds["mid"], conds["neg"], 5.0, 5.0, "regular"))[0]
    torch.testing.assert_close(sca(dual), reference, **TOL)
    # nested with cfg_conds 1 is CFG from the negative to cond1 as well
    nested = outputs(DualCFGGuider().run(tiny_model, conds["pos"], conds["mid"], conds["neg"], 1.0, 5.0, "nested"))[0]
    torch.testing.assert_close(sca(nested), reference, **TOL)
    # and other scales guide elsewhere
    other = outputs(DualCFGGuider().run(tiny_model, conds["pos"], conds["mid"], conds["neg"], 2.0, 5.0, "regular"))[0]
    assert (sca(other) - reference).abs().max() > 1e-2


@pytest.mark.parametrize("nested", [False, True])
def test_dual_cfg_prediction_is_the_formula_in_one_unet_call(tiny_model, conds, nested) -> None:
    rows = CallRows()
    model = tiny_model.with_wrapper(rows)
    guider = DualCFG(model, 3.0, 6.0, nested=nested)
    guider.set_conds(conds["pos"], conds["mid"], conds["neg"])
    x, t = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([500.0])
    got = guider.predictor(x.shape, "cpu")(x, t)
    assert rows.rows == [6]  # the three prompts of both latents in one call
    pos, mid, neg = (_bare(tiny_model, conds[k], x, t) for k in ("pos", "mid", "neg"))
    if nested:
        expected = neg + 6.0 * (mid + (pos - mid) * 3.0 - neg)
    else:
        expected = neg + (mid - neg) * 6.0 + (pos - mid) * 3.0
    torch.testing.assert_close(got, expected, **TOL)


def test_dual_cfg_skips_what_scale_1_makes_irrelevant(tiny_model, conds) -> None:
    rows = CallRows()
    model = tiny_model.with_wrapper(rows)
    x, t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([300.0])
    for cfg1, cfg2, count in ((4.0, 1.0, 2), (1.0, 1.0, 1), (1.0, 4.0, 3)):
        rows.rows.clear()
        guider = DualCFG(model, cfg1, cfg2)
        guider.set_conds(conds["pos"], conds["mid"], conds["neg"])
        got = guider.predictor(x.shape, "cpu")(x, t)
        assert rows.rows == [count], (cfg1, cfg2)
        pos, mid, neg = (_bare(tiny_model, conds[k], x, t) for k in ("pos", "mid", "neg"))
        torch.testing.assert_close(got, neg + (mid - neg) * cfg2 + (pos - mid) * cfg1, **TOL)


def test_dual_cfg_hooks_see_cond2_against_the_negative(tiny_model, conds) -> None:
    seen: list[Any] = []

    def hook(args: dict[str, Any]) -> torch.Tensor:
        seen.append((args["cond"], args["uncond"]))
        return args["denoised"]

    hooked = tiny_model.with_guidance_hook(POST_CFG, hook)
    guider = DualCFG(hooked, 2.0, 5.0)
    guider.set_conds(conds["pos"], conds["mid"], conds["neg"])
    plain = DualCFG(tiny_model, 2.0, 5.0)
    plain.set_conds(conds["pos"], conds["mid"], conds["neg"])
    torch.testing.assert_close(sca(guider), sca(plain), **TOL)
    assert len(seen) == STEPS and all(c is conds["mid"] and u is conds["neg"] for c, u in seen)
    # RescaleCFG at multiplier 0 is plain CFG for the pair: the result stays the formula's
    rescaled = outputs(RescaleCFG().run(tiny_model, 0.0))[0]
    guider = DualCFG(rescaled, 2.0, 5.0)
    guider.set_conds(conds["pos"], conds["mid"], conds["neg"])
    torch.testing.assert_close(sca(guider), sca(plain), **TOL)


def test_dual_cfg_with_a_regional_prompt_evaluates_each_prompt_on_its_own(tiny_model, conds) -> None:
    """A middle prompt on an area only: with both scales equal the result is CFG between cond1 and
    the negative, each of which got an entry on that area from ComfyUI's same-area rule (a copy of
    its own prompt there), whatever the middle prompt is."""
    area = {"pooled_output": None, "area": (4, 8, 0, 0), "strength": 1.0}
    guider = DualCFG(tiny_model, 5.0, 5.0)
    guider.set_conds(conds["pos"], [[conds["mid"][0][0], area]], conds["neg"])
    with_area = {k: conds[k] + [[conds[k][0][0], dict(area)]] for k in ("pos", "neg")}
    torch.testing.assert_close(sca(guider), sca(cfg_guider(tiny_model, with_area["pos"], with_area["neg"], 5.0)), **TOL)
    other = DualCFG(tiny_model, 5.0, 5.0)
    other.set_conds(conds["pos"], [[conds["empty"][0][0], area]], conds["neg"])
    torch.testing.assert_close(sca(other), sca(guider), **TOL)


# -- Perp-Neg -------------------------------------------------------------------------------------
def test_perp_neg_removes_only_the_perpendicular_part_of_the_negative() -> None:
    g = torch.Generator().manual_seed(2)
    pos, neg, empty_pred = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    got = perp_neg(pos, neg, empty_pred, 0.7, 5.0)
    p, n = pos - empty_pred, neg - empty_pred
    perp = n - (n * p).sum() / (p * p).sum() * p  # over the whole batch, as ComfyUI
    torch.testing.assert_close(got, empty_pred + 5.0 * (p - 0.7 * perp))
    assert abs(float((perp * p).sum())) < 1e-2 * float(p.norm() * perp.norm())
    torch.testing.assert_close(perp_neg(pos, neg, empty_pred, 0.0, 5.0), empty_pred + 5.0 * p)
    assert torch.isfinite(perp_neg(pos, neg, pos, 1.0, 5.0)).all()  # positive == empty: guarded


def test_perp_neg_guider_at_neg_scale_0_is_cfg_from_the_empty_prompt(tiny_model, conds) -> None:
    reference = sca(cfg_guider(tiny_model, conds["pos"], conds["empty"], 6.0))
    args = (tiny_model, conds["pos"], conds["neg"], conds["empty"], 6.0)
    torch.testing.assert_close(sca(outputs(PerpNegGuider().run(*args, 0.0))[0]), reference, **TOL)
    assert (sca(outputs(PerpNegGuider().run(*args, 1.0))[0]) - reference).abs().max() > 1e-2


def test_perp_neg_guider_prediction_is_the_formula_in_one_unet_call(tiny_model, conds) -> None:
    rows = CallRows()
    guider = PerpNegGuide(tiny_model.with_wrapper(rows), 5.0, 0.8)
    guider.set_conds(conds["pos"], conds["neg"], conds["empty"])
    x, t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3)), torch.tensor([600.0])
    got = guider.predictor(x.shape, "cpu")(x, t)
    assert rows.rows == [3]
    pos, neg, emp = (_bare(tiny_model, conds[k], x, t) for k in ("pos", "neg", "empty"))
    # in raw noise predictions the combination is the same (they differ from denoised by -sigma)
    torch.testing.assert_close(got, perp_neg(pos, neg, emp, 0.8, 5.0), **TOL)
    for neg_scale, cfg, count in ((0.0, 5.0, 2), (0.0, 1.0, 1)):
        rows.rows.clear()
        guider.set_cfg(cfg, neg_scale)
        guider.predictor(x.shape, "cpu")(x, t)
        assert rows.rows == [count]


def test_perp_neg_patch_matches_the_guider_and_reduces_to_cfg(tiny_model, conds) -> None:
    plain = sca(cfg_guider(tiny_model, conds["pos"], conds["empty"], 6.0))
    patched = outputs(PerpNeg().run(tiny_model, conds["empty"], 0.0))[0]
    assert_same_run(sca(cfg_guider(patched, conds["pos"], conds["neg"], 6.0)), plain)
    patched = outputs(PerpNeg().run(tiny_model, conds["empty"], 1.0))[0]
    guided = sn.CFGGuider().run(patched, conds["pos"], conds["neg"], 6.0)[0]
    result = sn.SamplerCustomAdvanced().run(
        sn.RandomNoise().run(3)[0],
        guided,
        sn.KSamplerSelect().run("euler")[0],
        sn.BasicScheduler().run(tiny_model, "karras", STEPS, 1.0)[0],
        empty(),
    )
    assert result.ui["weft_report"] == [{"name": "PerpNeg", "empty_prompt_evaluations": STEPS}]
    guider = outputs(PerpNegGuider().run(tiny_model, conds["pos"], conds["neg"], conds["empty"], 6.0, 1.0))[0]
    torch.testing.assert_close(result.outputs[0]["samples"], sca(guider), **TOL)


def test_perp_neg_nodes_name_the_paper() -> None:
    for node in (PerpNeg, PerpNegGuider):
        assert "arXiv:2304.04968" in node.description and "Armandpour" in node.description


# -- AddNoise -------------------------------------------------------------------------------------
def test_add_noise_is_noise_times_the_schedules_span_in_the_models_space(tiny_model) -> None:
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4)), "noise_mask": None}
    noise = sn.RandomNoise().run(9)[0]
    sigmas = torch.tensor([6.0, 2.0, 0.5])
    got = AddNoise().run(tiny_model, noise, sigmas, latent)[0]
    drawn = noise.generate_noise(latent)
    expected = tiny_model.process_out(drawn * 5.5 + tiny_model.process_in(latent["samples"]))
    torch.testing.assert_close(got["samples"], expected)
    assert "noise_mask" in got and latent["samples"] is not got["samples"]
    # an empty latent is not shifted; one sigma is the scale itself; no sigmas, no change
    zeros = empty()
    torch.testing.assert_close(
        AddNoise().run(tiny_model, noise, torch.tensor([3.0]), zeros)[0]["samples"],
        tiny_model.process_out(noise.generate_noise(zeros) * 3.0),
    )
    assert AddNoise().run(tiny_model, noise, torch.zeros(0), latent)[0] is latent


def test_add_noise_then_sampling_without_noise_equals_ksampler(tiny_model, conds) -> None:
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5)) * 3}
    steps, denoise, seed = 4, 0.6, 11
    expected = outputs(
        sn.KSampler().run(tiny_model, seed, steps, 5.0, "euler", "karras", conds["pos"], conds["neg"], latent, denoise)
    )[0]["samples"]
    sigmas = sn.BasicScheduler().run(tiny_model, "karras", steps, denoise)[0]
    noised = AddNoise().run(tiny_model, sn.RandomNoise().run(seed)[0], sigmas, latent)[0]
    got = sca(
        cfg_guider(tiny_model, conds["pos"], conds["neg"], 5.0), noised, noise=sn.DisableNoise().run()[0], sigmas=sigmas
    )
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


# -- CLIPTextEncodeSDXLRefiner ------------------------------------------------------------------
def test_refiner_text_encode_adds_the_aesthetic_score_and_size(model_home) -> None:
    from nodes.diffusion.conditioning import CLIPTextEncode, CLIPTextEncodeSDXLRefiner
    from nodes.diffusion.loaders import CheckpointLoaderSimple

    model, clip, _ = CheckpointLoaderSimple().run("tiny-sdxl.safetensors")[:3]
    got = CLIPTextEncodeSDXLRefiner().run(2.5, 640, 512, "a blue circle", clip)
    plain = CLIPTextEncode().run("a blue circle", clip)
    assert len(got) == 1
    torch.testing.assert_close(got[0][0], plain[0][0])
    torch.testing.assert_close(got[0][1]["pooled_output"], plain[0][1]["pooled_output"])
    assert {k: got[0][1][k] for k in ("aesthetic_score", "width", "height")} == {
        "aesthetic_score": 2.5,
        "width": 640,
        "height": 512,
    }
    # SDXL's size conditioning: the target size defaults to the size given, as ComfyUI's SDXL does
    assert model.time_ids(got[0][1], 8, 8) == [512.0, 640.0, 0.0, 0.0, 512.0, 640.0]
    assert model.time_ids(plain[0][1], 8, 8) == [64.0, 64.0, 0.0, 0.0, 64.0, 64.0]


# -- through the engine -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registry() -> Any:
    from nodes.registry import builtin_registry

    return builtin_registry()


def run_prompt(registry: Any, prompt: dict[str, Any]) -> Any:
    checked = validate_prompt(normalise_prompt(prompt), registry)
    assert checked.ok, checked.node_errors
    result = Executor(registry).execute_sync("p", checked.prompt, checked.outputs, order=checked.order)
    assert result.status_str == "success", result.error
    return result


def read_latent(home: Any, result: Any, node: str) -> torch.Tensor:
    from safetensors.torch import load_file

    saved = result.outputs[node]["latents"][0]
    return load_file(str(Path(home.output) / saved["subfolder"] / saved["filename"]))["latent_tensor"]


def _base(ckpt: str = "tiny-sd1.safetensors") -> dict[str, Any]:
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red square", "clip": ["ckpt", 1]}},
        "mid": {"class_type": "CLIPTextEncode", "inputs": {"text": "on grey", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "empty_text": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "noise": {"class_type": "RandomNoise", "inputs": {"noise_seed": 7}},
        "sampler": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "sigmas": {
            "class_type": "BasicScheduler",
            "inputs": {"model": ["ckpt", 0], "scheduler": "normal", "steps": 3, "denoise": 1.0},
        },
    }


def _sca(guider: list, name: str) -> dict[str, Any]:
    return {
        f"sca_{name}": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {
                "noise": ["noise", 0],
                "guider": guider,
                "sampler": ["sampler", 0],
                "sigmas": ["sigmas", 0],
                "latent_image": ["latent", 0],
            },
        },
        f"save_{name}": {
            "class_type": "SaveLatent",
            "inputs": {"samples": [f"sca_{name}", 0], "filename_prefix": name},
        },
    }


def test_guiders_and_patches_run_through_the_engine(registry, model_home) -> None:
    prompt = _base()
    prompt["cfg"] = {
        "class_type": "CFGGuider",
        "inputs": {"model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "cfg": 5.0},
    }
    prompt["dual"] = {
        "class_type": "DualCFGGuider",
        "inputs": {
            "model": ["ckpt", 0],
            "cond1": ["pos", 0],
            "cond2": ["mid", 0],
            "negative": ["neg", 0],
            "cfg_conds": 5.0,
            "cfg_cond2_negative": 5.0,
            "style": "regular",
        },
    }
    prompt["perp_guider"] = {
        "class_type": "PerpNegGuider",
        "inputs": {
            "model": ["ckpt", 0],
            "positive": ["pos", 0],
            "negative": ["neg", 0],
            "empty_conditioning": ["empty_text", 0],
            "cfg": 5.0,
            "neg_scale": 1.0,
        },
    }
    prompt["perp_patch"] = {
        "class_type": "PerpNeg",
        "inputs": {"model": ["sag", 0], "empty_conditioning": ["empty_text", 0], "neg_scale": 1.0},
    }
    prompt["sag"] = {
        "class_type": "SelfAttentionGuidance",
        "inputs": {"model": ["ckpt", 0], "scale": 0.5, "blur_sigma": 2.0},
    }
    prompt["patched"] = {
        "class_type": "CFGGuider",
        "inputs": {"model": ["perp_patch", 0], "positive": ["pos", 0], "negative": ["neg", 0], "cfg": 5.0},
    }
    for name in ("cfg", "dual", "perp_guider", "patched"):
        prompt.update(_sca([name, 0], name))
    result = run_prompt(registry, prompt)
    latents = {
        name: read_latent(model_home, result, f"save_{name}") for name in ("cfg", "dual", "perp_guider", "patched")
    }
    assert all(torch.isfinite(v).all() and v.abs().max() > 0 for v in latents.values())
    torch.testing.assert_close(latents["dual"], latents["cfg"], **TOL)
    assert (latents["perp_guider"] - latents["cfg"]).abs().max() > 1e-3
    reports = {r["name"]: r for r in result.outputs["sca_patched"]["weft_report"]}
    assert reports["PerpNeg"]["empty_prompt_evaluations"] == 3
    assert reports["SelfAttentionGuidance"]["extra_evaluations"] == 3


def test_add_noise_and_refiner_encode_run_through_the_engine_on_sdxl(registry, model_home) -> None:
    prompt = _base("tiny-sdxl.safetensors")
    prompt["pos"] = {
        "class_type": "CLIPTextEncodeSDXLRefiner",
        "inputs": {"ascore": 6.0, "width": 1024, "height": 1024, "text": "a red square", "clip": ["ckpt", 1]},
    }
    prompt["neg"] = {
        "class_type": "CLIPTextEncodeSDXLRefiner",
        "inputs": {"ascore": 2.5, "width": 1024, "height": 1024, "text": "blurry", "clip": ["ckpt", 1]},
    }
    prompt["cfg"] = {
        "class_type": "CFGGuider",
        "inputs": {"model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "cfg": 4.0},
    }
    prompt["noised"] = {
        "class_type": "AddNoise",
        "inputs": {"model": ["ckpt", 0], "noise": ["noise", 0], "sigmas": ["sigmas", 0], "latent_image": ["latent", 0]},
    }
    prompt["off"] = {"class_type": "DisableNoise", "inputs": {}}
    prompt.update(_sca(["cfg", 0], "sdxl"))
    prompt["sca_sdxl"]["inputs"].update({"noise": ["off", 0], "latent_image": ["noised", 0]})
    result = run_prompt(registry, prompt)
    samples = read_latent(model_home, result, "save_sdxl")
    assert samples.shape == (1, 4, 8, 8) and torch.isfinite(samples).all() and samples.abs().max() > 0
