"""Weft's node schemas against ComfyUI 0.8.0's, for every node both have.

``comfyui_nodes.json`` is read from ComfyUI's source (``python -m weft_tools.comfyui_node_table
<comfyui checkout or mirror>``): names, input names and order, types, defaults, min/max/step,
combo choices, outputs, categories. A node that claims a ComfyUI name must match it, so a
ComfyUI workflow or API client finds the same widgets and sockets. The few deliberate
departures are listed in ``KNOWN`` with their reason; the test fails if one of them stops
being true (then the entry goes) or if anything else differs.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.parity.schema_compare import comfy_table, differences

#: node -> (the differences it is expected to have, why)
KNOWN: dict[str, tuple[list[str], str]] = {
    "CLIPLoader": (["type: choices ['stable_diffusion'] != "], "only the SD families' text encoders are supported"),
    "DualCLIPLoader": (["type: choices ['sdxl'] != "], "only SDXL's pair of text encoders is supported"),
    "SaveImage": (["filename_prefix: default 'Weft' != 'ComfyUI'"], "Weft names its files"),
    "ImageBatch": (["deprecated False != True"], "still Weft's way to join image batches"),
    "VAEDecodeTiled": (
        ["required inputs ['samples', 'vae', 'tile_size', 'overlap'] != "],
        "the video-only temporal inputs are optional, so older prompts without them validate",
    ),
    "VAEEncodeTiled": (
        ["required inputs ['pixels', 'vae', 'tile_size', 'overlap'] != "],
        "the video-only temporal inputs are optional, so older prompts without them validate",
    ),
}

#: the nodes this table must find in Weft (those added for ComfyUI parity, issue 11)
REQUIRED = """
EmptyImage ImagePadForOutpaint InpaintModelConditioning LatentComposite LatentBlend LatentCrop LatentFlip
LatentRotate ConditioningConcat ConditioningAverage ConditioningSetAreaPercentage ConditioningSetAreaStrength
ConditioningSetTimestepRange VAEEncodeTiled CheckpointLoader SaveLatent LoadLatent LoadImageOutput
MaskToImage ImageToMask SolidMask InvertMask CropMask MaskComposite FeatherMask GrowMask ThresholdMask
ImageCompositeMasked ImageCrop RepeatImageBatch ImageFromBatch ImageBlend ImageBlur ImageSharpen ImageQuantize
ImageStitch LatentAdd LatentSubtract LatentMultiply LatentInterpolate LatentBatch LatentBatchSeedBehavior Canny
FreeU FreeU_V2 HyperTile ModelSamplingDiscrete ModelMergeSimple CLIPMergeSimple CheckpointSave DifferentialDiffusion
ExponentialScheduler PolyexponentialScheduler VPScheduler SDTurboScheduler BetaSamplingScheduler LaplaceScheduler
AlignYourStepsScheduler SplitSigmasDenoise FlipSigmas SetFirstSigma ExtendIntermediateSigmas SamplingPercentToSigma
ManualSigmas DualCFGGuider AddNoise PerpNeg PerpNegGuider SelfAttentionGuidance CLIPTextEncodeSDXLRefiner
SamplerDPMPP_SDE SamplerDPMPP_2M_SDE SamplerDPMPP_3M_SDE
SamplerSASolver SamplerER_SDE SamplerSEEDS2
UpscaleModelLoader ImageUpscaleWithModel
TorchCompileModel
ComfySwitchNode CustomCombo ResizeImageMaskNode BatchImagesNode BatchMasksNode BatchLatentsNode
""".split()


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    from nodes.registry import builtin_registry
    from server.object_info import describe

    registry = builtin_registry()
    return {name: describe(registry[name].schema) for name in registry}


def test_the_table_covers_the_parity_nodes() -> None:
    table = comfy_table()
    assert not [n for n in REQUIRED if n not in table]
    assert len(table) > 100


def test_parity_nodes_exist(object_info: dict[str, Any]) -> None:
    assert not [n for n in REQUIRED if n not in object_info]


def _shared() -> list[str]:
    from nodes.registry import builtin_registry

    return sorted(set(comfy_table()) & set(builtin_registry()))


@pytest.mark.parametrize("name", _shared())
def test_schema_matches_comfyui(name: str, object_info: dict[str, Any]) -> None:
    found = differences(name, object_info[name])
    expected, reason = KNOWN.get(name, ([], ""))
    unexpected = [d for d in found if not any(d.startswith(e) for e in expected)]
    assert not unexpected, f"{name} departs from ComfyUI's schema: {unexpected}"
    gone = [e for e in expected if not any(d.startswith(e) for d in found)]
    assert not gone, f"{name}: known difference no longer present ({reason}); remove it from KNOWN: {gone}"


def test_structured_entries_and_templates_are_compared_whole(object_info: dict[str, Any]) -> None:
    """A dynamic input's entry is compared to ComfyUI's in full: one nested maximum or one
    output template off is a difference."""
    info = copy.deepcopy(object_info["ResizeImageMaskNode"])
    options = info["input"]["required"]["resize_type"][1]["options"]
    options[0]["inputs"]["required"]["multiplier"][1]["max"] = 4.0
    info["output_matchtypes"] = ["other"]
    found = differences("ResizeImageMaskNode", info)
    assert [d.split(" ")[0] for d in found] == ["resize_type:", "output_matchtypes"]
