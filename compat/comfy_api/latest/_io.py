"""``comfy_api.latest.io``: ComfyUI's v3 node schema, written for Weft.

A v3 node is a class of classmethods::

    class Invert(io.ComfyNode):
        @classmethod
        def define_schema(cls) -> io.Schema:
            return io.Schema(node_id="Invert", category="image",
                             inputs=[io.Image.Input("image")], outputs=[io.Image.Output()])

        @classmethod
        def execute(cls, image) -> io.NodeOutput:
            return io.NodeOutput(1.0 - image)

This module provides the vocabulary (types with their ``Input``/``Output`` declarations,
the dynamic inputs ``Autogrow``, ``DynamicCombo`` and ``DynamicSlot``, the ``MatchType`` templates, ``Schema``,
``Hidden``, ``NodeOutput``, ``ComfyNode``) with ComfyUI's names and keyword arguments. It does no execution: ``nodes/plugins/v3.py`` reads a node's schema through
:meth:`ComfyNode.GET_SCHEMA` and :meth:`ComfyNode.INPUT_TYPES` and drives its classmethods.

The classic (V1) attributes (``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``, ...) are
derived from the schema too, so code that introspects node classes the old way (other
packs, ``comfy_execution.graph.get_input_info``) reads v3 nodes as well.

The vocabulary is spread over ``_io_declarations`` (declarations and their options),
``_io_widgets``, ``_io_sockets``, ``_io_dynamic``, ``_io_schema`` and ``_io_node``; this module gathers it under
the one name packs import (``from comfy_api.latest import io``).
"""

from __future__ import annotations

from ._io_declarations import (
    ComfyTypeI,
    ComfyTypeIO,
    Custom,
    FolderType,
    Input,
    NumberDisplay,
    Output,
    RemoteOptions,
    UploadType,
    WidgetInput,
    comfytype,
)
from ._io_dynamic import (
    Autogrow,
    DynamicCombo,
    DynamicInput,
    DynamicOutput,
    DynamicSlot,  # noqa: F401 - ComfyUI's ``_io.DynamicSlot``, kept out of ``__all__`` as there
)
from ._io_node import ComfyNode, NodeOutput, _UIOutput  # noqa: F401 - the base of ``_ui``'s classes
from ._io_schema import Hidden, HiddenHolder, Schema
from ._io_sockets import (
    BBOX,
    MODEL_PATCH,
    SEGS,
    SVG,
    Accumulation,
    AnyType,
    Audio,
    AudioEncoder,
    AudioEncoderOutput,
    Clip,
    ClipVision,
    ClipVisionOutput,
    Conditioning,
    ControlNet,
    FaceAnalysis,
    FlowControl,
    Gligen,
    Guider,
    HookKeyframes,
    Hooks,
    Image,
    Latent,
    LatentOperation,
    LatentUpscaleModel,
    Load3D,
    Load3DAnimation,
    Load3DCamera,
    LoraModel,
    LossMap,
    Mask,
    MatchType,
    Mesh,
    Model,
    MultiType,
    Noise,
    Photomaker,
    Point,
    Sampler,
    Sigmas,
    StyleModel,
    TimestepsRange,
    Tracks,
    UpscaleModel,
    Vae,
    Video,
    Voxel,
    WanCameraEmbedding,
    Webcam,
)
from ._io_widgets import Boolean, Combo, Float, Int, MultiCombo, String

__all__ = [
    "FolderType",
    "UploadType",
    "RemoteOptions",
    "NumberDisplay",
    "comfytype",
    "Custom",
    "Input",
    "WidgetInput",
    "Output",
    "ComfyTypeI",
    "ComfyTypeIO",
    "Boolean",
    "Int",
    "Float",
    "String",
    "Combo",
    "MultiCombo",
    "AnyType",
    "MultiType",
    "MatchType",
    "Autogrow",
    "DynamicCombo",
    "DynamicInput",
    "DynamicOutput",
    "Image",
    "Mask",
    "Latent",
    "Conditioning",
    "Sampler",
    "Sigmas",
    "Noise",
    "Guider",
    "Clip",
    "ControlNet",
    "Vae",
    "Model",
    "ClipVision",
    "ClipVisionOutput",
    "StyleModel",
    "Gligen",
    "UpscaleModel",
    "LatentUpscaleModel",
    "Audio",
    "Video",
    "SVG",
    "LoraModel",
    "LossMap",
    "Voxel",
    "Mesh",
    "Hooks",
    "HookKeyframes",
    "TimestepsRange",
    "LatentOperation",
    "FlowControl",
    "Accumulation",
    "Photomaker",
    "Point",
    "FaceAnalysis",
    "BBOX",
    "SEGS",
    "MODEL_PATCH",
    "AudioEncoder",
    "AudioEncoderOutput",
    "WanCameraEmbedding",
    "Webcam",
    "Load3DCamera",
    "Load3D",
    "Load3DAnimation",
    "Tracks",
    "Hidden",
    "HiddenHolder",
    "Schema",
    "NodeOutput",
    "ComfyNode",
]
