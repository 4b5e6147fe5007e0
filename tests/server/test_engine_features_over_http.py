"""Lazy inputs, lists, expansion, async nodes, blockers and cache settings through the real server."""

from __future__ import annotations

from pathlib import Path

from tests.support.nodes_for_tests import make_registry
from tests.support.server import LiveServer, serve
from tests.support.ws import EventRecorder


async def test_lazy_branch_not_taken_never_runs(live_server: LiveServer, calls: list) -> None:
    prompt = {
        "a": {"class_type": "TestCount", "inputs": {"value": "left"}},
        "b": {"class_type": "TestFail", "inputs": {"message": "must not run"}},
        "s": {"class_type": "TestLazySwitch", "inputs": {"pick_a": True, "a": ["a", 0], "b": ["b", 0]}},
        "out": {"class_type": "PreviewAny", "inputs": {"source": ["s", 0]}},
    }
    async with EventRecorder(live_server.ws_url, "lazy") as ws:
        prompt_id = live_server.queue_prompt(prompt, client_id="lazy")
        await ws.wait_done(prompt_id)
        assert "b" not in ws.executed_nodes(prompt_id)
    assert live_server.wait_history(prompt_id)["outputs"]["out"] == {"text": ["left"]}
    assert calls == [("TestCount", "left")]


def test_list_outputs_map_over_downstream_nodes(live_server: LiveServer) -> None:
    prompt = {
        "l": {"class_type": "TestMakeList", "inputs": {"prefix": "img", "count": 3}},
        "u": {"class_type": "StringReplace", "inputs": {"string": ["l", 0], "find": "img", "replace": "pic"}},
        "show": {"class_type": "PreviewAny", "inputs": {"source": ["u", 0]}},
        "j": {"class_type": "TestJoinList", "inputs": {"values": ["u", 0], "separator": " "}},
        "all": {"class_type": "PreviewAny", "inputs": {"source": ["j", 0]}},
    }
    outputs = live_server.wait_history(live_server.queue_prompt(prompt))["outputs"]
    assert outputs["show"] == {"text": ["pic0", "pic1", "pic2"]}
    assert outputs["all"] == {"text": ["pic0 pic1 pic2"]}


async def test_expansion_runs_subgraph_nodes_under_the_parent(live_server: LiveServer) -> None:
    prompt = {
        "r": {"class_type": "TestRepeat", "inputs": {"value": "xy", "times": 3}},
        "out": {"class_type": "PreviewAny", "inputs": {"source": ["r", 0]}},
    }
    async with EventRecorder(live_server.ws_url, "exp") as ws:
        prompt_id = live_server.queue_prompt(prompt, client_id="exp")
        await ws.wait_done(prompt_id)
        executing = [d for e, d in ws.for_prompt(prompt_id) if e == "executing" and d["node"]]
        children = [d for d in executing if d["node"].startswith("r.")]
        assert len(children) == 3 and {d["display_node"] for d in children} == {"r"}
    assert live_server.wait_history(prompt_id)["outputs"]["out"] == {"text": ["xyxyxy"]}


def test_async_nodes_overlap_on_the_worker(live_server: LiveServer) -> None:
    prompt = {
        "a": {"class_type": "TestAsyncSleep", "inputs": {"seconds": 0.3, "tag": "a"}},
        "b": {"class_type": "TestAsyncSleep", "inputs": {"seconds": 0.3, "tag": "b"}},
        "a0": {"class_type": "PreviewAny", "inputs": {"source": ["a", 0]}},
        "a1": {"class_type": "PreviewAny", "inputs": {"source": ["a", 1]}},
        "b0": {"class_type": "PreviewAny", "inputs": {"source": ["b", 0]}},
        "b1": {"class_type": "PreviewAny", "inputs": {"source": ["b", 1]}},
    }
    out = live_server.wait_history(live_server.queue_prompt(prompt))["outputs"]
    a_start, a_end = float(out["a0"]["text"][0]), float(out["a1"]["text"][0])
    b_start, b_end = float(out["b0"]["text"][0]), float(out["b1"]["text"][0])
    assert a_start < b_end and b_start < a_end


def test_blocked_branch_is_skipped_and_the_run_succeeds(live_server: LiveServer) -> None:
    prompt = {
        "v": {"class_type": "PrimitiveString", "inputs": {"value": "data"}},
        "g": {"class_type": "TestGate", "inputs": {"value": ["v", 0], "open": False}},
        "blocked": {"class_type": "PreviewAny", "inputs": {"source": ["g", 0]}},
        "open": {"class_type": "PreviewAny", "inputs": {"source": ["v", 0]}},
    }
    history = live_server.wait_history(live_server.queue_prompt(prompt))
    assert history["status"]["status_str"] == "success"
    assert history["outputs"] == {"open": {"text": ["data"]}}


def tiny(value: str) -> dict:
    return {
        "1": {"class_type": "TestCount", "inputs": {"value": value}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }


def test_cache_none_reruns_everything(tmp_path: Path, calls: list) -> None:
    for live in serve(tmp_path, make_registry(), cache_none=True):
        for _ in range(2):
            live.wait_history(live.queue_prompt(tiny("again")))
        assert calls == [("TestCount", "again"), ("TestCount", "again")]


def test_cache_lru_keeps_only_n_outputs(tmp_path: Path, calls: list) -> None:
    for live in serve(tmp_path, make_registry(), cache_lru=2):
        live.wait_history(live.queue_prompt(tiny("first")))
        live.wait_history(live.queue_prompt(tiny("second")))  # evicts both entries of "first"
        live.wait_history(live.queue_prompt(tiny("first")))
        assert [v for _, v in calls] == ["first", "second", "first"]
        assert live.server.executor.cache.stats()["entries"] == 2


def test_cpu_flag_reaches_the_model_manager(tmp_path: Path) -> None:
    from nodes.diffusion.model_manager import configure, get_manager

    try:
        for live in serve(tmp_path, make_registry(), cpu=True):
            assert get_manager().settings.force_cpu is True
            status, stats = live.get("/system_stats")
            assert status == 200 and stats["devices"][0]["type"] == "cpu"
    finally:
        configure(force_cpu=False)
