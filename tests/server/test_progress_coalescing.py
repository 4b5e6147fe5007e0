"""The event bus sends ``progress_state`` at a bounded rate: always the newest, the last before the prompt ends."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from server.events import EventBus


class Socket:
    closed = False

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_str(self, message: str) -> None:
        self.sent.append(json.loads(message))

    async def close(self) -> None:
        self.closed = True


def test_states_are_sent_at_most_once_per_interval_and_the_last_before_the_prompt_ends() -> None:
    socket = Socket()

    async def scenario() -> None:
        bus = EventBus()
        bus.progress_interval = 0.2
        await bus.start()
        bus.register("c", socket)  # type: ignore[arg-type]
        live: dict[str, Any] = {"prompt_id": "p", "nodes": {}}
        for step in range(3):  # three changes, far apart from each other in loop turns
            live["nodes"]["n"] = {"value": float(step), "max": 9.0, "state": "running"}
            bus.send_sync("progress_state", live, "c")
            bus.send_sync("executing", {"node": f"n{step}", "prompt_id": "p"}, "c")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # the interval passes: the newest state goes out on its own
        live["nodes"]["n"] = {"value": 9.0, "max": 9.0, "state": "finished"}
        bus.send_sync("progress_state", live, "c")
        bus.send_sync("execution_success", {"prompt_id": "p"}, "c")  # within the interval: sent before this
        await asyncio.sleep(0.05)
        await bus.stop()

    asyncio.run(scenario())
    kinds = [
        (m["type"], m["data"]["nodes"]["n"]["value"] if m["type"] == "progress_state" else m["data"].get("node"))
        for m in socket.sent
    ]
    assert kinds == [
        ("progress_state", 0.0),
        ("executing", "n0"),
        ("executing", "n1"),
        ("executing", "n2"),
        ("progress_state", 2.0),
        ("progress_state", 9.0),
        ("execution_success", None),
    ]


def test_each_prompt_and_client_has_its_own_state() -> None:
    alice, bob = Socket(), Socket()

    async def scenario() -> None:
        bus = EventBus()
        await bus.start()
        bus.register("a", alice)  # type: ignore[arg-type]
        bus.register("b", bob)  # type: ignore[arg-type]
        one, two = {"prompt_id": "1", "nodes": {}}, {"prompt_id": "2", "nodes": {}}
        bus.send_sync("progress_state", one, "a")
        bus.send_sync("progress_state", two, "a")
        bus.send_sync("progress_state", one, "b")
        await asyncio.sleep(0.05)
        await bus.stop()

    asyncio.run(scenario())
    assert [m["data"]["prompt_id"] for m in alice.sent] == ["1", "2"]
    assert [m["data"]["prompt_id"] for m in bob.sent] == ["1"]
