"""Structural cache keys for nodes.

A node's signature digests its class, its constant inputs, the signatures (and output
indices) of the nodes it links to and its outside-state fingerprint. Node ids are left
out unless the node asks for its own id, so the same sub-graph in another prompt maps to
the same keys. Each signature is a fixed-size digest computed from its parents' digests,
which keeps the pass linear in the number of nodes, however deep the graph.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .prompt import Prompt, is_link
from .schema import NodeDefinition, NodeSchema

log = logging.getLogger(__name__)

_ALWAYS_CHANGED = object()


#: one encoder for every node: ``json.dumps`` with these options builds a new one per call,
#: which was a fifth of a signature's cost
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=repr)


def _encode(value: Any) -> str:
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError):
        return repr(value)


def _uses_id(schema: NodeSchema) -> bool:
    return any(s.kind == "hidden" and s.type == "UNIQUE_ID" for s in schema.inputs)


def node_signature(
    node_id: str,
    node: Mapping[str, Any],
    definition: NodeDefinition,
    parents: Mapping[str, bytes],
    schema: NodeSchema | None = None,
    uses_id: bool | None = None,
) -> bytes | None:
    """The signature of one node given its parents' signatures; ``None`` means "never cache".

    ``uses_id``: whether the class asks for its node id (read from ``schema`` when not given)."""
    schema = schema or definition.schema
    constants: dict[str, Any] = {}
    linked: list[tuple[str, str, int]] = []
    for name, value in sorted(node["inputs"].items()):
        if is_link(value):
            parent = parents.get(value[0])
            if parent is None:
                return None
            linked.append((name, parent.hex(), value[1]))
        else:
            constants[name] = value
    try:
        fingerprint = definition.fingerprint(constants)
    except Exception:  # the node will report the real problem when it runs
        log.exception("fingerprint of node %s (%s) failed; it will not be cached", node_id, schema.name)
        return None
    if fingerprint is _ALWAYS_CHANGED or (isinstance(fingerprint, float) and fingerprint != fingerprint):
        return None  # ComfyUI's "NaN means always changed"
    if uses_id is None:
        uses_id = _uses_id(schema)
    text = _encode(
        [
            schema.name,
            constants,
            linked,
            None if fingerprint is None else _encode(fingerprint),
            node_id if uses_id else None,
        ]
    )
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def compute_signatures(
    prompt: Prompt,
    order: Iterable[str],
    registry: Mapping[str, NodeDefinition],
    known: dict[str, bytes] | None = None,
) -> dict[str, bytes]:
    """Signatures for ``order`` (parents before children); uncacheable nodes are left out.

    A node whose parent has no signature has none either: its input can change from run
    to run, so its output must not be reused.
    """
    signatures: dict[str, bytes] = dict(known or {})
    # once per class: file-list combos rescan on access, and the id question is the class's
    classes: dict[str, tuple[NodeDefinition, NodeSchema, bool]] = {}
    for node_id in order:
        node = prompt[node_id]
        class_type = node["class_type"]
        known_class = classes.get(class_type)
        if known_class is None:
            definition = registry[class_type]
            schema = definition.schema
            known_class = classes[class_type] = (definition, schema, _uses_id(schema))
        definition, schema, uses_id = known_class
        signature = node_signature(node_id, node, definition, signatures, schema, uses_id)
        if signature is not None:
            signatures[node_id] = signature
    return signatures
