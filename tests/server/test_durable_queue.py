"""Issue 13, durable queue: a server killed with SIGKILL comes back with its queue in order, the
prompt it was running failed (or re-queued with ``--on-restart-running requeue``), its history,
and prompt numbers going on from the highest. Queue and history are bounded in count and bytes:
pruning keeps output files, a full queue answers 429 naming the bound.

The kill tests run ``main.py`` as a real process; the bounds run in-process (faster)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.config import build_parser
from server.store import FILE_NAME, StoreError
from tests.support.main_process import MainProcess, main_process
from tests.support.nodes_for_tests import make_registry
from tests.support.server import LiveServer, serve

#: a pack the killed servers load: an output node that sleeps (in short steps) and names its seed
SLEEP_PACK = """
import time


class DurableTestSleep:
    CATEGORY = "tests"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 3600.0}),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 1 << 30})}}

    def run(self, seconds, seed):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.05)
        return {"ui": {"text": [str(seed)]}, "result": (str(seed),)}


NODE_CLASS_MAPPINGS = {"DurableTestSleep": DurableTestSleep}
"""


def sleep_prompt(seconds: float, seed: int) -> dict[str, Any]:
    return {"1": {"class_type": "DurableTestSleep", "inputs": {"seconds": seconds, "seed": seed}}}


@contextlib.contextmanager
def process(base: Path, *flags: str) -> Iterator[MainProcess]:
    with main_process(base, *flags, packs={"durable_sleep.py": SLEEP_PACK}) as server:
        yield server


def queue_blocked(server: MainProcess, count: int) -> tuple[str, list[str], list[float]]:
    """One prompt running for minutes and ``count`` queued behind it (one of them ``front``).
    Returns the running id, the pending ids in queue order and every number handed out."""
    blocker = server.queue(sleep_prompt(600, 0))
    server.wait(lambda: server.queue_ids()[0] == [blocker["prompt_id"]], "the blocker to start")
    numbers = [blocker["number"]]
    for seed in range(1, count + 1):
        numbers.append(server.queue(sleep_prompt(600, seed), front=seed == 10)["number"])
    running, pending = server.queue_ids()
    assert running == [blocker["prompt_id"]] and len(pending) == count
    return blocker["prompt_id"], pending, numbers


def test_sigkill_keeps_the_queue_in_order_fails_the_running_prompt_and_numbers_go_on(tmp_path: Path) -> None:
    with process(tmp_path) as first:
        done = first.queue(sleep_prompt(0, 99))
        first.wait(lambda: first.history(done["prompt_id"]), "the first prompt to finish")
        blocker, pending, numbers = queue_blocked(first, 30)
        numbers.append(done["number"])
        first.kill()
    assert (tmp_path / "user" / FILE_NAME).exists()

    with process(tmp_path) as second:
        running, waiting = second.queue_ids()
        # the worker has taken the first one again already: together they are the old queue, in order
        assert running + waiting == pending
        failed = second.history(blocker)
        assert failed is not None and failed["status"]["status_str"] == "error"
        assert failed["status"]["completed"] is False
        error = failed["status"]["messages"][-1]
        assert error[0] == "execution_error" and "server stopped while this prompt ran" in error[1]["exception_message"]
        assert failed["prompt"][1] == blocker and failed["prompt"][2]["1"]["inputs"]["seed"] == 0
        finished = second.history(done["prompt_id"])
        assert finished is not None and finished["status"]["status_str"] == "success"
        assert finished["outputs"]["1"]["text"] == ["99"]
        jobs = second.request("GET", "/api/jobs?status=failed")[1]["jobs"]
        assert [j["id"] for j in jobs] == [blocker] and jobs[0]["execution_error"]["exception_type"] == "ServerStopped"
        # numbers go on from the highest handed out, both ways
        assert second.queue(sleep_prompt(600, 100))["number"] > max(numbers)
        assert second.queue(sleep_prompt(600, 101), front=True)["number"] < min(numbers)


def test_requeue_on_restart_runs_the_interrupted_prompt_again_first(tmp_path: Path) -> None:
    with process(tmp_path, "--on-restart-running", "requeue") as first:
        blocker, pending, _ = queue_blocked(first, 2)
        first.kill()
    with process(tmp_path, "--on-restart-running", "requeue") as second:
        running, waiting = second.wait(lambda: (lambda q: q if q[0] else None)(second.queue_ids()), "a prompt to run")
        assert running == [blocker] and waiting == pending
        assert second.history(blocker) is None


# -- bounds, in-process ----------------------------------------------------------------------------


@contextlib.contextmanager
def running(base: Path, **config: Any) -> Iterator[LiveServer]:
    servers = serve(base, make_registry(), **config)
    live = next(servers)
    try:
        yield live
    finally:
        servers.close()


def save_prompt(shade: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": shade}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"keep{shade}"}},
    }


def slow_prompt(value: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "TestSlow", "inputs": {"steps": 10000, "step_seconds": 0.05, "value": value}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }


def outputs(base: Path) -> set[str]:
    return {p.name for p in (base / "output").glob("keep*.png")}


def test_history_is_pruned_by_count_across_restarts_and_keeps_output_files(tmp_path: Path) -> None:
    with running(tmp_path, history_max_items=3) as live:
        ids = [live.queue_prompt(save_prompt(shade)) for shade in range(5)]
        live.wait_history(ids[-1])
        assert list(live.get("/history")[1]) == ids[2:]
    assert len(outputs(tmp_path)) == 5
    with running(tmp_path, history_max_items=2) as live:  # a lower bound prunes what was kept
        assert list(live.get("/history")[1]) == ids[3:]
        assert live.get(f"/history/{ids[4]}")[1][ids[4]]["outputs"]["2"]["images"]
    assert len(outputs(tmp_path)) == 5


def test_history_is_pruned_by_bytes_and_keeps_output_files(tmp_path: Path) -> None:
    padding = "x" * 10_000  # each entry is a little over 10 kB
    with running(tmp_path, history_max_bytes=25_000) as live:
        ids = [live.queue_prompt(save_prompt(shade), extra_data={"padding": padding}) for shade in range(4)]
        live.wait_history(ids[-1])  # they run in order; the earlier ones may be pruned already
        assert list(live.get("/history")[1]) == ids[2:]
    assert len(outputs(tmp_path)) == 4


def test_a_full_queue_answers_429_naming_the_bound(tmp_path: Path) -> None:
    with running(tmp_path, queue_max_items=2, queue_max_bytes=50_000) as live:
        blocker = live.queue_prompt(slow_prompt("block"))
        deadline = time.monotonic() + 30
        while not live.get("/queue")[1]["queue_running"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        big = {"padding": "x" * 30_000}
        live.queue_prompt(slow_prompt("big"), extra_data=big)
        status, body = live.post("/prompt", {"prompt": slow_prompt("big2"), "extra_data": big})
        assert status == 429, body
        assert body["error"]["type"] == "queue_full" and body["error"]["extra_info"]["bound"] == "--max-queue-size"
        live.queue_prompt(slow_prompt("small"))
        status, body = live.post("/prompt", {"prompt": slow_prompt("one too many")})
        assert status == 429, body
        assert body["error"]["extra_info"] == {"bound": "--max-queue-items", "limit": 2}
        assert "--max-queue-items" in body["error"]["message"]
        assert live.post("/queue", {"clear": True})[0] == 200
        live.queue_prompt(slow_prompt("room again"))
        live.post("/queue", {"clear": True})
        live.post("/interrupt", {"prompt_id": blocker})
        live.wait_history(blocker)


def test_memory_only_queue_keeps_no_file_and_forgets(tmp_path: Path) -> None:
    with running(tmp_path, durable_queue=False) as live:
        live.wait_history(live.queue_prompt(save_prompt(1)))
    assert not (tmp_path / "user" / FILE_NAME).exists()
    with running(tmp_path, durable_queue=False) as live:
        assert live.get("/history")[1] == {}
        assert live.post("/prompt", {"prompt": save_prompt(2)})[1]["number"] == 1


def test_a_second_server_on_the_same_user_directory_keeps_its_queue_in_memory(tmp_path: Path) -> None:
    with running(tmp_path) as first:
        first.wait_history(first.queue_prompt(save_prompt(1)))
        with running(tmp_path) as second:
            assert first.server.store is not None and second.server.store is None
            assert second.get("/history")[1] == {}
            second.wait_history(second.queue_prompt(save_prompt(2)))
        assert len(first.get("/history")[1]) == 1


def test_an_unreadable_file_is_moved_aside_and_a_new_one_started(tmp_path: Path) -> None:
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / FILE_NAME).write_bytes(b"not a database" * 100)
    with running(tmp_path) as live:
        assert live.server.store is not None
        live.wait_history(live.queue_prompt(save_prompt(1)))
    aside = list((tmp_path / "user").glob(f"{FILE_NAME}.broken-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"not a database")
    with running(tmp_path) as live:
        assert len(live.get("/history")[1]) == 1


def test_a_prompt_that_cannot_be_saved_is_refused_with_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with running(tmp_path) as live:
        store = live.server.store
        assert store is not None

        def disk_full(*args: Any, **kwargs: Any) -> None:
            raise StoreError(f"could not save to {store.path}: database or disk is full")

        monkeypatch.setattr(store, "queue_add", disk_full)
        status, body = live.post("/prompt", {"prompt": save_prompt(1)})
        assert status == 503 and "disk is full" in body["error"]["message"], body
        assert live.get("/queue")[1] == {"queue_running": [], "queue_pending": []}


def test_the_flags_are_in_help() -> None:
    text = build_parser().format_help()
    for flag in (
        "--memory-only-queue",
        "--on-restart-running",
        "--max-queue-items",
        "--max-queue-size",
        "--max-history-items",
        "--max-history-size",
    ):
        assert flag in text


@pytest.mark.parametrize(
    "flags", [["--max-queue-items", "-1"], ["--max-history-size", "-2"], ["--on-restart-running", "later"]]
)
def test_bad_values_are_refused(flags: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(flags)
