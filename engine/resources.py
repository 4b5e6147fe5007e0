"""Memory estimates before anything runs: refuse a prompt whose nodes would not fit.

Prompts inside every node's declared input ranges can still ask for more memory than the
machine has (``EmptyLatentImage`` 16384 x 16384 x 320 is 21 GB of zeros; decoding an 8192 x
8192 x 64 latent is 51 GB of pixels), and the process is killed by the OS with the queue and
history of every user. Validation therefore asks each node what it would allocate.

The hook is declarative and optional: a node definition may have an
``estimate(inputs) -> Estimate | None`` method. ``inputs`` maps each input name to its constant
value, or, for a linked input, to what the source node's estimate said about that output (a
:class:`TensorInfo` or any other description), or ``None`` when nothing is known. The engine
walks the prompt in dependency order, so descriptions flow along links (a latent's shape from
``EmptyLatentImage`` through the sampler to ``VAEDecode``). It never imports torch: shapes are
tuples and sizes are arithmetic. A node that does not estimate, or whose inputs are unknown,
is simply not checked; estimates are meant to be cheap lower bounds, so a refusal is certain.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .prompt import Prompt, is_link

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """What is known of a tensor before it exists: its shape and bytes per element."""

    shape: tuple[int, ...]
    itemsize: int = 4

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.itemsize


@dataclass(frozen=True, slots=True)
class Estimate:
    """A node's answer: peak bytes it allocates, what its outputs will be, which input drives it.

    ``outputs`` has one entry per declared output (a :class:`TensorInfo`, another description,
    or ``None``); ``input_name`` is named in the error when ``bytes`` is over the budget.
    """

    bytes: int
    outputs: tuple[Any, ...] = ()
    input_name: str | None = None
    #: what is allocated, for the message ("a 4x16x2048x2048 latent")
    what: str = ""


def format_bytes(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def _error(node_id: str, class_type: str, estimate: Estimate, budget: int) -> dict[str, Any]:
    what = f" for {estimate.what}" if estimate.what else ""
    hint = f"Lower input '{estimate.input_name}'" if estimate.input_name else "Use smaller inputs"
    return {
        "type": "memory_budget_exceeded",
        "message": "Node would need more memory than this server allows",
        "details": (
            f"{class_type} (node {node_id}) needs about {format_bytes(estimate.bytes)}{what}; the budget per node is "
            f"{format_bytes(budget)} (--max-node-memory). {hint}, or use a tiled node."
        ),
        "extra_info": {
            "input_name": estimate.input_name,
            "estimated_bytes": estimate.bytes,
            "budget_bytes": budget,
        },
    }


def estimate_prompt(
    prompt: Prompt,
    order: list[str],
    registry: Mapping[str, Any],
    budget: int | None,
) -> dict[str, dict[str, Any]]:
    """Errors (ComfyUI's error objects, by node id) for nodes estimated above ``budget`` bytes.

    ``order`` is the validator's dependency order over the nodes that will run; ``prompt`` the
    validated prompt (constants already coerced to their types).
    """
    if not budget or budget <= 0:
        return {}
    known: dict[str, tuple[Any, ...]] = {}
    errors: dict[str, dict[str, Any]] = {}
    estimators: dict[Any, Any] = {}  # per class: a registry may be a slow Mapping
    for node_id in order:
        node = prompt.get(node_id)
        if node is None:
            continue
        class_type = node.get("class_type")
        try:
            estimate_fn = estimators[class_type]
        except KeyError:
            estimate_fn = estimators[class_type] = _estimator(registry.get(class_type))
        if estimate_fn is None:
            continue
        try:
            estimate = estimate_fn(_estimate_inputs(node, known))
        except Exception:  # an estimator's bug must not refuse (or break) a prompt
            log.debug("memory estimate of node %s (%s) failed", node_id, class_type, exc_info=True)
            continue
        if estimate is None:
            continue
        known[node_id] = tuple(estimate.outputs)
        if estimate.bytes > budget:
            errors[node_id] = _error(node_id, class_type, estimate, budget)
    return errors


def _estimator(definition: Any) -> Any:
    """The definition's ``estimate`` hook, or ``None`` when it has none or says (``estimates =
    False``) that it always answers ``None``: a thousand text nodes then cost no calls at all."""
    if definition is None or not getattr(definition, "estimates", True):
        return None
    return getattr(definition, "estimate", None)


def _estimate_inputs(node: Mapping[str, Any], known: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    """Constants as they are; a linked input as what its source's estimate said of that output."""
    inputs: dict[str, Any] = {}
    for name, value in node.get("inputs", {}).items():
        if is_link(value):
            outputs = known.get(value[0], ())
            inputs[name] = outputs[value[1]] if 0 <= value[1] < len(outputs) else None
        else:
            inputs[name] = value
    return inputs
