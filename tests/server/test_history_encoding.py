"""server/history.py: an entry's JSON for the store, written in one C call when small and a
subtree at a time when big, is the entry either way (with the queue's prompt JSON reused)."""

from __future__ import annotations

import json

import pytest

from server import jsonio
from server.history import CHUNKED_OUTPUTS, History


def entry(outputs: int) -> dict:
    prompt = {"1": {"class_type": "PrimitiveString", "inputs": {"value": 'é \u2028 "q"'}}}
    return {
        "prompt": [3, "pid", prompt, {"client_id": "c"}, ["1"]],
        "outputs": {f"n{i}": {"text": [f"value {i}"]} for i in range(outputs)},
        "status": {"status_str": "success", "completed": True, "messages": [["execution_start", {"t": 1}]]},
        "meta": {},
    }


@pytest.mark.parametrize("outputs", [0, 3, CHUNKED_OUTPUTS + 1], ids=["none", "small", "big"])
@pytest.mark.parametrize("reuse", [True, False], ids=["prompt-json-reused", "whole-entry"])
def test_an_entry_is_written_as_itself(outputs: int, reuse: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    value = entry(outputs)
    chunked_calls = []
    real = jsonio.dumps_chunked
    monkeypatch.setattr(jsonio, "dumps_chunked", lambda v: chunked_calls.append(1) or real(v))
    prompt_json = jsonio.dumps(value["prompt"]) if reuse else None

    text = History._encoded(value, prompt_json)

    assert json.loads(text) == value
    assert bool(chunked_calls) == (outputs > CHUNKED_OUTPUTS)
