"""What ComfyUI's clients (and its own execution suite) rely on, over real sockets.

The done signal comes after the history entry, one invalid output does not reject the
prompt, ``partial_execution_targets: []`` selects nothing, ``progress_state`` goes to the
client that queued the prompt only, and ``custom_nodes:`` in ``extra_model_paths.yaml``
adds a pack folder.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from server.events import EventBus
from tests.support.server import LiveServer, serve
from tests.support.ws import EventRecorder


def text_prompt(value: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": value}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }


async def test_the_done_signal_comes_after_the_history_entry(live_server: LiveServer) -> None:
    async with EventRecorder(live_server.ws_url, "reader") as ws:
        for index in range(5):
            prompt_id = live_server.queue_prompt(text_prompt(f"v{index}"), client_id="reader")
            await ws.wait_done(prompt_id)
            status, body = live_server.get(f"/history/{prompt_id}")  # read on the signal, no polling
            assert status == 200 and body[prompt_id]["outputs"]["2"]["text"] == [f"v{index}"]


def test_one_invalid_output_does_not_reject_the_prompt(live_server: LiveServer) -> None:
    prompt = {
        **text_prompt("fine"),
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["gone", 0]}},
    }
    status, body = live_server.post("/prompt", {"prompt": prompt})
    assert status == 200
    assert body["node_errors"]["3"]["errors"][0]["type"] == "bad_linked_input"
    assert body["node_errors"]["3"]["dependent_outputs"] == ["3"]
    history = live_server.wait_history(body["prompt_id"])
    assert history["outputs"] == {"2": {"text": ["fine"]}}
    assert history["prompt"][4] == ["2"]  # the outputs that were run


def test_partial_execution_targets(live_server: LiveServer) -> None:
    prompt = {**text_prompt("a"), "3": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    status, body = live_server.post("/prompt", {"prompt": prompt, "partial_execution_targets": []})
    assert status == 400 and body["error"]["type"] == "prompt_no_outputs"
    status, body = live_server.post("/prompt", {"prompt": prompt, "partial_execution_targets": ["3"]})
    assert status == 200
    assert live_server.wait_history(body["prompt_id"])["outputs"] == {"3": {"text": ["a"]}}


async def test_progress_state_goes_only_to_the_client_that_queued(live_server: LiveServer) -> None:
    async with EventRecorder(live_server.ws_url, "alice") as alice, EventRecorder(live_server.ws_url, "bob") as bob:
        prompt_id = live_server.queue_prompt(text_prompt("mine"), client_id="alice")
        await alice.wait_done(prompt_id)
        mine = [d for e, d in alice.for_prompt(prompt_id) if e == "progress_state"]
        assert mine and set(mine[-1]["nodes"]) == {"1", "2"}
        entry = mine[-1]["nodes"]["2"]
        assert entry == {
            "value": 1.0,
            "max": 1.0,
            "state": "finished",
            "node_id": "2",
            "prompt_id": prompt_id,
            "display_node_id": "2",
            "parent_node_id": None,
            "real_node_id": "2",
        }
        await asyncio.sleep(0.1)
        assert not [e for e, d in bob.events if e == "progress_state"]


def test_queued_progress_states_are_coalesced_and_sent_with_the_newest_state() -> None:
    sent: list[str] = []

    class Socket:
        closed = False

        async def send_str(self, message: str) -> None:
            sent.append(message)

        async def close(self) -> None:
            self.closed = True

    async def scenario() -> None:
        bus = EventBus()
        await bus.start()
        bus.register("c", Socket())  # type: ignore[arg-type]
        live = {"prompt_id": "p", "nodes": {}}
        for step in range(50):  # a worker thread updating faster than the pump sends
            live["nodes"]["n"] = {"value": float(step), "max": 49.0, "state": "running"}
            bus.send_sync("progress_state", live, "c")
        bus.send_sync("executing", {"node": None, "prompt_id": "p"}, "c")
        await asyncio.sleep(0.05)
        await bus.stop()

    asyncio.run(scenario())
    messages = [json.loads(m) for m in sent]
    assert [m["type"] for m in messages] == ["progress_state", "executing"]
    assert messages[0]["data"]["nodes"]["n"]["value"] == 49.0


PACK = """
class YamlPackNode:
    CATEGORY = "tests"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "x"})}}

    def run(self, text):
        return (text + "!",)


NODE_CLASS_MAPPINGS = {"YamlPackNode": YamlPackNode}
"""


def test_custom_nodes_entry_of_extra_model_paths_loads_packs(tmp_path: Path) -> None:
    folder = tmp_path / "config" / "my_nodes"
    folder.mkdir(parents=True)
    (folder / "yaml_pack.py").write_text(PACK)
    config = tmp_path / "config" / "extra_model_paths.yaml"
    config.write_text("shared:\n    custom_nodes: my_nodes\n")  # relative to the YAML's folder, as in ComfyUI
    for live in serve(tmp_path / "home", load_plugins=True, extra_model_paths_config=[config]):
        status, info = live.get("/object_info/YamlPackNode")
        assert status == 200 and info["YamlPackNode"]["python_module"] == "custom_nodes.yaml_pack"
        history = live.wait_history(
            live.queue_prompt(
                {
                    "1": {"class_type": "YamlPackNode", "inputs": {"text": "yaml"}},
                    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
                }
            )
        )
        assert history["outputs"]["2"]["text"] == ["yaml!"]
        import folder_paths

        assert str(folder.resolve()) in folder_paths.get_folder_paths("custom_nodes")
