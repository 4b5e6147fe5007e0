"""Compare Weft's node schemas with the ComfyUI table (``comfyui_nodes.json``).

The table is generated from ComfyUI's source by ``python -m weft_tools.comfyui_node_table``;
:func:`differences` lists, for one node, every way Weft's /object_info entry departs from it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("comfyui_nodes.json")
_NUMERIC = ("default", "min", "max", "step")


@lru_cache(maxsize=1)
def comfy_table() -> dict[str, Any]:
    return json.loads(TABLE.read_text(encoding="utf-8"))["nodes"]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
    return a == b


def _plain(value: Any) -> Any:
    """As JSON has it (tuples as lists), the form the table was written in."""
    return json.loads(json.dumps(value))


def differences(name: str, info: dict[str, Any]) -> list[str]:
    """``info`` is Weft's /object_info entry of ``name`` (``server.object_info.describe``)."""
    comfy = comfy_table()[name]
    found: list[str] = []
    groups = info["input"]
    order = info.get("input_order", {})
    for group in ("required", "optional"):
        theirs = [i["name"] for i in comfy["inputs"] if i["group"] == group]
        ours = order.get(group, [])
        if group == "required" and ours[: len(theirs)] != theirs:
            found.append(f"required inputs {ours} != ComfyUI's {theirs}")
        if group == "optional":
            missing = [n for n in theirs if n not in ours and n not in order.get("required", [])]
            if missing:
                found.append(f"optional inputs {missing} missing")
    extra_required = [n for n in order.get("required", []) if n not in {i["name"] for i in comfy["inputs"]}]
    if extra_required:
        found.append(f"required inputs ComfyUI lacks: {extra_required}")
    for spec in comfy["inputs"]:
        if spec["group"] == "hidden":
            continue
        entry = groups.get("required", {}).get(spec["name"]) or groups.get("optional", {}).get(spec["name"])
        if entry is None:
            continue
        kind = entry[0]
        options = entry[1] if len(entry) > 1 else {}
        if spec["type"] == "COMBO":
            if not isinstance(kind, list) and kind != "COMBO":
                found.append(f"{spec['name']}: type {kind} != COMBO")
            elif spec.get("choices") is not None and list(kind) != list(spec["choices"]):
                found.append(f"{spec['name']}: choices {kind} != {spec['choices']}")
        elif kind != spec["type"]:
            found.append(f"{spec['name']}: type {kind} != {spec['type']}")
        if "v1" in spec and _plain(entry) != spec["v1"]:  # a structure (template, dynamic input): all of it
            found.append(f"{spec['name']}: entry {_plain(entry)} != ComfyUI's {spec['v1']}")
        for key in (*_NUMERIC, "multiline"):
            if key in spec and not _same(options.get(key), spec[key]):
                found.append(f"{spec['name']}: {key} {options.get(key)!r} != {spec[key]!r}")
        if spec["type"] == "COMBO" and "default" in spec and not _same(options.get("default"), spec["default"]):
            found.append(f"{spec['name']}: default {options.get('default')!r} != {spec['default']!r}")
    their_hidden = {i["name"] for i in comfy["inputs"] if i["group"] == "hidden"}
    our_hidden = set(groups.get("hidden", {}))
    if their_hidden - our_hidden:
        found.append(f"hidden inputs missing: {sorted(their_hidden - our_hidden)}")
    their_out = [(o["type"], o["name"]) for o in comfy["outputs"]]
    our_out = list(zip(info["output"], info["output_name"], strict=True))
    if their_out != our_out:
        found.append(f"outputs {our_out} != {their_out}")
    their_templates = [o.get("matchtype") for o in comfy["outputs"]]
    if any(their_templates) and info.get("output_matchtypes") != their_templates:
        found.append(f"output_matchtypes {info.get('output_matchtypes')} != {their_templates}")
    for key in ("category", "output_node", "deprecated", "experimental"):
        if comfy.get(key) is not None and info.get(key) != comfy[key]:
            found.append(f"{key} {info.get(key)!r} != {comfy[key]!r}")
    if comfy.get("display_name") and info.get("display_name") != comfy["display_name"]:
        found.append(f"display_name {info.get('display_name')!r} != {comfy['display_name']!r}")
    return found
