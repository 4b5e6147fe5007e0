"""Issue 16 without Ray: the placement rule, model file fingerprints, and the queue calls the
pool's dispatcher uses (``get_matching``, ``requeue``) on the real durable queue."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from nodes.paths import Paths
from nodes.registry import builtin_registry
from server.affinity import (
    ModelInputs,
    WorkerView,
    choose,
    file_fingerprint,
    fingerprint,
    key_fingerprint,
    prompt_models,
)
from server.queue import DurablePromptQueue, QueueItem
from server.store import open_store

A, B, C = frozenset({"a"}), frozenset({"b"}), frozenset({"c"})


def idle(*models: str, since: float = 0.0) -> WorkerView:
    return WorkerView(True, frozenset(models), since)


def busy(*models: str) -> WorkerView:
    return WorkerView(False, frozenset(models))


def test_a_prompt_goes_to_the_free_worker_that_holds_its_model() -> None:
    assert choose([B], [idle("a"), idle("b"), idle()]) == (0, 1, "affinity")


def test_without_a_holder_the_free_worker_holding_least_goes_first_then_the_one_idle_longest() -> None:
    assert choose([C], [idle("a", "b"), idle("a", since=5.0), idle("b", since=2.0)]) == (0, 2, "least_loaded")


def test_a_prompt_waits_for_its_busy_holder_while_a_later_one_takes_the_free_worker() -> None:
    # the worker that holds A is busy: the A prompt waits for it, B goes to the free worker
    assert choose([A, B], [busy("a"), idle()]) == (1, 1, "least_loaded")


def test_past_its_patience_a_model_in_demand_is_loaded_on_a_second_worker() -> None:
    workers = [busy("a"), idle()]
    assert choose([A, A], workers, patience=1) == (1, 1, "least_loaded")
    assert choose([A], workers, patience=0) == (0, 1, "least_loaded")
    assert choose([A, A, A], [busy("a"), busy("a"), idle()], patience=1) == (2, 2, "least_loaded")


def test_nothing_is_placed_without_a_free_worker_or_while_every_prompt_waits() -> None:
    assert choose([A], [busy("a"), busy()]) is None
    assert choose([A], [busy("a"), idle()], patience=2) is None


def test_prompts_without_model_files_go_anywhere_in_order() -> None:
    assert choose([frozenset(), A], [idle("a"), idle()]) == (0, 1, "no_model")


def test_a_file_fingerprint_matches_the_model_manager_key_of_the_same_file(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints" / "m.safetensors"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"weights")
    st = ckpt.stat()
    key = ("unet", str(ckpt.resolve()), st.st_mtime_ns, st.st_size)  # nodes.diffusion.model_files.file_key
    assert (
        key_fingerprint(key) == file_fingerprint(ckpt) == fingerprint(str(ckpt.resolve()), st.st_mtime_ns, st.st_size)
    )
    assert key_fingerprint(("diffusers-unet", str(tmp_path), 5)) == file_fingerprint(tmp_path) == str(tmp_path)
    assert key_fingerprint(("tokenizer", "!")) is None
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert file_fingerprint(ckpt) != key_fingerprint(key)  # a changed file is another model


def test_the_model_files_of_a_prompt_come_from_the_loaders_model_inputs(tmp_path: Path) -> None:
    paths = Paths.at(tmp_path, models_dir=tmp_path / "models", create=True)
    (tmp_path / "models" / "checkpoints").mkdir(parents=True, exist_ok=True)
    (tmp_path / "models" / "loras").mkdir(parents=True, exist_ok=True)
    ckpt = tmp_path / "models" / "checkpoints" / "m.safetensors"
    lora = tmp_path / "models" / "loras" / "l.safetensors"
    ckpt.write_bytes(b"1")
    lora.write_bytes(b"22")
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
        "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "l.safetensors", "model": ["1", 0]}},
        "3": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}},
        "4": {"class_type": "SomePackLoader", "inputs": {"ckpt_name": "m.safetensors"}},  # by ComfyUI's name
        "5": {"class_type": "KSampler", "inputs": {"seed": 1}},
    }
    found = prompt_models(prompt, ModelInputs(builtin_registry()), paths)
    assert found == {file_fingerprint(ckpt), file_fingerprint(lora)}


def _queue(tmp_path: Path) -> DurablePromptQueue:
    return DurablePromptQueue(open_store(tmp_path / "state.sqlite3"))


def _item(queue: DurablePromptQueue, name: str) -> QueueItem:
    return QueueItem(queue.next_number(), name, {"1": {"class_type": "X", "inputs": {}}})


def test_get_matching_takes_the_chosen_prompt_and_leaves_the_rest_in_order(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    for name in ("p1", "p2", "p3"):
        queue.put(_item(queue, name))
    heads: list[list[str]] = []

    def pick_second(head: list[QueueItem]) -> QueueItem:
        heads.append([i.prompt_id for i in head])
        return head[1]

    assert queue.get_matching(pick_second, timeout=1).prompt_id == "p2"
    assert heads == [["p1", "p2", "p3"]]
    assert [i.prompt_id for i in queue.running()] == ["p2"]
    assert [i.prompt_id for i in queue.pending()] == ["p1", "p3"]
    assert queue.get_matching(lambda head: None, timeout=0.05) is None  # nothing fits: it waited, then gave up


def test_a_requeued_prompt_runs_next_with_its_number_and_survives_a_restart(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    for name in ("p1", "p2"):
        queue.put(_item(queue, name))
    first = queue.get_matching(lambda head: head[0], timeout=1)
    assert queue.requeue(first) and not queue.requeue(first)  # only a running prompt goes back
    assert [(i.prompt_id, i.number) for i in queue.pending()] == [("p1", first.number), ("p2", first.number + 1)]
    queue.store.close()
    reopened = _queue(tmp_path)
    assert reopened.restore(requeue_running=False) == []  # pending again, not "was running"
    assert [i.prompt_id for i in reopened.pending()] == ["p1", "p2"]
    reopened.store.close()


def test_wake_makes_a_waiting_get_matching_look_again(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    queue.put(_item(queue, "p1"))
    free = threading.Event()
    got: list[QueueItem | None] = []
    waiter = threading.Thread(
        target=lambda: got.append(queue.get_matching(lambda h: h[0] if free.is_set() else None, 30))
    )
    waiter.start()
    time.sleep(0.1)
    started = time.monotonic()
    free.set()
    queue.wake()  # a worker became free
    waiter.join(10)
    assert got and got[0] is not None and got[0].prompt_id == "p1"
    assert time.monotonic() - started < 5
    queue.store.close()
