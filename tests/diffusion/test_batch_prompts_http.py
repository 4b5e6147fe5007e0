"""``--batch-prompts`` through the real server with the tiny models: queued prompts that differ in
seed and text are sampled and decoded as one batch, and each still comes out as what it gives
alone (its latent and its PNG), with its own history entry, events, client and file; prompts of
another graph are not merged; interrupting one prompt of a batch or failing a batch loses none.

The worker is held by a long "gate" prompt while a batch is queued behind it, then the gate is
interrupted, so the batch is all pending when the worker looks behind its first prompt.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from server.app import create_app
from server.config import ServerConfig
from server.embedded import start_in_thread
from tests.support.server import LiveServer, start_server
from tests.support.ws import EventRecorder

SD1 = "tiny-sd1.safetensors"


def graph(seed: int, text: str, prefix: str, *, steps: int = 3, size: int = 64, sampler: str = "euler") -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD1}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, lowres", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": seed,
                "steps": steps,
                "cfg": 6.0,
                "sampler_name": sampler,
                "scheduler": "karras",
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
        "8": {"class_type": "SaveLatent", "inputs": {"samples": ["5", 0], "filename_prefix": f"{prefix}_latent"}},
    }


#: (seed, text): one text twice with two seeds, one seed twice with two texts
VARIANTS = [
    (1, "a red fox in the snow"),
    (2, "a red fox in the snow"),
    (1, "a blue house"),
    (4, "a (green:1.2) tree"),
    (5, "a cat"),
    (6, "a dog on a beach"),
]


@pytest.fixture(scope="module")
def server(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    base = tmp_path_factory.mktemp("batch-home")
    (base / "models").symlink_to(tiny_models, target_is_directory=True)
    live = start_server(base, batch_prompts=8)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def alone(server: LiveServer) -> list[dict[str, Any]]:
    """Each variant run by itself (nothing queued beside it)."""
    entries = []
    for seed, text in VARIANTS:
        prompt_id = server.queue_prompt(graph(seed, text, "alone/p"))
        entries.append(finished(server, prompt_id))
    return entries


@pytest.fixture(autouse=True)
def fresh_cache(server: LiveServer, alone: list[dict[str, Any]]) -> None:
    """Every test computes its prompts afresh: nothing comes from the output cache."""
    free_cache(server)


def finished(server: LiveServer, prompt_id: str, status: str = "success") -> dict[str, Any]:
    entry = server.wait_history(prompt_id, 300)
    assert entry["status"]["status_str"] == status, json.dumps(entry["status"]["messages"])[:3000]
    return entry


def free_cache(server: LiveServer) -> None:
    status, _ = server.post("/free", {"free_memory": True})
    assert status == 200


def hold_worker(server: LiveServer) -> str:
    """Queue a long prompt (of another graph) and wait until it runs."""
    gate = server.queue_prompt(graph(99, "gate", "gate/g", steps=5000, size=32))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, queue = server.get("/queue")
        if any(item[1] == gate for item in queue["queue_running"]):
            return gate
        time.sleep(0.02)
    raise TimeoutError("the gate prompt did not start")


def release(server: LiveServer, gate: str) -> None:
    status, _ = server.post("/interrupt", {"prompt_id": gate})
    assert status == 200
    finished(server, gate, "error")


def queue_batch(server: LiveServer, prompts: list[dict], clients: list[str | None] | None = None) -> list[str]:
    gate = hold_worker(server)
    ids = [server.queue_prompt(p, client_id=(clients or [None] * len(prompts))[i]) for i, p in enumerate(prompts)]
    release(server, gate)
    return ids


def batched(entry: dict[str, Any], node: str) -> list[str]:
    """The prompts that shared the batched call of ``node`` with this one ([] when it ran alone)."""
    notes = [d for e, d in entry["status"]["messages"] if e == "execution_batched" and d["node_id"] == node]
    return notes[0]["prompts"] if notes else []


def latent(server: LiveServer, entry: dict[str, Any]) -> torch.Tensor:
    from safetensors.torch import load_file

    info = entry["outputs"]["8"]["latents"][0]
    return load_file(str(server.base_dir / "output" / info["subfolder"] / info["filename"]))["latent_tensor"]


def png(server: LiveServer, entry: dict[str, Any]) -> np.ndarray:
    image = entry["outputs"]["7"]["images"][0]
    query = f"/view?filename={image['filename']}&subfolder={image['subfolder']}&type={image['type']}"
    status, body = server.get(query)
    assert status == 200
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), dtype=np.int16)


def assert_same_picture(server: LiveServer, got: dict[str, Any], want: dict[str, Any]) -> None:
    """The batch's latent equals the one alone up to float32 rounding of batched matrix products
    (relative to the latent's scale: these random tiny models' latents reach a few hundred), and
    the PNG's pixels are the same but for the odd one rounded the other way."""
    a, b = latent(server, got), latent(server, want)
    assert a.shape == b.shape == (1, 4, 8, 8)
    assert float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())
    diff = np.abs(png(server, got) - png(server, want))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_queued_prompts_are_sampled_as_one_batch_and_each_gets_its_own_picture(server, alone):
    ids = queue_batch(server, [graph(seed, text, "batch/p") for seed, text in VARIANTS])
    entries = [finished(server, prompt_id) for prompt_id in ids]
    for index, entry in enumerate(entries):
        assert entry["prompt"][1] == ids[index]
        assert batched(entry, "5") == ids  # the sampler ran once for all six
        assert batched(entry, "6") == ids  # and so did the decoder
        assert batched(entry, "2") == []  # each text encoded for its own prompt
        assert_same_picture(server, entry, alone[index])
    # files numbered as if the prompts had run one after the other
    names = [e["outputs"]["7"]["images"][0]["filename"] for e in entries]
    assert names == [f"p_{n:05}_.png" for n in range(1, 7)]


def test_prompts_of_another_graph_are_not_merged(server, alone):
    prompts = [
        graph(1, VARIANTS[0][1], "mixed/a"),
        graph(2, VARIANTS[1][1], "mixed/a"),
        graph(3, "a house", "mixed/a", steps=4),  # another graph: more steps
        graph(1, VARIANTS[2][1], "mixed/a"),
        graph(4, VARIANTS[3][1], "mixed/a"),
    ]
    ids = queue_batch(server, prompts)
    entries = [finished(server, prompt_id) for prompt_id in ids]
    assert [batched(e, "5") for e in entries] == [ids[:2], ids[:2], [], ids[3:], ids[3:]]
    for entry, index in zip([entries[0], entries[1], entries[3], entries[4]], [0, 1, 2, 3], strict=True):
        assert_same_picture(server, entry, alone[index])


def test_what_cannot_share_a_batch_runs_alone_with_the_same_pictures(server, alone):
    long_text = ", ".join(["a very long prompt about a fox"] * 12)  # more than 75 tokens: 154 of them
    prompts = [graph(seed, text, "split/p") for seed, text in VARIANTS[:3]] + [graph(7, long_text, "split/p")]
    ids = queue_batch(server, prompts)
    entries = [finished(server, prompt_id) for prompt_id in ids]
    assert [batched(e, "5") for e in entries] == [[]] * 4  # token lengths differ: sampled one by one
    assert all(batched(e, "6") == ids for e in entries)  # the latents still decode as one batch
    for index in range(3):
        assert_same_picture(server, entries[index], alone[index])


def test_a_batch_that_fails_runs_its_prompts_one_by_one(server, alone, monkeypatch):
    import nodes.diffusion.sampler_nodes as sampler_nodes

    original = sampler_nodes.common_ksampler

    def out_of_memory_when_batched(*args: Any, noise_source: Any = None, **kwargs: Any) -> Any:
        if noise_source is not None:
            raise RuntimeError("out of memory (a batch too large for the device)")
        return original(*args, **kwargs)

    monkeypatch.setattr(sampler_nodes, "common_ksampler", out_of_memory_when_batched)
    ids = queue_batch(server, [graph(seed, text, "oom/p") for seed, text in VARIANTS[:3]])
    entries = [finished(server, prompt_id) for prompt_id in ids]
    for index, entry in enumerate(entries):
        assert batched(entry, "5") == []
        assert_same_picture(server, entry, alone[index])


async def test_events_go_to_each_prompts_own_client(server, alone):
    clients = [uuid.uuid4().hex for _ in range(3)]
    async with (
        EventRecorder(server.ws_url, clients[0]) as ws0,
        EventRecorder(server.ws_url, clients[1]) as ws1,
        EventRecorder(server.ws_url, clients[2]) as ws2,
    ):
        recorders = [ws0, ws1, ws2]
        owners = [clients[i % 3] for i in range(6)]
        prompts = [graph(seed, text, "events/p") for seed, text in VARIANTS]
        ids = await asyncio.to_thread(queue_batch, server, prompts, owners)
        for index, prompt_id in enumerate(ids):
            await recorders[index % 3].wait_done(prompt_id, timeout=300)
        for r, ws in enumerate(recorders):
            mine = {ids[i] for i in range(6) if i % 3 == r}
            seen = {d["prompt_id"] for _, d in ws.events if isinstance(d, dict) and d.get("prompt_id") in ids}
            assert seen == mine  # nobody else's prompts
            for prompt_id in mine:
                kinds = [e for e, _ in ws.for_prompt(prompt_id)]
                assert kinds[0] == "execution_start"
                assert {"executing", "progress", "executed", "execution_success"} <= set(kinds)
                steps = [d["value"] for e, d in ws.for_prompt(prompt_id) if e == "progress" and d["node"] == "5"]
                assert steps == [1, 2, 3]
                saved = [d for e, d in ws.for_prompt(prompt_id) if e == "executed" and d["node"] == "7"]
                assert len(saved) == 1


async def test_interrupting_one_prompt_of_a_batch_leaves_the_others_running(server, alone):
    client = uuid.uuid4().hex
    async with EventRecorder(server.ws_url, client) as ws:
        prompts = [graph(seed, text, "stop/p", steps=200, size=32) for seed, text in VARIANTS[:3]]
        ids = await asyncio.to_thread(queue_batch, server, prompts, [client] * 3)
        await ws.wait_for(lambda e, d: e == "progress" and d.get("prompt_id") == ids[1], timeout=300)
        status, _ = await asyncio.to_thread(server.post, "/interrupt", {"prompt_id": ids[1]})
        assert status == 200
        for prompt_id in ids:
            await ws.wait_done(prompt_id, timeout=300)
    first, stopped, third = (server.wait_history(i) for i in ids)
    assert first["status"]["status_str"] == third["status"]["status_str"] == "success"
    assert stopped["status"]["status_str"] == "error"
    assert any(e == "execution_interrupted" for e, _ in stopped["status"]["messages"])
    assert "7" not in stopped["outputs"]  # it stopped before saving
    assert batched(first, "5") == ids


async def test_interrupt_without_a_prompt_id_stops_the_whole_batch(server, alone):
    client = uuid.uuid4().hex
    async with EventRecorder(server.ws_url, client) as ws:
        prompts = [graph(seed, text, "stopall/p", steps=400) for seed, text in VARIANTS[:3]]
        ids = await asyncio.to_thread(queue_batch, server, prompts, [client] * 3)
        await ws.wait_for(lambda e, d: e == "progress" and d.get("prompt_id") == ids[0], timeout=300)
        status, _ = await asyncio.to_thread(server.post, "/interrupt")
        assert status == 200
        for prompt_id in ids:
            await ws.wait_done(prompt_id, timeout=300)
        steps = [d["value"] for e, d in ws.for_prompt(ids[2]) if e == "progress" and d["node"] == "5"]
        assert 1 <= len(steps) < 400
    for prompt_id in ids:
        entry = server.wait_history(prompt_id)
        assert entry["status"]["status_str"] == "error"
        assert any(e == "execution_interrupted" for e, _ in entry["status"]["messages"])


@pytest.fixture(scope="module")
def process_server(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The same, with node code in a worker process (what ``python main.py`` runs)."""
    base = tmp_path_factory.mktemp("batch-process-home")
    (base / "models").symlink_to(tiny_models, target_is_directory=True)
    config = ServerConfig(base_directory=base, batch_prompts=8, worker_mode="process", interrupt_grace=120)
    # one torch thread in the worker too, as in this process (tiny models: threads only contend)
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        live = LiveServer(start_in_thread(create_app(config, load_plugins=False)), base)
    finally:
        if before is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = before
    # the models loaded (and the gate's loader cached), so the gate is interrupted while it samples
    finished(live, live.queue_prompt(graph(99, "gate", "warm/w", steps=1, size=32)))
    yield live
    live.stop()


async def test_a_worker_process_batches_and_sends_each_prompt_its_own_events(process_server, alone, server):
    clients = [uuid.uuid4().hex for _ in range(2)]
    async with (
        EventRecorder(process_server.ws_url, clients[0]) as ws0,
        EventRecorder(process_server.ws_url, clients[1]) as ws1,
    ):
        prompts = [graph(seed, text, "process/p") for seed, text in VARIANTS[:4]]
        owners = [clients[i % 2] for i in range(4)]
        ids = await asyncio.to_thread(queue_batch, process_server, prompts, owners)
        for index, prompt_id in enumerate(ids):
            await (ws0, ws1)[index % 2].wait_done(prompt_id, timeout=300)
        for r, ws in enumerate((ws0, ws1)):
            seen = {d["prompt_id"] for _, d in ws.events if isinstance(d, dict) and d.get("prompt_id") in ids}
            assert seen == {ids[i] for i in range(4) if i % 2 == r}
    for index, prompt_id in enumerate(ids):
        entry = finished(process_server, prompt_id)
        assert batched(entry, "5") == ids
        got = latent(process_server, entry)
        want = latent(server, alone[index])
        assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max())


async def test_a_worker_process_interrupts_one_prompt_of_a_batch(process_server):
    client = uuid.uuid4().hex
    async with EventRecorder(process_server.ws_url, client) as ws:
        prompts = [graph(seed, text, "pstop/p", steps=200, size=32) for seed, text in VARIANTS[:3]]
        ids = await asyncio.to_thread(queue_batch, process_server, prompts, [client] * 3)
        await ws.wait_for(lambda e, d: e == "progress" and d.get("prompt_id") == ids[0], timeout=300)
        status, _ = await asyncio.to_thread(process_server.post, "/interrupt", {"prompt_id": ids[0]})
        assert status == 200
        for prompt_id in ids:
            await ws.wait_done(prompt_id, timeout=300)
    statuses = [process_server.wait_history(i)["status"]["status_str"] for i in ids]
    assert statuses == ["error", "success", "success"]
