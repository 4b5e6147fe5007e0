"""RebatchImages / RebatchLatents: a list of batches in, batches of batch_size out (ComfyUI's nodes)."""

from __future__ import annotations

import pytest
import torch

from engine import Executor, validate_prompt
from nodes.batch_ops import RebatchImages, RebatchLatents
from nodes.registry import builtin_registry


def test_rebatch_images_joins_and_cuts_in_order() -> None:
    images = [torch.full((2, 4, 4, 3), 0.1), torch.full((1, 4, 4, 3), 0.2), torch.full((3, 4, 4, 3), 0.3)]
    batches = RebatchImages().run(images, [4])[0]
    assert [b.shape[0] for b in batches] == [4, 2]
    assert batches[0][:, 0, 0, 0].tolist() == pytest.approx([0.1, 0.1, 0.2, 0.3])
    assert batches[1][:, 0, 0, 0].tolist() == pytest.approx([0.3, 0.3])
    singles = RebatchImages().run(images, [1])[0]
    assert len(singles) == 6 and all(b.shape == (1, 4, 4, 3) for b in singles)


def test_rebatch_images_starts_a_new_batch_when_the_size_changes() -> None:
    images = [torch.zeros((1, 4, 4, 3)), torch.zeros((1, 8, 8, 3)), torch.zeros((1, 8, 8, 3))]
    assert [tuple(b.shape) for b in RebatchImages().run(images, [3])[0]] == [(1, 4, 4, 3), (2, 8, 8, 3)]


def test_rebatch_latents_carries_masks_and_batch_indices() -> None:
    latents = [
        {"samples": torch.zeros((2, 4, 8, 8)), "noise_mask": torch.zeros((1, 1, 64, 64))},
        {"samples": torch.ones((1, 4, 8, 8)), "batch_index": [7]},
    ]
    out = RebatchLatents().run(latents, [2])[0]
    assert [o["samples"].shape[0] for o in out] == [2, 1]
    assert out[0]["batch_index"] == [0, 1] and out[1]["batch_index"] == [7]
    assert out[0]["noise_mask"].shape == (2, 1, 64, 64) and float(out[0]["noise_mask"].sum()) == 0.0
    assert "noise_mask" not in out[1]


def test_rebatch_images_runs_in_a_prompt_over_a_list() -> None:
    registry = builtin_registry()
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 3, "color": 0}},
        "2": {"class_type": "RebatchImages", "inputs": {"images": ["1", 0], "batch_size": 1}},
        "3": {"class_type": "ImageFromBatch", "inputs": {"image": ["2", 0], "batch_index": 0, "length": 1}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }
    checked = validate_prompt(prompt, registry)
    assert checked.ok, checked.node_errors
    result = Executor(registry).execute_sync("p", checked.prompt, checked.outputs, order=checked.order)
    assert result.status_str == "success" and len(result.outputs["4"]["text"]) == 3  # one call per batch
