"""A run seen from a WebSocket client: event order, caching, errors, interruption, previews."""

from __future__ import annotations

import uuid

from tests.support.server import LiveServer
from tests.support.ws import EventRecorder


def chain_prompt(head: str = "hello", tail: str = "world") -> dict:
    return {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": head}},
        "2": {"class_type": "StringConcatenate", "inputs": {"string_a": ["1", 0], "string_b": tail, "delimiter": " "}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }


async def test_full_event_sequence_of_a_run(live_server: LiveServer) -> None:
    async with EventRecorder(live_server.ws_url, "alice") as ws:
        prompt_id = live_server.queue_prompt(chain_prompt(), client_id="alice")
        await ws.wait_done(prompt_id)
        events = ws.for_prompt(prompt_id)
        sequence = [(e, d.get("node")) if e == "executing" else e for e, d in events if e != "progress_state"]
        # ComfyUI's per-node progress: live state, coalesced while queued, so its count varies
        states = [d["nodes"] for e, d in events if e == "progress_state"]
        assert states and {n: s["state"] for n, s in states[-1].items()} == dict.fromkeys("123", "finished")
        assert sequence == [
            "execution_start",
            "execution_cached",
            ("executing", "1"),
            ("executing", "2"),
            ("executing", "3"),
            "executed",
            "execution_success",
            ("executing", None),
        ]
        executed = next(d for e, d in ws.events if e == "executed")
        assert executed == {
            "node": "3",
            "display_node": "3",
            "output": {"text": ["hello world"]},
            "prompt_id": prompt_id,
        }
        start = next(d for e, d in ws.events if e == "execution_start")
        assert isinstance(start["timestamp"], int) and start["timestamp"] > 1_600_000_000_000
        assert any(e == "status" for e, _ in ws.events)

    history = live_server.wait_history(prompt_id)
    assert history["outputs"] == {"3": {"text": ["hello world"]}}
    assert history["status"]["status_str"] == "success" and history["status"]["completed"] is True
    assert [m[0] for m in history["status"]["messages"]] == ["execution_start", "execution_cached", "execution_success"]
    assert history["prompt"][1] == prompt_id and history["prompt"][4] == ["3"]


async def test_identical_rerun_is_served_from_cache(live_server: LiveServer) -> None:
    async with EventRecorder(live_server.ws_url, "c1") as ws:
        first = live_server.queue_prompt(chain_prompt(), client_id="c1")
        await ws.wait_done(first)
        second = live_server.queue_prompt(chain_prompt(), client_id="c1")
        await ws.wait_done(second)
        cached = next(d for e, d in ws.for_prompt(second) if e == "execution_cached")
        assert sorted(cached["nodes"]) == ["1", "2", "3"]
        assert ws.executed_nodes(second) == []  # no `executing` for cached nodes
        executed = [d for e, d in ws.for_prompt(second) if e == "executed"]
        assert executed and executed[0]["output"] == {"text": ["hello world"]}  # ui re-sent from cache
    assert live_server.wait_history(second)["outputs"] == {"3": {"text": ["hello world"]}}


async def test_one_widget_change_reexecutes_only_that_node_and_descendants(live_server: LiveServer) -> None:
    prompt = {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": "a"}},
        "2": {"class_type": "PrimitiveString", "inputs": {"value": "b"}},
        "3": {
            "class_type": "StringConcatenate",
            "inputs": {"string_a": ["1", 0], "string_b": ["2", 0], "delimiter": "+"},
        },
        "4": {"class_type": "StringReplace", "inputs": {"string": ["3", 0], "find": "+", "replace": "-"}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}},
        "6": {"class_type": "StringLength", "inputs": {"string": ["1", 0]}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
    }
    async with EventRecorder(live_server.ws_url, "c2") as ws:
        first = live_server.queue_prompt(prompt, client_id="c2")
        await ws.wait_done(first)
        assert sorted(ws.executed_nodes(first)) == ["1", "2", "3", "4", "5", "6", "7"]
        prompt["2"]["inputs"]["value"] = "changed"
        second = live_server.queue_prompt(prompt, client_id="c2")
        await ws.wait_done(second)
        assert sorted(ws.executed_nodes(second)) == ["2", "3", "4", "5"]
        cached = next(d for e, d in ws.for_prompt(second) if e == "execution_cached")
        assert sorted(cached["nodes"]) == ["1", "6", "7"]
    assert live_server.wait_history(second)["outputs"]["5"] == {"text": ["a-changed"]}


async def test_identical_subgraph_in_another_prompt_hits_the_cache(live_server: LiveServer) -> None:
    async with EventRecorder(live_server.ws_url, "c3") as ws:
        first = live_server.queue_prompt(chain_prompt("same", "graph"), client_id="c3")
        await ws.wait_done(first)
        renamed = {
            "10": {"class_type": "PrimitiveString", "inputs": {"value": "same"}},
            "20": {
                "class_type": "StringConcatenate",
                "inputs": {"string_a": ["10", 0], "string_b": "graph", "delimiter": " "},
            },
            "30": {"class_type": "StringLength", "inputs": {"string": ["20", 0]}},
            "40": {"class_type": "PreviewAny", "inputs": {"source": ["30", 0]}},
        }
        second = live_server.queue_prompt(renamed, client_id="c3")
        await ws.wait_done(second)
        assert sorted(ws.executed_nodes(second)) == ["30", "40"]
    assert live_server.wait_history(second)["outputs"]["40"] == {"text": ["10"]}


async def test_failing_node_reports_id_and_traceback_and_the_queue_goes_on(live_server: LiveServer) -> None:
    failing = {
        "1": {"class_type": "TestFail", "inputs": {"message": "kaput"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    async with EventRecorder(live_server.ws_url, "c4") as ws:
        bad = live_server.queue_prompt(failing, client_id="c4")
        good = live_server.queue_prompt(chain_prompt("after", "failure"), client_id="c4")
        await ws.wait_done(bad)
        error = next(d for e, d in ws.for_prompt(bad) if e == "execution_error")
        assert error["node_id"] == "1" and error["node_type"] == "TestFail"
        assert error["exception_message"] == "TestFail says kaput"
        assert error["exception_type"].endswith("ValueError")
        assert any("TestFail says kaput" in line for line in error["traceback"])
        assert any("nodes_for_tests.py" in line for line in error["traceback"])
        assert "message" in error["current_inputs"]
        await ws.wait_done(good)
    history = live_server.wait_history(bad)
    assert history["status"]["status_str"] == "error" and history["status"]["completed"] is False
    assert history["status"]["messages"][-1][0] == "execution_error"
    assert live_server.wait_history(good)["outputs"]["3"] == {"text": ["after failure"]}


async def test_interrupt_stops_a_long_node_between_steps(live_server: LiveServer) -> None:
    slow = {
        "1": {"class_type": "TestSlow", "inputs": {"steps": 3000, "step_seconds": 0.01, "value": "never"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    async with EventRecorder(live_server.ws_url, "c5") as ws:
        prompt_id = live_server.queue_prompt(slow, client_id="c5")
        _, progress = await ws.wait_for(lambda e, d: e == "progress" and d.get("value", 0) >= 3)
        assert progress == {"value": progress["value"], "max": 3000, "prompt_id": prompt_id, "node": "1"}
        status, _ = live_server.post("/interrupt", {})
        assert status == 200
        await ws.wait_done(prompt_id, timeout=10)
        interrupted = next(d for e, d in ws.for_prompt(prompt_id) if e == "execution_interrupted")
        assert interrupted["node_id"] == "1" and interrupted["node_type"] == "TestSlow"
        last_progress = max(d["value"] for e, d in ws.for_prompt(prompt_id) if e == "progress")
        assert last_progress < 3000
        follow = live_server.queue_prompt(chain_prompt("still", "alive"), client_id="c5")
        await ws.wait_done(follow)
    history = live_server.wait_history(prompt_id)
    assert history["status"]["status_str"] == "error"
    assert history["status"]["messages"][-1][0] == "execution_interrupted"
    assert live_server.wait_history(follow)["status"]["status_str"] == "success"


async def test_interrupt_for_another_prompt_id_does_nothing(live_server: LiveServer) -> None:
    slow = {
        "1": {"class_type": "TestSlow", "inputs": {"steps": 30, "step_seconds": 0.01, "value": "done"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    async with EventRecorder(live_server.ws_url, "c6") as ws:
        prompt_id = live_server.queue_prompt(slow, client_id="c6")
        await ws.wait_for(lambda e, d: e == "progress")
        live_server.post("/interrupt", {"prompt_id": "someone-else"})
        await ws.wait_done(prompt_id)
    assert live_server.wait_history(prompt_id)["outputs"]["2"] == {"text": ["done"]}


async def test_events_go_only_to_the_socket_that_queued_the_prompt(live_server: LiveServer) -> None:
    async with (
        EventRecorder(live_server.ws_url, "owner") as owner,
        EventRecorder(live_server.ws_url, "bystander") as other,
    ):
        prompt_id = live_server.queue_prompt(chain_prompt("private"), client_id="owner")
        await owner.wait_done(prompt_id)
        await other.wait_for(lambda e, d: e == "status" and d["status"]["exec_info"]["queue_remaining"] == 0)
        assert owner.for_prompt(prompt_id)
        assert other.for_prompt(prompt_id) == []
        assert any(e == "status" for e, _ in other.events)


async def test_preview_frames_use_comfyui_framing(live_server: LiveServer) -> None:
    prompt = {
        "1": {"class_type": "TestPreviewFrame", "inputs": {"value": "p"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    client = uuid.uuid4().hex
    async with EventRecorder(live_server.ws_url, client) as ws:
        prompt_id = live_server.queue_prompt(prompt, client_id=client)
        await ws.wait_done(prompt_id)
        assert len(ws.previews) == 1
        event_type, image_type, data = ws.previews[0]
        assert (event_type, image_type) == (1, 1)  # PREVIEW_IMAGE, JPEG
        assert data[:3] == b"\xff\xd8\xff"
        kinds = [e for e, _ in ws.events]
        assert kinds.index("<binary>") > kinds.index("executing")
