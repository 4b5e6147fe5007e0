"""Symlinks: model folders follow them (a checkpoint shared from another install loads), the
folders Weft writes to or serves (input/, output/, temp/) do not let one lead elsewhere.

Names from requests may still not climb out of a model folder with ``..`` or an absolute path.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

import nodes.paths as paths_module
from nodes.paths import BUILTIN_MODELS, UnsafePathError
from tests.support.server import LiveServer, start_server

SHAPES = BUILTIN_MODELS / "checkpoints" / "weft-shapes.safetensors"


def _shared_models(tmp_path: Path) -> tuple[Path, Path]:
    """A base directory whose models/ links to files and folders of a 'shared' models folder elsewhere."""
    shared = tmp_path / "shared-models"
    (shared / "checkpoints" / "sdxl").mkdir(parents=True)
    (shared / "checkpoints" / "sdxl" / "big.safetensors").write_bytes(b"weights")
    (shared / "loras").mkdir()
    (shared / "loras" / "style.safetensors").write_bytes(b"lora")
    base = tmp_path / "install"
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    os.symlink(SHAPES, checkpoints / "linked-shapes.safetensors")  # a file linked in
    os.symlink(shared / "checkpoints" / "sdxl", checkpoints / "sdxl")  # a folder linked in
    (base / "models" / "loras").mkdir()
    os.symlink(shared / "loras" / "style.safetensors", base / "models" / "loras" / "style.safetensors")
    return base, shared


def test_model_folders_list_and_resolve_symlinked_files(tmp_path: Path) -> None:
    base, shared = _shared_models(tmp_path)
    paths = paths_module.Paths.at(base, builtin_models=None)
    assert paths.list_models("checkpoints") == ["linked-shapes.safetensors", "sdxl/big.safetensors"]
    assert paths.model_path("checkpoints", "linked-shapes.safetensors").resolve() == SHAPES.resolve()
    assert paths.model_path("checkpoints", "sdxl/big.safetensors").read_bytes() == b"weights"
    assert paths.model_path("loras", "style.safetensors").resolve() == (shared / "loras" / "style.safetensors")
    # names from requests still may not climb out
    for name in (
        "../../shared-models/loras/style.safetensors",
        "sdxl/../../x.safetensors",
        str(shared / "loras" / "style.safetensors"),
        "C:\\models\\x.safetensors",
    ):
        with pytest.raises(UnsafePathError):
            paths.model_path("loras", name)


def test_comfyui_folder_paths_follow_model_symlinks_too(tmp_path: Path) -> None:
    from nodes.plugins.loader import install_compat

    install_compat()
    import folder_paths

    base, shared = _shared_models(tmp_path)
    with paths_module.using(paths_module.Paths.at(base, builtin_models=None)):  # folder_paths' view goes with them
        found = folder_paths.get_full_path("loras", "style.safetensors")
        assert Path(found).resolve() == shared / "loras" / "style.safetensors"
        assert folder_paths.get_full_path("loras", "../loras/style.safetensors") is None


def test_a_symlinked_checkpoint_loads(tmp_path: Path) -> None:
    from nodes.diffusion.loaders import CheckpointLoaderSimple
    from nodes.diffusion.model_manager import reset_manager

    base, _ = _shared_models(tmp_path)
    with paths_module.using(paths_module.Paths.at(base)):
        reset_manager(collect=False)
        model, clip, vae = CheckpointLoaderSimple().run("linked-shapes.safetensors")
        assert vae.handle.load() is not None and model.unet.load() is not None
        reset_manager(collect=False)


def test_the_server_lists_and_runs_a_symlinked_checkpoint(tmp_path: Path) -> None:
    base, _ = _shared_models(tmp_path)
    live = start_server(base)
    try:
        status, names = live.get("/models/checkpoints")
        assert status == 200 and "linked-shapes.safetensors" in names
        prompt = {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "linked-shapes.safetensors"}},
            "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
            "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
        }
        entry = live.wait_history(live.queue_prompt(prompt), timeout=120)
        assert entry["status"]["status_str"] == "success", entry["status"]["messages"]
        assert entry["outputs"]["4"]["images"][0]["type"] == "temp"
    finally:
        live.stop()


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_symlink_out_of_input_is_still_refused(
    live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    secret = tmp_path_factory.mktemp("outside") / "secret.png"
    secret.write_bytes(_png())
    os.symlink(secret, live_server.base_dir / "input" / "escape.png")
    os.symlink(secret.parent, live_server.base_dir / "input" / "escape-dir")
    assert live_server.get("/view?type=input&filename=escape.png")[0] == 403
    assert live_server.get("/view?type=input&subfolder=escape-dir&filename=secret.png")[0] == 403
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "escape.png"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    status, body = live_server.post("/prompt", {"prompt": prompt})
    assert status == 400
    assert "leaves its folder" in str(body["node_errors"]["1"])
