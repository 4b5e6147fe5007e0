"""Drive :class:`server.ray_actor.WeftWorker` directly, in a process of its own (it installs its
runtime process-wide, as in a Ray worker), and print what it answered as JSON.

``python -m tests.scale_out.actor_driver BASE_DIR PACKS_DIR`` (run by test_actor_class.py).
Without Ray: the class is plain Python; Ray only runs it in an actor.
"""

from __future__ import annotations

import json
import pickle
import sys
import threading
import time
from pathlib import Path
from typing import Any

from server.backend import Job
from server.config import ServerConfig
from server.ray_actor import WeftWorker


def job(prompt_id: str, class_type: str, **inputs: Any) -> bytes:
    prompt = {"1": {"class_type": class_type, "inputs": inputs}}
    if class_type == "PrimitiveString":
        prompt["2"] = {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}
    return pickle.dumps(Job(prompt_id, prompt, [max(prompt)], {}))


def events(messages: list[Any]) -> list[str]:
    return [item[1] for message in messages for item in message[-1] if item[0] == "e"]


def run_polled(worker: WeftWorker, data: bytes, interrupt_after: float | None = None) -> dict[str, Any]:
    """``run`` on a thread of its own, ``next`` polled meanwhile (what the server does)."""
    reply: list[Any] = []
    runner = threading.Thread(target=lambda: reply.extend(pickle.loads(worker.run(data))))
    started = time.monotonic()
    runner.start()
    if interrupt_after is not None:
        threading.Timer(interrupt_after, worker.interrupt).start()
    polled: list[Any] = []
    while runner.is_alive():
        polled.extend(pickle.loads(worker.next(0.05)))
    runner.join()
    polled.extend(pickle.loads(worker.next(0.05)))  # no job runs: nothing, at once
    return {
        "polled": [m[0] for m in polled],
        "reply": [m[0] for m in reply],
        "events": events(polled + reply),
        "result": reply[-1][1],
        "seconds": time.monotonic() - started,
    }


def main(base: Path, packs: Path) -> dict[str, Any]:
    config = ServerConfig(base_directory=base, extra_custom_node_dirs=[packs])
    worker = WeftWorker(config, "w0", "WARNING")
    out: dict[str, Any] = {"info": worker.info(), "idle_next": pickle.loads(worker.next(5.0))}
    cheap = pickle.loads(worker.run(job("cheap", "PrimitiveString", value="hello")))
    out["cheap"] = {"kinds": [m[0] for m in cheap], "events": events(cheap), "result": cheap[-1][1]}
    out["cheap_info"] = cheap[-1][2]
    out["slow"] = run_polled(worker, job("slow", "PoolSleep", seconds=0.5, tag="slow"))
    out["interrupted"] = run_polled(worker, job("long", "PoolSleep", seconds=60.0, tag="long"), 0.3)
    # asked before its run began (the server asks as soon as it handed the prompt over)
    worker.interrupt("early")
    out["early"] = run_polled(worker, job("early", "PoolSleep", seconds=60.0, tag="early"))
    worker.interrupt("gone")  # a prompt that is not this one: the next runs to its end
    out["unaffected"] = run_polled(worker, job("next", "PoolSleep", seconds=0.0, tag="next"))
    out["freed"] = worker.free(True, False)["cache"]
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2])), default=str))
