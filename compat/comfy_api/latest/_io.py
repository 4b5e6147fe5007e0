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
``Schema``, ``Hidden``, ``NodeOutput``, ``ComfyNode``) with ComfyUI's names and keyword
arguments. It does no execution: ``nodes/plugins/v3.py`` reads a node's schema through
:meth:`ComfyNode.GET_SCHEMA` and :meth:`ComfyNode.INPUT_TYPES` and drives its classmethods.

The classic (V1) attributes (``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``, ...) are
derived from the schema too, so code that introspects node classes the old way (other
packs, ``comfy_execution.graph.get_input_info``) reads v3 nodes as well.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import Enum, StrEnum
from typing import Any, ClassVar, Literal


def _prune(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class FolderType(StrEnum):
    input = "input"
    output = "output"
    temp = "temp"


class UploadType(StrEnum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class NumberDisplay(StrEnum):
    number = "number"
    slider = "slider"


class RemoteOptions:
    """Options of a combo whose choices a client fetches from a route (published as given)."""

    def __init__(self, route: str, refresh_button: bool, control_after_refresh: Literal["first", "last"] = "first",
                 timeout: int | None = None, max_retries: int | None = None, refresh: int | None = None) -> None:
        self.route, self.refresh_button, self.control_after_refresh = route, refresh_button, control_after_refresh
        self.timeout, self.max_retries, self.refresh = timeout, max_retries, refresh

    def as_dict(self) -> dict[str, Any]:
        return _prune({"route": self.route, "refresh_button": self.refresh_button,
                       "control_after_refresh": self.control_after_refresh, "timeout": self.timeout,
                       "max_retries": self.max_retries, "refresh": self.refresh})


# -- inputs and outputs ---------------------------------------------------------------------
class Input:
    """One declared input. ``io_type`` is set by the type the class is nested in."""

    io_type: ClassVar[str] = "*"

    def __init__(self, id: str, display_name: str | None = None, optional: bool = False, tooltip: str | None = None,
                 lazy: bool | None = None, extra_dict: dict[str, Any] | None = None,
                 raw_link: bool | None = None) -> None:
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = dict(extra_dict or {})
        self.rawLink = raw_link

    def get_io_type(self) -> str:
        return self.io_type

    def as_dict(self) -> dict[str, Any]:
        """The V1 options dict (``INPUT_TYPES()[...][name][1]``)."""
        return _prune({"display_name": self.display_name, "tooltip": self.tooltip, "lazy": self.lazy,
                       "rawLink": self.rawLink}) | _prune(self.extra_dict)


class WidgetInput(Input):
    """An input that can also be a widget (a value typed into the node)."""

    def __init__(self, id: str, display_name: str | None = None, optional: bool = False, tooltip: str | None = None,
                 lazy: bool | None = None, default: Any = None, socketless: bool | None = None,
                 widget_type: str | None = None, force_input: bool | None = None,
                 extra_dict: dict[str, Any] | None = None, raw_link: bool | None = None) -> None:
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def get_io_type(self) -> str:
        return self.widget_type if self.widget_type is not None else self.io_type

    def as_dict(self) -> dict[str, Any]:
        return super().as_dict() | _prune({"default": self.default, "socketless": self.socketless,
                                            "widgetType": self.widget_type, "forceInput": self.force_input})


class Output:
    """One declared output; ``display_name`` defaults to the id, the id to the type."""

    io_type: ClassVar[str] = "*"

    def __init__(self, id: str | None = None, display_name: str | None = None, tooltip: str | None = None,
                 is_output_list: bool = False) -> None:
        self.id = id
        self.display_name = display_name if display_name else id
        self.tooltip = tooltip
        self.is_output_list = is_output_list

    def get_io_type(self) -> str:
        return self.io_type


class _ComfyType:
    """A socket type: ``io_type`` plus nested ``Input`` (and ``Output``) declaration classes."""

    io_type: ClassVar[str] = "*"
    Type: ClassVar[Any] = Any


class ComfyTypeI(_ComfyType):
    """A type that is only ever an input."""

    Input = Input


class ComfyTypeIO(ComfyTypeI):
    """A type that can be an input and an output."""

    Output = Output


def comfytype(io_type: str, **kwargs: Any) -> Callable[[type], type]:
    """Class decorator: give a type class its ``io_type`` and nested declaration classes of it.

    The nested ``Input``/``Output`` get subclasses of their own, so types that inherit the
    generic declarations do not share (and overwrite) one ``io_type``.
    """

    def decorate(cls: type) -> type:
        cls.io_type = io_type  # type: ignore[attr-defined]
        for name in ("Input", "Output"):
            nested = getattr(cls, name, None)
            if isinstance(nested, type):
                setattr(cls, name, type(name, (nested,), {"io_type": io_type, "__module__": cls.__module__,
                                                          "__qualname__": f"{cls.__qualname__}.{name}"}))
        return cls

    return decorate


def Custom(io_type: str) -> type[ComfyTypeIO]:  # noqa: N802 - ComfyUI's name
    """A type for a socket name of the pack's own (``io.Custom("MY_DATA")``)."""
    return comfytype(io_type)(type(io_type, (ComfyTypeIO,), {"__module__": __name__}))  # type: ignore[return-value]


@comfytype(io_type="BOOLEAN")
class Boolean(ComfyTypeIO):
    Type = bool

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: bool | None = None,
                     label_on: str | None = None, label_off: str | None = None, socketless: bool | None = None,
                     force_input: bool | None = None, extra_dict: dict[str, Any] | None = None,
                     raw_link: bool | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.label_on, self.label_off = label_on, label_off

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | _prune({"label_on": self.label_on, "label_off": self.label_off})


@comfytype(io_type="INT")
class Int(ComfyTypeIO):
    Type = int

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: int | None = None,
                     min: int | None = None, max: int | None = None, step: int | None = None,
                     control_after_generate: bool | None = None, display_mode: NumberDisplay | None = None,
                     socketless: bool | None = None, force_input: bool | None = None,
                     extra_dict: dict[str, Any] | None = None, raw_link: bool | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.min, self.max, self.step = min, max, step
            self.control_after_generate, self.display_mode = control_after_generate, display_mode

        def as_dict(self) -> dict[str, Any]:
            display = self.display_mode.value if isinstance(self.display_mode, Enum) else self.display_mode
            return super().as_dict() | _prune({"min": self.min, "max": self.max, "step": self.step,
                                                "control_after_generate": self.control_after_generate,
                                                "display": display})


@comfytype(io_type="FLOAT")
class Float(ComfyTypeIO):
    Type = float

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: float | None = None,
                     min: float | None = None, max: float | None = None, step: float | None = None,
                     round: float | None = None, display_mode: NumberDisplay | None = None,
                     socketless: bool | None = None, force_input: bool | None = None,
                     extra_dict: dict[str, Any] | None = None, raw_link: bool | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.min, self.max, self.step, self.round, self.display_mode = min, max, step, round, display_mode

        def as_dict(self) -> dict[str, Any]:
            display = self.display_mode.value if isinstance(self.display_mode, Enum) else self.display_mode
            return super().as_dict() | _prune({"min": self.min, "max": self.max, "step": self.step,
                                                "round": self.round, "display": display})


@comfytype(io_type="STRING")
class String(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, multiline: bool | None = None,
                     placeholder: str | None = None, default: str | None = None,
                     dynamic_prompts: bool | None = None, socketless: bool | None = None,
                     force_input: bool | None = None, extra_dict: dict[str, Any] | None = None,
                     raw_link: bool | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.multiline, self.placeholder, self.dynamic_prompts = multiline, placeholder, dynamic_prompts

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | _prune({"multiline": self.multiline, "placeholder": self.placeholder,
                                                "dynamicPrompts": self.dynamic_prompts})


@comfytype(io_type="COMBO")
class Combo(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, options: list[Any] | type[Enum] | None = None, display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     default: Any = None, control_after_generate: bool | None = None,
                     upload: UploadType | None = None, image_folder: FolderType | None = None,
                     remote: RemoteOptions | None = None, socketless: bool | None = None,
                     extra_dict: dict[str, Any] | None = None, raw_link: bool | None = None) -> None:
            if isinstance(options, type) and issubclass(options, Enum):
                options = [member.value for member in options]
            if isinstance(default, Enum):
                default = default.value
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, None,
                             extra_dict, raw_link)
            self.multiselect = False
            self.options = list(options) if options is not None else []
            self.control_after_generate, self.upload = control_after_generate, upload
            self.image_folder, self.remote = image_folder, remote

        def as_dict(self) -> dict[str, Any]:
            upload = {self.upload.value: True} if isinstance(self.upload, UploadType) else {}
            folder = self.image_folder.value if isinstance(self.image_folder, Enum) else self.image_folder
            return super().as_dict() | _prune({"multiselect": self.multiselect or None,
                                                "control_after_generate": self.control_after_generate,
                                                "image_folder": folder,
                                                "remote": self.remote.as_dict() if self.remote else None}) | upload

    class Output(Output):
        def __init__(self, id: str | None = None, display_name: str | None = None, options: list[Any] | None = None,
                     tooltip: str | None = None, is_output_list: bool = False) -> None:
            super().__init__(id, display_name, tooltip, is_output_list)
            self.options = list(options or [])


@comfytype(io_type="COMBO")
class MultiCombo(ComfyTypeI):
    Type = list[str]

    class Input(Combo.Input):
        def __init__(self, id: str, options: list[Any], display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: list[Any] | None = None,
                     placeholder: str | None = None, chip: bool | None = None,
                     control_after_generate: bool | None = None, socketless: bool | None = None,
                     extra_dict: dict[str, Any] | None = None, raw_link: bool | None = None) -> None:
            super().__init__(id, options, display_name, optional, tooltip, lazy, default, control_after_generate,
                             socketless=socketless, extra_dict=extra_dict, raw_link=raw_link)
            self.multiselect = True
            self.placeholder, self.chip = placeholder, chip

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | _prune({"multi_select": {"placeholder": self.placeholder, "chip": self.chip}})


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
        def __init__(self, id: str | Input, types: list[Any], display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict[str, Any] | None = None, raw_link: bool | None = None) -> None:
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


class MatchType:
    """ComfyUI's "output has the type of that input" templates; Weft treats them as ``*``."""

    io_type: ClassVar[str] = "*"

    class Template:
        def __init__(self, template_id: str, allowed_types: Any = None) -> None:
            self.template_id, self.allowed_types = template_id, allowed_types

    class Input(Input):
        def __init__(self, id: str, template: Any = None, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, extra_dict: dict[str, Any] | None = None,
                     raw_link: bool | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
            self.template = template

    class Output(Output):
        def __init__(self, template: Any = None, id: str | None = None, display_name: str | None = None,
                     tooltip: str | None = None, is_output_list: bool = False) -> None:
            super().__init__(id, display_name, tooltip, is_output_list)
            self.template = template


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


# -- hidden inputs --------------------------------------------------------------------------
class Hidden(StrEnum):
    """Values the engine supplies to a node that asks for them (``Schema(hidden=[...])``)."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    """``cls.hidden`` inside ``execute``: the hidden values of the running node (``None`` when
    the schema did not ask for one)."""

    def __init__(self, unique_id: str | None = None, prompt: Any = None, extra_pnginfo: Any = None,
                 dynprompt: Any = None, auth_token_comfy_org: str | None = None,
                 api_key_comfy_org: str | None = None, **kwargs: Any) -> None:
        self.unique_id = unique_id
        self.prompt = prompt
        self.extra_pnginfo = extra_pnginfo
        self.dynprompt = dynprompt
        self.auth_token_comfy_org = auth_token_comfy_org
        self.api_key_comfy_org = api_key_comfy_org

    def __getattr__(self, key: str) -> Any:
        return None

    @classmethod
    def from_dict(cls, values: dict[Any, Any] | None) -> HiddenHolder:
        values = values or {}
        return cls(**{member.name: values.get(member, values.get(member.name)) for member in Hidden})


# -- schema ---------------------------------------------------------------------------------
class Schema:
    """What a v3 node declares. Unknown keyword arguments (fields newer ComfyUI versions add,
    such as pricing badges) are kept but ignored."""

    def __init__(self, node_id: str, display_name: str | None = None, category: str = "sd",
                 inputs: list[Input] | None = None, outputs: list[Output] | None = None,
                 hidden: list[Hidden] | None = None, description: str = "", is_input_list: bool = False,
                 is_output_node: bool = False, is_deprecated: bool = False, is_experimental: bool = False,
                 is_api_node: bool = False, not_idempotent: bool = False, enable_expand: bool = False,
                 **extra: Any) -> None:
        self.node_id = node_id
        self.display_name = display_name
        self.category = category
        self.inputs = list(inputs or [])
        self.outputs = list(outputs or [])
        self.hidden = list(hidden or [])
        self.description = description
        self.is_input_list = is_input_list
        self.is_output_node = is_output_node
        self.is_deprecated = is_deprecated
        self.is_experimental = is_experimental
        self.is_api_node = is_api_node
        self.not_idempotent = not_idempotent
        self.enable_expand = enable_expand
        self.extra = extra

    def validate(self) -> None:
        """Refuse what cannot work: duplicate input or output ids, a missing node id."""
        if not self.node_id or not isinstance(self.node_id, str):
            raise ValueError("Schema.node_id must be a non-empty string")
        input_ids = [i.id for i in self.inputs]
        duplicates = sorted({i for i in input_ids if input_ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"{self.node_id}: input ids appear twice: {duplicates}")
        output_ids = [o.id for o in self.outputs if o.id is not None]
        duplicates = sorted({o for o in output_ids if output_ids.count(o) > 1})
        if duplicates:
            raise ValueError(f"{self.node_id}: output ids appear twice: {duplicates}")

    def finalize(self) -> None:
        """Output nodes get ``prompt`` and ``extra_pnginfo`` (for the metadata of saved files)."""
        if self.is_output_node:
            for member in (Hidden.prompt, Hidden.extra_pnginfo):
                if member not in self.hidden:
                    self.hidden.append(member)


# -- results --------------------------------------------------------------------------------
class _UIOutput(ABC):
    """Base of ``comfy_api.latest.ui`` classes: something shown on the node."""

    @abstractmethod
    def as_dict(self) -> dict[str, Any]:
        """The UI output entry ComfyUI's ``executed`` event carries for this value."""


class NodeOutput:
    """What ``execute`` returns: output values, plus optional ``ui``, ``expand`` (a sub-graph
    to run in the node's place) and ``block_execution`` (a message: block the outputs)."""

    def __init__(self, *args: Any, ui: _UIOutput | dict[str, Any] | None = None, expand: dict[str, Any] | None = None,
                 block_execution: str | None = None) -> None:
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self) -> tuple[Any, ...] | None:
        return self.args if self.args else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeOutput:
        result = data.get("result", ())
        if type(result).__name__ == "ExecutionBlocker":
            return cls(block_execution=getattr(result, "message", None))
        return cls(*(result or ()), ui=data.get("ui"), expand=data.get("expand"))

    def __getitem__(self, index: int) -> Any:
        return self.args[index]


# -- the node class -------------------------------------------------------------------------
class _classproperty:  # noqa: N801 - reads like a property
    def __init__(self, getter: Callable[[Any], Any]) -> None:
        self.getter = getter

    def __get__(self, instance: Any, owner: type) -> Any:
        return self.getter(owner)


class ComfyNode:
    """Base of v3 nodes. Override :meth:`define_schema` and :meth:`execute` (classmethods);
    optionally :meth:`validate_inputs`, :meth:`fingerprint_inputs`, :meth:`check_lazy_status`.
    ``execute`` may be ``async``. Inside it, ``cls.hidden`` holds the hidden values."""

    hidden: ClassVar[HiddenHolder] = HiddenHolder()
    #: marks v3 classes for the loader (a duck-typed check would also catch look-alikes)
    _weft_v3_node: ClassVar[bool] = True

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError(f"{cls.__name__} must define define_schema()")

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise NotImplementedError(f"{cls.__name__} must define execute()")

    @classmethod
    def validate_inputs(cls, **kwargs: Any) -> bool | str:
        """Checks before the run, on constants (links are ``None``): ``True`` or a message."""
        return True

    @classmethod
    def fingerprint_inputs(cls, **kwargs: Any) -> Any:
        """Outside state the node reads; a changed value re-runs the node (``IS_CHANGED``)."""
        return None

    @classmethod
    def check_lazy_status(cls, **kwargs: Any) -> list[str]:
        """Names of lazy inputs needed, given those known so far (unevaluated ones are ``None``)."""
        return [name for name, value in kwargs.items() if value is None]

    # -- the schema, read the way ComfyUI reads it --------------------------------------------
    @classmethod
    def GET_SCHEMA(cls) -> Schema:  # noqa: N802 - ComfyUI's name
        schema = cls.define_schema()
        if not isinstance(schema, Schema):
            raise TypeError(f"{cls.__name__}.define_schema() must return io.Schema, got {type(schema).__name__}")
        schema.validate()
        schema.finalize()
        return schema

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, Any]]:  # noqa: N802 - ComfyUI's name
        """The schema's inputs in the classic shape: ``{"required": {id: (type, options)}, ...}``."""
        schema = cls.GET_SCHEMA()
        declared: dict[str, dict[str, Any]] = {"required": {}, "optional": {}}
        for item in schema.inputs:
            options = item.as_dict()
            if isinstance(item, Combo.Input):
                entry: tuple[Any, ...] = (list(item.options), options)
            else:
                entry = (item.get_io_type(), options)
            declared["optional" if item.optional else "required"][item.id] = entry
        if schema.hidden:
            declared["hidden"] = {member.name: member.value for member in schema.hidden}
        return declared

    @_classproperty
    def RETURN_TYPES(cls) -> tuple[str, ...]:  # noqa: N802, N805
        return tuple(o.get_io_type() for o in cls.GET_SCHEMA().outputs)

    @_classproperty
    def RETURN_NAMES(cls) -> tuple[str, ...]:  # noqa: N802, N805
        return tuple(o.display_name or o.get_io_type() for o in cls.GET_SCHEMA().outputs)

    @_classproperty
    def OUTPUT_IS_LIST(cls) -> tuple[bool, ...]:  # noqa: N802, N805
        return tuple(bool(o.is_output_list) for o in cls.GET_SCHEMA().outputs)

    @_classproperty
    def OUTPUT_TOOLTIPS(cls) -> tuple[str | None, ...]:  # noqa: N802, N805
        return tuple(o.tooltip for o in cls.GET_SCHEMA().outputs)

    @_classproperty
    def OUTPUT_NODE(cls) -> bool:  # noqa: N802, N805
        return cls.GET_SCHEMA().is_output_node

    @_classproperty
    def INPUT_IS_LIST(cls) -> bool:  # noqa: N802, N805
        return cls.GET_SCHEMA().is_input_list

    @_classproperty
    def CATEGORY(cls) -> str:  # noqa: N802, N805
        return cls.GET_SCHEMA().category

    @_classproperty
    def DESCRIPTION(cls) -> str:  # noqa: N802, N805
        return cls.GET_SCHEMA().description

    @_classproperty
    def DEPRECATED(cls) -> bool:  # noqa: N802, N805
        return cls.GET_SCHEMA().is_deprecated

    @_classproperty
    def EXPERIMENTAL(cls) -> bool:  # noqa: N802, N805
        return cls.GET_SCHEMA().is_experimental

    @_classproperty
    def NOT_IDEMPOTENT(cls) -> bool:  # noqa: N802, N805
        return cls.GET_SCHEMA().not_idempotent

    FUNCTION: ClassVar[str] = "execute"


__all__ = [
    "FolderType", "UploadType", "RemoteOptions", "NumberDisplay", "comfytype", "Custom", "Input", "WidgetInput",
    "Output", "ComfyTypeI", "ComfyTypeIO", "Boolean", "Int", "Float", "String", "Combo", "MultiCombo", "AnyType",
    "MultiType", "MatchType", "Image", "Mask", "Latent", "Conditioning", "Sampler", "Sigmas", "Noise", "Guider",
    "Clip", "ControlNet", "Vae", "Model", "ClipVision", "ClipVisionOutput", "StyleModel", "Gligen", "UpscaleModel",
    "LatentUpscaleModel", "Audio", "Video", "SVG", "LoraModel", "LossMap", "Voxel", "Mesh", "Hooks", "HookKeyframes",
    "TimestepsRange", "LatentOperation", "FlowControl", "Accumulation", "Photomaker", "Point", "FaceAnalysis",
    "BBOX", "SEGS", "MODEL_PATCH", "AudioEncoder", "AudioEncoderOutput", "WanCameraEmbedding", "Webcam",
    "Load3DCamera", "Load3D", "Load3DAnimation", "Tracks", "Hidden", "HiddenHolder", "Schema", "NodeOutput",
    "ComfyNode",
]
