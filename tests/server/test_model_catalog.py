"""The model catalogue over HTTP: ComfyUI's /experiment/models routes with each file's size and
the family read from its header, and the model folder /object_info names for file combos."""

from __future__ import annotations

from tests.support.fake_models import (
    CLIP_G,
    SD1_LORA,
    SD2_CHECKPOINT,
    SDXL_CHECKPOINT,
    SDXL_LORA,
    VAE,
    write_safetensors,
)


def test_folders_and_files_with_size_and_family(live_server):
    models = live_server.base_dir / "models"
    write_safetensors(models / "checkpoints" / "xl" / "base.safetensors", SDXL_CHECKPOINT, payload=1000)
    write_safetensors(models / "checkpoints" / "v2.safetensors", SD2_CHECKPOINT)
    write_safetensors(models / "loras" / "sd1-style.safetensors", SD1_LORA)
    write_safetensors(models / "loras" / "xl-style.safetensors", SDXL_LORA)
    write_safetensors(models / "text_encoders" / "clip_g.safetensors", CLIP_G)
    write_safetensors(models / "vae" / "any.safetensors", VAE)
    (models / "loras" / "old.ckpt").write_bytes(b"not unpickled")  # a pickle is never opened

    status, folders = live_server.get("/api/experiment/models")
    assert status == 200
    names = [f["name"] for f in folders]
    assert "checkpoints" in names and "loras" in names and "configs" not in names
    checkpoints = next(f for f in folders if f["name"] == "checkpoints")
    assert str((models / "checkpoints").resolve()) in checkpoints["folders"]

    status, files = live_server.get("/experiment/models/checkpoints")
    assert status == 200
    by_name = {f["name"]: f for f in files}
    base = by_name["xl/base.safetensors"]
    assert base["family"] == "sdxl" and base["builtin"] is False and base["pathIndex"] == 0
    assert base["size"] == (models / "checkpoints" / "xl" / "base.safetensors").stat().st_size > 1000
    assert base["modified"] > 0 and base["created"] > 0
    assert by_name["v2.safetensors"]["family"] == "sd2"
    builtin = by_name["weft-shapes.safetensors"]  # the model that ships with Weft
    assert builtin["builtin"] is True and builtin["family"] == "sd1"

    _, loras = live_server.get("/api/experiment/models/loras")
    assert {f["name"]: f["family"] for f in loras} == {
        "old.ckpt": None,
        "sd1-style.safetensors": "sd1",
        "xl-style.safetensors": "sdxl",
    }
    _, encoders = live_server.get("/api/experiment/models/text_encoders")
    assert [(f["name"], f["family"]) for f in encoders] == [("clip_g.safetensors", "clip_g")]
    _, vaes = live_server.get("/api/experiment/models/vae")
    assert [(f["name"], f["family"]) for f in vaes] == [("any.safetensors", None)]


def test_unknown_folder_and_bad_files(live_server):
    status, body = live_server.get("/api/experiment/models/nope")
    assert status == 404 and "checkpoints" in body["error"]["message"]
    bad = live_server.base_dir / "models" / "checkpoints" / "broken.safetensors"
    bad.write_bytes(b"\xff" * 20)  # a header length no file has
    status, files = live_server.get("/api/experiment/models/checkpoints")
    assert status == 200
    assert {"name": "broken.safetensors", "family": None, "size": 20}.items() <= next(
        f for f in files if f["name"] == "broken.safetensors"
    ).items()


def test_object_info_names_the_folder_of_file_combos(live_server):
    _, info = live_server.get("/api/object_info")
    ckpt = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"]
    assert ckpt[1]["model_folder"] == "checkpoints" and "weft-shapes.safetensors" in ckpt[0]
    assert info["LoraLoader"]["input"]["required"]["lora_name"][1]["model_folder"] == "loras"
    assert info["VAELoader"]["input"]["required"]["vae_name"][1]["model_folder"] == "vae"
    assert info["ControlNetLoader"]["input"]["required"]["control_net_name"][1]["model_folder"] == "controlnet"
    assert "model_folder" not in info["KSampler"]["input"]["required"]["sampler_name"][1]
