"""Issue 13's guards inside the engine: memory estimates at validation, bounded expansion,
malformed prompts refused with their node and input named, and the nodes' size checks."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest

from engine import Executor, normalise_prompt, validate_prompt
from engine.prompt import MAX_INPUT_DEPTH
from engine.resources import Estimate, TensorInfo, estimate_prompt
from nodes import limits
from nodes.api import Input, Int, Node, Output, Result
from nodes.launch_options import LaunchOptions, configure
from nodes.math import MathInt
from nodes.text import StringConcatenate, StringReplace
from tests.support.nodes_for_tests import make_registry

GIB = 1 << 30


class _Def:
    """A bare engine node definition with an estimate, as any contract may provide one."""

    def __init__(self, estimate: Any) -> None:
        self.estimate = estimate


def test_estimates_flow_along_links_and_name_the_input() -> None:
    def make(inputs: Mapping[str, Any]) -> Estimate:
        info = TensorInfo((inputs["n"], 1024, 1024))
        return Estimate(info.nbytes, (info,), "n", "a block")

    def double(inputs: Mapping[str, Any]) -> Estimate | None:
        info = inputs["x"]
        if not isinstance(info, TensorInfo):
            return None
        out = TensorInfo((info.shape[0] * 2, *info.shape[1:]))
        return Estimate(out.nbytes, (out,), "x")

    def broken(inputs: Mapping[str, Any]) -> Estimate:
        raise RuntimeError("a bug in an estimator")

    registry = {"Make": _Def(make), "Double": _Def(double), "Broken": _Def(broken), "Plain": object()}
    prompt = {
        "a": {"class_type": "Make", "inputs": {"n": 100}},          # 400 MiB
        "b": {"class_type": "Double", "inputs": {"x": ["a", 0]}},    # 800 MiB
        "c": {"class_type": "Double", "inputs": {"x": ["b", 0]}},    # 1.6 GiB
        "d": {"class_type": "Broken", "inputs": {"x": ["c", 0]}},
        "e": {"class_type": "Plain", "inputs": {"x": ["c", 0]}},
        "f": {"class_type": "Double", "inputs": {"x": ["e", 0]}},    # unknown: not checked
    }
    order = list(prompt)
    errors = estimate_prompt(prompt, order, registry, GIB)
    assert list(errors) == ["c"]
    assert errors["c"]["type"] == "memory_budget_exceeded"
    assert errors["c"]["extra_info"] == {"input_name": "x", "estimated_bytes": 1600 * (1 << 20), "budget_bytes": GIB}
    assert "Double (node c)" in errors["c"]["details"] and "--max-node-memory" in errors["c"]["details"]
    assert estimate_prompt(prompt, order, registry, None) == {}
    assert estimate_prompt(prompt, order, registry, 0) == {}


def huge_latent_prompt(batch: int, decode: bool) -> dict[str, Any]:
    prompt: dict[str, Any] = {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 8192, "height": 8192, "batch_size": batch}},
        "2": {"class_type": "LatentFlip", "inputs": {"samples": ["1", 0], "flip_method": "x-axis: vertically"}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": "x.safetensors"}},
    }
    if decode:
        prompt["3"] = {"class_type": "VAEDecodeTiled", "inputs": {"samples": ["2", 0], "vae": ["vae", 0],
                                                                  "tile_size": 512, "overlap": 64}}
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

    previous = paths_module._paths
    paths_module.configure(tmp_path)
    yield tmp_path
    paths_module._paths = previous


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


def test_malformed_prompts_name_the_node_and_input() -> None:
    with pytest.raises(ValueError, match="node '1': 'class_type' must be a string"):
        normalise_prompt({"1": {"class_type": ["PreviewAny"], "inputs": {}}})
    deep: Any = 1
    for _ in range(MAX_INPUT_DEPTH + 5):
        deep = {"k": deep}
    with pytest.raises(ValueError, match="node '7': input 'value' is nested more than"):
        normalise_prompt({"7": {"class_type": "PrimitiveString", "inputs": {"value": deep}}})
    shallow: Any = 1
    for _ in range(MAX_INPUT_DEPTH - 1):
        shallow = [shallow, 0.5]
    assert normalise_prompt({"7": {"class_type": "PreviewAny", "inputs": {"source": shallow}}})


class TestExpandForever(Node):
    """Expands into another copy of itself: an expansion with no end."""

    category = "testing"
    inputs = (Int("width", 1, min=1, max=1000),)
    outputs = (Output("INT"),)

    def run(self, width: int) -> Result:
        graph = {f"n{i}": {"class_type": "TestExpandForever", "inputs": {"width": width}} for i in range(width)}
        return Result(["n0", 0], expand=graph)


class TestShow(Node):
    category = "testing"
    inputs = (Input("value", "*"),)
    outputs = ()
    output_node = True

    def run(self, value: Any) -> Result:
        return Result(ui={"value": [value]})


def expanding_registry() -> Any:
    registry = make_registry()
    registry.register_all([TestExpandForever, TestShow], pack="tests")
    return registry


@pytest.mark.parametrize("width, limit_name", [(1, "nested"), (40, "nodes")])
def test_node_expansion_is_bounded_in_depth_and_size(width: int, limit_name: str) -> None:
    registry = expanding_registry()
    executor = Executor(registry)
    executor.max_expansion_depth = 20
    executor.max_run_nodes = 500
    prompt = {"1": {"class_type": "TestExpandForever", "inputs": {"width": width}},
              "2": {"class_type": "TestShow", "inputs": {"value": ["1", 0]}}}
    checked = validate_prompt(normalise_prompt(prompt), registry)
    assert checked.ok, checked.node_errors
    started = time.monotonic()
    result = executor.execute_sync("p", checked.prompt, checked.outputs, order=checked.order)
    assert time.monotonic() - started < 30
    assert result.status_str == "error"
    assert "ExpansionLimitError" in result.error["exception_type"]
    assert limit_name in result.error["exception_message"]


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
