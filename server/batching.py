"""Which queued prompts run as one batch (``--batch-prompts``).

When the worker takes a prompt, the prompts queued right behind it that are the same graph (the
same node ids, classes and links, the same constants, the same outputs) except for the inputs a
batch can vary, :data:`VARYING_INPUTS` (seeds and texts), come with it, up to the flag's bound.
Only those directly behind it: a prompt of another graph ends the batch, so nothing runs before a
prompt queued ahead of it and files are numbered as if the prompts ran one after the other.

The group then runs side by side in one executor (:meth:`engine.Executor.execute_group`): each
prompt its own run, history entry, events and files; the nodes that can batch (the samplers and
VAEDecode, ``run_batch`` in ``nodes/diffusion/batch_sampling.py``) are called once for the group.
Grouping here is only a promise that the graphs match; whether the values can share a batch
(the same latent size, token lengths, a deterministic sampler...) is decided when they are known,
and what cannot is run prompt by prompt.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .queue import PromptQueue, QueueItem

#: per node class, the constant inputs that may differ between the prompts of a batch
VARYING_INPUTS: dict[str, frozenset[str]] = {
    "KSampler": frozenset({"seed"}),
    "KSamplerAdvanced": frozenset({"noise_seed"}),
    "RandomNoise": frozenset({"noise_seed"}),
    "CLIPTextEncode": frozenset({"text"}),
    "CLIPTextEncodeSDXL": frozenset({"text_g", "text_l"}),
    "CLIPTextEncodeSDXLRefiner": frozenset({"text"}),
}

#: a prompt without one of these has nothing to batch
SAMPLERS = frozenset({"KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced"})

#: larger prompts are not compared (the comparison runs under the queue's lock)
MAX_NODES = 500


def batch_key(item: QueueItem) -> str | None:
    """What prompts of one batch share: the prompt with its varying inputs blanked, and its
    outputs; ``None`` for a prompt that is not worth comparing (no sampler, or very large)."""
    prompt = item.prompt
    if len(prompt) > MAX_NODES or not any(_class(node) in SAMPLERS for node in prompt.values()):
        return None
    shape = {}
    for node_id, node in prompt.items():
        varying = VARYING_INPUTS.get(_class(node), frozenset())
        inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
        shape[node_id] = [
            _class(node),
            {k: (None if k in varying and not isinstance(v, list) else v) for k, v in inputs.items()},
        ]
    try:
        return json.dumps([sorted(item.outputs), shape], sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return None


def _class(node: Any) -> Any:
    return node.get("class_type") if isinstance(node, dict) else None


def take_batch(queue: PromptQueue, first: QueueItem, limit: int) -> list[QueueItem]:
    """``first`` and the prompts queued right behind it that can share its batch (at most
    ``limit`` in all), taken off the queue in order; just ``[first]`` when batching is off."""
    group = [first]
    key = batch_key(first) if limit > 1 else None
    if key is None:
        return group

    def same_graph(head: list[QueueItem]) -> QueueItem | None:
        return head[0] if head and batch_key(head[0]) == key else None

    while len(group) < limit:
        item = queue.get_matching(same_graph, timeout=0, window=1)
        if item is None:
            break
        group.append(item)
    return group
