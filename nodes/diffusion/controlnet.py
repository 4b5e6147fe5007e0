"""ControlNet nodes with ComfyUI's names, inputs, defaults and semantics.

* ControlNetLoader reads a ControlNet from ``models/controlnet``: an original-layout file
  (``control_model.*`` keys, as most published SD1.5/SDXL ControlNets ship) or the weights
  file inside a diffusers ControlNet folder (the folder's ``config.json`` is used).
* ControlNetApplyAdvanced and ControlNetApply put a :class:`~.control.Control` in each
  conditioning entry's ``"control"`` option; the guider runs the ControlNet during sampling
  (see :mod:`.control` and :mod:`.guidance`). Applying twice chains: both ControlNets run and
  their residuals add up.

The apply nodes copy every entry's options (the inputs may be cached outputs of other nodes)
and return their inputs unchanged at strength 0, so strength 0 is exactly no ControlNet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodes.api import Float, Input, ModelFile, Node, Output

from .conditioning import _entries

_FOLDER = "controlnet"


class ControlNetInputError(ValueError):
    """An apply node got an input it cannot use; the message names the input."""


def _origin(class_name: str) -> str:
    """``"ControlNetApplyAdvanced (node 12)"`` while a node runs, for errors raised later in sampling."""
    from engine.context import current_context

    ctx = current_context()
    return f"{class_name} (node {ctx.node_id})" if ctx is not None else class_name


def _require_controlnet(control_net: Any, node: str) -> Any:
    from .control import ControlNet

    if not isinstance(control_net, ControlNet):
        raise ControlNetInputError(
            f"{node}: input 'control_net' must be a CONTROL_NET from ControlNetLoader, got {type(control_net).__name__}"
        )
    return control_net


def _weights_path(path: Path) -> Path:
    """The diffusers folder when ``path`` is the weights file inside one, else ``path``.

    The folder listing shows a diffusers ControlNet as ``name/diffusion_pytorch_model.safetensors``
    (ComfyUI's users pick that file); its architecture is in the folder's ``config.json``.
    """
    if path.is_file() and path.suffix.lower() == ".safetensors" and (path.parent / "config.json").is_file():
        from .loaders import file_info

        if "controlnet_cond_embedding.conv_in.weight" in file_info(path).shapes:
            return path.parent
    return path


def _apply(
    conditioning: Any,
    input_name: str,
    controlnet: Any,
    hint: Any,
    strength: float,
    start: float,
    end: float,
    origin: str,
    made: dict[int, Any],
    to_uncond: bool = False,
) -> list[list[Any]]:
    """New entries with a control chained onto each entry's previous one.

    ``made`` maps a previous control (by identity) to the control created on top of it, so the
    positive and negative entries that had the same previous control get the same new one and
    the guider can run one ControlNet call for both halves (ComfyUI's ``cnets`` cache).
    ``to_uncond`` is ComfyUI's ``control_apply_to_uncond`` mark (the old node's): at sampling a
    positive's control also goes to a negative without one (:func:`.control.spread_to_uncond`).
    """
    from .control import Control

    out = _entries(conditioning, input_name)
    for entry in out:
        previous = entry[1].get("control")
        key = id(previous)
        if key not in made:
            made[key] = (
                Control(controlnet, hint, float(strength), float(start), float(end), previous, origin),
                previous,
            )  # the previous one is kept so its id is not reused meanwhile
        entry[1]["control"] = made[key][0]
        entry[1]["control_apply_to_uncond"] = to_uncond
    return out


class ControlNetLoader(Node):
    display_name = "Load ControlNet Model"
    category = "loaders"
    description = (
        "Loads a ControlNet (SD1.x, SD2.x or SDXL) from models/controlnet: an original-layout "
        ".safetensors file, or the weights file of a diffusers ControlNet folder."
    )
    inputs = (ModelFile("control_net_name", _FOLDER, tooltip="The ControlNet to load."),)
    outputs = (Output("CONTROL_NET"),)

    @classmethod
    def fingerprint(cls, control_net_name: str = "", **_: Any) -> Any:
        from .loaders import file_fingerprint

        return file_fingerprint(_FOLDER, control_net_name)

    def run(self, control_net_name: str) -> Any:
        from .control import ControlNet
        from .loaders import load_controlnet_file, model_file

        path = _weights_path(model_file(_FOLDER, control_net_name, "control_net_name"))
        handle, family = load_controlnet_file(path, "control_net_name")
        return ControlNet(handle, family, control_net_name)


class ControlNetApplyAdvanced(Node):
    """Guides sampling with a ControlNet and a hint image, on the positive and the negative.

    The optional ``vae`` input exists for ComfyUI compatibility: ComfyUI uses it only for
    ControlNets of newer model types that work in latent space (SD3, Flux...). The SD1.x, SD2.x
    and SDXL ControlNets Weft runs take the hint in pixels, so the VAE is accepted and ignored.
    """

    display_name = "Apply ControlNet"
    category = "conditioning/controlnet"
    description = (
        "Guides the image with a ControlNet and a hint image (edges, depth, pose...), applied to both "
        "the positive and the negative conditioning between start_percent and end_percent of the "
        "sampling. Chaining several apply nodes adds their effects."
    )
    inputs = (
        Input("positive", "CONDITIONING"),
        Input("negative", "CONDITIONING"),
        Input("control_net", "CONTROL_NET"),
        Input("image", "IMAGE", tooltip="The hint image, at any size: it is resized to the latent's image size."),
        Float(
            "strength",
            1.0,
            min=0.0,
            max=10.0,
            step=0.01,
            tooltip="How strongly the ControlNet steers; 0 leaves the conditioning unchanged.",
        ),
        Float(
            "start_percent",
            0.0,
            min=0.0,
            max=1.0,
            step=0.001,
            tooltip="Where in the schedule the ControlNet starts acting (0 = the first, noisiest step).",
        ),
        Float(
            "end_percent",
            1.0,
            min=0.0,
            max=1.0,
            step=0.001,
            tooltip="Where in the schedule the ControlNet stops acting (1 = the last step).",
        ),
        Input(
            "vae",
            "VAE",
            optional=True,
            tooltip="Only needed by ComfyUI for newer model types; ignored for SD1.x/SD2.x/SDXL ControlNets.",
        ),
    )
    outputs = (Output("CONDITIONING", "positive"), Output("CONDITIONING", "negative"))

    def run(
        self,
        positive: Any,
        negative: Any,
        control_net: Any,
        image: Any,
        strength: float,
        start_percent: float,
        end_percent: float,
        vae: Any = None,
    ) -> tuple:
        from .control import hint_from_image

        if strength == 0:
            return positive, negative
        controlnet = _require_controlnet(control_net, "ControlNetApplyAdvanced")
        hint = hint_from_image(image)
        origin = _origin("ControlNetApplyAdvanced")
        made: dict[int, Any] = {}
        return (
            _apply(positive, "positive", controlnet, hint, strength, start_percent, end_percent, origin, made),
            _apply(negative, "negative", controlnet, hint, strength, start_percent, end_percent, origin, made),
        )


class ControlNetApply(Node):
    """ComfyUI's older apply node: one conditioning, the whole schedule.

    As in ComfyUI, its entries are marked ``control_apply_to_uncond``: put on the positive, the
    ControlNet also acts on a negative that has none, so the picture is the one
    ControlNetApplyAdvanced gives with the whole schedule.
    """

    display_name = "Apply ControlNet (OLD)"
    category = "conditioning/controlnet"
    description = (
        "Older form of Apply ControlNet: applies the ControlNet to one conditioning (usually the positive) for "
        "the whole sampling; as in ComfyUI, on the positive it also acts on a negative that has no ControlNet."
    )
    deprecated = True
    inputs = (
        Input("conditioning", "CONDITIONING"),
        Input("control_net", "CONTROL_NET"),
        Input("image", "IMAGE"),
        Float("strength", 1.0, min=0.0, max=10.0, step=0.01),
    )
    outputs = (Output("CONDITIONING"),)

    def run(self, conditioning: Any, control_net: Any, image: Any, strength: float) -> tuple:
        from .control import hint_from_image

        if strength == 0:
            return (conditioning,)
        controlnet = _require_controlnet(control_net, "ControlNetApply")
        hint = hint_from_image(image)
        return (
            _apply(
                conditioning, "conditioning", controlnet, hint, strength, 0.0, 1.0, _origin("ControlNetApply"), {}, True
            ),
        )


NODES = [ControlNetLoader, ControlNetApplyAdvanced, ControlNetApply]
