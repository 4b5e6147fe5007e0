"""Issue 16, scale-out on Ray: one server, two worker actors on a local Ray instance.

Each test drives the real ``python main.py --backend ray`` over HTTP and WebSockets (see
conftest.py). They share the server, so each starts by waiting until both workers are idle.
"""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.scale_out.conftest import CHECKPOINTS, all_idle, stats, workers
from tests.support.main_process import MainProcess
from tests.support.ws import EventRecorder

#: the order of one prompt's events a client must see (ComfyUI's), each once
LIFECYCLE = ("execution_start", "execution_cached", "executed", "execution_success")


def txt2img(ckpt: str, seed: int, prefix: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": seed,
                "steps": 2,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


def sleep(seconds: float, tag: str, class_type: str = "PoolSleep") -> dict[str, Any]:
    return {"1": {"class_type": class_type, "inputs": {"seconds": seconds, "tag": tag}}}


def ws_url(server: MainProcess) -> str:
    return server.url.replace("http://", "ws://") + "/ws"


async def finished(server: MainProcess, prompt_id: str, timeout: float = 120) -> dict[str, Any]:
    return await asyncio.to_thread(server.wait, lambda: server.history(prompt_id), f"{prompt_id} to end", timeout)


async def running_on(server: MainProcess, prompt_id: str, timeout: float = 60) -> dict[str, Any]:
    """The worker entry of /system_stats that runs ``prompt_id``, once it does."""

    def find() -> dict[str, Any] | None:
        return next((w for w in workers(server) if w["running"] == prompt_id), None)

    return await asyncio.to_thread(server.wait, find, f"{prompt_id} to run", timeout)


async def client_runs(server: MainProcess, recorder: EventRecorder, prompts: list[dict[str, Any]]) -> list[str]:
    """Queue ``prompts`` as the recorder's client, all at once; wait for each done signal."""
    ids = []
    for prompt in prompts:
        extra = {"preview_method": "latent2rgb"}
        body = await asyncio.to_thread(server.queue, prompt, client_id=recorder.client_id, extra_data=extra)
        ids.append(body["prompt_id"])
    for prompt_id in ids:
        await recorder.wait_done(prompt_id, timeout=240)
    return ids


def check_events(recorder: EventRecorder, prompt_id: str) -> None:
    """The prompt's events reached its own client in ComfyUI's order, each lifecycle event once."""
    events = recorder.for_prompt(prompt_id)
    names = [e for e, _ in events]
    assert [n for n in names if n in LIFECYCLE] == list(LIFECYCLE), names
    assert names[-1] == "executing" and events[-1][1]["node"] is None
    steps = [(d["value"], d["max"]) for e, d in events if e == "progress" and d.get("node") == "5"]
    assert steps == [(1, 2), (2, 2)], steps
    executed = next(d for e, d in events if e == "executed")
    assert executed["node"] == "7" and executed["output"]["images"][0]["filename"].endswith(".png")
    assert names.index("execution_start") < names.index("executed") < names.index("execution_success")


async def test_twenty_prompts_over_two_checkpoints_from_four_clients(ray_server: MainProcess) -> None:
    server = ray_server
    await asyncio.to_thread(all_idle, server)
    before = {w["id"]: w["prompts"] for w in workers(server)}
    placed = stats(server)["placements"].get("affinity", 0)
    clients = [f"pool-client-{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    plan = {c: [(CHECKPOINTS[(i + j) % 2], 100 * i + j) for j in range(5)] for i, c in enumerate(clients)}
    recorders = [EventRecorder(ws_url(server), c) for c in clients]
    for recorder in recorders:
        await recorder.__aenter__()
    try:
        runs = [
            client_runs(server, r, [txt2img(ckpt, seed, f"pool_{seed}") for ckpt, seed in plan[r.client_id]])
            for r in recorders
        ]
        ids_per_client = await asyncio.gather(*runs)
    finally:
        for recorder in recorders:
            await recorder.__aexit__(None, None, None)
    mine = {c: set(ids) for c, ids in zip(clients, ids_per_client, strict=True)}
    used: set[str] = set()
    for recorder, ids in zip(recorders, ids_per_client, strict=True):
        others = set().union(*(v for k, v in mine.items() if k != recorder.client_id))
        seen = {d.get("prompt_id") for _, d in recorder.events if isinstance(d, dict)} - {None}
        assert seen == mine[recorder.client_id] and not seen & others  # no event went astray
        assert recorder.previews, "no preview frame reached the client from its worker"
        for prompt_id, (ckpt, seed) in zip(ids, plan[recorder.client_id], strict=True):
            check_events(recorder, prompt_id)
            entry = await finished(server, prompt_id)
            assert entry["status"]["status_str"] == "success", entry["status"]
            assert entry["prompt"][2]["1"]["inputs"]["ckpt_name"] == ckpt
            used.add(entry["worker"]["id"])
            image = entry["outputs"]["7"]["images"][0]
            assert image["filename"].startswith(f"pool_{seed}_")  # it ran with its own inputs
            assert (server.base / "output" / image["subfolder"] / image["filename"]).is_file()
    assert used == {"ray-0", "ray-1"}  # both ran prompts: two at once
    after = workers(server)
    assert sum(w["prompts"] for w in after) - sum(before.values()) == 20
    for worker in after:  # affinity: no worker loaded a checkpoint twice
        for model in worker["models"]:
            assert model["loads"] <= 1, (worker["id"], model)
    loaded = [Path(m["file"].split("|")[0]).name for w in after for m in w["models"]]
    # most prompts went where their checkpoint was loaded already (the rest: each worker's first)
    assert stats(server)["placements"]["affinity"] - placed >= 10 and stats(server)["status"] == "running"
    assert set(loaded) == set(CHECKPOINTS)
    query = urllib.parse.urlencode({"filename": image["filename"], "subfolder": image["subfolder"], "type": "output"})
    with urllib.request.urlopen(f"{server.url}/view?{query}", timeout=30) as response:  # served as ever
        assert response.read(8) == b"\x89PNG\r\n\x1a\n"


async def test_interrupt_reaches_the_worker_that_runs_the_prompt(ray_server: MainProcess) -> None:
    server = ray_server
    before = {w["id"]: (w["pid"], w["restarts"]) for w in await asyncio.to_thread(all_idle, server)}
    first = server.queue(sleep(60, "first"))["prompt_id"]
    second = server.queue(sleep(60, "second"))["prompt_id"]
    target = await running_on(server, second)
    other = await running_on(server, first)
    assert target["id"] != other["id"]
    status, _ = server.request("POST", "/interrupt", {"prompt_id": second})
    assert status == 200
    entry = await finished(server, second, timeout=30)
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert entry["worker"]["id"] == target["id"]
    assert server.history(first) is None  # the other worker's prompt runs on
    server.request("POST", "/interrupt", {"prompt_id": first})
    entry = await finished(server, first, timeout=30)
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    # the flag reached the node: no worker had to be killed for it
    assert {w["id"]: (w["pid"], w["restarts"]) for w in workers(server)} == before


async def test_a_worker_killed_mid_prompt_is_replaced_and_its_prompt_runs_again_elsewhere(
    ray_server: MainProcess,
) -> None:
    server = ray_server
    await asyncio.to_thread(all_idle, server)
    client_id = f"pool-kill-{uuid.uuid4().hex[:6]}"
    async with EventRecorder(ws_url(server), client_id) as recorder:
        doomed = server.queue(sleep(3, "doomed"), client_id=client_id)["prompt_id"]
        victim = await running_on(server, doomed)
        await recorder.wait_for(lambda e, d: e == "executing" and d.get("prompt_id") == doomed and d.get("node"))
        queued = [server.queue(sleep(0.2, f"queued{i}"), client_id=client_id)["prompt_id"] for i in range(4)]
        os.kill(victim["pid"], signal.SIGKILL)
        entry = await finished(server, doomed)
        assert entry["status"]["status_str"] == "success", entry["status"]
        assert entry["worker"]["id"] != victim["id"]  # run again on the other worker
        assert int(entry["outputs"]["1"]["text"][0].split()[1]) != victim["pid"]
        for prompt_id in queued:  # nothing queued was lost
            assert (await finished(server, prompt_id))["status"]["status_str"] == "success"
        await recorder.wait_done(doomed)
        done = [d for e, d in recorder.for_prompt(doomed) if e == "executing" and d["node"] is None]
        assert len(done) == 1  # finished once: not duplicated
    history = server.request("GET", "/history")[1]
    assert sum(1 for prompt_id in history if prompt_id == doomed) == 1
    replaced = await asyncio.to_thread(all_idle, server)
    again = next(w for w in replaced if w["id"] == victim["id"])
    assert again["restarts"] == 1 + victim["restarts"] and again["pid"] != victim["pid"]


async def test_a_prompt_whose_worker_dies_twice_fails_with_the_reason(ray_server: MainProcess) -> None:
    server = ray_server
    await asyncio.to_thread(all_idle, server)
    doomed = server.queue(sleep(0, "x", "PoolKillWorker"))["prompt_id"]
    after = server.queue(sleep(0, "after"))["prompt_id"]
    entry = await finished(server, doomed, timeout=240)
    kind, error = entry["status"]["messages"][-1]
    assert kind == "execution_error" and error["exception_type"] == "WorkerDied"
    assert "died" in error["exception_message"] and "ran 2 times" in error["exception_message"]
    # which node ran is known only when its ``executing`` event left the worker before it died
    assert error["node_id"] in (None, "1")
    assert (await finished(server, after, timeout=240))["status"]["status_str"] == "success"
    assert stats(server)["error"] is None


async def test_a_prompt_that_ignores_its_interruption_has_its_worker_replaced(ray_server: MainProcess) -> None:
    server = ray_server
    await asyncio.to_thread(all_idle, server)
    client_id = f"pool-deaf-{uuid.uuid4().hex[:6]}"
    async with EventRecorder(ws_url(server), client_id) as recorder:
        deaf = server.queue(sleep(120, "deaf", "PoolDeafSleep"), client_id=client_id)["prompt_id"]
        victim = await running_on(server, deaf)
        await recorder.wait_for(lambda e, d: e == "executing" and d.get("prompt_id") == deaf and d.get("node"))
        server.request("POST", "/interrupt", {"prompt_id": deaf})
        entry = await finished(server, deaf, timeout=60)  # --interrupt-grace 2, then the actor is killed
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert entry["status"]["messages"][-1][1]["node_id"] == "1"
    replaced = await asyncio.to_thread(all_idle, server)
    again = next(w for w in replaced if w["id"] == victim["id"])
    assert again["restarts"] == victim["restarts"] + 1 and again["pid"] != victim["pid"]
