"""The guidance nodes as /object_info publishes them: ComfyUI's names, inputs, defaults and
categories where ComfyUI (or its best-known community node) has the node, and a description that
names the paper."""

from __future__ import annotations

from typing import Any

import pytest

from nodes.registry import builtin_registry

EXPECTED = {
    # name: (category, [(input, type, default)], output, words of the paper's title)
    "APG": (
        "sampling/custom_sampling",
        [("model", "MODEL", None), ("eta", "FLOAT", 1.0), ("norm_threshold", "FLOAT", 5.0), ("momentum", "FLOAT", 0.0)],
        "MODEL",
        "Eliminating Oversaturation",
    ),
    "RescaleCFG": (
        "advanced/model",
        [("model", "MODEL", None), ("multiplier", "FLOAT", 0.7)],
        "MODEL",
        "Common Diffusion Noise Schedules",
    ),
    "CFGGuidanceInterval": (
        "sampling/custom_sampling",
        [("model", "MODEL", None), ("start_percent", "FLOAT", 0.0), ("end_percent", "FLOAT", 1.0)],
        "MODEL",
        "Applying Guidance in a Limited Interval",
    ),
    "PerturbedAttentionGuidance": (
        "model_patches/unet",
        [("model", "MODEL", None), ("scale", "FLOAT", 3.0)],
        "MODEL",
        "Perturbed-Attention Guidance",
    ),
    "AdaptiveGuidance": (
        "sampling/custom_sampling/guiders",
        [
            ("model", "MODEL", None),
            ("positive", "CONDITIONING", None),
            ("negative", "CONDITIONING", None),
            ("threshold", "FLOAT", 0.99),
            ("cfg", "FLOAT", 8.0),
        ],
        "GUIDER",
        "Adaptive Guidance: Training-free Acceleration",
    ),
}


@pytest.fixture(scope="module")
def registry() -> Any:
    return builtin_registry()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_node_is_registered_as_comfyui_names_it(registry: Any, name: str) -> None:
    category, inputs, output, paper = EXPECTED[name]
    schema = registry[name].schema
    assert schema.category == category
    assert [(spec.name, spec.type, spec.options.get("default")) for spec in schema.inputs] == inputs
    assert [spec.type for spec in schema.outputs] == [output]
    assert paper in schema.description


def test_apg_is_shown_under_its_long_name(registry: Any) -> None:
    assert registry["APG"].schema.display_name == "Adaptive Projected Guidance"


def test_a_threshold_above_1_is_accepted_so_adaptive_guidance_can_be_switched_off(registry: Any) -> None:
    threshold = next(spec for spec in registry["AdaptiveGuidance"].schema.inputs if spec.name == "threshold")
    assert threshold.options["min"] == 0.0 and threshold.options["max"] > 1.0
