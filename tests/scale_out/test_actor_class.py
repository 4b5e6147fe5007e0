"""The Ray worker's class without Ray: :class:`server.ray_actor.WeftWorker` driven directly in a
process of its own (``actor_driver.py``), so what runs inside each actor is tested (and measured
by coverage, which does not see the threads Ray runs actor methods on)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.scale_out.conftest import PACK

ROOT = Path(__file__).resolve().parents[2]


def test_the_worker_class_runs_jobs_reports_in_order_and_answers_interrupt_and_free(tmp_path: Path) -> None:
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "pool_nodes.py").write_text(PACK)
    done = subprocess.run(
        [sys.executable, "-m", "tests.scale_out.actor_driver", str(tmp_path), str(packs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["info"]["name"] == "w0" and out["info"]["models"] == {} and out["info"]["prompts"] == 0
    assert out["idle_next"] == []  # no job runs: next() answers at once, with nothing
    cheap = out["cheap"]  # a short prompt: one reply, its events and its result
    assert cheap["kinds"][-1] == "result" and cheap["result"]["status_str"] == "success"
    assert cheap["events"][0] == "execution_start" and "executed" in cheap["events"]
    assert cheap["events"].index("executed") < cheap["events"].index("execution_success")
    assert out["cheap_info"]["prompts"] == 1 and out["cheap_info"]["cache"]["entries"] == 2
    slow = out["slow"]  # a longer one: batches through next() while it runs, then the result
    assert slow["polled"] and set(slow["polled"]) == {"events"} and slow["reply"][-1] == "result"
    assert slow["result"]["status_str"] == "success"
    names = slow["events"]  # next() and run() together: every event once, in order
    assert names[0] == "execution_start" and names.count("execution_start") == 1
    assert names.count("executed") == 1 and names.index("executed") < names.index("execution_success")
    interrupted = out["interrupted"]  # interrupt() from another thread reaches the running node
    assert interrupted["result"]["interrupted"] and interrupted["seconds"] < 30
    assert out["early"]["result"]["interrupted"] and out["early"]["seconds"] < 30
    assert out["unaffected"]["result"]["status_str"] == "success"
    assert out["freed"]["entries"] == 0
