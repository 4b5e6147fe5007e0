"""ControlNet nodes (ControlNetLoader, ControlNetApplyAdvanced, ControlNetApply) with the tiny
SD1 ControlNet: through the real HTTP server where a picture is the evidence (it changes the
image; strength 0, or a window that excludes every step, is exactly no ControlNet; the hint
matters; chains add up; the old node touches the positive only; errors name node and input),
and directly on the guider for what a picture cannot show (one UNet call per step, inputs
never mutated, the SDXL ControlNet path, hint preparation)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

SD1 = "tiny-sd1.safetensors"
SDXL = "tiny-sdxl.safetensors"
CN_FILE = "tiny-sd1-controlnet.safetensors"
CN_FOLDER_FILE = "tiny-sd1-controlnet/diffusion_pytorch_model.safetensors"


# -- helpers ---------------------------------------------------------------------------------------
def run(server, prompt, ok=True):
    prompt_id = server.queue_prompt(prompt)
    entry = server.wait_history(prompt_id, 120.0)
    if ok:
        assert entry["status"]["status_str"] == "success", json.dumps(entry["status"]["messages"])[:3000]
    return entry


def picture(server, entry, node="7"):
    image = entry["outputs"][node]["images"][0]
    query = f"/view?filename={image['filename']}&subfolder={image['subfolder']}&type={image['type']}"
    status, body = server.get(query)
    assert status == 200
    return torch.from_numpy(np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(np.float32))


def write_hint(server, name, pattern):
    """A 96x64 hint (not the latent's size or aspect: the sampler resizes it) into input/."""
    ys, xs = torch.meshgrid(torch.arange(64), torch.arange(96), indexing="ij")
    if pattern == "stripes":
        value = ((xs // 8) % 2 * 255).to(torch.uint8)
    else:  # a filled disc
        value = (((xs - 48) ** 2 + (ys - 32) ** 2 < 20**2) * 255).to(torch.uint8)
    buffer = io.BytesIO()
    Image.fromarray(value.numpy(), "L").convert("RGB").save(buffer, format="PNG")
    (server.base_dir / "input").mkdir(exist_ok=True)
    (server.base_dir / "input" / name).write_bytes(buffer.getvalue())
    return name


@pytest.fixture(scope="module")
def hints(server):
    return write_hint(server, "cn_stripes.png", "stripes"), write_hint(server, "cn_disc.png", "disc")


def graph(ckpt=SD1, cfg=6.0, prefix="cn"):
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": 3,
                "steps": 3,
                "cfg": cfg,
                "sampler_name": "euler",
                "scheduler": "karras",
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


def with_controlnet(prompt, hint, *, strength=1.0, start=0.0, end=1.0, name=CN_FILE, node="12", after=None):
    """Insert ControlNetLoader + LoadImage + ControlNetApplyAdvanced before the sampler
    (after the apply node ``after`` to chain)."""
    positive, negative = ([after, 0], [after, 1]) if after else (["2", 0], ["3", 0])
    prompt[f"{node}L"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": name}}
    prompt[f"{node}I"] = {"class_type": "LoadImage", "inputs": {"image": hint}}
    prompt[node] = {
        "class_type": "ControlNetApplyAdvanced",
        "inputs": {
            "positive": positive,
            "negative": negative,
            "control_net": [f"{node}L", 0],
            "image": [f"{node}I", 0],
            "strength": strength,
            "start_percent": start,
            "end_percent": end,
        },
    }
    prompt["5"]["inputs"].update(positive=[node, 0], negative=[node, 1])
    return prompt


# -- through the server ----------------------------------------------------------------------------
def test_object_info_describes_the_controlnet_nodes_like_comfyui(server):
    status, info = server.get("/object_info")
    assert status == 200
    loader = info["ControlNetLoader"]
    assert list(loader["input"]["required"]) == ["control_net_name"]
    assert {CN_FILE, CN_FOLDER_FILE} <= set(loader["input"]["required"]["control_net_name"][0])
    assert loader["output"] == ["CONTROL_NET"] and loader["output_name"] == ["CONTROL_NET"]
    assert loader["category"] == "loaders" and loader["display_name"] == "Load ControlNet Model"

    advanced = info["ControlNetApplyAdvanced"]
    required = advanced["input"]["required"]
    assert list(required) == [
        "positive",
        "negative",
        "control_net",
        "image",
        "strength",
        "start_percent",
        "end_percent",
    ]
    assert [required[k][0] for k in ("positive", "negative", "control_net", "image")] == [
        "CONDITIONING",
        "CONDITIONING",
        "CONTROL_NET",
        "IMAGE",
    ]
    assert {k: required["strength"][1][k] for k in ("default", "min", "max", "step")} == {
        "default": 1.0,
        "min": 0.0,
        "max": 10.0,
        "step": 0.01,
    }
    assert {k: required["start_percent"][1][k] for k in ("default", "min", "max", "step")} == {
        "default": 0.0,
        "min": 0.0,
        "max": 1.0,
        "step": 0.001,
    }
    assert {k: required["end_percent"][1][k] for k in ("default", "min", "max", "step")} == {
        "default": 1.0,
        "min": 0.0,
        "max": 1.0,
        "step": 0.001,
    }
    assert list(advanced["input"]["optional"]) == ["vae"] and advanced["input"]["optional"]["vae"][0] == "VAE"
    assert advanced["output"] == ["CONDITIONING", "CONDITIONING"]
    assert advanced["output_name"] == ["positive", "negative"]
    assert advanced["category"] == "conditioning/controlnet" and advanced["display_name"] == "Apply ControlNet"

    old = info["ControlNetApply"]
    assert list(old["input"]["required"]) == ["conditioning", "control_net", "image", "strength"]
    assert old["input"]["required"]["strength"][1]["default"] == 1.0
    assert old["output"] == ["CONDITIONING"] and old["output_name"] == ["CONDITIONING"]
    assert old["category"] == "conditioning/controlnet" and old["display_name"] == "Apply ControlNet (OLD)"


def test_controlnet_changes_the_picture_and_strength_zero_is_no_controlnet(server, hints):
    plain = picture(server, run(server, graph(prefix="cn_plain")))
    guided = picture(server, run(server, with_controlnet(graph(prefix="cn_on"), hints[0])))
    zero = picture(server, run(server, with_controlnet(graph(prefix="cn_zero"), hints[0], strength=0.0)))
    assert (guided - plain).abs().mean() > 1.0
    assert torch.equal(zero, plain)
    # the diffusers folder's weights file loads the same ControlNet as the single file
    folder = picture(server, run(server, with_controlnet(graph(prefix="cn_folder"), hints[0], name=CN_FOLDER_FILE)))
    assert (folder - guided).abs().max() <= 1


def test_the_picture_depends_on_the_hint(server, hints):
    plain = picture(server, run(server, graph(prefix="cn_h_plain")))
    stripes = picture(server, run(server, with_controlnet(graph(prefix="cn_stripes"), hints[0])))
    disc = picture(server, run(server, with_controlnet(graph(prefix="cn_disc"), hints[1])))
    # the tiny random ControlNet's hint accounts for about a tenth of its effect on the picture
    assert (stripes - disc).abs().mean() > 0.05 * (stripes - plain).abs().mean() > 0


def test_a_window_that_excludes_every_step_is_no_controlnet(server, hints):
    plain = picture(server, run(server, graph(prefix="cn_w_plain")))
    full = picture(server, run(server, with_controlnet(graph(prefix="cn_w_full"), hints[0])))
    for start, end in ((0.0, 0.0), (1.0, 1.0)):
        off = picture(server, run(server, with_controlnet(graph(prefix="cn_w_off"), hints[0], start=start, end=end)))
        assert torch.equal(off, plain), (start, end)
    # the first half only: neither no ControlNet nor the whole schedule
    half = picture(server, run(server, with_controlnet(graph(prefix="cn_w_half"), hints[0], start=0.0, end=0.5)))
    assert not torch.equal(half, plain) and not torch.equal(half, full)


def test_two_chained_controlnets_differ_from_one(server, hints):
    one = picture(server, run(server, with_controlnet(graph(prefix="cn_one"), hints[0])))
    prompt = with_controlnet(graph(prefix="cn_two"), hints[0])
    prompt = with_controlnet(prompt, hints[1], name=CN_FOLDER_FILE, node="22", after="12")
    two = picture(server, run(server, prompt))
    assert (two - one).abs().mean() > 1.0


def test_old_apply_node_on_the_positive_acts_on_both_halves_like_comfyui(server, hints):
    """ComfyUI marks the old node's entries ``control_apply_to_uncond`` and then gives their
    ControlNet to a negative that has none: on the positive it makes exactly the picture of
    ControlNetApplyAdvanced with the whole schedule, and at cfg 0 (the negative's prediction alone)
    it changes the picture. (Weft once kept it off the negative: 0.66 of the latent's scale from
    ComfyUI's picture, see docs/compatibility.md.)"""

    def old(prompt):
        prompt["12L"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": CN_FILE}}
        prompt["12I"] = {"class_type": "LoadImage", "inputs": {"image": hints[0]}}
        prompt["12"] = {
            "class_type": "ControlNetApply",
            "inputs": {"conditioning": ["2", 0], "control_net": ["12L", 0], "image": ["12I", 0], "strength": 1.0},
        }
        prompt["5"]["inputs"]["positive"] = ["12", 0]
        return prompt

    guided = picture(server, run(server, old(graph(prefix="cn_old6"))))
    assert torch.equal(guided, picture(server, run(server, with_controlnet(graph(prefix="cn_adv6"), hints[0]))))
    plain = picture(server, run(server, graph(cfg=0.0, prefix="cn_old_plain")))
    assert (picture(server, run(server, old(graph(cfg=0.0, prefix="cn_old0")))) - plain).abs().mean() > 1.0


def test_sdxl_model_with_an_sd1_controlnet_names_the_node_and_input(server, hints):
    entry = run(server, with_controlnet(graph(ckpt=SDXL, prefix="cn_sdxl"), hints[0]), ok=False)
    assert entry["status"]["status_str"] == "error"
    error = next(data for event, data in entry["status"]["messages"] if event == "execution_error")
    message = error["exception_message"]
    assert "ControlNetApplyAdvanced (node 12)" in message and "'control_net'" in message
    assert "sd1" in message and "sdxl" in message
    assert "Traceback" not in message


def test_a_missing_controlnet_file_is_a_validation_error(server, hints):
    prompt = with_controlnet(graph(prefix="cn_missing"), hints[0], name="nope.safetensors")
    status, body = server.post("/prompt", {"prompt": prompt})
    assert status == 400
    errors = json.dumps(body["node_errors"]["12L"])
    assert "control_net_name" in errors and "nope.safetensors" in errors


# -- on the guider directly --------------------------------------------------------------------------
@pytest.fixture
def sd1(tiny_paths, manager):
    from nodes.diffusion.controlnet import ControlNetLoader
    from nodes.diffusion.loaders import CheckpointLoaderSimple

    model, clip, _ = CheckpointLoaderSimple().run(SD1)
    return model, clip, ControlNetLoader().run(CN_FILE)


def _hint_image(seed=0):
    return torch.rand(1, 40, 56, 3, generator=torch.Generator().manual_seed(seed))


def _sample(model, positive, negative, cfg=6.0, steps=2):
    from nodes.diffusion.sampler_nodes import common_ksampler

    return common_ksampler(
        model, 1, steps, cfg, "euler", "karras", positive, negative, {"samples": torch.zeros(1, 4, 8, 8)}
    )["samples"]


def test_apply_copies_the_conditioning_and_chains_controls(sd1):
    from nodes.diffusion.controlnet import ControlNetApply, ControlNetApplyAdvanced

    _, clip, cn = sd1
    positive, negative = clip.encode_conditioning("a cat"), clip.encode_conditioning("a dog")
    pos1, neg1 = ControlNetApplyAdvanced().run(positive, negative, cn, _hint_image(), 0.5, 0.1, 0.9)
    assert "control" not in positive[0][1] and "control" not in negative[0][1]
    first = pos1[0][1]["control"]
    assert neg1[0][1]["control"] is first  # one control for both halves: one ControlNet call per step
    assert (first.strength, first.start_percent, first.end_percent, first.previous) == (0.5, 0.1, 0.9, None)
    assert first.hint.shape == (1, 3, 40, 56) and pos1[0][0] is positive[0][0]
    pos2, neg2 = ControlNetApplyAdvanced().run(pos1, neg1, cn, _hint_image(1), 1.0, 0.0, 1.0)
    assert pos2[0][1]["control"].previous is first and pos1[0][1]["control"] is first
    assert pos2[0][1]["control"].chain() == [pos2[0][1]["control"], first]
    unchanged = ControlNetApplyAdvanced().run(positive, negative, cn, _hint_image(), 0.0, 0.0, 1.0)
    assert unchanged[0] is positive and unchanged[1] is negative
    old = ControlNetApply().run(pos1, cn, _hint_image(), 1.0)[0]
    assert old[0][1]["control"].previous is first and pos1[0][1]["control"] is first
    # ComfyUI's marks: the old node's control goes to a negative without one, the advanced node's does not
    assert old[0][1]["control_apply_to_uncond"] is True and pos1[0][1]["control_apply_to_uncond"] is False


@pytest.mark.parametrize("where", ["both", "old on the positive", "positive", "negative"])
def test_the_fast_path_stays_one_unet_call_per_step(sd1, where, monkeypatch):
    from nodes.diffusion.control import ControlRun
    from nodes.diffusion.controlnet import ControlNetApply, ControlNetApplyAdvanced

    model, clip, cn = sd1
    positive, negative = clip.encode_conditioning("a cat"), clip.encode_conditioning("a dog")
    if where == "both":
        positive, negative = ControlNetApplyAdvanced().run(positive, negative, cn, _hint_image(), 1.0, 0.0, 1.0)
    elif where == "old on the positive":  # it goes to the negative too (ComfyUI's control_apply_to_uncond)
        positive = ControlNetApply().run(positive, cn, _hint_image(), 1.0)[0]
    elif where == "positive":  # the advanced node's positive alone
        positive = ControlNetApplyAdvanced().run(positive, negative, cn, _hint_image(), 1.0, 0.0, 1.0)[0]
    else:
        negative = ControlNetApply().run(negative, cn, _hint_image(), 1.0)[0]
    unet_batches, controlnet_batches = [], []
    counted = model.with_wrapper(lambda apply, call: unet_batches.append(call.x.shape[0]) or apply(call))
    original = ControlRun._run

    def counting(self, control, x, *args):
        controlnet_batches.append(x.shape[0])
        return original(self, control, x, *args)

    monkeypatch.setattr(ControlRun, "_run", counting)
    _sample(counted, positive, negative, steps=3)
    assert unet_batches == [2, 2, 2]
    # the same control on both halves: one call on the stacked batch; else only the half that has one
    assert controlnet_batches == ([2] * 3 if where in ("both", "old on the positive") else [1] * 3)


def test_a_control_on_one_half_leaves_the_other_half_exact(sd1):
    """The zero residuals given to the half without a control change nothing in it."""
    from nodes.diffusion.controlnet import ControlNetApplyAdvanced
    from nodes.diffusion.guidance import Guider

    model, clip, cn = sd1
    positive, negative = clip.encode_conditioning("a cat"), clip.encode_conditioning("a dog")
    controlled = ControlNetApplyAdvanced().run(positive, negative, cn, _hint_image(), 1.0, 0.0, 1.0)[0]
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    t = torch.tensor(500.0)
    outputs = {}
    for name, pos in (("plain", positive), ("controlled", controlled)):
        guider = Guider(model, 0.0)  # cfg 0: the prediction is the negative's alone
        guider.set_conds(pos, negative)
        outputs[name] = guider.predictor(x.shape, model.device)(x, t)
    assert torch.equal(outputs["plain"], outputs["controlled"])


def test_the_old_nodes_control_goes_to_conditionings_without_one():
    """ComfyUI's rule (``process_conds``: ``apply_empty_x_to_equal_area`` over the positive's entries
    marked ``control_apply_to_uncond``), written out: the controls of the positive's marked
    whole-frame entries go, the n-th to the n-th whole-frame entry (cycling, a later one replacing
    an earlier one), to every other conditioning none of whose whole-frame entries has a control.
    An entry with an area, or a mask with "mask bounds", is not whole-frame; entries are copied."""
    from nodes.diffusion.control import spread_to_uncond

    a, b, own = object(), object(), object()
    t = torch.zeros(1, 2, 4)

    def marked(control, **options):
        return [t, {"control": control, "control_apply_to_uncond": True, **options}]

    positive = [marked(a), [t, {"control": own, "control_apply_to_uncond": False}], marked(b, area=(4, 4, 0, 0))]
    negative = [[t, {"strength": 0.5}], [t, {"area": (2, 2, 0, 0)}]]
    middle = [[t, {}], [t, {"mask": torch.ones(8, 8)}]]
    out = spread_to_uncond({"positive": positive, "negative": negative, "middle": middle})
    assert out["positive"] is positive
    assert out["negative"][0][0] is t and out["negative"][0][1] == {"strength": 0.5, "control": a}
    assert out["negative"][1] is negative[1] and "control" not in negative[0][1]
    assert out["middle"][0][1] == {"control": a} and out["middle"][1] is middle[1]

    two = [marked(a), marked(b)]
    assert spread_to_uncond({"positive": two, "negative": [[t, {}]]})["negative"][0][1]["control"] is b
    spread = spread_to_uncond({"positive": two, "negative": [[t, {}], [t, {}], [t, {}]]})["negative"]
    assert [e[1].get("control") for e in spread] == [a, b, None]
    mine = [[t, {"control": own}], [t, {}]]
    bounded = [[t, {"mask": torch.ones(8, 8), "set_area_to_bounds": True}]]
    for kept in (mine, bounded):
        assert spread_to_uncond({"positive": two, "negative": kept})["negative"] is kept
    unmarked = {"positive": [[t, {"control": a}]], "negative": [[t, {}]]}
    assert spread_to_uncond(unmarked) is unmarked


def test_the_old_node_on_the_positive_predicts_like_the_advanced_one(sd1):
    """What the guider does with the rule: the old node on the positive is, call for call, the
    advanced node with the whole schedule (also on the negative's prediction alone, cfg 0); on the
    negative it stays there; DualCFG's middle and negative get it too, as in ComfyUI."""
    from nodes.diffusion.controlnet import ControlNetApply, ControlNetApplyAdvanced
    from nodes.diffusion.guidance import Guider
    from nodes.guidance.dual_cfg import DualCFG

    model, clip, cn = sd1
    positive, negative = clip.encode_conditioning("a cat"), clip.encode_conditioning("a dog")
    old = ControlNetApply().run(positive, cn, _hint_image(), 0.8)[0]
    advanced = ControlNetApplyAdvanced().run(positive, negative, cn, _hint_image(), 0.8, 0.0, 1.0)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    t = torch.tensor(500.0)

    def predict(cfg, pos, neg):
        guider = Guider(model, cfg)
        guider.set_conds(pos, neg)
        return guider, guider.predictor(x.shape, model.device)(x, t)

    for cfg in (0.0, 6.0):
        guider, from_old = predict(cfg, old, negative)
        assert guider.conds["negative"][0][1]["control"] is old[0][1]["control"] and "control" not in negative[0][1]
        assert torch.equal(from_old, predict(cfg, *advanced)[1])
    assert not torch.equal(predict(0.0, old, negative)[1], predict(0.0, positive, negative)[1])
    on_negative = ControlNetApply().run(negative, cn, _hint_image(), 0.8)[0]
    assert "control" not in predict(6.0, positive, on_negative)[0].conds["positive"][0][1]
    dual = DualCFG(model, 5.0, 2.0)
    dual.set_conds(old, clip.encode_conditioning("a bird"), negative)
    assert all(dual.conds[k][0][1]["control"] is old[0][1]["control"] for k in ("middle", "negative"))


def test_area_conditioning_passes_controls(sd1):
    from nodes.diffusion.conditioning import ConditioningCombine, ConditioningSetArea
    from nodes.diffusion.controlnet import ControlNetApplyAdvanced

    model, clip, cn = sd1
    positive, negative = clip.encode_conditioning("a cat"), clip.encode_conditioning("a dog")
    left = ConditioningSetArea().run(clip.encode_conditioning("a tree"), 32, 64, 0, 0, 1.0)
    regions = ConditioningCombine().run(left, positive)
    plain = _sample(model, regions, negative)
    pos_cn, neg_cn = ControlNetApplyAdvanced().run(regions, negative, cn, _hint_image(), 1.0, 0.0, 1.0)
    assert not torch.equal(_sample(model, pos_cn, neg_cn), plain)
    off_pos, off_neg = ControlNetApplyAdvanced().run(regions, negative, cn, _hint_image(), 1.0, 1.0, 1.0)
    assert torch.equal(_sample(model, off_pos, off_neg), plain)


def test_the_controlnet_gets_the_unets_whole_timestep(sd1):
    """ComfyUI calls a ControlNet at the UNet's timestep: the training timestep whose log sigma is
    nearest the step's sigma (ModelSamplingDiscrete.timestep), a whole number."""
    from nodes.diffusion.controlnet import ControlNetApplyAdvanced
    from nodes.diffusion.sampler_nodes import KSamplerSelect, SamplerCustom
    from nodes.diffusion.samplers import model_sigmas

    model, clip, cn = sd1
    positive, negative = clip.encode_conditioning("a cat"), clip.encode_conditioning("a dog")
    positive, negative = ControlNetApplyAdvanced().run(positive, negative, cn, _hint_image(), 1.0, 0.0, 1.0)
    log_sigmas = model_sigmas(model.scheduler_config).log_sigmas.double()
    between = torch.tensor([900.3, 610.7, 250.2, 40.6], dtype=torch.float64)  # fractional timesteps
    low = between.floor().long()
    sigmas = ((1 - between.frac()) * log_sigmas[low] + between.frac() * log_sigmas[low + 1]).exp()
    nearest = [int((log_sigmas - s.log()).abs().argmin()) for s in sigmas]
    assert nearest == [900, 611, 250, 41]
    seen: dict[str, list[list[float]]] = {"unet": [], "controlnet": []}
    modules = {"unet": model.prepare(), "controlnet": cn.handle.on_device()}
    for name, module in modules.items():
        module.forward = lambda sample, timestep, *a, _f=module.forward, _n=name, **k: (
            seen[_n].append(timestep.tolist()) or _f(sample, timestep, *a, **k)
        )
    try:
        SamplerCustom().run(
            model,
            True,
            1,
            6.0,
            positive,
            negative,
            KSamplerSelect().run("euler")[0],
            torch.cat([sigmas.float(), torch.zeros(1)]),
            {"samples": torch.zeros(1, 4, 8, 8)},
        )
    finally:
        for module in modules.values():
            del module.forward
    assert seen["unet"] == seen["controlnet"] == [[float(t)] * 2 for t in nearest]


def test_an_sdxl_controlnet_gets_pooled_text_and_size_ids(tiny_paths, manager):
    """No tiny SDXL ControlNet is shipped; one derived from the tiny SDXL UNet exercises the
    added_cond_kwargs path that SDXL ControlNets need."""
    from diffusers import ControlNetModel

    from nodes.diffusion.control import ControlNet
    from nodes.diffusion.controlnet import ControlNetApplyAdvanced
    from nodes.diffusion.loaders import CheckpointLoaderSimple

    model, clip, _ = CheckpointLoaderSimple().run(SDXL)
    torch.manual_seed(0)
    derived = ControlNetModel.from_unet(model.unet.load(), conditioning_embedding_out_channels=(8, 16, 16, 32))
    with torch.no_grad():
        for p in derived.parameters():  # zero convs start at 0: give them a voice
            if not p.any():
                p.normal_(0, 0.05)
    handle = manager.handle(("test-sdxl-controlnet",), "controlnet", lambda: derived, name="derived-sdxl")
    cn = ControlNet(handle, "sdxl", "derived-sdxl")
    positive, negative = clip.encode_conditioning("a cat"), clip.encode_conditioning("a dog")
    plain = _sample(model, positive, negative)
    pos_cn, neg_cn = ControlNetApplyAdvanced().run(positive, negative, cn, _hint_image(), 1.0, 0.0, 1.0)
    assert not torch.equal(_sample(model, pos_cn, neg_cn), plain)


def test_hint_preparation_follows_comfyui():
    from nodes.diffusion.control import _broadcast, hint_from_image
    from nodes.diffusion.latent import resize_nchw

    rgba = torch.rand(2, 30, 50, 4)
    hint = hint_from_image(rgba)
    assert hint.shape == (2, 3, 30, 50) and torch.equal(hint, rgba[..., :3].movedim(-1, 1))  # 0..1, not -1..1
    assert hint_from_image(torch.rand(20, 20, 1)).shape == (1, 3, 20, 20)
    with pytest.raises(ValueError, match="image"):
        hint_from_image(torch.rand(1, 8, 8, 2))
    # centre crop to the target's aspect, then nearest-exact: a 30x50 hint for a 64x64 image keeps the middle 30x30
    resized = resize_nchw(hint, 64, 64, "nearest-exact", "center")
    expected = torch.nn.functional.interpolate(hint[:, :, :, 10:40], size=(64, 64), mode="nearest-exact")
    assert torch.equal(resized, expected)
    one = torch.rand(1, 3, 8, 8)
    assert _broadcast(one, 4, 2) is one  # broadcasts inside the ControlNet
    two = torch.rand(2, 3, 8, 8)
    assert torch.equal(_broadcast(two, 4, 2), torch.cat([two, two]))  # per half, for cond and uncond
    three = torch.rand(3, 3, 8, 8)
    assert torch.equal(_broadcast(three, 4, 2), torch.cat([three[:2], three[:2]]))
