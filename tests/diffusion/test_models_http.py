"""The model nodes through the real HTTP server: LoRA (changes the image; strength 0 is no
LoRA), the diffusers-folder and single-file loaders agree, /object_info describes the nodes
in ComfyUI's shape, POST /free unloads and GET /system_stats reports the device."""

from __future__ import annotations

import io
import json

import numpy as np
import torch
from PIL import Image

SD1 = "tiny-sd1.safetensors"
LORA = "tiny-sd1-lora.safetensors"


def run(server, prompt):
    prompt_id = server.queue_prompt(prompt)
    entry = server.wait_history(prompt_id, 120.0)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"]["messages"])[:3000]
    return entry


def image_of(server, entry, node="9"):
    image = entry["outputs"][node]["images"][0]
    query = f"/view?filename={image['filename']}&subfolder={image['subfolder']}&type={image['type']}"
    status, body = server.get(query)
    assert status == 200
    img = Image.open(io.BytesIO(body)).convert("RGB")
    return torch.from_numpy(np.asarray(img).astype(np.float32))


def graph(loader: dict, *, lora: tuple[float, float] | None = None, prefix: str = "m") -> dict:
    model, clip = ["1", 0], ["1", 1]
    prompt: dict = {"1": loader}
    if lora is not None:
        prompt["2"] = {
            "class_type": "LoraLoader",
            "inputs": {
                "model": model,
                "clip": clip,
                "lora_name": LORA,
                "strength_model": lora[0],
                "strength_clip": lora[1],
            },
        }
        model, clip = ["2", 0], ["2", 1]
    prompt.update(
        {
            "3": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": clip, "stop_at_clip_layer": -1}},
            "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a (tiny:1.2) red robot", "clip": ["3", 0]}},
            "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["3", 0]}},
            "6": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "7": {
                "class_type": "KSampler",
                "inputs": {
                    "model": model,
                    "seed": 7,
                    "steps": 3,
                    "cfg": 5.0,
                    "sampler_name": "euler",
                    "scheduler": "normal",
                    "positive": ["4", 0],
                    "negative": ["5", 0],
                    "latent_image": ["6", 0],
                    "denoise": 1.0,
                },
            },
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
        }
    )
    return prompt


CHECKPOINT = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD1}}


def test_lora_changes_the_image_and_strength_zero_is_no_lora(server):
    plain = image_of(server, run(server, graph(CHECKPOINT, prefix="plain")))
    with_lora = image_of(server, run(server, graph(CHECKPOINT, lora=(1.0, 1.0), prefix="lora")))
    zero = image_of(server, run(server, graph(CHECKPOINT, lora=(0.0, 0.0), prefix="zero")))
    assert not torch.equal(plain, with_lora)
    assert torch.equal(plain, zero)
    # the unpatched model after a LoRA run gives the original image again (weights restored)
    again = image_of(server, run(server, graph(CHECKPOINT, prefix="plain-again")))
    assert torch.equal(plain, again)


def test_diffusers_folder_and_single_file_give_the_same_image(server):
    single = image_of(server, run(server, graph(CHECKPOINT, prefix="single")))
    folder = image_of(
        server,
        run(server, graph({"class_type": "DiffusersLoader", "inputs": {"model_path": "tiny-sd1"}}, prefix="folder")),
    )
    assert (single - folder).abs().max() <= 1  # same weights; at most a rounding step apart


def test_object_info_describes_the_model_nodes_like_comfyui(server):
    status, info = server.get("/object_info")
    assert status == 200
    ckpt = info["CheckpointLoaderSimple"]
    assert ckpt["output"] == ["MODEL", "CLIP", "VAE"] and ckpt["category"] == "loaders"
    assert SD1 in ckpt["input"]["required"]["ckpt_name"][0]
    encode = info["CLIPTextEncode"]
    assert list(encode["input"]["required"]) == ["text", "clip"]
    assert encode["input"]["required"]["text"][1]["multiline"] is True
    assert encode["input"]["required"]["text"][1]["dynamicPrompts"] is True
    assert encode["output"] == ["CONDITIONING"]
    lora = info["LoraLoader"]
    assert list(lora["input"]["required"]) == ["model", "clip", "lora_name", "strength_model", "strength_clip"]
    assert LORA in lora["input"]["required"]["lora_name"][0]
    assert lora["output"] == ["MODEL", "CLIP"]
    assert list(info["CLIPSetLastLayer"]["input"]["required"]) == ["clip", "stop_at_clip_layer"]
    assert list(info["ConditioningSetArea"]["input"]["required"]) == [
        "conditioning",
        "width",
        "height",
        "x",
        "y",
        "strength",
    ]
    assert list(info["UNETLoader"]["input"]["required"]) == ["unet_name", "weight_dtype"]
    assert "tiny-sdxl" in info["DiffusersLoader"]["input"]["required"]["model_path"][0]


def test_user_errors_name_the_node_input_and_file(server):
    prompt = graph(CHECKPOINT, lora=(1.0, 1.0), prefix="bad")
    prompt["2"]["inputs"]["lora_name"] = "nope.safetensors"
    status, body = server.post("/prompt", {"prompt": prompt})
    assert status == 400  # not in the combo list: refused before anything runs
    assert "nope.safetensors" in json.dumps(body["node_errors"]["2"])


def test_free_unloads_models_and_system_stats_reports_the_device(server):
    from nodes.diffusion.model_manager import get_manager

    run(server, graph(CHECKPOINT, prefix="before-free"))
    manager = get_manager()
    assert any(h.module is not None for h in manager.handles())
    status, _ = server.post("/free", {"unload_models": True})
    assert status == 200
    assert not any(h.module is not None for h in manager.handles())
    status, stats = server.get("/system_stats")
    assert status == 200 and stats["devices"][0]["type"] == "cpu"
    # and the next run loads again from the files
    run(server, graph(CHECKPOINT, prefix="after-free"))
