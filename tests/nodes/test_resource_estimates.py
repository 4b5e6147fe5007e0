"""Issue 13's guards in the built-in nodes: their memory estimates (which validation checks
against ``--max-node-memory``) and the size limits of their results. The engine's side of
the guards is tested on tiny nodes in tests/engine/test_resource_guards.py."""

from __future__ import annotations

import time
from typing import Any

import pytest

from engine import normalise_prompt, validate_prompt
from engine.resources import TensorInfo
from nodes import limits
from nodes.launch_options import LaunchOptions, configure
from nodes.math import MathInt
from nodes.text import StringConcatenate, StringReplace
from tests.support.nodes_for_tests import make_registry

GIB = 1 << 30


def huge_latent_prompt(batch: int, decode: bool) -> dict[str, Any]:
    prompt: dict[str, Any] = {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 8192, "height": 8192, "batch_size": batch}},
        "2": {"class_type": "LatentFlip", "inputs": {"samples": ["1", 0], "flip_method": "x-axis: vertically"}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": "x.safetensors"}},
    }
    if decode:
        prompt["3"] = {
            "class_type": "VAEDecodeTiled",
            "inputs": {"samples": ["2", 0], "vae": ["vae", 0], "tile_size": 512, "overlap": 64},
        }
        prompt["4"] = {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}
    else:
        prompt["4"] = {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}
    return prompt


def test_validation_refuses_nodes_over_the_budget_with_node_and_input() -> None:
    registry = make_registry()
    checked = validate_prompt(normalise_prompt(huge_latent_prompt(64, decode=False)), registry, memory_budget=GIB // 2)
    assert not checked.ok
    error = checked.node_errors["1"]["errors"][0]
    assert error["type"] == "memory_budget_exceeded" and error["extra_info"]["input_name"] == "batch_size"
    # the same prompt passes with a larger budget or none
    assert validate_prompt(normalise_prompt(huge_latent_prompt(64, decode=False)), registry, memory_budget=4 * GIB).ok
    assert validate_prompt(normalise_prompt(huge_latent_prompt(64, decode=False)), registry).ok


@pytest.fixture
def scratch_paths(tmp_path: Any) -> Any:
    """Process-wide folders under ``tmp_path`` for one test, put back afterwards."""
    import nodes.paths as paths_module

    with paths_module.using(paths_module.Paths.at(tmp_path)):
        yield tmp_path


def test_shapes_pass_through_single_tensor_nodes_to_the_decoder(scratch_paths: Any) -> None:
    tmp_path = scratch_paths
    (tmp_path / "models" / "vae").mkdir(parents=True, exist_ok=True)
    (tmp_path / "models" / "vae" / "x.safetensors").write_bytes(b"")
    registry = make_registry()
    # 1 GiB of latent, flipped (same size), decoded to a 51 GiB image
    checked = validate_prompt(normalise_prompt(huge_latent_prompt(64, decode=True)), registry, memory_budget=4 * GIB)
    assert not checked.ok
    assert list(checked.node_errors) == ["3"], checked.node_errors
    assert checked.node_errors["3"]["errors"][0]["extra_info"]["input_name"] == "samples"


def test_node_estimates_follow_their_inputs() -> None:
    registry = make_registry()
    latent = TensorInfo((2, 4, 64, 64))
    image = TensorInfo((2, 512, 512, 3))
    cases = {
        ("EmptyLatentImage", (("width", 512), ("height", 768), ("batch_size", 3))): (3, 4, 96, 64),
        ("LatentUpscale", (("samples", latent), ("width", 1024), ("height", 0))): (2, 4, 128, 128),
        ("LatentUpscaleBy", (("samples", latent), ("scale_by", 1.5))): (2, 4, 96, 96),
        ("LatentFromBatch", (("samples", latent), ("batch_index", 1), ("length", 5))): (1, 4, 64, 64),
        ("RepeatLatentBatch", (("samples", latent), ("amount", 3))): (6, 4, 64, 64),
        ("LatentCrop", (("samples", latent), ("width", 256), ("height", 1024))): (2, 4, 64, 32),
        ("VAEDecode", (("samples", latent),)): (2, 512, 512, 3),
        ("VAEEncode", (("pixels", image),)): (2, 4, 64, 64),
        ("EmptyImage", (("width", 10), ("height", 20), ("batch_size", 4))): (4, 20, 10, 3),
        ("ImageScale", (("image", image), ("width", 256), ("height", 0))): (2, 256, 256, 3),
        ("ImageScaleBy", (("image", image), ("scale_by", 2.0))): (2, 1024, 1024, 3),
        ("RepeatImageBatch", (("image", image), ("amount", 4))): (8, 512, 512, 3),
        ("ImageFromBatch", (("image", image), ("batch_index", 0), ("length", 1))): (1, 512, 512, 3),
        ("ImageCrop", (("image", image), ("width", 100), ("height", 1000))): (2, 512, 100, 3),
        ("SolidMask", (("width", 30), ("height", 40))): (1, 40, 30),
        ("LatentFlip", (("samples", latent), ("flip_method", "x-axis: vertically"))): (2, 4, 64, 64),
    }
    for (name, inputs), shape in cases.items():
        estimate = registry[name].estimate(dict(inputs))
        assert estimate is not None and estimate.outputs[0].shape == shape, (name, estimate)
        assert estimate.bytes >= estimate.outputs[0].nbytes
    decode = registry["VAEDecode"].estimate({"samples": latent})
    assert decode.bytes > 10 * decode.outputs[0].nbytes  # the decoder's work counts, not only the image
    assert registry["VAEDecode"].estimate({"samples": None}) is None  # unknown input: not checked


@pytest.fixture
def small_strings() -> Any:
    previous = configure(LaunchOptions(max_string_length=1000))
    yield
    configure(previous)


def test_int_and_string_nodes_bound_their_results(small_strings: Any) -> None:
    started = time.monotonic()
    with pytest.raises(limits.ResultTooLarge, match="digits"):
        MathInt().run(10, 2**63 - 1, "power")
    with pytest.raises(limits.ResultTooLarge, match="digits"):
        MathInt().run(10**4000, 10**4000, "power")
    with pytest.raises(limits.ResultTooLarge, match="digits"):
        MathInt().run(10**4000, 10**4000, "multiply")
    assert time.monotonic() - started < 5  # refused from logarithms, never computed
    assert MathInt().run(2, 64, "power") == 2**64
    assert MathInt().run(-1, 2**63 - 1, "power") == -1
    assert MathInt().run(0, 2**63 - 1, "power") == 0
    assert MathInt().run(10, -3, "power") == 0
    with pytest.raises(limits.ResultTooLarge, match="--max-string-length"):
        StringReplace().run("a" * 600, "", "bb")
    with pytest.raises(limits.ResultTooLarge, match="occurs 2 times"):
        StringReplace().run("a" * 900 + "xx", "x", "y" * 100)
    assert StringReplace().run("a" * 600, "a", "") == ""
    with pytest.raises(limits.ResultTooLarge):
        StringConcatenate().run("a" * 600, "b" * 600, "")
    assert StringConcatenate().run("a", "b", "-") == "a-b"


def test_validation_skips_the_estimate_of_classes_that_can_never_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A text node's pass-through estimate is always None: the validator must not call it for
    each of a thousand nodes, while a latent node's estimate still runs (and refuses)."""
    from nodes.api import NodeClassDefinition
    from nodes.diffusion.latent import EmptyLatentImage

    assert NodeClassDefinition(StringConcatenate).estimates is False
    assert NodeClassDefinition(EmptyLatentImage).estimates is True  # its own estimate
    calls: list[str] = []
    real = NodeClassDefinition.estimate

    def counting(self: NodeClassDefinition, inputs: Any) -> Any:
        calls.append(self.name)
        return real(self, inputs)

    monkeypatch.setattr(NodeClassDefinition, "estimate", counting)
    prompt = normalise_prompt(
        {
            "t1": {"class_type": "StringConcatenate", "inputs": {"string_a": "a", "string_b": "b", "delimiter": ""}},
            "t2": {"class_type": "PreviewAny", "inputs": {"source": ["t1", 0]}},
            **huge_latent_prompt(64, decode=False),
        }
    )
    result = validate_prompt(prompt, make_registry(), memory_budget=GIB // 2)
    assert "StringConcatenate" not in calls
    assert "EmptyLatentImage" in calls
    assert result.node_errors["1"]["errors"][0]["type"] == "memory_budget_exceeded"


def test_a_small_image_limit_does_not_lower_pillows_for_the_whole_process() -> None:
    """``--max-image-pixels`` is a runtime's; Pillow's bomb limit is the process's. A runtime
    with a 4096-pixel limit refuses a 1200x48 picture itself, but leaves Pillow able to open
    it for every other runtime (it once left the limit at 4096 for the rest of the process)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1200, 48)).save(buffer, format="PNG")
    previous = configure(LaunchOptions(max_image_pixels=64 * 64))
    try:
        image_module = limits.pillow()
        with pytest.raises(limits.ResultTooLarge, match="max-image-pixels"):
            limits.check_image_pixels(1200, 48, "a 1200x48 picture")
    finally:
        configure(previous)
    with image_module.open(io.BytesIO(buffer.getvalue())) as picture:
        assert picture.size == (1200, 48)
