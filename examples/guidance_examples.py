"""Writes the guidance example workflows, each in both formats, from one description.

    python examples/guidance_examples.py

For every example ``NAME`` below: ``examples/NAME.api.json`` (an API-format prompt: POST it to
/prompt, or ``python main.py run``) and ``examples/NAME.json`` (a ComfyUI UI-format workflow,
version 0.4, that the canvas opens: drop it on the canvas or use Load). Both use the built-in
shapes model, so they run on a fresh install. Node positions are laid out left to right by
depth; widget values follow each node's widget order as /object_info lists it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CAPTION = "a large red circle in the centre, blue background"


def _base(prompt: dict[str, Any], caption: str = CAPTION) -> dict[str, Any]:
    prompt.update(
        {
            "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "weft-shapes.safetensors"}},
            "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": caption, "clip": ["ckpt", 1]}},
            "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
            "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 4}},
        }
    )
    return prompt


def _finish(prompt: dict[str, Any], samples: list[Any], prefix: str) -> dict[str, Any]:
    prompt["decode"] = {"class_type": "VAEDecode", "inputs": {"samples": samples, "vae": ["ckpt", 2]}}
    prompt["save"] = {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": prefix}}
    return prompt


def apg_shapes() -> dict[str, Any]:
    """CFG 15 with Adaptive Projected Guidance: the parallel component removed (eta 0), the update's norm
    capped; no momentum (the paper's reverse momentum, -0.5, hurt this model's colours)."""
    prompt = _base({})
    prompt["apg"] = {
        "class_type": "APG",
        "inputs": {"model": ["ckpt", 0], "eta": 0.0, "norm_threshold": 5.0, "momentum": 0.0},
    }
    prompt["sampler"] = {
        "class_type": "KSampler",
        "inputs": {
            "model": ["apg", 0],
            "seed": 1,
            "steps": 20,
            "cfg": 15.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "positive": ["pos", 0],
            "negative": ["neg", 0],
            "latent_image": ["latent", 0],
            "denoise": 1.0,
        },
    }
    return _finish(prompt, ["sampler", 0], "apg_shapes")


def adaptive_guidance_shapes() -> dict[str, Any]:
    """SamplerCustomAdvanced with the AdaptiveGuidance guider (the sampler node reports the savings)."""
    prompt = _base({})
    prompt["guider"] = {
        "class_type": "AdaptiveGuidance",
        "inputs": {"model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "threshold": 0.99, "cfg": 5.0},
    }
    prompt["noise"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": 1}}
    prompt["select"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
    prompt["sigmas"] = {
        "class_type": "BasicScheduler",
        "inputs": {"model": ["ckpt", 0], "scheduler": "normal", "steps": 20, "denoise": 1.0},
    }
    prompt["sampler"] = {
        "class_type": "SamplerCustomAdvanced",
        "inputs": {
            "noise": ["noise", 0],
            "guider": ["guider", 0],
            "sampler": ["select", 0],
            "sigmas": ["sigmas", 0],
            "latent_image": ["latent", 0],
        },
    }
    return _finish(prompt, ["sampler", 0], "adaptive_guidance_shapes")


def guidance_stack_shapes() -> dict[str, Any]:
    """APG, a guidance interval and PAG on one MODEL, through KSampler."""
    prompt = _base({})
    prompt["apg"] = {
        "class_type": "APG",
        "inputs": {"model": ["ckpt", 0], "eta": 0.0, "norm_threshold": 5.0, "momentum": 0.0},
    }
    prompt["interval"] = {
        "class_type": "CFGGuidanceInterval",
        "inputs": {"model": ["apg", 0], "start_percent": 0.19, "end_percent": 0.93},
    }
    prompt["pag"] = {"class_type": "PerturbedAttentionGuidance", "inputs": {"model": ["interval", 0], "scale": 2.0}}
    prompt["sampler"] = {
        "class_type": "KSampler",
        "inputs": {
            "model": ["pag", 0],
            "seed": 1,
            "steps": 20,
            "cfg": 10.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "positive": ["pos", 0],
            "negative": ["neg", 0],
            "latent_image": ["latent", 0],
            "denoise": 1.0,
        },
    }
    return _finish(prompt, ["sampler", 0], "guidance_stack_shapes")


EXAMPLES = {
    "apg_shapes": apg_shapes,
    "adaptive_guidance_shapes": adaptive_guidance_shapes,
    "guidance_stack_shapes": guidance_stack_shapes,
}


def _depths(prompt: dict[str, Any]) -> dict[str, int]:
    """Each node's column: one past its deepest parent, so every link runs left to right."""
    depth: dict[str, int] = {}

    def depth_of(key: str) -> int:
        if key not in depth:
            parents = [v[0] for v in prompt[key]["inputs"].values() if isinstance(v, list)]
            depth[key] = 1 + max((depth_of(p) for p in parents), default=-1)
        return depth[key]

    for key in prompt:
        depth_of(key)
    return depth


def _sockets_and_widgets(
    key: str,
    prompt: dict[str, Any],
    registry: Any,
    ids: dict[str, int],
    links: list[list[Any]],
    outgoing: dict[tuple[str, int], list[int]],
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Node ``key``'s input sockets and widget values in /object_info order.

    Appends the links into its sockets to ``links`` (numbered on from those already there) and
    their ids to ``outgoing`` by source output, from which the output sockets are filled once every
    node is built. Seeds get ComfyUI's extra "control after generate" widget value.
    """
    from engine.schema import WIDGET_TYPES

    node = prompt[key]
    inputs: list[dict[str, Any]] = []
    widgets: list[Any] = []
    for spec in registry[node["class_type"]].schema.inputs:
        if spec.kind == "hidden":
            continue
        value = node["inputs"].get(spec.name)
        if spec.type in WIDGET_TYPES and not spec.options.get("forceInput"):
            widgets.append(value)
            if spec.type == "INT" and (
                spec.options.get("control_after_generate") or spec.name in ("seed", "noise_seed")
            ):
                widgets.append("fixed")
            continue
        link = None
        if isinstance(value, list):
            link = len(links) + 1
            source_type = registry[prompt[value[0]]["class_type"]].schema.outputs[value[1]].type
            links.append([link, ids[value[0]], value[1], ids[key], len(inputs), source_type])
            outgoing.setdefault((value[0], value[1]), []).append(link)
        inputs.append({"name": spec.name, "type": spec.type, "link": link})
    return inputs, widgets


def ui_workflow(prompt: dict[str, Any], registry: Any) -> dict[str, Any]:
    """The API prompt as a ComfyUI UI-format workflow (what the canvas's Save writes for ComfyUI)."""
    ids = {key: number for number, key in enumerate(prompt, start=1)}
    depth = _depths(prompt)
    rows: dict[int, int] = {}
    nodes: list[dict[str, Any]] = []
    links: list[list[Any]] = []
    outgoing: dict[tuple[str, int], list[int]] = {}
    for key, node in prompt.items():
        inputs, widgets = _sockets_and_widgets(key, prompt, registry, ids, links, outgoing)
        column = depth[key]
        row = rows.get(column, 0)
        rows[column] = row + 1
        nodes.append(
            {
                "id": ids[key],
                "type": node["class_type"],
                "pos": [40 + 340 * column, 60 + 200 * row],
                "size": [300, 150],
                "flags": {},
                "order": len(nodes),
                "mode": 0,
                "inputs": inputs,
                "outputs": [],
                "properties": {"Node name for S&R": node["class_type"]},
                "widgets_values": widgets,
            }
        )
    for key, out in zip(prompt, nodes, strict=True):
        schema = registry[prompt[key]["class_type"]].schema
        out["outputs"] = [
            {"name": spec.name, "type": spec.type, "links": outgoing.get((key, slot)), "slot_index": slot}
            for slot, spec in enumerate(schema.outputs)
        ]
    return {
        "last_node_id": len(nodes),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}},
        "version": 0.4,
    }


def api_prompt(prompt: dict[str, Any]) -> dict[str, Any]:
    """The prompt with numbered node ids, as ComfyUI's "Save (API)" writes it."""
    ids = {key: str(number) for number, key in enumerate(prompt, start=1)}
    out = {}
    for key, node in prompt.items():
        inputs = {name: [ids[v[0]], v[1]] if isinstance(v, list) else v for name, v in node["inputs"].items()}
        out[ids[key]] = {"class_type": node["class_type"], "inputs": inputs, "_meta": {"title": node["class_type"]}}
    return out


def main() -> int:
    from nodes.registry import builtin_registry

    registry = builtin_registry()
    folder = Path(__file__).resolve().parent
    for name, build in EXAMPLES.items():
        prompt = build()
        (folder / f"{name}.api.json").write_text(json.dumps(api_prompt(prompt), indent=2) + "\n")
        (folder / f"{name}.json").write_text(json.dumps(ui_workflow(prompt, registry), indent=2) + "\n")
        print(f"wrote examples/{name}.api.json and examples/{name}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
