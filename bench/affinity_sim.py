"""Where to run each prompt on a big pool: a simulation of model-affinity placement (no GPUs).

64 workers, prompts over 20 checkpoints whose popularity follows a Zipf law (a few models get
most of the traffic, as on a shared service), Poisson arrivals. Each worker holds at most
``--models-per-worker`` checkpoints (its GPU memory), least recently used out first; running a
prompt costs its sampling time, plus the checkpoint's load time when the worker does not hold
it. Placement rules compared:

* ``round_robin``: each prompt goes, as it arrives, to the next worker's own queue;
* ``first_free``: one shared queue, its head to the free worker idle longest (a plain dispatcher);
* ``affinity`` and ``affinity_p0``: Weft's rule, :func:`server.affinity.choose` itself (the
  function the server runs): a free worker that holds the prompt's model, else the least
  loaded; with patience 1 (the server's: a prompt waits for its busy holder while fewer than one
  prompt per holder already waits for that model) and 0 (never waits).

Printed per load level (the sampling work offered, as a share of the pool's capacity): model
loads, queue wait (arrival to start) mean / p50 / p95 / p99, time to result (arrival to end:
wait, load, sampling) mean / p95, and the share of worker time spent loading.

    python bench/affinity_sim.py [--prompts 10000] [--workers 64] [--models 20] [--loads 0.3 0.5 0.7]
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.affinity import WorkerView, choose  # noqa: E402


@dataclass
class Prompt:
    arrival: float
    model: str
    sample: float
    start: float = 0.0
    end: float = 0.0


@dataclass
class Worker:
    capacity: int
    models: OrderedDict[str, None] = field(default_factory=OrderedDict)
    busy: bool = False
    idle_since: float = 0.0
    queue: deque[Prompt] = field(default_factory=deque)  # round robin only
    loading: float = 0.0
    loads: int = 0

    def take(self, prompt: Prompt, now: float, load_time: float) -> float:
        """Start ``prompt``: load its model if absent (evicting the least recently used); returns
        when it ends."""
        cost = prompt.sample
        if prompt.model in self.models:
            self.models.move_to_end(prompt.model)
        else:
            self.loads += 1
            self.loading += load_time
            cost += load_time
            self.models[prompt.model] = None
            while len(self.models) > self.capacity:
                self.models.popitem(last=False)
        self.busy, prompt.start, prompt.end = True, now, now + cost
        return prompt.end


@dataclass
class Setup:
    workers: int
    models: int
    per_worker: int
    zipf: float
    sample_mean: float
    load_times: dict[str, float]


def workload(setup: Setup, prompts: int, load: float, rng: random.Random) -> list[Prompt]:
    names = [f"ckpt{i:02d}" for i in range(setup.models)]
    weights = [1 / (rank + 1) ** setup.zipf for rank in range(setup.models)]
    rate = load * setup.workers / setup.sample_mean  # prompts per second
    now, out = 0.0, []
    for _ in range(prompts):
        now += rng.expovariate(rate)
        sample = rng.lognormvariate(0, 0.3) * setup.sample_mean / 1.046  # mean sample_mean
        out.append(Prompt(now, rng.choices(names, weights)[0], sample))
    return out


def _first_free(pending: list[Prompt], workers: list[Worker]) -> tuple[int, int] | None:
    free = [(w.idle_since, i) for i, w in enumerate(workers) if not w.busy]
    return (0, min(free)[1]) if free and pending else None


def _affinity(patience: int) -> Callable[[list[Prompt], list[Worker]], tuple[int, int] | None]:
    def pick(pending: list[Prompt], workers: list[Worker]) -> tuple[int, int] | None:
        views = [WorkerView(not w.busy, frozenset(w.models), w.idle_since) for w in workers]
        found = choose([frozenset({p.model}) for p in pending[:64]], views, patience)
        return None if found is None else found[:2]

    return pick


def simulate(setup: Setup, prompts: list[Prompt], policy: str) -> dict[str, float]:
    workers = [Worker(setup.per_worker) for _ in range(setup.workers)]
    events: list[tuple[float, int, int]] = []  # (time, sequence, worker index)
    sequence = 0
    pending: list[Prompt] = []
    pick = {"first_free": _first_free, "affinity": _affinity(1), "affinity_p0": _affinity(0)}.get(policy)

    def start(index: int, prompt: Prompt, now: float) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (workers[index].take(prompt, now, setup.load_times[prompt.model]), sequence, index))

    def dispatch(now: float) -> None:
        while pick is not None and pending:
            found = pick(pending, workers)
            if found is None:
                return
            start(found[1], pending.pop(found[0]), now)

    arrivals = iter(prompts)
    upcoming = next(arrivals, None)
    turn = 0
    while upcoming is not None or events:
        if upcoming is not None and (not events or upcoming.arrival <= events[0][0]):
            now = upcoming.arrival
            if policy == "round_robin":
                index, turn = turn % setup.workers, turn + 1
                if workers[index].busy:
                    workers[index].queue.append(upcoming)
                else:
                    start(index, upcoming, now)
            else:
                pending.append(upcoming)
            upcoming = next(arrivals, None)
        else:
            now, _, index = heapq.heappop(events)
            worker = workers[index]
            worker.busy, worker.idle_since = False, now
            if policy == "round_robin" and worker.queue:
                start(index, worker.queue.popleft(), now)
        dispatch(now)
    waits = sorted(p.start - p.arrival for p in prompts)
    results = sorted(p.end - p.arrival for p in prompts)
    end = max(p.start for p in prompts)
    return {
        "result_mean": statistics.fmean(results),
        "result_p95": results[int(len(results) * 0.95)],
        "loads": sum(w.loads for w in workers),
        "wait_mean": statistics.fmean(waits),
        "wait_p50": waits[len(waits) // 2],
        "wait_p95": waits[int(len(waits) * 0.95)],
        "wait_p99": waits[int(len(waits) * 0.99)],
        "loading_share": sum(w.loading for w in workers) / (setup.workers * max(end, 1e-9)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--models-per-worker", type=int, default=2, help="checkpoints one GPU holds (default 2)")
    parser.add_argument("--zipf", type=float, default=1.1, help="popularity skew: weight of rank r is 1/r^s")
    parser.add_argument("--sample-seconds", type=float, default=4.0, help="mean sampling time of a prompt")
    parser.add_argument("--load-seconds", type=float, nargs=2, default=(3.0, 12.0), metavar=("MIN", "MAX"))
    parser.add_argument("--loads", type=float, nargs="+", default=(0.3, 0.5, 0.7), help="offered load levels")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    load_times = {f"ckpt{i:02d}": rng.uniform(*args.load_seconds) for i in range(args.models)}
    setup = Setup(args.workers, args.models, args.models_per_worker, args.zipf, args.sample_seconds, load_times)
    print(
        f"{args.workers} workers holding {args.models_per_worker} checkpoints each; {args.models} checkpoints, "
        f"Zipf s={args.zipf}; sampling {args.sample_seconds:g} s mean (lognormal), loads "
        f"{args.load_seconds[0]:g}-{args.load_seconds[1]:g} s; {args.prompts} Poisson arrivals; seed {args.seed}"
    )
    header = f"{'load':>5} {'policy':<12} {'loads':>7} {'loads/100':>9} {'wait mean':>10} {'p50':>8} {'p95':>8}"
    print(header + f" {'p99':>8} {'result mean':>11} {'p95':>8} {'loading':>8}")
    for load in args.loads:
        prompts = workload(setup, args.prompts, load, random.Random(args.seed + int(load * 100)))
        for policy in ("round_robin", "first_free", "affinity_p0", "affinity"):
            started = time.perf_counter()
            r = simulate(setup, [Prompt(p.arrival, p.model, p.sample) for p in prompts], policy)
            print(
                f"{load:>5.2f} {policy:<12} {r['loads']:>7.0f} {100 * r['loads'] / args.prompts:>9.1f} "
                f"{r['wait_mean']:>9.1f}s {r['wait_p50']:>7.1f}s {r['wait_p95']:>7.1f}s {r['wait_p99']:>7.1f}s "
                f"{r['result_mean']:>10.1f}s {r['result_p95']:>7.1f}s "
                f"{100 * r['loading_share']:>7.1f}%  ({time.perf_counter() - started:.1f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
