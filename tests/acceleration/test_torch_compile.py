"""TorchCompileModel and ``--compile-unet``: the tiny SD1 UNet sampled through torch.compile.

Compiled output equals the uncompiled UNet's; the compiled forward is kept across prompts (a
second TorchCompileModel run, as a new prompt makes, compiles nothing: counted by the backend
calls and by torch's own graph counter); the sampler reports the compile time; a compilation
that fails (or cannot start: inductor without a C++ compiler) falls back to the uncompiled UNet
with a warning, while an error of the model itself still fails.

Tracing the tiny UNet takes 10-30 s on a loaded two-core machine, so the sampling runs with the
"eager" backend (torch.compile's tracing and guards, no code generation) happen once, in a
module fixture. The inductor run (code generation and a C++ build: minutes on such a machine)
runs when ``WEFT_SLOW_TESTS=1``.
"""

from __future__ import annotations

import logging
import os
from itertools import count
from typing import Any

import pytest
import torch

from nodes.acceleration.torch_compile import CompileWrapper, TorchCompileInputError, TorchCompileModel
from nodes.diffusion import unet_compile
from tests.support.tiny_unet import build_unet, conditioning, empty, ksample

_models = count()


def fresh_model() -> Any:
    """A MODEL on a UNet module of its own, so compile counts start at zero."""
    from nodes.diffusion.model_manager import get_manager
    from nodes.diffusion.types import DiffusionModel

    key = ("tests.acceleration.compile", next(_models))
    handle = get_manager().handle(key, "unet", build_unet, name="tiny-compile")
    return DiffusionModel(handle, family="sd1", name="tiny-compile")


def sample_with_ui(model: Any, seed: int, size: int = 64) -> tuple[torch.Tensor, dict]:
    """KSampler's samples and its UI (the run participants' reports)."""
    from nodes.diffusion.sampler_nodes import KSampler

    out = KSampler().run(model, seed, 2, 5.0, "euler", "karras", conditioning(1), conditioning(2), empty(1, size), 1.0)
    return out.outputs[0]["samples"], dict(out.ui or {})


def graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@pytest.fixture(scope="module")
def two_prompts() -> dict[str, Any]:
    """The same model sampled uncompiled, then compiled in two 'prompts' (two node runs)."""
    model = fresh_model()
    eager = [ksample(model, conditioning(1), conditioning(2), empty(), seed=s)["samples"] for s in (1, 2)]
    runs, graph_counts = [], [graphs()]
    for seed in (1, 2):
        patched = TorchCompileModel().run(model, "eager")[0]
        runs.append(sample_with_ui(patched, seed))
        graph_counts.append(graphs())
    compiled = unet_compile.compiled_unet(model.unet.load(), "eager")
    return {"eager": eager, "runs": runs, "graphs": graph_counts, "compiled": compiled}


def test_compiled_sampling_equals_the_uncompiled_unet(two_prompts):
    for eager, (samples, _) in zip(two_prompts["eager"], two_prompts["runs"], strict=True):
        assert torch.allclose(samples, eager, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(two_prompts["eager"][0], two_prompts["eager"][1])  # the seeds differ


def test_a_second_prompt_does_not_recompile(two_prompts):
    compiled = two_prompts["compiled"]
    assert compiled.compiles == 1 and compiled.failure is None
    first, second = (
        two_prompts["graphs"][1] - two_prompts["graphs"][0],
        two_prompts["graphs"][2] - two_prompts["graphs"][1],
    )
    assert (first, second) == (1, 0)


def test_the_sampler_reports_the_compile_time(two_prompts):
    (_, first_ui), (_, second_ui) = two_prompts["runs"]
    (first,) = first_ui["weft_report"]
    assert first["name"] == "TorchCompileModel" and first["backend"] == "eager" and first["compiled"] == 1
    assert first["compile_s"] > 0 and "fallback" not in first
    assert first_ui["text"] == [f"TorchCompileModel: backend=eager, compiled=1, compile_s={first['compile_s']}"]
    (second,) = second_ui["weft_report"]
    assert second["compiled"] == 0 and second["compile_s"] == 0
    assert two_prompts["compiled"].compile_seconds == pytest.approx(first["compile_s"], abs=0.01)


def test_a_failing_compilation_falls_back_to_the_uncompiled_unet(two_prompts, monkeypatch, caplog):
    model = fresh_model()
    compiled = unet_compile.compiled_unet(model.unet.load(), "aot_eager")

    def explode(module, args, kwargs):  # as torch reports a backend's error (BackendCompilerFailed)
        wrapped = ValueError("backend='aot_eager' raised:\nRuntimeError: backend exploded")
        wrapped.inner_exception = RuntimeError("backend exploded\nwith details")
        raise wrapped

    monkeypatch.setattr(compiled, "_forward", explode)
    patched = TorchCompileModel().run(model, "aot_eager")[0]
    with caplog.at_level(logging.WARNING, logger="weft.compile"):
        samples, ui = sample_with_ui(patched, 1)
    assert torch.allclose(samples, two_prompts["eager"][0], atol=1e-5)
    assert compiled.failure == "RuntimeError: backend exploded"
    (report,) = ui["weft_report"]
    assert report["fallback"] == "eager (RuntimeError: backend exploded)" and report["compiled"] == 0
    assert "TorchCompileModel: torch.compile with backend 'aot_eager' failed (RuntimeError: backend exploded)" in (
        caplog.text
    )


def test_inductor_without_a_cpp_compiler_runs_uncompiled_with_a_warning(two_prompts, monkeypatch, caplog):
    monkeypatch.setattr(unet_compile, "cpp_compiler", lambda: None)
    model = fresh_model()
    patched = TorchCompileModel().run(model, "inductor")[0]
    with caplog.at_level(logging.WARNING, logger="weft.compile"):
        samples, ui = sample_with_ui(patched, 1)
    assert torch.allclose(samples, two_prompts["eager"][0], atol=1e-5)
    (report,) = ui["weft_report"]
    assert report["compiled"] == 0 and "C++ compiler" in report["fallback"]
    assert "TorchCompileModel" in caplog.text and "g++ or clang++" in caplog.text


def test_an_error_of_the_model_itself_is_not_hidden() -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("the model's own error")

    compiled = unet_compile.CompiledUNet("eager", "test")
    with pytest.raises(ValueError, match="the model's own error"):
        compiled(Broken(), torch.zeros(1))
    assert compiled.failure is None


def test_the_compiled_forward_does_not_keep_a_dropped_unet_alive() -> None:
    import gc
    import weakref

    module = torch.nn.Linear(2, 2)
    compiled = unet_compile.compiled_unet(module, "eager")
    assert unet_compile.compiled_unet(module, "eager") is compiled
    assert unet_compile.compiled_unet(module, "aot_eager") is not compiled
    ref = weakref.ref(module)
    del module
    gc.collect()
    assert ref() is None


def test_the_node_schema_and_inputs() -> None:
    from nodes.registry import builtin_registry
    from server.object_info import describe

    info = describe(builtin_registry()["TorchCompileModel"].schema)  # ComfyUI's /object_info shape
    assert info["input"]["required"]["model"] == ["MODEL"]
    assert info["input"]["required"]["backend"][0] == ["inductor", "cudagraphs"]
    assert info["output"] == ["MODEL"] and info["category"] == "_for_testing" and info["experimental"] is True
    model = fresh_model()
    once = TorchCompileModel().run(model, "eager")[0]
    twice = TorchCompileModel().run(once, "inductor")[0]
    assert model.wrappers == () and [w.backend for w in twice.wrappers if isinstance(w, CompileWrapper)] == ["inductor"]
    with pytest.raises(TorchCompileInputError, match="backend: 'nonsense' is not a torch.compile backend"):
        TorchCompileModel().run(model, "nonsense")


def test_the_compile_unet_setting_compiles_every_model() -> None:
    from nodes.diffusion.model_manager import get_manager
    from server.config import parse_args
    from server.runtime import model_settings

    assert model_settings(parse_args(["--compile-unet"]))["compile_unet"] == "inductor"
    assert model_settings(parse_args(["--compile-unet", "cudagraphs"]))["compile_unet"] == "cudagraphs"
    assert model_settings(parse_args([]))["compile_unet"] == ""
    model = fresh_model()
    unet = model.unet.load()
    assert model._unet_runner(unet) is unet
    settings = get_manager().settings
    previous = settings.compile_unet
    settings.compile_unet = "eager"
    try:
        runner = model._unet_runner(unet)
        assert runner is not unet and unet_compile.compiled_unet(unet, "eager").owner == "--compile-unet"
        patched = TorchCompileModel().run(model, "aot_eager")[0]  # the node's choice wins
        patched._unet_runner(unet)
        assert unet_compile.compiled_unet(unet, "aot_eager").owner == "TorchCompileModel"
    finally:
        settings.compile_unet = previous


@pytest.mark.skipif(os.environ.get("WEFT_SLOW_TESTS") != "1", reason="inductor's C++ build takes minutes on 2 cores")
def test_inductor_compiles_once_and_matches_the_uncompiled_unet(two_prompts):
    if unet_compile.cpp_compiler() is None:
        pytest.skip("no C++ compiler for inductor's CPU code")
    model = fresh_model()
    patched = TorchCompileModel().run(model, "inductor")[0]
    first, first_ui = sample_with_ui(patched, 1)
    again, again_ui = sample_with_ui(TorchCompileModel().run(model, "inductor")[0], 2)
    for compiled, eager in ((first, two_prompts["eager"][0]), (again, two_prompts["eager"][1])):
        # inductor reorders float arithmetic: equal to about 1e-6 of the latents' scale (~100)
        assert (compiled - eager).abs().max() <= 1e-4 * eager.abs().max()
    assert first_ui["weft_report"][0]["compiled"] == 1 and again_ui["weft_report"][0]["compiled"] == 0
