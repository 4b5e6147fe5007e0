"""The building blocks of ``comfy_api.latest.io``: input and output declarations, the socket-type
bases they nest in, ``comfytype`` and the option enums widgets take.

Kept apart from the concrete types so that ``_io_widgets`` and ``_io_sockets`` build on one
definition of what a declaration is and how it becomes a classic (V1) options dict.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
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

    def __init__(
        self,
        route: str,
        refresh_button: bool,
        control_after_refresh: Literal["first", "last"] = "first",
        timeout: int | None = None,
        max_retries: int | None = None,
        refresh: int | None = None,
    ) -> None:
        self.route, self.refresh_button, self.control_after_refresh = route, refresh_button, control_after_refresh
        self.timeout, self.max_retries, self.refresh = timeout, max_retries, refresh

    def as_dict(self) -> dict[str, Any]:
        return _prune(
            {
                "route": self.route,
                "refresh_button": self.refresh_button,
                "control_after_refresh": self.control_after_refresh,
                "timeout": self.timeout,
                "max_retries": self.max_retries,
                "refresh": self.refresh,
            }
        )


# -- inputs and outputs ---------------------------------------------------------------------
class Input:
    """One declared input. ``io_type`` is set by the type the class is nested in."""

    io_type: ClassVar[str] = "*"

    def __init__(
        self,
        id: str,
        display_name: str | None = None,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool | None = None,
        extra_dict: dict[str, Any] | None = None,
        raw_link: bool | None = None,
    ) -> None:
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = dict(extra_dict or {})
        self.rawLink = raw_link

    def get_io_type(self) -> str:
        return self.io_type

    def get_all(self) -> list[Input]:
        """This declaration and those it brings (a dynamic input's sub-inputs)."""
        return [self]

    def as_dict(self) -> dict[str, Any]:
        """The V1 options dict (``INPUT_TYPES()[...][name][1]``)."""
        return _prune(
            {"display_name": self.display_name, "tooltip": self.tooltip, "lazy": self.lazy, "rawLink": self.rawLink}
        ) | _prune(self.extra_dict)


class WidgetInput(Input):
    """An input that can also be a widget (a value typed into the node)."""

    def __init__(
        self,
        id: str,
        display_name: str | None = None,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool | None = None,
        default: Any = None,
        socketless: bool | None = None,
        widget_type: str | None = None,
        force_input: bool | None = None,
        extra_dict: dict[str, Any] | None = None,
        raw_link: bool | None = None,
    ) -> None:
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def get_io_type(self) -> str:
        return self.widget_type if self.widget_type is not None else self.io_type

    def as_dict(self) -> dict[str, Any]:
        return super().as_dict() | _prune(
            {
                "default": self.default,
                "socketless": self.socketless,
                "widgetType": self.widget_type,
                "forceInput": self.force_input,
            }
        )


class Output:
    """One declared output; ``display_name`` defaults to the id, the id to the type."""

    io_type: ClassVar[str] = "*"

    def __init__(
        self,
        id: str | None = None,
        display_name: str | None = None,
        tooltip: str | None = None,
        is_output_list: bool = False,
    ) -> None:
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
                setattr(
                    cls,
                    name,
                    type(
                        name,
                        (nested,),
                        {
                            "io_type": io_type,
                            "__module__": cls.__module__,
                            "__qualname__": f"{cls.__qualname__}.{name}",
                        },
                    ),
                )
        return cls

    return decorate


def Custom(io_type: str) -> type[ComfyTypeIO]:  # noqa: N802 - ComfyUI's name
    """A type for a socket name of the pack's own (``io.Custom("MY_DATA")``)."""
    return comfytype(io_type)(type(io_type, (ComfyTypeIO,), {"__module__": __name__}))  # type: ignore[return-value]
