"""The server's console: a refused prompt and a failed run name the node, the input and the message
(as ComfyUI's console does); ``main.py run`` draws a step bar on a terminal only."""

from __future__ import annotations

import io
import logging

import pytest

from server.console import RunProgress, execution_error_lines, validation_lines
from tests.support.server import LiveServer


def test_a_refused_prompt_prints_each_node_and_input(live_server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    prompt = {
        "1": {"class_type": "PrimitiveInt", "inputs": {"value": "seven"}},
        "2": {"class_type": "StringConcatenate", "inputs": {"string_a": ["9", 0], "string_b": "x", "delimiter": ""}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    with caplog.at_level(logging.WARNING, logger="server"):
        status, body = live_server.post("/prompt", {"prompt": prompt})
    assert status == 400 and set(body["node_errors"]) == {"1", "2"}
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert text.startswith("invalid prompt: ")
    assert "* PrimitiveInt 1:" in text and "* StringConcatenate 2:" in text
    assert "value" in text.split("* PrimitiveInt 1:")[1]  # the input
    assert "string_a: node '9' is not in the prompt" in text


async def test_a_failed_run_prints_node_inputs_message_and_traceback(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    prompt = {
        "1": {"class_type": "MathInt", "inputs": {"a": 5, "b": 0, "operation": "modulo"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    with caplog.at_level(logging.INFO, logger="server"):
        entry = live_server.wait_history(live_server.queue_prompt(prompt))
    assert entry["status"]["status_str"] == "error"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    lines = [r.getMessage() for r in errors]
    assert lines[0] == "!!! Exception during processing !!! node 1 (MathInt): input 'b' is 0: cannot modulo by zero"
    assert lines[1] == "  inputs: a=5, b=0, operation='modulo'"
    assert lines[2].startswith("Traceback (most recent call last):") and "ZeroDivisionError" in lines[2]
    assert any("error in" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_validation_lines_name_the_input_when_the_message_does_not() -> None:
    lines = validation_lines(
        {"message": "Prompt outputs failed validation", "details": ""},
        {
            "5": {
                "class_type": "KSampler",
                "errors": [
                    {
                        "message": "Value out of range",
                        "details": "must be at least 1",
                        "extra_info": {"input_name": "steps"},
                    }
                ],
            }
        },
    )
    assert lines == [
        "invalid prompt: Prompt outputs failed validation",
        "* KSampler 5:",
        "  - input 'steps': Value out of range: must be at least 1",
    ]


def test_execution_error_lines_without_a_node() -> None:
    lines = execution_error_lines({"node_id": None, "exception_message": "boom", "traceback": []})
    assert lines == ["!!! Exception during processing !!! the run: boom"]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(progress: RunProgress) -> None:
    progress("executing", {"node": "3", "prompt_id": "p"})
    for step in (1, 2, 3, 4):
        progress("progress", {"value": step, "max": 4, "node": "3", "prompt_id": "p"})
    progress("executing", {"node": "9", "prompt_id": "p"})
    progress("executing", {"node": None, "prompt_id": "p"})
    progress.close()


def test_run_progress_draws_a_bar_on_a_terminal() -> None:
    stream = FakeTerminal()
    _feed(RunProgress(stream, {"3": "KSampler", "9": "SaveImage"}))
    text = stream.getvalue()
    assert text.startswith("running node 3 (KSampler)\n")
    assert "\r  KSampler 3 [" + "#" * 15 + "." * 15 + "] 2/4" in text
    assert "\r  KSampler 3 [" + "#" * 30 + "] 4/4\nrunning node 9 (SaveImage)\n" in text


def test_run_progress_elsewhere_is_one_line_per_node() -> None:
    stream = io.StringIO()
    _feed(RunProgress(stream, {"3": "KSampler", "9": "SaveImage"}))
    assert stream.getvalue() == "running node 3 (KSampler)\nrunning node 9 (SaveImage)\n"
