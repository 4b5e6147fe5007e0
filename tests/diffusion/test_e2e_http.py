"""End to end through the real HTTP server with the tiny models: ComfyUI API prompts for
txt2img (SD1, SDXL), img2img, inpainting, hires fix, SamplerCustomAdvanced, every sampler and
scheduler, seeds, caching, progress/previews over the WebSocket and interruption."""

from __future__ import annotations

import io
import json
import uuid

import numpy as np
import pytest
import torch
from PIL import Image

from nodes.diffusion.samplers import SAMPLER_NAMES, SCHEDULER_NAMES, UNSUPPORTED_SAMPLERS
from tests.support.ws import EventRecorder

SD1 = "tiny-sd1.safetensors"
SDXL = "tiny-sdxl.safetensors"


def run(server, prompt, timeout=120.0, **extra):
    prompt_id = server.queue_prompt(prompt, **extra)
    entry = server.wait_history(prompt_id, timeout)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"]["messages"])[:3000]
    return prompt_id, entry


def messages(entry, kind):
    return [data for event, data in entry["status"]["messages"] if event == kind]


def fetch(server, image):
    query = f"/view?filename={image['filename']}&subfolder={image['subfolder']}&type={image['type']}"
    status, body = server.get(query)
    assert status == 200, body
    return Image.open(io.BytesIO(body))


def pixels(img):
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32)).reshape(img.height, img.width, 3)


def base_graph(ckpt=SD1, seed=1, steps=3, sampler="euler", scheduler="karras", size=64, prefix="out", cfg=6.0):
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a (red:1.2) fox in the snow", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, lowres", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": seed,
                "steps": steps,
                "cfg": cfg,
                "sampler_name": sampler,
                "scheduler": scheduler,
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


def saved(entry, node="7", index=0):
    return entry["outputs"][node]["images"][index]


def test_txt2img_png_carries_prompt_and_workflow(server):
    prompt = base_graph(prefix="txt2img/fox")
    workflow = {"last_node_id": 7, "nodes": [], "links": [], "version": 0.4}
    _, entry = run(server, prompt, extra_data={"extra_pnginfo": {"workflow": workflow}})
    image = saved(entry)
    assert image["subfolder"] == "txt2img" and image["filename"] == "fox_00001_.png"
    png = fetch(server, image)
    assert png.size == (64, 64)
    assert json.loads(png.text["prompt"])["5"]["class_type"] == "KSampler"
    assert json.loads(png.text["workflow"]) == workflow
    assert pixels(png).std() > 0  # not a blank image


def test_comfyui_default_workflow_runs_unchanged(server):
    """ComfyUI's default graph exported in API format (ids, widget values, _meta titles as
    ComfyUI writes them); only the checkpoint file name differs."""
    prompt = {
        "3": {
            "inputs": {
                "seed": 156680208700286,
                "steps": 4,
                "cfg": 8,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
            "class_type": "KSampler",
            "_meta": {"title": "KSampler"},
        },
        "4": {
            "inputs": {"ckpt_name": SD1},
            "class_type": "CheckpointLoaderSimple",
            "_meta": {"title": "Load Checkpoint"},
        },
        "5": {
            "inputs": {"width": 64, "height": 64, "batch_size": 2},
            "class_type": "EmptyLatentImage",
            "_meta": {"title": "Empty Latent Image"},
        },
        "6": {
            "inputs": {
                "text": "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
                "clip": ["4", 1],
            },
            "class_type": "CLIPTextEncode",
            "_meta": {"title": "CLIP Text Encode (Prompt)"},
        },
        "7": {
            "inputs": {"text": "text, watermark", "clip": ["4", 1]},
            "class_type": "CLIPTextEncode",
            "_meta": {"title": "CLIP Text Encode (Prompt)"},
        },
        "8": {
            "inputs": {"samples": ["3", 0], "vae": ["4", 2]},
            "class_type": "VAEDecode",
            "_meta": {"title": "VAE Decode"},
        },
        "9": {
            "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]},
            "class_type": "SaveImage",
            "_meta": {"title": "Save Image"},
        },
    }
    _, entry = run(server, prompt)
    images = entry["outputs"]["9"]["images"]
    assert [i["filename"] for i in images] == ["ComfyUI_00001_.png", "ComfyUI_00002_.png"]
    first, second = (pixels(fetch(server, i)) for i in images)
    assert not torch.equal(first, second)  # a batch of two gets two noises


def test_same_seed_same_pixels_and_seed_change_reruns_only_the_sampler(server):
    _, first = run(server, base_graph(seed=42, prefix="seed"))
    _, again = run(server, base_graph(seed=42, prefix="seed2"))
    assert torch.equal(pixels(fetch(server, saved(first))), pixels(fetch(server, saved(again))))
    # only the prefix changed: everything up to the decoder came from the cache
    assert set(messages(again, "execution_cached")[0]["nodes"]) >= {"1", "2", "3", "4", "5", "6"}
    _, other = run(server, base_graph(seed=43, prefix="seed"))
    cached = set(messages(other, "execution_cached")[0]["nodes"])
    assert cached == {"1", "2", "3", "4"}  # model, text encodings and latent reused
    assert not torch.equal(pixels(fetch(server, saved(first))), pixels(fetch(server, saved(other))))


def _write_source(server, name="source.png"):
    gradient = torch.linspace(0, 255, 64).round().to(torch.uint8)
    rgb = torch.stack(
        [
            gradient[None, :].expand(64, 64),
            gradient[:, None].expand(64, 64),
            torch.full((64, 64), 128, dtype=torch.uint8),
        ],
        -1,
    )
    alpha = torch.full((64, 64), 255, dtype=torch.uint8)
    alpha[16:48, 16:48] = 0  # transparent square = the area to inpaint (LoadImage's mask is 1 there)
    img = Image.fromarray(torch.cat([rgb, alpha[..., None]], -1).numpy(), "RGBA")
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    (server.base_dir / "input").mkdir(exist_ok=True)
    (server.base_dir / "input" / name).write_bytes(buffer.getvalue())
    return name


def test_img2img_denoise_keeps_the_source_structure(server):
    name = _write_source(server)
    prompt = base_graph(prefix="i2i", steps=4)
    prompt["8"] = {"class_type": "LoadImage", "inputs": {"image": name}}
    prompt["9"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["8", 0], "vae": ["1", 2]}}
    prompt["5"]["inputs"].update(latent_image=["9", 0], denoise=0.6)
    # the reference: the source through the VAE alone
    prompt["10"] = {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}}
    prompt["11"] = {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "i2i_ref"}}
    _, entry = run(server, prompt)
    out, ref = pixels(fetch(server, saved(entry))), pixels(fetch(server, saved(entry, "11")))
    full = dict(prompt, **{"5": {**prompt["5"], "inputs": {**prompt["5"]["inputs"], "denoise": 1.0}}})
    _, entry_full = run(server, full)
    out_full = pixels(fetch(server, saved(entry_full)))
    assert 0 < (out - ref).abs().mean() < (out_full - ref).abs().mean()


@pytest.mark.parametrize("how", ["SetLatentNoiseMask", "VAEEncodeForInpaint"])
def test_inpainting_keeps_unmasked_pixels(server, how):
    name = _write_source(server, "inpaint.png")
    prompt = base_graph(prefix=f"inpaint_{how}", steps=4)
    prompt["8"] = {"class_type": "LoadImage", "inputs": {"image": name}}
    prompt["9"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["8", 0], "vae": ["1", 2]}}
    if how == "SetLatentNoiseMask":
        prompt["12"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["9", 0], "mask": ["8", 1]}}
    else:
        prompt["12"] = {
            "class_type": "VAEEncodeForInpaint",
            "inputs": {"pixels": ["8", 0], "vae": ["1", 2], "mask": ["8", 1], "grow_mask_by": 6},
        }
    prompt["5"]["inputs"]["latent_image"] = ["12", 0]
    prompt["10"] = {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}}
    prompt["11"] = {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "inpaint_ref"}}
    _, entry = run(server, prompt)
    out, ref = pixels(fetch(server, saved(entry))), pixels(fetch(server, saved(entry, "11")))
    outside = torch.ones(64, 64, dtype=torch.bool)
    outside[8:56, 8:56] = False  # a margin around the 32x32 hole (the VAE's receptive field)
    inside = torch.zeros(64, 64, dtype=torch.bool)
    inside[24:40, 24:40] = True
    diff = (out - ref).abs().mean(-1)
    # The latent outside the mask is the source's exactly (tests/diffusion/test_sampling.py);
    # in pixels the tiny VAE's mid-block attention spreads the repainted centre over the whole
    # image a little, so "close" is relative to what the repainted area changed.
    assert diff[outside].mean() < 0.4 * diff[inside].mean()


def test_sdxl_txt2img(server):
    _, entry = run(server, base_graph(ckpt=SDXL, prefix="sdxl", steps=3))
    png = fetch(server, saved(entry))
    assert png.size == (64, 64) and pixels(png).std() > 0


def test_sd2_v_prediction_with_ve_and_vp_samplers(server):
    prompt = base_graph(ckpt="tiny-sd2.safetensors", prefix="sd2")
    for key in ("5", "6", "7"):
        del prompt[key]
    for i, sampler in enumerate(["euler", "heun", "dpmpp_2m_sde", "uni_pc", "deis", "lcm"]):
        prompt[f"k{i}"] = {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": i,
                "steps": 3,
                "cfg": 6.0,
                "sampler_name": sampler,
                "scheduler": "normal",
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "denoise": 1.0,
            },
        }
        prompt[f"d{i}"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"k{i}", 0], "vae": ["1", 2]}}
        prompt[f"s{i}"] = {
            "class_type": "SaveImage",
            "inputs": {"images": [f"d{i}", 0], "filename_prefix": f"sd2_{sampler}"},
        }
    _, entry = run(server, prompt)
    for i in range(6):
        assert pixels(fetch(server, saved(entry, f"s{i}"))).std() > 0


def test_area_mask_and_zeroed_conditioning(server):
    name = _write_source(server, "cond_mask.png")
    prompt = base_graph(prefix="regions", steps=3, size=128)
    prompt.update(
        {
            "30": {"class_type": "CLIPTextEncode", "inputs": {"text": "a blue sky", "clip": ["1", 1]}},
            "31": {
                "class_type": "ConditioningSetArea",
                "inputs": {"conditioning": ["30", 0], "width": 128, "height": 64, "x": 0, "y": 0, "strength": 1.0},
            },
            "32": {"class_type": "LoadImage", "inputs": {"image": name}},
            "33": {
                "class_type": "ConditioningSetMask",
                "inputs": {
                    "conditioning": ["2", 0],
                    "mask": ["32", 1],
                    "strength": 1.0,
                    "set_cond_area": "mask bounds",
                },
            },
            "34": {
                "class_type": "ConditioningCombine",
                "inputs": {"conditioning_1": ["31", 0], "conditioning_2": ["33", 0]},
            },
            "35": {
                "class_type": "ConditioningCombine",
                "inputs": {"conditioning_1": ["34", 0], "conditioning_2": ["2", 0]},
            },
            "36": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["3", 0]}},
        }
    )
    prompt["5"]["inputs"].update(positive=["35", 0], negative=["36", 0])
    _, entry = run(server, prompt)
    _, plain = run(server, base_graph(prefix="regions_plain", steps=3, size=128))
    assert not torch.equal(pixels(fetch(server, saved(entry))), pixels(fetch(server, saved(plain))))


def test_sampler_custom_advanced(server):
    prompt = base_graph(prefix="custom")
    del prompt["5"]
    prompt.update(
        {
            "20": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
            "21": {
                "class_type": "CFGGuider",
                "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "cfg": 6.0},
            },
            "22": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}},
            "23": {
                "class_type": "BasicScheduler",
                "inputs": {"model": ["1", 0], "scheduler": "karras", "steps": 3, "denoise": 1.0},
            },
            "5": {
                "class_type": "SamplerCustomAdvanced",
                "inputs": {
                    "noise": ["20", 0],
                    "guider": ["21", 0],
                    "sampler": ["22", 0],
                    "sigmas": ["23", 0],
                    "latent_image": ["4", 0],
                },
            },
            "24": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 1], "vae": ["1", 2]}},
            "25": {"class_type": "SaveImage", "inputs": {"images": ["24", 0], "filename_prefix": "custom_denoised"}},
        }
    )
    _, entry = run(server, prompt)
    ksampler = base_graph(prefix="custom_ref", seed=5, sampler="dpmpp_2m")
    _, ref = run(server, ksampler)
    assert torch.allclose(pixels(fetch(server, saved(entry))), pixels(fetch(server, saved(ref))), atol=1.0)
    assert saved(entry, "25")["filename"].startswith("custom_denoised")


def test_hires_fix(server):
    prompt = base_graph(prefix="hires", steps=2)
    prompt["8"] = {
        "class_type": "LatentUpscaleBy",
        "inputs": {"samples": ["5", 0], "upscale_method": "bilinear", "scale_by": 1.5},
    }
    prompt["9"] = {
        "class_type": "KSampler",
        "inputs": {
            "model": ["1", 0],
            "seed": 2,
            "steps": 2,
            "cfg": 6.0,
            "sampler_name": "dpmpp_2m",
            "scheduler": "simple",
            "positive": ["2", 0],
            "negative": ["3", 0],
            "latent_image": ["8", 0],
            "denoise": 0.5,
        },
    }
    prompt["6"]["inputs"]["samples"] = ["9", 0]
    prompt["10"] = {
        "class_type": "VAEDecodeTiled",
        "inputs": {"samples": ["9", 0], "vae": ["1", 2], "tile_size": 64, "overlap": 32},
    }
    prompt["11"] = {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "hires_tiled"}}
    _, entry = run(server, prompt)
    assert fetch(server, saved(entry)).size == (96, 96)
    assert fetch(server, saved(entry, "11")).size == (96, 96)


def test_every_sampler_and_scheduler_runs(server):
    prompt = base_graph(prefix="all")
    for key in ("5", "6", "7"):
        del prompt[key]
    combos = [(s, "normal" if s in ("lcm", "ddim") else "karras") for s in SAMPLER_NAMES]
    combos += [("euler", sch) for sch in SCHEDULER_NAMES]
    for i, (sampler, scheduler) in enumerate(combos):
        k, d, p = f"k{i}", f"d{i}", f"p{i}"
        prompt[k] = {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": i,
                "steps": 2,
                "cfg": 6.0,
                "sampler_name": sampler,
                "scheduler": scheduler,
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "denoise": 1.0,
            },
        }
        prompt[d] = {"class_type": "VAEDecode", "inputs": {"samples": [k, 0], "vae": ["1", 2]}}
        prompt[p] = {"class_type": "PreviewImage", "inputs": {"images": [d, 0]}}
    _, entry = run(server, prompt, timeout=240)
    assert {f"p{i}" for i in range(len(combos))} <= set(entry["outputs"])
    # and a name Weft refuses is refused before anything runs, naming the input
    bad = base_graph()
    bad["5"]["inputs"]["sampler_name"] = next(iter(UNSUPPORTED_SAMPLERS), "no_such_sampler")
    status, body = server.post("/prompt", {"prompt": bad})
    assert status == 400
    assert "sampler_name" in json.dumps(body["node_errors"]["5"])


async def test_progress_previews_and_interrupt_over_websocket(server):
    client = uuid.uuid4().hex
    async with EventRecorder(server.ws_url, client) as ws:
        prompt_id = server.queue_prompt(
            base_graph(seed=77, steps=4, prefix="ws"), client_id=client, extra_data={"preview_method": "auto"}
        )  # previews are off unless asked
        await ws.wait_done(prompt_id, timeout=120)
        progress = [(d["value"], d["max"]) for e, d in ws.for_prompt(prompt_id) if e == "progress"]
        assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
        assert len(ws.previews) >= 4 and ws.previews[0][2][:2] == b"\xff\xd8"  # JPEG frames

        long_id = server.queue_prompt(base_graph(seed=78, steps=400, prefix="ws_long"), client_id=client)
        await ws.wait_for(lambda e, d: e == "progress" and d.get("prompt_id") == long_id, timeout=120)
        status, _ = server.post("/interrupt")
        assert status == 200
        await ws.wait_for(lambda e, d: e == "execution_interrupted" and d.get("prompt_id") == long_id, timeout=120)
        steps = [d["value"] for e, d in ws.for_prompt(long_id) if e == "progress"]
        assert 1 <= len(steps) < 400
    entry = server.wait_history(long_id)
    assert entry["status"]["status_str"] == "error"
