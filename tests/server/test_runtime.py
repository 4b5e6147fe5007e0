"""Two servers in one process each keep their own runtime: folders, catalogue, what packs
registered through ``folder_paths``, ``PromptServer.instance``, launch options.

Building an app changes nothing in the process; a running app is the process default until
it stops, and each app's requests and worker run under its own runtime whatever else runs.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest

import nodes.paths as paths_module
from nodes import launch_options
from nodes import runtime as node_runtime
from nodes.plugins.loader import install_compat
from server.app import create_app
from server.config import ServerConfig
from server.embedded import start_in_thread
from server.prompt_server import PromptServer
from tests.support.nodes_for_tests import make_registry
from tests.support.server import LiveServer

PACK = """
import folder_paths
from server import PromptServer

folder_paths.add_model_folder_path("detectors", {folder!r})


@PromptServer.instance.routes.get("/{name}/hello")
async def hello(request):
    from aiohttp import web

    return web.json_response({{"input": folder_paths.get_input_directory()}})


NODE_CLASS_MAPPINGS = {{}}
"""


def _png(colour: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _home(tmp_path: Path, name: str) -> tuple[Path, ServerConfig]:
    """A base directory with one input picture and one pack of its own, named after the server."""
    base = tmp_path / name
    (base / "input").mkdir(parents=True)
    (base / "input" / f"{name}.png").write_bytes(_png((10, 20, 30)))
    packs = tmp_path / f"{name}-packs"
    packs.mkdir()
    detectors = tmp_path / f"{name}-detectors"
    detectors.mkdir()
    (detectors / f"{name}.pt").write_bytes(b"x")
    (packs / f"{name}_pack.py").write_text(PACK.format(folder=str(detectors), name=name))
    config = ServerConfig(
        base_directory=base, extra_custom_node_dirs=[packs], preview_method=f"{'auto' if name == 'a' else 'latent2rgb'}"
    )
    return base, config


def _load_image(name: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": f"{name}.png"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


def _check_own(live: LiveServer, name: str, other: str) -> None:
    """Everything ``live`` answers and runs is under its own base directory."""
    base = live.base_dir
    status, info = live.get("/object_info/LoadImage")
    assert status == 200 and info["LoadImage"]["input"]["required"]["image"][0] == [f"{name}.png"]
    assert live.get(f"/view?type=input&filename={name}.png")[0] == 200
    assert live.get(f"/view?type=input&filename={other}.png")[0] == 404
    assert live.post("/prompt", {"prompt": _load_image(other)})[0] == 400  # not in this server's input/
    entry = live.wait_history(live.queue_prompt(_load_image(name)))
    assert entry["status"]["status_str"] == "success", entry["status"]["messages"]
    preview = entry["outputs"]["2"]["images"][0]
    assert (base / "temp" / preview["subfolder"] / preview["filename"]).is_file()  # the worker wrote to its own temp/
    assert live.get(f"/{name}/hello") == (200, {"input": str((base / "input").resolve())})
    assert live.get(f"/{other}/hello")[0] == 404
    import folder_paths

    with live.runtime.active():
        assert folder_paths.get_input_directory() == str((base / "input").resolve())
        assert folder_paths.get_filename_list("detectors") == [f"{name}.pt"]  # only its own pack's folder
        assert PromptServer.instance is live.server
        assert launch_options.get_options() is live.runtime.options


def test_two_servers_in_one_process_keep_their_own_runtime(tmp_path: Path) -> None:
    install_compat()
    before = node_runtime.current()
    base_a, config_a = _home(tmp_path, "a")
    base_b, config_b = _home(tmp_path, "b")
    live_a = LiveServer(start_in_thread(create_app(config_a, make_registry())), base_a)
    try:
        _check_own(live_a, "a", "b")
        assert PromptServer.instance is live_a.server  # the running server is the process default
        app_b = create_app(config_b, make_registry())
        # building B changed nothing: A is still what the process and A's clients see
        assert PromptServer.instance is live_a.server and paths_module.get_paths() is live_a.runtime.paths
        _check_own(live_a, "a", "b")
        live_b = LiveServer(start_in_thread(app_b), base_b)
        try:
            _check_own(live_b, "b", "a")
            _check_own(live_a, "a", "b")
            assert PromptServer.instance is live_b.server
        finally:
            live_b.stop()
        # B's cleanup took B's runtime away, not A's
        assert PromptServer.instance is live_a.server and launch_options.get_options().preview_method == "auto"
        _check_own(live_a, "a", "b")
    finally:
        live_a.stop()
    assert node_runtime.current() is before
    assert PromptServer.instance is not live_a.server


def test_servers_stopped_in_the_order_they_started_leave_nothing_behind(tmp_path: Path) -> None:
    before = node_runtime.current()
    lives = []
    for name in ("first", "second"):
        base = tmp_path / name
        lives.append(
            LiveServer(
                start_in_thread(create_app(ServerConfig(base_directory=base), make_registry(), load_plugins=False)),
                base,
            )
        )
    lives[0].stop()
    assert paths_module.get_paths() is lives[1].runtime.paths
    lives[1].stop()
    assert node_runtime.current() is before


@pytest.mark.parametrize("order", ["added-first", "added-last"])
def test_folders_a_pack_adds_go_with_the_paths_they_were_added_to(tmp_path: Path, order: str) -> None:
    """``folder_paths`` state belongs to the runtime: a folder registered under one set of paths
    never shows under the next (it used to leak from one test to the next)."""
    install_compat()
    import folder_paths

    extra = tmp_path / "extra-loras"
    extra.mkdir()
    (extra / "leaked.safetensors").write_bytes(b"x")

    def add() -> None:
        with paths_module.using(paths_module.Paths.at(tmp_path / uuid.uuid4().hex, builtin_models=None)) as paths:
            folder_paths.add_model_folder_path("loras", str(extra))
            folder_paths.folder_names_and_paths["detectors"] = ([str(extra)], {".safetensors"})
            assert folder_paths.get_filename_list("loras") == ["leaked.safetensors"]
            assert extra.resolve() in paths.model_dirs("loras")

    def fresh() -> None:
        with paths_module.using(paths_module.Paths.at(tmp_path / uuid.uuid4().hex, builtin_models=None)) as paths:
            assert folder_paths.get_filename_list("loras") == []
            assert "detectors" not in folder_paths.folder_names_and_paths
            assert extra.resolve() not in paths.model_dirs("loras")

    steps = [add, fresh] if order == "added-first" else [fresh, add, fresh]
    for step in steps:
        step()
