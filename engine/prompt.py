"""The API-format prompt: ``{"id": {"class_type": ..., "inputs": {name: value | link}}}``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Prompt = dict[str, dict[str, Any]]


def is_link(value: Any) -> bool:
    """A link is ``[source_id, output_index]`` with a string id and an int index."""
    return (
        (type(value) is list or type(value) is tuple)
        and len(value) == 2
        and type(value[0]) is str
        and type(value[1]) is int
    )


def links_of(node: Mapping[str, Any]) -> Iterator[tuple[str, str, int]]:
    """Yield ``(input_name, source_id, output_index)`` for every linked input of a node."""
    for name, value in node.get("inputs", {}).items():
        if is_link(value):
            yield name, value[0], value[1]


def normalise_prompt(raw: Any) -> Prompt:
    """Return the prompt with string ids, or raise ``ValueError`` with a client-facing reason.

    ComfyUI clients sometimes send numeric link ids (``[5, 0]``); they are accepted and turned
    into strings so the rest of the engine sees one form.
    """
    if not isinstance(raw, dict):
        raise ValueError("the prompt must be a JSON object mapping node ids to nodes")
    prompt: Prompt = {}
    for node_id, node in raw.items():
        if not isinstance(node, dict):
            raise ValueError(f"node {node_id!r} must be an object with class_type and inputs")
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            raise ValueError(f"node {node_id!r}: 'inputs' must be an object")
        fixed: dict[str, Any] = {}
        for name, value in inputs.items():
            if (
                isinstance(value, list)
                and len(value) == 2
                and isinstance(value[0], int)
                and not isinstance(value[0], bool)
                and isinstance(value[1], int)
                and not isinstance(value[1], bool)
            ):
                value = [str(value[0]), value[1]]
            fixed[name] = value
        prompt[str(node_id)] = {**node, "inputs": fixed}
    return prompt
