"""Writes the steering example workflow in both formats from one description.

    python examples/steering_examples.py

``examples/fk_steering_shapes.api.json`` is an API-format prompt (POST it to /prompt, or
``python main.py run``); ``examples/fk_steering_shapes.json`` is the same graph as a Weft
workflow document (the canvas's own format, ``web/js/state.js``: drop it on the canvas or use
Load). On the built-in shapes model, one caption (a String node) drives both the prompt and the
ShapesJudgeReward; the same noise, guider and sigmas feed Feynman-Kac steering and, as the
baseline at the same number of model evaluations, best-of-N; each saves its picture.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAME = "fk_steering_shapes"
CAPTION = "a small yellow diamond on the right, blue background"

#: node id -> (class, position, widget values, links {input: (source id, output slot)}, title)
NODES: dict[int, tuple[str, list[int], dict[str, Any], dict[str, tuple[int, int]], str | None]] = {
    1: ("CheckpointLoaderSimple", [20, 300], {"ckpt_name": "weft-shapes.safetensors"}, {}, None),
    2: ("PrimitiveStringMultiline", [20, 40], {"value": CAPTION}, {}, "Caption (prompt and reward)"),
    3: ("CLIPTextEncode", [400, 40], {}, {"text": (2, 0), "clip": (1, 1)}, "Positive prompt"),
    4: ("CLIPTextEncode", [400, 250], {"text": ""}, {"clip": (1, 1)}, "Negative prompt"),
    5: ("EmptyLatentImage", [400, 480], {"width": 64, "height": 64, "batch_size": 1}, {}, None),
    6: ("ShapesJudgeReward", [400, 650], {"mode": "soft"}, {"caption": (2, 0)}, None),
    7: ("CFGGuider", [820, 40], {"cfg": 5.0}, {"model": (1, 0), "positive": (3, 0), "negative": (4, 0)}, None),
    8: ("BasicScheduler", [820, 230], {"scheduler": "normal", "steps": 20, "denoise": 1.0}, {"model": (1, 0)}, None),
    9: ("RandomNoise", [820, 400], {"noise_seed": 0}, {}, None),
    10: (
        "SamplerFKSteering",
        [820, 540],
        {
            "sampler_name": "euler",
            "particles": 4,
            "potential": "max",
            "lambda": 10.0,
            "resample_every": 5,
            "resampling": "systematic",
            "ess_threshold": 1.0,
            "output": "best",
            "seed": 0,
        },
        {"vae": (1, 2), "reward": (6, 0)},
        None,
    ),
    11: (
        "SamplerBestOfN",
        [820, 900],
        {"sampler_name": "euler", "candidates": 4, "output": "best", "seed": 0},
        {"vae": (1, 2), "reward": (6, 0)},
        "SamplerBestOfN (baseline, same budget)",
    ),
    12: (
        "SamplerCustomAdvanced",
        [1240, 40],
        {},
        {"noise": (9, 0), "guider": (7, 0), "sampler": (10, 0), "sigmas": (8, 0), "latent_image": (5, 0)},
        "Sample (FK steering)",
    ),
    13: (
        "SamplerCustomAdvanced",
        [1240, 500],
        {},
        {"noise": (9, 0), "guider": (7, 0), "sampler": (11, 0), "sigmas": (8, 0), "latent_image": (5, 0)},
        "Sample (best-of-N)",
    ),
    14: ("VAEDecode", [1600, 40], {}, {"samples": (12, 0), "vae": (1, 2)}, None),
    15: ("VAEDecode", [1600, 500], {}, {"samples": (13, 0), "vae": (1, 2)}, None),
    16: ("SaveImage", [1850, 40], {"filename_prefix": "fk_steering"}, {"images": (14, 0)}, None),
    17: ("SaveImage", [1850, 500], {"filename_prefix": "best_of_n"}, {"images": (15, 0)}, None),
}


def api_prompt() -> dict[str, Any]:
    prompt: dict[str, Any] = {}
    for node_id, (cls, _, widgets, links, title) in NODES.items():
        inputs = {**widgets, **{name: [str(src), slot] for name, (src, slot) in links.items()}}
        prompt[str(node_id)] = {"class_type": cls, "inputs": inputs, "_meta": {"title": title or cls}}
    return prompt


def _document_node(node_id: int, registry: Any) -> dict[str, Any]:
    """Node ``node_id`` of :data:`NODES` as the canvas stores it: a socket for each linked input (a
    linked widget becomes an input with ``widget`` set, as the canvas's "convert to input" does), the
    other widgets' values by name (their defaults where :data:`NODES` gives none)."""
    from engine.schema import WIDGET_TYPES

    cls, position, widgets, links, title = NODES[node_id]
    schema = registry[cls].schema
    sockets: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for spec in schema.inputs:
        if spec.kind == "hidden":
            continue
        is_widget = spec.type in WIDGET_TYPES
        if is_widget and spec.name not in links:
            values[spec.name] = widgets.get(spec.name, spec.options.get("default"))
            if spec.options.get("control_after_generate"):
                properties.setdefault("control", {})[spec.name] = "fixed"
        else:
            sockets.append({"name": spec.name, "type": spec.type, **({"widget": spec.name} if is_widget else {})})
    node = {
        "id": node_id,
        "type": cls,
        "pos": position,
        "size": [340, 0],
        "mode": 0,
        "inputs": sockets,
        "outputs": [{"name": o.name, "type": o.type} for o in schema.outputs],
        "widgets_values": values,
        "properties": properties,
    }
    if title:
        node["title"] = title
    return node


def _document_links(by_id: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The links of :data:`NODES` as objects; target slots index the sockets of the built nodes."""
    links_out: list[dict[str, Any]] = []
    for node_id, (_, _, _, links, _) in NODES.items():
        for name, (src, slot) in links.items():
            target_slot = next(i for i, s in enumerate(by_id[node_id]["inputs"]) if s["name"] == name)
            links_out.append(
                {
                    "id": len(links_out) + 1,
                    "origin_id": src,
                    "origin_slot": slot,
                    "target_id": node_id,
                    "target_slot": target_slot,
                    "type": by_id[src]["outputs"][slot]["type"],
                }
            )
    return links_out


def workflow_document(registry: Any) -> dict[str, Any]:
    """The graph as a Weft workflow document (see :func:`_document_node`), links as objects."""
    nodes = [_document_node(node_id, registry) for node_id in NODES]
    links_out = _document_links({node["id"]: node for node in nodes})
    return {
        "id": "5f0c1d2e-3a4b-4c5d-8e6f-a1b2c3d4e5f6",
        "format": "weft-workflow",
        "version": 1,
        "last_node_id": max(NODES),
        "last_link_id": len(links_out),
        "nodes": nodes,
        "links": links_out,
        "groups": [],
        "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}},
    }


def main() -> int:
    from nodes.registry import builtin_registry

    folder = Path(__file__).resolve().parent
    (folder / f"{NAME}.api.json").write_text(json.dumps(api_prompt(), indent=2) + "\n")
    (folder / f"{NAME}.json").write_text(json.dumps(workflow_document(builtin_registry()), indent=2) + "\n")
    print(f"wrote examples/{NAME}.api.json and examples/{NAME}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
