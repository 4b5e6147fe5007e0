"""Type names and base classes for classic-contract nodes (ComfyUI's ``node_typing``).

``IO`` members are plain strings to everything that reads them (``IO.IMAGE == "IMAGE"``),
so the adapter and /object_info see ordinary type names. Inequality follows ComfyUI's
socket rule: ``*`` matches anything, and comma lists match when one contains the other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import Any, ClassVar, Literal, TypedDict


class IO(StrEnum):
    STRING = "STRING"
    IMAGE = "IMAGE"
    MASK = "MASK"
    LATENT = "LATENT"
    BOOLEAN = "BOOLEAN"
    INT = "INT"
    FLOAT = "FLOAT"
    COMBO = "COMBO"
    CONDITIONING = "CONDITIONING"
    SAMPLER = "SAMPLER"
    SIGMAS = "SIGMAS"
    GUIDER = "GUIDER"
    NOISE = "NOISE"
    CLIP = "CLIP"
    CONTROL_NET = "CONTROL_NET"
    VAE = "VAE"
    MODEL = "MODEL"
    LORA_MODEL = "LORA_MODEL"
    CLIP_VISION = "CLIP_VISION"
    CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"
    STYLE_MODEL = "STYLE_MODEL"
    GLIGEN = "GLIGEN"
    UPSCALE_MODEL = "UPSCALE_MODEL"
    AUDIO = "AUDIO"
    VIDEO = "VIDEO"
    WEBCAM = "WEBCAM"
    ANY = "*"
    NUMBER = "FLOAT,INT"
    PRIMITIVE = "STRING,FLOAT,INT,BOOLEAN"

    def __ne__(self, value: object) -> bool:
        mine = str(self)
        if mine == "*" or value == "*":
            return False
        if not isinstance(value, str):
            return True
        a, b = frozenset(mine.split(",")), frozenset(value.split(","))
        return not (a <= b or b <= a)

    def __eq__(self, value: object) -> bool:
        return not self.__ne__(value)

    def __hash__(self) -> int:
        return hash(self.value)


class InputTypeOptions(TypedDict, total=False):
    default: Any
    min: float
    max: float
    step: float
    round: float | bool
    multiline: bool
    placeholder: str
    tooltip: str
    lazy: bool
    forceInput: bool
    defaultInput: bool
    label_on: str
    label_off: str
    control_after_generate: bool
    display: Literal["number", "slider", "color"]
    options: list[Any]
    image_upload: bool


class InputTypeDict(TypedDict, total=False):
    required: dict[str, tuple[Any, ...]]
    optional: dict[str, tuple[Any, ...]]
    hidden: dict[str, Any]


class FileLocator(TypedDict):
    filename: str
    subfolder: str
    type: Literal["input", "output", "temp"]


class ComfyNodeABC(ABC):
    """Base for classic nodes that want their attributes spelled out; subclassing is optional."""

    DESCRIPTION: ClassVar[str]
    CATEGORY: ClassVar[str]
    RETURN_TYPES: ClassVar[tuple[Any, ...]]
    RETURN_NAMES: ClassVar[tuple[str, ...]]
    OUTPUT_TOOLTIPS: ClassVar[tuple[str, ...]]
    FUNCTION: ClassVar[str]
    OUTPUT_NODE: ClassVar[bool]
    INPUT_IS_LIST: ClassVar[bool]
    OUTPUT_IS_LIST: ClassVar[tuple[bool, ...]]
    DEPRECATED: ClassVar[bool]
    EXPERIMENTAL: ClassVar[bool]

    @classmethod
    @abstractmethod
    def INPUT_TYPES(cls) -> InputTypeDict:  # noqa: N802 - ComfyUI's name
        """The node's inputs: ``{"required": {...}, "optional": {...}, "hidden": {...}}``."""


class CheckLazyMixin:
    """Default ``check_lazy_status``: every lazy input not yet evaluated is needed."""

    def check_lazy_status(self, **kwargs: Any) -> list[str]:
        return [name for name, value in kwargs.items() if value is None]
