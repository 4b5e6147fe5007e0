"""Text encodings cached across prompts: the same text with the same CLIP (weights, LoRA, clip
skip) does not run the text encoder again, whatever graph or node id it comes through; a changed
LoRA strength or clip skip does. Counted by forward hooks on the tiny SD1 text encoder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from nodes.diffusion.text_cache import TextEncodingCache, get_cache

TEXT = "a (small:1.2) red lighthouse at dusk"


def loader() -> dict[str, Any]:
    return {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd1.safetensors"}}


def encode(text: str, clip: list) -> dict[str, Any]:
    return {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": clip}}


def zero_out(cond: list) -> dict[str, Any]:
    """An output node's stand-in: the prompt's requested output, downstream of the encoding."""
    return {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": cond}}


@pytest.fixture
def forwards(tiny_paths) -> Iterator[list[int]]:
    """Counts forward calls of the tiny SD1 checkpoint's text encoder (the cache starts empty)."""
    from nodes.diffusion.loaders import CheckpointLoaderSimple

    clip = CheckpointLoaderSimple().run("tiny-sd1.safetensors")[1]
    module = clip.parts[0].handle.load()
    calls: list[int] = []
    hook = module.register_forward_hook(lambda *_: calls.append(1))
    get_cache().clear()
    yield calls
    hook.remove()


def run_prompt(prompt: dict[str, Any], executor: Any = None) -> None:
    """Runs ``prompt`` up to its ConditioningZeroOut nodes."""
    from engine import Executor, validate_prompt
    from nodes.registry import builtin_registry

    executor = executor or Executor(builtin_registry())
    outputs = [node_id for node_id, node in prompt.items() if node["class_type"] == "ConditioningZeroOut"]
    result = validate_prompt(prompt, executor.registry, outputs)
    assert result.ok, result.node_errors
    run = executor.execute_sync("p", result.prompt, outputs, order=result.order)
    assert run.status_str == "success", run


def test_the_same_text_in_another_graph_does_not_run_the_encoder_again(forwards):
    from engine import Executor
    from nodes.registry import builtin_registry

    first = {"1": loader(), "2": encode(TEXT, ["1", 1]), "3": zero_out(["2", 0])}
    run_prompt(first)
    assert len(forwards) == 1
    # another graph: other node ids, CLIPSetLastLayer at the family's default layer, a second
    # encode node with the same text, and a fresh executor (its output cache knows nothing)
    second = {
        "10": loader(),
        "11": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["10", 1], "stop_at_clip_layer": -1}},
        "12": encode(TEXT, ["11", 0]),
        "13": encode(TEXT, ["10", 1]),
        "14": zero_out(["12", 0]),
        "15": zero_out(["13", 0]),
    }
    run_prompt(second, Executor(builtin_registry()))
    assert len(forwards) == 1
    run_prompt({"1": loader(), "2": encode(TEXT + ", fog", ["1", 1]), "3": zero_out(["2", 0])})
    assert len(forwards) == 2  # new text: encoded


def test_cached_encodings_equal_fresh_ones_and_are_copies(forwards, tiny_paths):
    from nodes.diffusion.loaders import CheckpointLoaderSimple

    clip = CheckpointLoaderSimple().run("tiny-sd1.safetensors")[1]
    cond, pooled = clip.encode(TEXT)
    assert len(forwards) == 1
    again, again_pooled = clip.encode(TEXT)
    assert len(forwards) == 1 and torch.equal(again, cond) and torch.equal(again_pooled, pooled)
    again.mul_(0.0)  # a caller may modify what it got; the cache keeps its own copy
    third, _ = clip.encode(TEXT)
    assert torch.equal(third, cond) and len(forwards) == 1
    get_cache().clear()
    fresh, fresh_pooled = clip.encode(TEXT)
    assert len(forwards) == 2 and torch.equal(fresh, cond) and torch.equal(fresh_pooled, pooled)


def test_clip_skip_and_lora_changes_run_the_encoder(forwards, tiny_paths):
    from nodes.diffusion.conditioning import CLIPSetLastLayer
    from nodes.diffusion.loaders import CheckpointLoaderSimple
    from nodes.diffusion.lora import LoraLoader

    model, clip, _ = CheckpointLoaderSimple().run("tiny-sd1.safetensors")
    base, _ = clip.encode(TEXT)
    skipped, _ = CLIPSetLastLayer().run(clip, -2).encode(TEXT)
    assert len(forwards) == 2 and not torch.equal(skipped, base)
    lora_clip = LoraLoader().run(model, clip, "tiny-sd1-lora.safetensors", 1.0, 1.0)[1]
    with_lora, _ = lora_clip.encode(TEXT)
    assert len(forwards) == 3 and not torch.equal(with_lora, base)
    # the same LoRA at the same strength, loaded again (a new patch object, as a new graph makes)
    reloaded = LoraLoader().run(model, clip, "tiny-sd1-lora.safetensors", 1.0, 1.0)[1]
    assert reloaded.patches[0] is not lora_clip.patches[0]
    assert torch.equal(reloaded.encode(TEXT)[0], with_lora) and len(forwards) == 3
    half, _ = LoraLoader().run(model, clip, "tiny-sd1-lora.safetensors", 1.0, 0.5)[1].encode(TEXT)
    assert len(forwards) == 4 and not torch.equal(half, with_lora)
    assert torch.equal(clip.encode(TEXT)[0], base) and len(forwards) == 4  # LoRA off again: cached


def test_the_cache_is_bounded_in_bytes_and_entries():
    cache = TextEncodingCache(max_bytes=3 * 4 * 100, max_entries=10)
    for i in range(5):
        cache.put(("k", i), torch.full((1, 100), float(i)), None)
    assert len(cache) == 3 and cache.nbytes == 3 * 400
    assert cache.get(("k", 0)) is None and cache.get(("k", 1)) is None
    cond, pooled = cache.get(("k", 4))
    assert pooled is None and torch.equal(cond, torch.full((1, 100), 4.0))
    cache.put(("k", 5), torch.zeros(1, 100), torch.zeros(1, 10))  # 440 bytes: two older entries go
    assert cache.get(("k", 2)) is None and cache.get(("k", 3)) is None and cache.get(("k", 4)) is not None
    cache.put(("big",), torch.zeros(1, 1000), None)  # larger than the whole budget: not kept
    assert cache.get(("big",)) is None
    few = TextEncodingCache(max_entries=2)
    for i in range(3):
        few.put(i, torch.zeros(1), None)
    assert len(few) == 2 and few.get(0) is None


def test_freeing_models_empties_it(tiny_paths):
    from nodes.diffusion.loaders import CheckpointLoaderSimple
    from nodes.memory import free_models

    clip = CheckpointLoaderSimple().run("tiny-sd1.safetensors")[1]
    clip.encode(TEXT)
    assert len(get_cache()) >= 1
    free_models(False)
    assert len(get_cache()) >= 1
    free_models(True)
    assert len(get_cache()) == 0
