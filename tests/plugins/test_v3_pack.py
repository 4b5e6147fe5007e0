"""ComfyUI's v3 node API: the example pack ``packs/v3_pack`` loads and runs through the server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import LiveServer, serve
from tests.support.ws import EventRecorder

from .conftest import PACKS

V3_NODES = {
    "V3Arithmetic",
    "V3ShowValue",
    "V3LazySwitch",
    "V3AsyncEcho",
    "V3SyncProgress",
    "V3Words",
    "V3Join",
    "V3Repeat",
    "V3Gate",
    "V3Counter",
    "V3FloatsOnly",
    "V3Describe",
    "V3SolidPreview",
    "V3MappedUpper",
}


def test_the_pack_registers_through_comfy_entrypoint_and_mappings(loaded):
    registry, report = loaded
    pack = report.pack("v3_pack")
    assert pack.status == "loaded", (pack.error, pack.node_errors)
    assert set(pack.contracts) == {"classic", "v3"} and pack.version == "3.0.1"
    assert set(pack.nodes) == V3_NODES
    state = registry["V3Counter"].cls.execute.__func__.__globals__["STATE"]
    assert state["on_load"] == 1  # the extension's on_load ran before its nodes were listed


def test_schemas_translate_to_engine_schemas(loaded):
    registry, _ = loaded
    arithmetic = registry["V3Arithmetic"].schema
    a = arithmetic.input("a")
    assert (a.type, a.kind, a.options["default"], a.options["min"], a.options["tooltip"]) == (
        "FLOAT",
        "required",
        1.0,
        -1000.0,
        "left operand",
    )
    assert arithmetic.input("op").choices == ["add", "sub", "mul", "div"]
    assert [(o.type, o.name) for o in arithmetic.outputs] == [("FLOAT", "result")]
    assert arithmetic.display_name == "Arithmetic (v3)" and arithmetic.category == "testing/v3"
    switch = registry["V3LazySwitch"].schema
    assert switch.lazy_inputs == {"first", "second"} and switch.input("second").kind == "optional"
    echo = registry["V3AsyncEcho"].schema
    assert echo.is_async and echo.input("unique_id").kind == "hidden"
    assert registry["V3Words"].schema.outputs[0].is_list
    assert registry["V3Join"].schema.input_is_list
    assert registry["V3ShowValue"].schema.output_node
    assert registry["V3FloatsOnly"].schema.input("value").type == "FLOAT,INT"
    assert registry["V3MappedUpper"].schema.display_name == "Upper (v3 in NODE_CLASS_MAPPINGS)"


@pytest.fixture(scope="module")
def v3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serve(tmp_path_factory.mktemp("v3"), load_plugins=True, extra_custom_node_dirs=[PACKS])


def run(server: LiveServer, prompt: dict) -> dict:
    history = server.wait_history(server.queue_prompt(prompt))
    assert history["status"]["status_str"] == "success", history["status"]
    return history


def shown(history: dict, node: str) -> list[str]:
    return history["outputs"][node]["text"]


def pack_state(server: LiveServer) -> dict:
    """The STATE of the pack module this server imported (a later load imports it afresh)."""
    counter = server.server.registry["V3Counter"].cls
    return counter.execute.__func__.__globals__["STATE"]


def test_object_info_publishes_v3_nodes(v3_server: LiveServer):
    status, info = v3_server.get("/object_info/V3Arithmetic")
    assert status == 200
    node = info["V3Arithmetic"]
    assert node["input"]["required"]["a"][0] == "FLOAT" and node["input"]["required"]["a"][1]["max"] == 1000.0
    assert node["input"]["required"]["op"][0] == ["add", "sub", "mul", "div"]
    assert node["output"] == ["FLOAT"] and node["output_name"] == ["result"]
    assert node["python_module"] == "custom_nodes.v3_pack" and node["display_name"] == "Arithmetic (v3)"


def test_execute_ui_expand_and_lists(v3_server: LiveServer):
    prompt = {
        "1": {"class_type": "V3Arithmetic", "inputs": {"a": 6.0, "b": 4.0, "op": "mul"}},
        "2": {"class_type": "V3ShowValue", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "V3Repeat", "inputs": {"value": 2.5, "times": 4}},
        "4": {"class_type": "V3ShowValue", "inputs": {"value": ["3", 0]}},
        "5": {"class_type": "V3Words", "inputs": {"text": "one two three"}},
        "6": {"class_type": "V3MappedUpper", "inputs": {"text": ["5", 0]}},
        "7": {"class_type": "V3Join", "inputs": {"items": ["6", 0], "separator": "+"}},
        "8": {"class_type": "V3ShowValue", "inputs": {"value": ["7", 0]}},
        "9": {"class_type": "V3Describe", "inputs": {}},
        "10": {"class_type": "V3ShowValue", "inputs": {"value": ["9", 0]}},
        "11": {"class_type": "V3SolidPreview", "inputs": {"size": 2, "value": 1.0}},
        "12": {"class_type": "V3ShowValue", "inputs": {"value": ["11", 0]}},
    }
    history = run(v3_server, prompt)
    assert shown(history, "2") == ["24.0"]
    assert shown(history, "4") == ["10.0"]  # 2.5 added four times by the expanded sub-graph
    assert shown(history, "8") == ["ONE+TWO+THREE"]
    assert shown(history, "10") == [f"node 9 of {len(prompt)}"]
    preview = history["outputs"]["11"]["images"][0]
    assert preview["type"] == "temp" and history["outputs"]["11"]["animated"] == [False]
    status, _ = v3_server.get(f"/view?filename={preview['filename']}&type=temp&subfolder={preview['subfolder']}")
    assert status == 200


def test_lazy_inputs_and_blocked_outputs(v3_server: LiveServer):
    prompt = {
        "1": {"class_type": "V3Counter", "inputs": {"label": "lazy-first", "volatile": True}},
        "2": {"class_type": "V3Counter", "inputs": {"label": "lazy-second", "volatile": True}},
        "3": {"class_type": "V3LazySwitch", "inputs": {"use_first": False, "first": ["1", 0], "second": ["2", 0]}},
        "4": {"class_type": "V3ShowValue", "inputs": {"value": ["3", 0]}},
        "5": {"class_type": "V3Gate", "inputs": {"value": ["3", 0], "open": False}},
        "6": {"class_type": "V3ShowValue", "inputs": {"value": ["5", 0]}},
    }
    history = run(v3_server, prompt)
    runs = pack_state(v3_server)["runs"]
    assert runs.get("lazy-first") is None and runs["lazy-second"] == 1
    assert shown(history, "4") == ["1"] and "6" not in history["outputs"]
    blocked = [m for m in history["status"]["messages"] if m[0] == "execution_blocked"]
    assert blocked and blocked[0][1]["message"] == "the gate is closed"


def test_fingerprint_inputs_decides_reuse(v3_server: LiveServer):
    def prompt(volatile: bool) -> dict:
        label = f"fp-{volatile}"
        return {
            "1": {"class_type": "V3Counter", "inputs": {"label": label, "volatile": volatile}},
            "2": {"class_type": "V3ShowValue", "inputs": {"value": ["1", 0]}},
        }

    assert shown(run(v3_server, prompt(False)), "2") == ["1"]
    assert shown(run(v3_server, prompt(False)), "2") == ["1"]  # same fingerprint: reused
    assert shown(run(v3_server, prompt(True)), "2") == ["1"]
    assert shown(run(v3_server, prompt(True)), "2") == ["2"]  # NaN: runs every time


def test_validate_inputs_refuses_before_anything_runs(v3_server: LiveServer):
    status, body = v3_server.post(
        "/prompt",
        {
            "prompt": {
                "1": {"class_type": "V3Arithmetic", "inputs": {"a": 1.0, "b": 0.0, "op": "div"}},
                "2": {"class_type": "V3ShowValue", "inputs": {"value": ["1", 0]}},
            }
        },
    )
    assert status == 400
    error = body["node_errors"]["1"]["errors"][0]
    assert error["type"] == "custom_validation_failed" and "must not be 0" in error["details"]
    # input_types: the node sees that its input is linked to an INT and refuses it itself
    status, body = v3_server.post(
        "/prompt",
        {
            "prompt": {
                "1": {"class_type": "V3Counter", "inputs": {"label": "x", "volatile": False}},
                "2": {"class_type": "V3FloatsOnly", "inputs": {"value": ["1", 0]}},
                "3": {"class_type": "V3ShowValue", "inputs": {"value": ["2", 0]}},
            }
        },
    )
    assert status == 400 and "not an INT" in body["node_errors"]["2"]["errors"][0]["details"]
    history = run(
        v3_server,
        {
            "1": {"class_type": "V3Arithmetic", "inputs": {"a": 1.0, "b": 2.0, "op": "add"}},
            "2": {"class_type": "V3FloatsOnly", "inputs": {"value": ["1", 0]}},
            "3": {"class_type": "V3ShowValue", "inputs": {"value": ["2", 0]}},
        },
    )
    assert shown(history, "3") == ["3.0"]


def test_async_execute_hidden_id_and_progress(v3_server: LiveServer):
    async def scenario() -> list[tuple[str, dict]]:
        async with EventRecorder(v3_server.ws_url, "v3-client") as recorder:
            prompt_id = v3_server.queue_prompt(
                {
                    "e": {"class_type": "V3AsyncEcho", "inputs": {"text": "hello", "seconds": 0.04}},
                    "p": {"class_type": "V3SyncProgress", "inputs": {"value": ["e", 0]}},
                    "s": {"class_type": "V3ShowValue", "inputs": {"value": ["p", 0]}},
                },
                client_id="v3-client",
            )
            await recorder.wait_for(lambda e, d: e == "executing" and d["node"] is None and d["prompt_id"] == prompt_id)
            assert v3_server.wait_history(prompt_id)["outputs"]["s"]["text"] == ["hello@e"]
            return [(e, d) for e, d in recorder.events if e == "progress_state" and d["prompt_id"] == prompt_id]

    states = asyncio.run(scenario())
    final = states[-1][1]["nodes"]
    assert final["e"]["state"] == "finished" and (final["e"]["value"], final["e"]["max"]) == (4.0, 4.0)
    assert final["p"]["max"] == 2.0  # ComfyAPISync().execution.set_progress from a sync node


def test_v3_pack_example_can_live_outside_the_fixture_folder(weft_paths, tmp_path: Path):
    """A lone v3 pack file (no package) loads too: ``comfy_entrypoint`` is all it needs."""
    (tmp_path / "lone_v3.py").write_text(
        "from comfy_api.latest import ComfyExtension, io\n"
        "class Lone(io.ComfyNode):\n"
        "    @classmethod\n"
        "    def define_schema(cls):\n"
        "        return io.Schema(node_id='LoneV3', inputs=[io.Int.Input('x', default=1)], outputs=[io.Int.Output()])\n"
        "    @classmethod\n"
        "    def execute(cls, x):\n"
        "        return io.NodeOutput(x + 1)\n"
        "class Ext(ComfyExtension):\n"
        "    async def get_node_list(self):\n"
        "        return [Lone]\n"
        "async def comfy_entrypoint():\n"
        "    return Ext()\n"
    )
    from nodes.plugins import PluginConfig, load_plugins
    from nodes.registry import builtin_registry

    registry = builtin_registry()
    report = load_plugins(registry, PluginConfig(folders=[tmp_path]))
    assert report.pack("lone_v3").status == "loaded" and "LoneV3" in registry
