"""Packs loaded by the real server: prompts, /object_info, the report, extensions, flags."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import LiveServer, serve
from tests.support.ws import EventRecorder

from .conftest import PACKS

SERVER_PACKS = Path(__file__).parent / "server_packs"


@pytest.fixture
def plugin_server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from serve(tmp_path, load_plugins=True, extra_custom_node_dirs=[PACKS, SERVER_PACKS])


def run_prompt(server: LiveServer, prompt: dict) -> dict:
    history = server.wait_history(server.queue_prompt(prompt))
    assert history["status"]["status_str"] == "success", history["status"]
    return history["outputs"]


def test_a_pack_in_each_contract_runs_in_a_prompt(plugin_server: LiveServer):
    prompt = {
        "1": {"class_type": "ReverseText", "inputs": {"text": "olleh"}},
        "2": {"class_type": "ClassicAsyncEcho", "inputs": {"text": ["1", 0], "delay": 0.0}},
        "3": {"class_type": "SlowUpper", "inputs": {"text": ["2", 0], "delay_ms": 1}},
        "4": {"class_type": "ShowText", "inputs": {"text": ["3", 0]}},
        "5": {"class_type": "ClassicSolidImage", "inputs": {"width": 4, "height": 2, "value": 0.5}},
        "6": {"class_type": "ClassicImageStats", "inputs": {"image": ["5", 0]}},
        "7": {"class_type": "ClassicCountdown", "inputs": {"text": "a", "step": "b", "count": 2}},
        "8": {"class_type": "ShowText", "inputs": {"text": ["7", 0]}},
    }
    outputs = run_prompt(plugin_server, prompt)
    assert outputs["4"]["text"] == ["<HELLO>"]
    assert outputs["6"]["text"] == ["1x2x4x3 mean=0.500"]
    assert outputs["8"]["text"] == ["abb"]


def test_example_pack_nodes_run(plugin_server: LiveServer):
    prompt = {
        "1": {"class_type": "ExampleTextTemplate", "inputs": {"template": "{a} and {b} {z}", "a": "cats", "b": "dogs"}},
        "2": {"class_type": "ExampleWordStats", "inputs": {"text": ["1", 0]}},
        "3": {"class_type": "ExampleColorSwatch", "inputs": {"color": "#336699", "width": 4, "height": 4}},
        "4": {"class_type": "ExampleImageBrightness", "inputs": {"image": ["3", 0], "factor": 2.0}},
        "5": {"class_type": "ClassicImageStats", "inputs": {"image": ["4", 0]}},
    }
    outputs = run_prompt(plugin_server, prompt)
    assert outputs["2"]["text"] == ["4 words, 1 lines, 17 characters"]
    # (0x33, 0x66, 0x99) / 255 doubled and clamped: 0.4, 0.8, 1.0
    assert outputs["5"]["text"] == ["1x4x4x3 mean=0.733"]
    status, body = plugin_server.post(
        "/prompt",
        {
            "prompt": {
                "3": {"class_type": "ExampleColorSwatch", "inputs": {"color": "red", "width": 4, "height": 4}},
                "5": {"class_type": "ClassicImageStats", "inputs": {"image": ["3", 0]}},
            }
        },
    )
    assert status == 400 and "#rrggbb" in str(body["node_errors"]["3"])


def test_broken_packs_are_reported_at_the_endpoint_and_the_rest_works(plugin_server: LiveServer):
    status, report = plugin_server.get("/api/plugins")
    assert status == 200
    packs = {p["name"]: p for p in report["packs"]}
    assert packs["broken_import_pack"]["status"] == "failed"
    assert packs["broken_import_pack"]["error"] == "RuntimeError: this pack is broken on purpose"
    assert packs["broken_import_pack"]["import_ms"] > 0
    assert packs["needs_missing_req"]["missing_requirements"] == ["weft-surely-absent-package>=1.0"]
    assert packs["example_pack"]["status"] == "loaded" and packs["example_pack"]["version"] == "1.0.0"
    assert packs["classic_pack"]["status"] == "loaded"
    outputs = run_prompt(
        plugin_server,
        {
            "1": {"class_type": "GoodNode", "inputs": {"value": 41}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        },
    )
    assert outputs["2"]["text"] == ["42"]


def test_object_info_names_the_pack_and_version(plugin_server: LiveServer):
    status, info = plugin_server.get("/object_info")
    assert status == 200
    assert info["ClassicUpper"]["python_module"] == "custom_nodes.classic_pack"
    assert info["ClassicUpper"]["pack"] == {"name": "classic_pack", "version": "2.5.0"}
    assert info["ReverseText"]["pack"] == {"name": "weft_text_pack", "version": "1.2.0"}
    assert info["StringConcatenate"]["python_module"] == "nodes"
    renamed = info["collide_pack::StringConcatenate"]
    assert renamed["pack"]["name"] == "collide_pack"
    assert info["ExampleColorSwatch"]["input"]["required"]["color"][1]["widget"] == "EXAMPLE_COLOR"
    assert info["ClassicLazySwitch"]["input"]["required"]["a"][1].get("lazy") is True
    assert "BadNode" not in info
    method = info["ClassicUpscale"]["input"]["required"]["method"]
    assert method[0] == ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
    assert info["ClassicSplitWords"]["output_is_list"] == [True]
    assert info["ClassicImageInvert"]["display_name"] == "Invert Image (classic)"


def test_extensions_are_listed_and_served(plugin_server: LiveServer):
    status, urls = plugin_server.get("/extensions")
    assert status == 200
    assert "/extensions/example_pack/example.js" in urls
    assert "/extensions/classic_pack/classic.js" in urls
    assert plugin_server.get("/api/extensions")[1] == urls
    status, body = plugin_server.get("/extensions/example_pack/example.js")
    assert status == 200 and b"window.weft.extensions.register" in body
    assert plugin_server.get("/extensions/example_pack/..%2F__init__.py")[0] in (403, 404)
    assert plugin_server.get("/extensions/broken_import_pack/x.js")[0] == 404
    status, host = plugin_server.get("/weft/extension-host.js")
    assert status == 200 and b"export class ExtensionHost" in host


def test_pack_routes_and_send_sync_through_prompt_server(plugin_server: LiveServer):
    assert plugin_server.get("/server_pack/hello") == (200, {"hello": "from server_pack"})

    async def scenario() -> tuple:
        async with EventRecorder(plugin_server.ws_url, "client-1") as recorder:
            plugin_server.queue_prompt(
                {"9": {"class_type": "NotifyClient", "inputs": {"message": "ping"}}}, client_id="client-1"
            )
            return await recorder.wait_for(lambda e, d: e == "server_pack.message")

    event, data = asyncio.run(scenario())
    assert data == {"node": "9", "message": "ping"}


def test_missing_nodes_name_their_packs(plugin_server: LiveServer):
    workflow = {
        "nodes": [
            {"id": 1, "type": "ReverseText", "properties": {"cnr_id": "weft_text_pack", "ver": "1.2.0"}},
            {"id": 2, "type": "FancyUpscaler", "properties": {"cnr_id": "comfyui-fancy", "ver": "0.3.1"}},
            {"id": 3, "type": "FancyUpscaler", "properties": {"cnr_id": "comfyui-fancy", "ver": "0.3.1"}},
            {"id": 4, "type": "Mystery", "properties": {}},
        ],
        "links": [],
    }
    status, body = plugin_server.post("/api/plugins/missing", {"workflow": workflow})
    assert status == 200
    assert body["missing"] == [
        {"class_type": "FancyUpscaler", "node_ids": [2, 3], "pack": {"name": "comfyui-fancy", "version": "0.3.1"}},
        {"class_type": "Mystery", "node_ids": [4], "pack": None},
    ]
    assert body["packs"] == [
        {"name": "comfyui-fancy", "version": "0.3.1", "node_types": ["FancyUpscaler"], "installed_status": None}
    ]
    status, body = plugin_server.post("/api/plugins/missing", {"1": {"class_type": "Nope", "inputs": {}}})
    assert body["missing"] == [{"class_type": "Nope", "node_ids": ["1"], "pack": None}]


def test_disable_all_custom_nodes(tmp_path: Path):
    for server in serve(tmp_path, load_plugins=True, disable_all_custom_nodes=True, extra_custom_node_dirs=[PACKS]):
        status, report = server.get("/api/plugins")
        assert report["disabled_all"] and {p["status"] for p in report["packs"]} == {"disabled"}
        assert "ClassicUpper" not in server.get("/object_info")[1]
        assert server.get("/extensions")[1] == []


def test_per_pack_disable_list(tmp_path: Path):
    for server in serve(
        tmp_path, load_plugins=True, disable_custom_nodes=["classic_pack"], extra_custom_node_dirs=[PACKS]
    ):
        packs = {p["name"]: p["status"] for p in server.get("/api/plugins")[1]["packs"]}
        assert packs["classic_pack"] == "disabled" and packs["weft_text_pack"] == "loaded"
        info = server.get("/object_info")[1]
        assert "ReverseText" in info and "ClassicUpper" not in info


def test_server_without_plugins_publishes_an_empty_report(live_server: LiveServer):
    status, report = live_server.get("/api/plugins")
    assert status == 200 and report["packs"] == []
    assert live_server.get("/extensions") == (200, [])
