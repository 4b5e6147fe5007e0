"""Inversion and editing on the built-in trained shapes model, judged by pixel statistics.

The pictures are the dataset's own renderings (real pictures with known captions); an edit turns
"a ... red circle ..." into "a ... blue circle ..." and the judge must see a blue shape where the red
one was, of the same size, on the same background. Each test prints the rates it measured; the
floors are the issue's (80 % of 20 cases, PSNR 25 dB). The 20 cases run as one batch, so a test
costs about as many UNet calls as one picture would.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from nodes.api import Input, Node, Output, Result
from nodes.diffusion import sampler_nodes as sn
from nodes.diffusion.noise import NoNoise
from nodes.inversion.ddim import DDIMInversion
from nodes.inversion.direct_inversion import DirectInversionSampler
from nodes.inversion.edict import EDICTInversion
from nodes.inversion.edit_image import EDIT_METHODS
from nodes.inversion.sampler_nodes import InversionSampler, InversionSigmas
from weft_tools.shapes import dataset as ds
from weft_tools.shapes import evaluate as ev
from weft_tools.shapes import judge as J

CASES = 20
FLOOR = 0.8
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def outputs(result: Any) -> tuple:
    return tuple(result.outputs) if hasattr(result, "outputs") else tuple(result)


@pytest.fixture(scope="module")
def shapes() -> tuple[Any, Any, Any]:
    from nodes.diffusion.loaders import load_checkpoint
    from nodes.paths import BUILTIN_MODELS

    return load_checkpoint(BUILTIN_MODELS / "checkpoints" / ev.CHECKPOINT)


def batched(clip: Any, texts: list[str]) -> list:
    """One CONDITIONING whose tensor holds one prompt per batch item (the guider takes [B, T, D])."""
    encoded = [clip.encode_conditioning(text) for text in texts]
    return [[torch.cat([c[0][0] for c in encoded]), dict(encoded[0][0][1])]]


@pytest.fixture(scope="module")
def cases(shapes: tuple) -> dict[str, Any]:
    """20 red circles of random size and position on backgrounds other than red and blue."""
    _, clip, vae = shapes
    rng = np.random.default_rng(7)
    backgrounds = [c for c in ds.COLOURS if c not in ("red", "blue")]
    specs = [
        ds.ShapeSpec(
            "circle",
            "red",
            str(rng.choice(list(ds.SIZES))),
            str(rng.choice(list(ds.POSITIONS))),
            str(rng.choice(backgrounds)),
        )
        for _ in range(CASES)
    ]
    pictures = torch.from_numpy(np.stack([ds.render(spec).image for spec in specs])).float() / 255.0
    with torch.no_grad():
        latent = {"samples": vae.encode(pictures)}
    return {
        "specs": specs,
        "latent": latent,
        "source": batched(clip, [spec.caption() for spec in specs]),
        "target": batched(clip, [replace(spec, colour="blue").caption() for spec in specs]),
        "negative": batched(clip, [""] * CASES),
    }


def judge_edits(vae: Any, cases: dict[str, Any], samples: torch.Tensor, label: str) -> float:
    """The share of cases where the shape turned blue and kept position, size and background."""
    with torch.no_grad():
        images = vae.decode(samples)
    kept = dict.fromkeys(("colour", "position", "size", "background"), 0)
    good = 0
    for spec, image in zip(cases["specs"], images, strict=True):
        verdict = J.judge((image.numpy() * 255).round().astype(np.uint8))
        checks = {
            "colour": verdict.colour == "blue",
            "position": verdict.position == spec.position,
            "size": verdict.size == spec.size,
            "background": verdict.background == spec.background,
        }
        for key, ok in checks.items():
            kept[key] += ok
        good += all(checks.values())
    rates = ", ".join(f"{key} {count}/{CASES}" for key, count in kept.items())
    print(f"\n{label}: red -> blue edits right in {good}/{CASES} ({good / CASES:.0%}); {rates}")
    return good / CASES


def regenerate(
    model: Any,
    inversion: Any,
    noisy: dict,
    positive: Any,
    negative: Any,
    cfg: float,
    sampler: Any = None,
    skip: int = 0,
) -> torch.Tensor:
    guider = outputs(sn.CFGGuider().run(model, positive, negative, cfg))[0]
    sampler = sampler or outputs(InversionSampler().run(inversion))[0]
    sigmas = outputs(InversionSigmas().run(inversion, skip))[0]
    return outputs(sn.SamplerCustomAdvanced().run(NoNoise(), guider, sampler, sigmas, noisy))[0]["samples"]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    a8 = (a.clamp(0, 1) * 255).round()
    b8 = (b.clamp(0, 1) * 255).round()
    mse = float(((a8 - b8) ** 2).mean())
    return 10 * float(np.log10(255.0**2 / max(mse, 1e-10)))


def test_ddim_inversion_and_regeneration_of_a_generated_picture_reaches_25_db(shapes: tuple) -> None:
    model, clip, vae = shapes
    captions = [
        "a large red circle in the centre, blue background",
        "a small yellow square on the left, black background",
        "a large green triangle at the top, white background",
        "a small pink diamond on the right, purple background",
    ]
    positive, negative = batched(clip, captions), batched(clip, [""] * len(captions))
    empty = {"samples": torch.zeros((len(captions), 4, 8, 8))}
    generated = outputs(sn.KSampler().run(model, 3, 20, 5.0, "euler", "normal", positive, negative, empty, 1.0))[0]
    with torch.no_grad():
        pictures = vae.decode(generated["samples"])
        latent = {"samples": vae.encode(pictures)}
    noisy, inversion = outputs(
        DDIMInversion().run(model, positive, latent, 20, "normal", 1.0, 2, "model", cfg=1.0, negative=negative)
    )
    back = regenerate(model, inversion, noisy, positive, negative, 1.0)
    with torch.no_grad():
        regenerated = vae.decode(back)
        autoencoded = vae.decode(latent["samples"])
    scores = [psnr(regenerated[i], pictures[i]) for i in range(len(captions))]
    ceiling = [psnr(autoencoded[i], pictures[i]) for i in range(len(captions))]
    print(
        f"\nDDIM inversion + regeneration (20 steps, refine 2, cfg 1): PSNR {', '.join(f'{s:.1f}' for s in scores)} "
        f"dB; the autoencoder alone: {', '.join(f'{s:.1f}' for s in ceiling)} dB"
    )
    assert min(scores) >= 25.0


def test_edict_edit_changes_the_colour_and_keeps_the_layout(shapes: tuple, cases: dict[str, Any]) -> None:
    model, _, vae = shapes
    noisy, inversion = outputs(
        EDICTInversion().run(
            model,
            cases["source"],
            cases["latent"],
            20,
            "normal",
            1.0,
            0.93,
            "model",
            cfg=1.0,
            negative=cases["negative"],
        )
    )
    edited = regenerate(model, inversion, noisy, cases["target"], cases["negative"], 1.0)
    assert judge_edits(vae, cases, edited, "EDICT (20 steps, p 0.93, cfg 1 both ways)") >= FLOOR


def test_direct_inversion_edit_changes_the_colour_and_keeps_the_layout(shapes: tuple, cases: dict[str, Any]) -> None:
    model, _, vae = shapes
    noisy, inversion = outputs(
        DDIMInversion().run(
            model, cases["source"], cases["latent"], 20, "normal", 1.0, 0, "model", cfg=1.0, negative=cases["negative"]
        )
    )
    sampler = outputs(DirectInversionSampler().run(inversion, -1.0, True))[0]  # source CFG = target CFG
    edited = regenerate(model, inversion, noisy, cases["target"], cases["negative"], 3.0, sampler=sampler)
    assert judge_edits(vae, cases, edited, "Direct Inversion (20 steps, cfg 3 in both branches)") >= FLOOR


# -- EditImage: each method through the engine's node expansion ---------------------------------------


class _Parts:
    values: tuple = ()


class _ShapesParts(Node):
    """The shapes checkpoint's parts and the example picture, handed to EditImage."""

    name = "TestShapesParts"
    category = "testing"
    outputs = (Output("MODEL"), Output("CLIP"), Output("VAE"), Output("IMAGE"))

    def run(self) -> tuple:
        return _Parts.values


class _Keep(Node):
    name = "TestKeepImage"
    category = "testing"
    output_node = True
    inputs = (Input("images", "IMAGE"),)

    def run(self, images: Any) -> Result:
        _Parts.kept = images
        return Result(ui={"ok": [True]})


@pytest.mark.parametrize("method", EDIT_METHODS)
def test_edit_image_turns_the_example_circle_blue_with_each_method(shapes: tuple, method: str) -> None:
    from engine import Executor, validate_prompt
    from nodes.registry import builtin_registry

    model, clip, vae = shapes
    picture = np.array(Image.open(EXAMPLES / "shapes_red_circle.png").convert("RGB"))
    _Parts.values = (model, clip, vae, torch.from_numpy(picture).float()[None] / 255.0)
    registry = builtin_registry()
    registry.register(_ShapesParts, pack="tests")
    registry.register(_Keep, pack="tests")
    prompt = {
        "parts": {"class_type": "TestShapesParts", "inputs": {}},
        "edit": {
            "class_type": "EditImage",
            "inputs": {
                "image": ["parts", 3],
                "vae": ["parts", 2],
                "model": ["parts", 0],
                "clip": ["parts", 1],
                "source_prompt": "a large red circle on the left, green background",
                "target_prompt": "a large blue circle on the left, green background",
                "method": method,
                "steps": 20,
                "cfg": 5.0,
                "seed": 0,
                "strength": 1.0,
            },
        },
        "keep": {"class_type": "TestKeepImage", "inputs": {"images": ["edit", 0]}},
    }
    checked = validate_prompt(prompt, registry, ["keep"])
    assert checked.ok, checked.node_errors
    run = Executor(registry).execute_sync("p", checked.prompt, ["keep"], order=checked.order)
    assert run.status_str == "success", run.error
    assert any(node.startswith("edit.") for node in run.executed)  # the expanded parts ran
    verdict = J.judge((_Parts.kept[0].numpy() * 255).round().astype(np.uint8))
    print(f"\nEditImage {method}: {verdict.words()}")
    assert (verdict.colour, verdict.position, verdict.size, verdict.background) == ("blue", "left", "large", "green")


# -- the example workflow, as a user runs it -----------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.support.server import serve_restoring_paths

    yield from serve_restoring_paths(tmp_path_factory.mktemp("inversion-example"))


def test_the_edit_example_runs_on_an_uploaded_picture(fresh_server: Any) -> None:
    """examples/edit_image_shapes.api.json: LoadImage of an uploaded picture -> EditImage -> SaveImage."""
    prompt = json.loads((EXAMPLES / "edit_image_shapes.api.json").read_text())
    loader = next(node for node in prompt.values() if node["class_type"] == "LoadImage")
    picture = (EXAMPLES / loader["inputs"]["image"]).read_bytes()
    boundary = "weftboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{loader["inputs"]["image"]}"'
            "\r\nContent-Type: image/png\r\n\r\n"
        ).encode()
        + picture
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, answer = fresh_server.request(
        "POST", "/upload/image", raw=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert status == 200, answer
    entry = fresh_server.wait_history(fresh_server.queue_prompt(prompt), timeout=300)
    assert entry["status"]["status_str"] == "success", entry["status"]
    save = next(key for key, node in prompt.items() if node["class_type"] == "SaveImage")
    image = entry["outputs"][save]["images"][0]
    status, data = fresh_server.request(
        "GET", f"/view?filename={image['filename']}&subfolder={image['subfolder']}&type={image['type']}"
    )
    assert status == 200
    verdict = J.judge(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    source = J.judge(np.asarray(Image.open(io.BytesIO(picture)).convert("RGB")))
    edit = next(node for node in prompt.values() if node["class_type"] == "EditImage")["inputs"]
    print(
        f"\nexample edit '{edit['source_prompt']}' -> '{edit['target_prompt']}' ({edit['method']}): "
        f"before {source.words()}, after {verdict.words()}"
    )
    assert source.colour == "red" and verdict.colour == "blue"
    assert (verdict.position, verdict.size, verdict.background) == (source.position, source.size, source.background)
