"""POST /free while prompts run: the output cache belongs to the worker, which clears it
between prompts, so clearing never races a running prompt's look-ups and stores."""

from __future__ import annotations

import threading
import time

from tests.support.server import LiveServer


def _chain(value: str, length: int = 8) -> dict:
    """``value`` through ``length`` string nodes: many cache look-ups and stores per prompt."""
    prompt: dict = {"0": {"class_type": "PrimitiveString", "inputs": {"value": value}}}
    for i in range(1, length):
        prompt[str(i)] = {
            "class_type": "StringConcatenate",
            "inputs": {"string_a": [str(i - 1), 0], "string_b": str(i), "delimiter": ""},
        }
    prompt["out"] = {"class_type": "PreviewAny", "inputs": {"source": [str(length - 1), 0]}}
    return prompt


def _expected(value: str, length: int = 8) -> str:
    return value + "".join(str(i) for i in range(1, length))


def test_free_hammered_while_prompts_run(live_server: LiveServer) -> None:
    stop = threading.Event()
    statuses: list[int] = []

    def hammer(body: dict) -> None:
        while not stop.is_set():
            statuses.append(live_server.post("/free", body)[0])

    threads = [
        threading.Thread(target=hammer, args=(body,), daemon=True)
        for body in ({"free_memory": True}, {"free_memory": True, "unload_models": True}, {"free_memory": True})
    ]
    for thread in threads:
        thread.start()
    try:
        # few distinct values, many prompts: most look-ups hit entries a /free may be clearing
        values = [f"v{i % 4}" for i in range(60)]
        ids = [live_server.queue_prompt(_chain(value)) for value in values]
        for prompt_id, value in zip(ids, values, strict=True):
            entry = live_server.wait_history(prompt_id)
            assert entry["status"]["status_str"] == "success", entry["status"]["messages"]
            assert entry["outputs"]["out"]["text"] == [_expected(value)]
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert statuses and set(statuses) == {200}, set(statuses)
    assert len(statuses) > 10  # the requests really did overlap the prompts


def wait_running(live: LiveServer, prompt_id: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(item[1] == prompt_id for item in live.get("/queue")[1]["queue_running"]):
            return
        time.sleep(0.01)
    raise AssertionError("prompt never started")


def test_free_during_a_prompt_clears_the_cache_when_it_ends(live_server: LiveServer) -> None:
    """ComfyUI's behaviour: /free answers at once; the worker frees once the running prompt ends."""
    live_server.wait_history(live_server.queue_prompt(_chain("before", 3)))
    cache = live_server.server.executor.cache
    assert len(cache) == 4
    slow = live_server.queue_prompt(
        {
            "1": {"class_type": "TestSlow", "inputs": {"steps": 2000, "step_seconds": 0.01, "value": "slow"}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        }
    )
    wait_running(live_server, slow)
    assert live_server.post("/free", {"free_memory": True})[0] == 200
    assert len(cache) == 4  # not under the running prompt
    assert live_server.post("/interrupt", {})[0] == 200
    live_server.wait_history(slow)
    deadline = time.monotonic() + 10
    while len(cache) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(cache) == 0
    # and a /free with nothing running is done when it answers, as before
    live_server.wait_history(live_server.queue_prompt(_chain("after", 3)))
    assert len(cache) == 4
    assert live_server.post("/free", {"free_memory": True})[0] == 200
    assert len(cache) == 0
