"""ComfyUI's core nodes built on dynamic inputs (issue 11): ComfySwitchNode, CustomCombo,
ResizeImageMaskNode, BatchImagesNode, BatchMasksNode, BatchLatentsNode.

Each runs in API-format prompts through the engine with the built-in registry, on tiny real
tensors, with the flattened input names ComfyUI's frontend writes (``images.image0``,
``resize_type.multiplier``). The expected tensors are computed here from ComfyUI's published
algorithm (``comfy.utils.common_upscale``: an optional centre crop to the target's aspect
ratio, then ``torch.nn.functional.interpolate``). One test goes through a live server: its
/object_info entries and a prompt.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import torch
import torch.nn.functional as F

from engine import Executor, normalise_prompt, validate_prompt
from nodes.api import Input, Node, Output, Result, String
from tests.support.nodes_for_tests import make_registry

#: tensors the Given* nodes hand out, by key; what Keep received, by key
TENSORS: dict[str, Any] = {}
KEPT: dict[str, Any] = {}


class _Given(Node):
    category = "testing"
    inputs = (String("key"),)

    def run(self, key: str) -> tuple:
        return (TENSORS[key],)


class T11Image(_Given):
    outputs = (Output("IMAGE"),)


class T11Mask(_Given):
    outputs = (Output("MASK"),)


class T11Latent(_Given):
    outputs = (Output("LATENT"),)


class T11Boom(Node):
    """An IMAGE source that fails if it ever runs: a branch a lazy switch must not evaluate."""

    category = "testing"
    outputs = (Output("IMAGE"),)

    def run(self) -> tuple:
        raise RuntimeError("T11Boom ran")


class T11Keep(Node):
    category = "testing"
    output_node = True
    inputs = (String("key"), Input("value", "*"))

    def run(self, key: str, value: Any) -> Result:
        KEPT[key] = value
        return Result(ui={"kept": [key]})


@pytest.fixture(scope="module")
def registry() -> Any:
    registry = make_registry()
    registry.register_all([T11Image, T11Mask, T11Latent, T11Boom, T11Keep], pack="tests")
    return registry


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    TENSORS.clear()
    KEPT.clear()
    yield
    TENSORS.clear()
    KEPT.clear()


def checked(registry: Any, prompt: dict[str, Any]) -> Any:
    return validate_prompt(normalise_prompt(prompt), registry)


def run(registry: Any, prompt: dict[str, Any]) -> Any:
    result = checked(registry, prompt)
    assert result.ok, result.node_errors
    return Executor(registry).execute_sync("p", result.prompt, result.outputs, order=result.order)


def keep(source: str, key: str = "out") -> dict[str, Any]:
    return {f"keep_{key}": {"class_type": "T11Keep", "inputs": {"key": key, "value": [source, 0]}}}


def given(kind: str, key: str, value: Any) -> dict[str, Any]:
    TENSORS[key] = value
    return {key: {"class_type": f"T11{kind}", "inputs": {"key": key}}}


def errors(result: Any, node: str) -> list[tuple[str, str]]:
    return [(e["type"], e["extra_info"].get("input_name")) for e in result.node_errors[node]["errors"]]


def fit(x: torch.Tensor, width: int, height: int, mode: str, crop: str = "disabled") -> torch.Tensor:
    """ComfyUI's ``common_upscale`` on ``[B, C, H, W]``: centre crop to the target aspect, then interpolate."""
    old_h, old_w = x.shape[-2:]
    if crop == "center":
        old_aspect, new_aspect = old_w / old_h, width / height
        dx = round((old_w - old_w * (new_aspect / old_aspect)) / 2) if old_aspect > new_aspect else 0
        dy = round((old_h - old_h * (old_aspect / new_aspect)) / 2) if old_aspect < new_aspect else 0
        x = x[..., dy : old_h - dy, dx : old_w - dx]
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(x, size=(height, width), mode=mode, **kwargs)


def fit_image(image: torch.Tensor, width: int, height: int, mode: str, crop: str = "disabled") -> torch.Tensor:
    return fit(image.movedim(-1, 1), width, height, mode, crop).movedim(1, -1)


def fit_mask(mask: torch.Tensor, width: int, height: int, mode: str, crop: str = "disabled") -> torch.Tensor:
    return fit(mask.unsqueeze(1), width, height, mode, crop).squeeze(1)


# -- BatchImagesNode / BatchMasksNode / BatchLatentsNode -----------------------------------------------
def test_batch_images_joins_in_socket_order_fitting_size_and_channels(registry: Any) -> None:
    gen = torch.Generator().manual_seed(1)
    first = torch.rand((1, 4, 6, 3), generator=gen)
    small = torch.rand((2, 2, 3, 3), generator=gen)
    rgba = torch.rand((1, 4, 6, 4), generator=gen)
    prompt = {
        **given("Image", "a", first),
        **given("Image", "b", small),
        **given("Image", "c", rgba),
        # the prompt lists the copies out of order and skips image2: the socket order counts
        "join": {
            "class_type": "BatchImagesNode",
            "inputs": {"images.image3": ["c", 0], "images.image1": ["b", 0], "images.image0": ["a", 0]},
        },
        **keep("join"),
    }
    assert run(registry, prompt).status_str == "success"
    opaque = torch.ones((1, 4, 6, 1))
    expected = torch.cat(
        [
            torch.cat([first, opaque], dim=-1),
            torch.cat([fit_image(small, 6, 4, "bilinear", "center"), opaque.expand(2, -1, -1, -1)], dim=-1),
            rgba,
        ]
    )
    assert KEPT["out"].shape == (4, 4, 6, 4)
    torch.testing.assert_close(KEPT["out"], expected)


def test_batch_masks_fits_each_to_the_first_with_a_centre_crop(registry: Any) -> None:
    wide = torch.rand((1, 4, 8), generator=torch.Generator().manual_seed(2))
    square = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4) / 15
    prompt = {
        **given("Mask", "w", wide),
        **given("Mask", "s", square),
        "join": {"class_type": "BatchMasksNode", "inputs": {"masks.mask0": ["w", 0], "masks.mask1": ["s", 0]}},
        **keep("join"),
    }
    assert run(registry, prompt).status_str == "success"
    # the square mask keeps its middle two rows (the wide aspect), stretched to 4 x 8
    torch.testing.assert_close(KEPT["out"], torch.cat([wide, fit_mask(square[:, 1:3], 8, 4, "bilinear")]))
    torch.testing.assert_close(KEPT["out"][1:], torch.cat([wide, fit_mask(square, 8, 4, "bilinear", "center")])[1:])


def test_batch_latents_joins_samples_and_batch_indices(registry: Any) -> None:
    gen = torch.Generator().manual_seed(3)
    big = {"samples": torch.rand((2, 4, 8, 8), generator=gen), "noise_mask": torch.ones((1, 1, 64, 64))}
    small = {"samples": torch.rand((1, 4, 4, 4), generator=gen), "batch_index": [5]}
    prompt = {
        **given("Latent", "big", big),
        **given("Latent", "small", small),
        "join": {
            "class_type": "BatchLatentsNode",
            "inputs": {"latents.latent0": ["big", 0], "latents.latent1": ["small", 0]},
        },
        **keep("join"),
    }
    assert run(registry, prompt).status_str == "success"
    out = KEPT["out"]
    torch.testing.assert_close(out["samples"], torch.cat([big["samples"], fit(small["samples"], 8, 8, "bilinear")]))
    assert out["batch_index"] == [0, 1, 5]
    assert out["noise_mask"] is big["noise_mask"]  # the first latent's other keys carry on
    assert "batch_index" not in big  # the inputs are not changed


def test_batch_latents_of_other_model_families_fail_naming_the_channels(registry: Any) -> None:
    prompt = {
        **given("Latent", "sd", {"samples": torch.zeros((1, 4, 8, 8))}),
        **given("Latent", "flux", {"samples": torch.zeros((1, 16, 8, 8))}),
        "join": {
            "class_type": "BatchLatentsNode",
            "inputs": {"latents.latent0": ["sd", 0], "latents.latent1": ["flux", 0]},
        },
        **keep("join"),
    }
    result = run(registry, prompt)
    assert result.status_str == "error"
    assert "4 and 16 channels" in str(result.error)


def test_batch_nodes_check_their_copies_types(registry: Any) -> None:
    prompt = {
        **given("Mask", "m", torch.zeros((1, 4, 4))),
        "join": {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["m", 0], "images.image1": ["m", 0]}},
        **keep("join"),
    }
    result = checked(registry, prompt)
    assert errors(result, "join") == [
        ("return_type_mismatch", "images.image0"),
        ("return_type_mismatch", "images.image1"),
    ]


# -- ResizeImageMaskNode ---------------------------------------------------------------------------------
PORTRAIT = (1, 6, 4)  # batch, height 6, width 4


@pytest.mark.parametrize(
    ("rule", "size"),
    [
        ({"resize_type": "scale by multiplier", "resize_type.multiplier": 1.5}, (9, 6)),
        (
            {
                "resize_type": "scale dimensions",
                "resize_type.width": 8,
                "resize_type.height": 0,
                "resize_type.crop": "center",
            },
            (12, 8),
        ),
        ({"resize_type": "scale longer dimension", "resize_type.longer_size": 12}, (12, 8)),
        # the height is the longer side: ComfyUI 0.8.0 made this 8 x 8; its later fix, and Weft, keep the aspect
        ({"resize_type": "scale shorter dimension", "resize_type.shorter_size": 8}, (12, 8)),
        ({"resize_type": "scale width", "resize_type.width": 2}, (3, 2)),
        ({"resize_type": "scale height", "resize_type.height": 3}, (3, 2)),
        # int(0.01 * 2**20) = 10485 pixels: factor sqrt(10485 / 24), sides 83.6 and 125.4
        ({"resize_type": "scale total pixels", "resize_type.megapixels": 0.01}, (125, 84)),
    ],
)
@pytest.mark.parametrize("kind", ["Image", "Mask"])
def test_resize_rules_give_comfyuis_sizes_for_images_and_masks(
    registry: Any, kind: str, rule: dict, size: tuple
) -> None:
    value = torch.rand((*PORTRAIT, 3) if kind == "Image" else PORTRAIT, generator=torch.Generator().manual_seed(4))
    prompt = {
        **given(kind, "x", value),
        "resize": {"class_type": "ResizeImageMaskNode", "inputs": {"input": ["x", 0], **rule, "scale_method": "area"}},
        **keep("resize"),
    }
    assert run(registry, prompt).status_str == "success"
    height, width = size
    expected = (fit_image if kind == "Image" else fit_mask)(value, width, height, "area")
    torch.testing.assert_close(KEPT["out"], expected)


def test_resize_to_dimensions_crops_and_match_size_reads_either_kind(registry: Any) -> None:
    image = torch.rand((2, 6, 4, 3), generator=torch.Generator().manual_seed(5))
    tall = torch.rand((1, 10, 14, 3), generator=torch.Generator().manual_seed(6))
    prompt = {
        **given("Image", "x", image),
        **given("Mask", "target", torch.zeros((1, 3, 5))),
        "dims": {
            "class_type": "ResizeImageMaskNode",
            "inputs": {
                "input": ["x", 0],
                "resize_type": "scale dimensions",
                "resize_type.width": 4,
                "resize_type.height": 4,
                "resize_type.crop": "center",
                "scale_method": "bilinear",
            },
        },
        "match": {
            "class_type": "ResizeImageMaskNode",
            "inputs": {
                "input": ["x", 0],
                "resize_type": "match size",
                "resize_type.match": ["target", 0],
                "resize_type.crop": "disabled",
                "scale_method": "nearest-exact",
            },
        },
        "same": {
            "class_type": "ResizeImageMaskNode",
            "inputs": {"input": ["x", 0], "resize_type": "scale width", "resize_type.width": 0, "scale_method": "area"},
        },
        **keep("dims", "dims"),
        **keep("match", "match"),
        # 10 x 14 to 7 x 20: ComfyUI's margin round((10 - 10 * 1.4 / (20 / 7)) / 2) = 3 rows off each side
        **given("Image", "tall", tall),
        "wide": {
            "class_type": "ResizeImageMaskNode",
            "inputs": {
                "input": ["tall", 0],
                "resize_type": "scale dimensions",
                "resize_type.width": 20,
                "resize_type.height": 7,
                "resize_type.crop": "center",
                "scale_method": "bilinear",
            },
        },
        **keep("same", "same"),
        **keep("wide", "wide"),
    }
    assert run(registry, prompt).status_str == "success"
    torch.testing.assert_close(KEPT["dims"], fit_image(image[:, 1:5], 4, 4, "bilinear"))
    torch.testing.assert_close(KEPT["match"], fit_image(image, 5, 3, "nearest-exact"))
    assert KEPT["same"] is image  # a zero width keeps the input, as in ComfyUI
    torch.testing.assert_close(KEPT["wide"], fit_image(tall[:, 3:7], 20, 7, "bilinear"))


def test_resize_output_has_the_inputs_type(registry: Any) -> None:
    """The output carries what the input was bound to: a resized mask feeds a MASK input, a
    resized image does not."""
    resize = {"resize_type": "scale by multiplier", "resize_type.multiplier": 2.0, "scale_method": "area"}
    prompt = {
        **given("Mask", "m", torch.zeros((1, 2, 2))),
        **given("Image", "i", torch.zeros((1, 2, 2, 3))),
        "rm": {"class_type": "ResizeImageMaskNode", "inputs": {"input": ["m", 0], **resize}},
        "ri": {"class_type": "ResizeImageMaskNode", "inputs": {"input": ["i", 0], **resize}},
        "ok": {"class_type": "MaskToImage", "inputs": {"mask": ["rm", 0]}},
        "bad": {"class_type": "MaskToImage", "inputs": {"mask": ["ri", 0]}},
        **keep("ok", "ok"),
        **keep("bad", "bad"),
    }
    result = checked(registry, prompt)
    assert list(result.node_errors) == ["bad"] and errors(result, "bad") == [("return_type_mismatch", "mask")]
    del prompt["bad"], prompt["keep_bad"]
    assert run(registry, prompt).status_str == "success" and KEPT["ok"].shape == (1, 4, 4, 3)


def test_resize_inputs_are_validated_by_the_chosen_rule(registry: Any) -> None:
    base = {"input": ["i", 0], "scale_method": "area"}
    prompt = {
        **given("Image", "i", torch.zeros((1, 2, 2, 3))),
        "missing": {
            "class_type": "ResizeImageMaskNode",
            "inputs": {**base, "resize_type": "scale dimensions", "resize_type.width": 4},
        },
        "big": {
            "class_type": "ResizeImageMaskNode",
            "inputs": {**base, "resize_type": "scale by multiplier", "resize_type.multiplier": 9.0},
        },
        "unknown": {"class_type": "ResizeImageMaskNode", "inputs": {**base, "resize_type": "zoom"}},
        "method": {
            "class_type": "ResizeImageMaskNode",
            "inputs": {**base, "resize_type": "scale width", "resize_type.width": 4, "scale_method": "bislerp"},
        },
        **given("Latent", "l", {"samples": torch.zeros((1, 4, 2, 2))}),
        # a LATENT is not among the template's allowed types (IMAGE, MASK)
        "latent": {
            "class_type": "ResizeImageMaskNode",
            "inputs": {**base, "input": ["l", 0], "resize_type": "scale width", "resize_type.width": 4},
        },
    }
    for node in ("missing", "big", "unknown", "method", "latent"):
        prompt.update(keep(node, node))
    result = checked(registry, prompt)
    assert sorted(errors(result, "missing")) == [
        ("required_input_missing", "resize_type.crop"),
        ("required_input_missing", "resize_type.height"),
    ]
    assert errors(result, "big") == [("value_bigger_than_max", "resize_type.multiplier")]
    assert errors(result, "unknown") == [("value_not_in_list", "resize_type")]
    assert errors(result, "method") == [("value_not_in_list", "scale_method")]
    assert errors(result, "latent") == [("return_type_mismatch", "input")]


def test_resize_to_a_zero_side_fails_naming_the_input(registry: Any) -> None:
    prompt = {
        **given("Image", "i", torch.zeros((1, 2, 2, 3))),
        "r": {
            "class_type": "ResizeImageMaskNode",
            "inputs": {
                "input": ["i", 0],
                "resize_type": "scale longer dimension",
                "resize_type.longer_size": 0,
                "scale_method": "area",
            },
        },
        **keep("r"),
    }
    result = run(registry, prompt)
    assert result.status_str == "error" and "resize_type.longer_size" in str(result.error)


# -- ComfySwitchNode / CustomCombo --------------------------------------------------------------------------
@pytest.mark.parametrize("switch", [True, False])
def test_switch_evaluates_only_the_chosen_branch(registry: Any, switch: bool) -> None:
    image = torch.rand((1, 2, 2, 3))
    chosen, other = ("on_true", "on_false") if switch else ("on_false", "on_true")
    prompt = {
        **given("Image", "i", image),
        "boom": {"class_type": "T11Boom", "inputs": {}},
        "s": {"class_type": "ComfySwitchNode", "inputs": {"switch": switch, chosen: ["i", 0], other: ["boom", 0]}},
        **keep("s"),
    }
    result = run(registry, prompt)
    assert result.status_str == "success", result.error  # T11Boom, behind the other branch, never ran
    assert KEPT["out"] is image


def test_switch_binds_its_output_to_the_branches_type(registry: Any) -> None:
    prompt = {
        **given("Image", "i", torch.zeros((1, 2, 2, 3))),
        **given("Mask", "m", torch.zeros((1, 2, 2))),
        "mixed": {
            "class_type": "ComfySwitchNode",
            "inputs": {"switch": True, "on_true": ["i", 0], "on_false": ["m", 0]},
        },
        "images": {
            "class_type": "ComfySwitchNode",
            "inputs": {"switch": True, "on_true": ["i", 0], "on_false": ["i", 0]},
        },
        "to_image": {"class_type": "MaskToImage", "inputs": {"mask": ["images", 0]}},
        "no_switch": {"class_type": "ComfySwitchNode", "inputs": {"on_true": ["i", 0], "on_false": ["i", 0]}},
        **keep("mixed", "mixed"),
        **keep("to_image", "to_image"),
        **keep("no_switch", "no_switch"),
    }
    result = checked(registry, prompt)
    # on_false, declared first, binds the template to MASK; on_true's IMAGE disagrees
    assert errors(result, "mixed") == [("return_type_mismatch", "on_true")]
    assert errors(result, "to_image") == [("return_type_mismatch", "mask")]
    assert errors(result, "no_switch") == [("required_input_missing", "switch")]


@pytest.mark.parametrize(
    "inputs",
    [
        {"choice": "my own option"},
        # as ComfyUI's frontend (1.35.9) sends it: every option widget too, the empty last one included
        {"choice": "my own option", "option0": "other", "option1": "my own option", "option2": ""},
        {"choice": "", "option0": ""},  # nothing typed yet
    ],
)
def test_custom_combo_passes_any_written_choice(registry: Any, inputs: dict[str, str]) -> None:
    prompt = {"c": {"class_type": "CustomCombo", "inputs": inputs}, **keep("c")}
    assert run(registry, prompt).status_str == "success" and KEPT["out"] == inputs["choice"]


# -- through a live server ---------------------------------------------------------------------------------
def test_server_publishes_comfyuis_entries_and_runs_a_batch_resize(tmp_path: Path) -> None:
    from PIL import Image

    from tests.parity.schema_compare import comfy_table
    from tests.support.server import serve

    for live in serve(tmp_path):
        status, info = live.get("/object_info")
        assert status == 200
        for name in ("BatchImagesNode", "ResizeImageMaskNode", "ComfySwitchNode"):
            table = comfy_table()[name]
            for spec in table["inputs"]:
                if "v1" in spec:
                    assert info[name]["input"][spec["group"]][spec["name"]] == spec["v1"], (name, spec["name"])
        assert info["ResizeImageMaskNode"]["output_matchtypes"] == ["input_type"]
        prompt = {
            "a": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 4, "batch_size": 1, "color": 0xFF0000}},
            "b": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 2, "batch_size": 2, "color": 0x0000FF}},
            "j": {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["a", 0], "images.image1": ["b", 0]}},
            "r": {
                "class_type": "ResizeImageMaskNode",
                "inputs": {
                    "input": ["j", 0],
                    "resize_type": "scale longer dimension",
                    "resize_type.longer_size": 16,
                    "scale_method": "nearest-exact",
                },
            },
            "save": {"class_type": "PreviewImage", "inputs": {"images": ["r", 0]}},
        }
        history = live.wait_history(live.queue_prompt(prompt))
        assert history["status"]["status_str"] == "success", history["status"]
        images = history["outputs"]["save"]["images"]
        assert len(images) == 3
        last = images[2]
        query = urlencode({"filename": last["filename"], "subfolder": last["subfolder"], "type": last["type"]})
        status, png = live.get(f"/view?{query}")
        assert status == 200
        with Image.open(io.BytesIO(png)) as picture:  # a blue frame of the second batch, 16 x 8
            assert picture.size == (16, 8) and picture.getpixel((3, 3))[:3] == (0, 0, 255)
