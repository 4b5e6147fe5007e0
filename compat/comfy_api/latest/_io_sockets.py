"""Link-only types of ``comfy_api.latest.io``: ``AnyType``, ``MultiType``, ``MatchType`` and the
named sockets (``Image``, ``Model``, ``Conditioning``...) that carry values between nodes.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from ._io_declarations import ComfyTypeIO, Input, Output, comfytype


@comfytype(io_type="*")
class AnyType(ComfyTypeIO):
    """Accepts and produces any type (ComfyUI's ``*``)."""


class MultiType:
    """An input that accepts several types: ``io.MultiType.Input("x", types=[io.Image, io.Mask])``.

    When ``id`` is itself an input declaration, that declaration provides the widget (for
    example a FLOAT that may also be linked to an IMAGE).
    """

    io_type: ClassVar[str] = "COMFY_MULTITYPED_V3"

    class Input(Input):
        def __init__(
            self,
            id: str | Input,
            types: list[Any],
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            extra_dict: dict[str, Any] | None = None,
            raw_link: bool | None = None,
        ) -> None:
            self.input_override: Input | None = None
            if isinstance(id, Input):
                self.input_override = copy.copy(id)
                optional = True if id.optional is True else optional
                tooltip = id.tooltip if id.tooltip is not None else tooltip
                display_name = id.display_name if id.display_name is not None else display_name
                lazy = id.lazy if id.lazy is not None else lazy
                id = id.id
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
            self._io_types = list(types)

        @property
        def io_types(self) -> list[str]:
            names = [self.input_override.get_io_type()] if self.input_override is not None else []
            for kind in self._io_types:
                name = kind.io_type if hasattr(kind, "io_type") else str(kind)
                if name not in names:
                    names.append(name)
            return names

        def get_io_type(self) -> str:
            return ",".join(self.io_types)

        def as_dict(self) -> dict[str, Any]:
            base = self.input_override.as_dict() if self.input_override is not None else {}
            return base | super().as_dict()


@comfytype(io_type="COMFY_MATCHTYPE_V3")
class MatchType(ComfyTypeIO):
    """Sockets typed by a template (a type variable): every link into the node's inputs with
    one template must carry one type, out of ``allowed_types``, and the outputs with that
    template carry it. The engine checks that before the run (``engine/node_types.py``)."""

    class Template:
        def __init__(self, template_id: str, allowed_types: Any = AnyType) -> None:
            if not isinstance(allowed_types, (list, tuple)):
                allowed_types = [allowed_types]
            for kind in allowed_types:
                if not isinstance(getattr(kind, "io_type", None), str):
                    raise ValueError(
                        f"MatchType.Template {template_id!r}: allowed types must be io types, got {kind!r}"
                    )
            self.template_id, self.allowed_types = template_id, list(allowed_types)

        def as_dict(self) -> dict[str, Any]:
            return {
                "template_id": self.template_id,
                "allowed_types": ",".join(kind.io_type for kind in self.allowed_types),
            }

    class Input(Input):
        def __init__(
            self,
            id: str,
            template: MatchType.Template | None = None,
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            extra_dict: dict[str, Any] | None = None,
            raw_link: bool | None = None,
        ) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
            self.template = template if template is not None else MatchType.Template(id)

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | {"template": self.template.as_dict()}

    class Output(Output):
        def __init__(
            self,
            template: MatchType.Template | None = None,
            id: str | None = None,
            display_name: str | None = None,
            tooltip: str | None = None,
            is_output_list: bool = False,
        ) -> None:
            if not id and not display_name:
                display_name = "MATCHTYPE"
            super().__init__(id, display_name, tooltip, is_output_list)
            self.template = template if template is not None else MatchType.Template(id or "MATCHTYPE")


def _socket(io_type: str, name: str) -> type[ComfyTypeIO]:
    return comfytype(io_type)(type(name, (ComfyTypeIO,), {"__module__": __name__, "__qualname__": name}))


Image = _socket("IMAGE", "Image")
Mask = _socket("MASK", "Mask")
Latent = _socket("LATENT", "Latent")
Conditioning = _socket("CONDITIONING", "Conditioning")
Sampler = _socket("SAMPLER", "Sampler")
Sigmas = _socket("SIGMAS", "Sigmas")
Noise = _socket("NOISE", "Noise")
Guider = _socket("GUIDER", "Guider")
Clip = _socket("CLIP", "Clip")
ControlNet = _socket("CONTROL_NET", "ControlNet")
Vae = _socket("VAE", "Vae")
Model = _socket("MODEL", "Model")
ClipVision = _socket("CLIP_VISION", "ClipVision")
ClipVisionOutput = _socket("CLIP_VISION_OUTPUT", "ClipVisionOutput")
StyleModel = _socket("STYLE_MODEL", "StyleModel")
Gligen = _socket("GLIGEN", "Gligen")
UpscaleModel = _socket("UPSCALE_MODEL", "UpscaleModel")
LatentUpscaleModel = _socket("LATENT_UPSCALE_MODEL", "LatentUpscaleModel")
Audio = _socket("AUDIO", "Audio")
Video = _socket("VIDEO", "Video")
SVG = _socket("SVG", "SVG")
LoraModel = _socket("LORA_MODEL", "LoraModel")
LossMap = _socket("LOSS_MAP", "LossMap")
Voxel = _socket("VOXEL", "Voxel")
Mesh = _socket("MESH", "Mesh")
Hooks = _socket("HOOKS", "Hooks")
HookKeyframes = _socket("HOOK_KEYFRAMES", "HookKeyframes")
TimestepsRange = _socket("TIMESTEPS_RANGE", "TimestepsRange")
LatentOperation = _socket("LATENT_OPERATION", "LatentOperation")
FlowControl = _socket("FLOW_CONTROL", "FlowControl")
Accumulation = _socket("ACCUMULATION", "Accumulation")
Photomaker = _socket("PHOTOMAKER", "Photomaker")
Point = _socket("POINT", "Point")
FaceAnalysis = _socket("FACE_ANALYSIS", "FaceAnalysis")
BBOX = _socket("BBOX", "BBOX")
SEGS = _socket("SEGS", "SEGS")
MODEL_PATCH = _socket("MODEL_PATCH", "MODEL_PATCH")
AudioEncoder = _socket("AUDIO_ENCODER", "AudioEncoder")
AudioEncoderOutput = _socket("AUDIO_ENCODER_OUTPUT", "AudioEncoderOutput")
WanCameraEmbedding = _socket("WAN_CAMERA_EMBEDDING", "WanCameraEmbedding")
Webcam = _socket("WEBCAM", "Webcam")
Load3DCamera = _socket("LOAD3D_CAMERA", "Load3DCamera")
Load3D = _socket("LOAD_3D", "Load3D")
Load3DAnimation = _socket("LOAD_3D_ANIMATION", "Load3DAnimation")
Tracks = _socket("TRACKS", "Tracks")
