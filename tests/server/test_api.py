"""The HTTP API over real sockets: queue, history, catalogue, jobs, bad input, /api prefix."""

from __future__ import annotations

import time

import pytest

from tests.support.server import LiveServer

SLOW = {
    "1": {"class_type": "TestSlow", "inputs": {"steps": 400, "step_seconds": 0.01, "value": "slow"}},
    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
}


def tiny(value: str) -> dict:
    return {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": value}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }


def wait_running(live: LiveServer, prompt_id: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, queue = live.get("/queue")
        if any(item[1] == prompt_id for item in queue["queue_running"]):
            return
        time.sleep(0.01)
    raise AssertionError("prompt never started")


def test_post_prompt_answers_comfyui_shape(live_server: LiveServer) -> None:
    status, body = live_server.post("/prompt", {"prompt": tiny("x"), "client_id": "abc"})
    assert status == 200
    assert set(body) == {"prompt_id", "number", "node_errors"} and body["node_errors"] == {}
    assert isinstance(body["number"], int)
    live_server.wait_history(body["prompt_id"])
    status, info = live_server.get("/prompt")
    assert status == 200 and info == {"exec_info": {"queue_remaining": 0}}


def test_validation_error_lists_every_problem_at_once(live_server: LiveServer) -> None:
    prompt = {
        "1": {"class_type": "PrimitiveInt", "inputs": {"value": "not a number"}},
        "2": {"class_type": "StringConcatenate", "inputs": {"string_a": ["99", 0], "delimiter": ""}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
        "4": {
            "class_type": "StringCompare",
            "inputs": {"string_a": "a", "string_b": ["1", 0], "mode": "Sideways", "case_sensitive": True},
        },
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}},
        "6": {"class_type": "TestRange", "inputs": {"value": 11}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
        "8": {"class_type": "StringLength", "inputs": {"string": ["1", 3]}},
        "9": {"class_type": "PreviewAny", "inputs": {"source": ["8", 0]}},
    }
    status, body = live_server.post("/prompt", {"prompt": prompt})
    assert status == 400
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    errors = {node: sorted(e["type"] for e in entry["errors"]) for node, entry in body["node_errors"].items()}
    assert errors == {
        "1": ["invalid_input_type"],
        "2": ["bad_linked_input", "required_input_missing"],
        "4": ["return_type_mismatch", "value_not_in_list"],
        "6": ["value_bigger_than_max"],
        "8": ["bad_linked_input"],
    }
    assert body["node_errors"]["2"]["class_type"] == "StringConcatenate"
    assert body["node_errors"]["2"]["dependent_outputs"] == ["3"]
    missing = next(e for e in body["node_errors"]["2"]["errors"] if e["type"] == "required_input_missing")
    assert missing["extra_info"]["input_name"] == "string_b"
    _, queue = live_server.get("/queue")
    assert queue == {"queue_running": [], "queue_pending": []}  # nothing ran


def test_unknown_node_class_and_no_outputs_are_reported(live_server: LiveServer) -> None:
    status, body = live_server.post("/prompt", {"prompt": {"1": {"class_type": "NoSuchNode", "inputs": {}}}})
    assert status == 400 and body["error"]["type"] == "missing_node_type"
    assert body["node_errors"]["1"]["errors"][0]["extra_info"]["class_type"] == "NoSuchNode"
    status, body = live_server.post(
        "/prompt", {"prompt": {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 1}}}}
    )
    assert status == 400 and body["error"]["type"] == "prompt_no_outputs"


def test_cycles_and_custom_validation_are_reported(live_server: LiveServer) -> None:
    prompt = {
        "1": {"class_type": "StringConcatenate", "inputs": {"string_a": ["2", 0], "string_b": "", "delimiter": ""}},
        "2": {"class_type": "StringConcatenate", "inputs": {"string_a": ["1", 0], "string_b": "", "delimiter": ""}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
        "4": {"class_type": "TestRange", "inputs": {"value": 7}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}},
    }
    status, body = live_server.post("/prompt", {"prompt": prompt})
    assert status == 400
    kinds = {n: [e["type"] for e in v["errors"]] for n, v in body["node_errors"].items()}
    assert kinds["1"] == ["dependency_cycle"] and kinds["2"] == ["dependency_cycle"]
    assert kinds["4"] == ["custom_validation_failed"]
    assert "7 is not allowed" in body["node_errors"]["4"]["errors"][0]["details"]


@pytest.mark.parametrize(
    "raw, content_type",
    [
        (b"not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"prompt": 5}', "application/json"),
        (b'{"prompt": {"1": 3}}', "application/json"),
        (b'{"prompt": {"1": {"class_type": "PreviewAny", "inputs": []}}}', "application/json"),
        (b'{"prompt": {}, "client_id": 5}', "application/json"),
        (b'{"prompt": {}, "extra_data": "x"}', "application/json"),
        (b'{"nothing": 1}', "application/json"),
        (b"", "application/json"),
        (b"\xff\xfe", "application/json"),
    ],
)
def test_malformed_prompt_bodies_get_4xx_with_message(live_server: LiveServer, raw: bytes, content_type: str) -> None:
    status, body = live_server.request("POST", "/prompt", raw=raw, headers={"Content-Type": content_type})
    assert 400 <= status < 500
    assert body["error"]["message"]


@pytest.mark.parametrize(
    "path, raw",
    [
        ("/queue", b'{"delete": "abc"}'),
        ("/queue", b"{"),
        ("/history", b'{"delete": [1, 2]}'),
        ("/interrupt", b'{"prompt_id": 12}'),
        ("/free", b"[]"),
    ],
)
def test_malformed_control_bodies_get_400(live_server: LiveServer, path: str, raw: bytes) -> None:
    status, body = live_server.request("POST", path, raw=raw, headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"]["message"]


def test_queue_lists_deletes_and_clears(live_server: LiveServer) -> None:
    running = live_server.queue_prompt(SLOW)
    wait_running(live_server, running)
    pending = [live_server.queue_prompt(tiny(f"p{i}")) for i in range(3)]
    _, queue = live_server.get("/queue")
    assert [item[1] for item in queue["queue_running"]] == [running]
    assert [item[1] for item in queue["queue_pending"]] == pending
    number, prompt_id, prompt, extra, outputs = queue["queue_pending"][0]
    assert prompt_id == pending[0] and prompt["1"]["inputs"]["value"] == "p0" and outputs == ["2"]

    assert live_server.post("/queue", {"delete": [pending[1]]})[0] == 200
    _, queue = live_server.get("/queue")
    assert [item[1] for item in queue["queue_pending"]] == [pending[0], pending[2]]
    assert live_server.post("/queue", {"clear": True})[0] == 200
    _, queue = live_server.get("/queue")
    assert queue["queue_pending"] == []
    live_server.post("/interrupt", {})
    live_server.wait_history(running)
    assert live_server.get(f"/history/{pending[0]}")[1] == {}


def test_front_of_queue_runs_first(live_server: LiveServer) -> None:
    running = live_server.queue_prompt(SLOW)
    wait_running(live_server, running)
    later = live_server.queue_prompt(tiny("later"))
    first = live_server.queue_prompt(tiny("first"), front=True)
    _, queue = live_server.get("/queue")
    assert [item[1] for item in queue["queue_pending"]] == [first, later]
    live_server.post("/interrupt", {})
    live_server.wait_history(later)


def test_history_get_delete_clear_and_max_items(live_server: LiveServer) -> None:
    ids = [live_server.queue_prompt(tiny(f"h{i}")) for i in range(3)]
    for prompt_id in ids:
        live_server.wait_history(prompt_id)
    _, history = live_server.get("/history")
    assert list(history) == ids
    _, newest = live_server.get("/history?max_items=1")
    assert list(newest) == ids[-1:]
    assert live_server.get("/history?max_items=abc")[0] == 400
    live_server.post("/history", {"delete": [ids[0]]})
    assert list(live_server.get("/history")[1]) == ids[1:]
    live_server.post("/history", {"clear": True})
    assert live_server.get("/history")[1] == {}
    assert live_server.get("/history/unknown")[1] == {}


def test_object_info_has_comfyui_shape(live_server: LiveServer) -> None:
    status, info = live_server.get("/object_info")
    assert status == 200
    for name in (
        "PrimitiveInt",
        "PrimitiveFloat",
        "PrimitiveString",
        "PrimitiveStringMultiline",
        "PrimitiveBoolean",
        "StringConcatenate",
        "StringReplace",
        "StringLength",
        "StringCompare",
        "PreviewAny",
    ):
        assert name in info
    compare = info["StringCompare"]
    assert compare["input"]["required"]["mode"] == [["Starts With", "Ends With", "Equal"], {}]
    assert compare["input"]["required"]["case_sensitive"] == ["BOOLEAN", {"default": True}]
    assert compare["input_order"] == {"required": ["string_a", "string_b", "mode", "case_sensitive"]}
    assert compare["output"] == ["BOOLEAN"] and compare["category"] == "utils/string"
    preview = info["PreviewAny"]
    assert preview["output_node"] is True and preview["input"]["required"]["source"] == ["*"]
    assert info["PrimitiveInt"]["input"]["required"]["value"][1]["control_after_generate"] is True
    assert info["TestLazySwitch"]["input"]["required"]["a"] == ["*", {"lazy": True}]
    status, one = live_server.get("/object_info/StringLength")
    assert list(one) == ["StringLength"] and one["StringLength"]["output_name"] == ["length"]
    assert live_server.get("/object_info/Nope")[1] == {}


def test_api_prefix_answers_the_same_routes(live_server: LiveServer) -> None:
    for path in ("/queue", "/prompt", "/history", "/object_info/PreviewAny", "/embeddings", "/models", "/extensions"):
        plain = live_server.get(path)
        prefixed = live_server.get("/api" + path)
        assert plain == prefixed and plain[0] == 200, path


def test_system_stats_models_and_embeddings(live_server: LiveServer) -> None:
    status, stats = live_server.get("/system_stats")
    assert status == 200
    assert {"os", "python_version", "ram_total", "ram_free", "pytorch_version", "argv"} <= set(stats["system"])
    assert stats["devices"] and stats["devices"][0]["type"] in ("cpu", "cuda", "mps")
    models_root = live_server.base_dir / "models"
    (models_root / "checkpoints" / "sd").mkdir(parents=True, exist_ok=True)
    (models_root / "checkpoints" / "sd" / "tiny.safetensors").write_bytes(b"x")
    (models_root / "checkpoints" / "notes.txt").write_text("ignored")
    (models_root / "embeddings" / "style.pt").write_bytes(b"x")
    # the user's files first, then the model that ships with Weft
    assert live_server.get("/models/checkpoints") == (200, ["sd/tiny.safetensors", "weft-shapes.safetensors"])
    assert live_server.get("/embeddings") == (200, ["style"])
    status, folders = live_server.get("/models")
    assert "checkpoints" in folders and "loras" in folders
    assert live_server.get("/models/../etc")[0] == 404
    assert live_server.get("/models/nonsense")[0] == 404


def test_jobs_listing_and_single_job(live_server: LiveServer) -> None:
    ok = live_server.queue_prompt(tiny("job"))
    bad = live_server.queue_prompt(
        {
            "1": {"class_type": "TestFail", "inputs": {"message": "x"}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        }
    )
    live_server.wait_history(ok)
    live_server.wait_history(bad)
    status, body = live_server.get("/api/jobs")
    assert status == 200
    by_id = {j["id"]: j for j in body["jobs"]}
    assert by_id[ok]["status"] == "completed" and by_id[bad]["status"] == "failed"
    assert body["pagination"]["total"] == 2 and body["pagination"]["has_more"] is False
    assert by_id[bad]["execution_error"]["node_id"] == "1"
    status, body = live_server.get("/api/jobs?status=failed")
    assert [j["id"] for j in body["jobs"]] == [bad]
    status, body = live_server.get("/api/jobs?limit=1")
    assert len(body["jobs"]) == 1 and body["pagination"]["has_more"] is True
    assert live_server.get("/api/jobs?status=nope")[0] == 400
    assert live_server.get("/api/jobs?limit=-1")[0] == 400
    status, job = live_server.get(f"/api/jobs/{ok}")
    assert status == 200 and job["outputs"] == {"2": {"text": ["job"]}} and job["workflow"]["prompt"]["1"]
    assert live_server.get("/api/jobs/unknown")[0] == 404


def test_free_is_accepted(live_server: LiveServer) -> None:
    prompt_id = live_server.queue_prompt(tiny("cached"))
    live_server.wait_history(prompt_id)
    assert live_server.server.executor.cache.stats()["entries"] == 2
    assert live_server.post("/free", {"unload_models": True, "free_memory": True})[0] == 200
    assert live_server.server.executor.cache.stats()["entries"] == 0
