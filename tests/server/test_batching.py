"""Which queued prompts share a batch (``--batch-prompts``): the same graph but for seeds and
texts, right behind the first one, up to the bound; and the flag itself."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from server.batching import batch_key, take_batch
from server.config import parse_args
from server.flags import build_parser
from server.queue import MemoryPromptQueue, QueueItem


def txt2img(seed: int = 1, text: str = "a fox", steps: int = 20, **sampler: Any) -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": seed,
                "steps": steps,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "denoise": 1.0,
                **sampler,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "x"}},
    }


def item(prompt: dict[str, Any], number: int) -> QueueItem:
    return QueueItem(number, f"p{number}", prompt, outputs=["7"])


def test_seeds_and_texts_may_differ_and_nothing_else():
    key = batch_key(item(txt2img(), 1))
    assert key is not None
    assert batch_key(item(txt2img(seed=7, text="a house"), 2)) == key
    assert batch_key(item(txt2img(steps=30), 3)) != key
    assert batch_key(item(txt2img(cfg=5.0), 4)) != key
    relinked = txt2img()
    relinked["5"]["inputs"]["positive"] = ["3", 0]
    assert batch_key(item(relinked, 5)) != key
    other_output = item(txt2img(), 6)
    other_output.outputs = ["6"]
    assert batch_key(other_output) != key
    renamed = txt2img()
    renamed["6"]["class_type"] = "VAEDecodeTiled"
    assert batch_key(item(renamed, 7)) != key


def test_a_text_from_a_link_must_be_the_same_link():
    linked = txt2img()
    linked["8"] = {"class_type": "PrimitiveString", "inputs": {"value": "a fox"}}
    linked["2"]["inputs"]["text"] = ["8", 0]
    other = copy.deepcopy(linked)
    other["2"]["inputs"]["text"] = ["3", 0]
    assert batch_key(item(linked, 1)) != batch_key(item(other, 2))


def test_a_prompt_without_a_sampler_is_never_batched():
    assert batch_key(item({"1": {"class_type": "PrimitiveString", "inputs": {"value": "x"}}}, 1)) is None


def test_the_batch_is_the_run_of_matching_prompts_behind_the_first_up_to_the_bound():
    queue = MemoryPromptQueue()
    prompts = [txt2img(seed=1), txt2img(seed=2), txt2img(seed=3, text="b"), txt2img(steps=4), txt2img(seed=5)]
    for number, prompt in enumerate(prompts, 1):
        queue.put(item(prompt, number))
    first = queue.get(timeout=0)
    assert first is not None
    group = take_batch(queue, first, 8)
    assert [i.prompt_id for i in group] == ["p1", "p2", "p3"]  # p4 is another graph: the batch ends there
    assert {i.prompt_id for i in queue.running()} == {"p1", "p2", "p3"}
    assert [i.prompt_id for i in queue.pending()] == ["p4", "p5"]
    nxt = queue.get(timeout=0)
    assert [i.prompt_id for i in take_batch(queue, nxt, 8)] == ["p4"]


def test_the_bound_and_batching_off():
    queue = MemoryPromptQueue()
    for number in range(1, 6):
        queue.put(item(txt2img(seed=number), number))
    first = queue.get(timeout=0)
    assert [i.prompt_id for i in take_batch(queue, first, 3)] == ["p1", "p2", "p3"]
    nxt = queue.get(timeout=0)
    assert [i.prompt_id for i in take_batch(queue, nxt, 0)] == ["p4"]
    assert [i.prompt_id for i in queue.pending()] == ["p5"]


@pytest.mark.parametrize(("argv", "expected"), [([], 0), (["--batch-prompts"], 8), (["--batch-prompts", "4"], 4)])
def test_the_flag(argv: list[str], expected: int):
    assert parse_args(argv).batch_prompts == expected


def test_the_flag_refuses_a_size_out_of_range(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--batch-prompts", "65"])
    assert "--batch-prompts" in capsys.readouterr().err
