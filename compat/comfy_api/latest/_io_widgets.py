"""Types of ``comfy_api.latest.io`` that can be widgets: ``Boolean``, ``Int``, ``Float``, ``String``,
``Combo`` and ``MultiCombo``, each with the widget options ComfyUI's keyword arguments name.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from ._io_declarations import (
    ComfyTypeI,
    ComfyTypeIO,
    FolderType,
    NumberDisplay,
    Output,
    RemoteOptions,
    UploadType,
    WidgetInput,
    _prune,
    comfytype,
)


@comfytype(io_type="BOOLEAN")
class Boolean(ComfyTypeIO):
    Type = bool

    class Input(WidgetInput):
        def __init__(
            self,
            id: str,
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            default: bool | None = None,
            label_on: str | None = None,
            label_off: str | None = None,
            socketless: bool | None = None,
            force_input: bool | None = None,
            extra_dict: dict[str, Any] | None = None,
            raw_link: bool | None = None,
        ) -> None:
            super().__init__(
                id, display_name, optional, tooltip, lazy, default, socketless, None, force_input, extra_dict, raw_link
            )
            self.label_on, self.label_off = label_on, label_off

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | _prune({"label_on": self.label_on, "label_off": self.label_off})


@comfytype(io_type="INT")
class Int(ComfyTypeIO):
    Type = int

    class Input(WidgetInput):
        def __init__(
            self,
            id: str,
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            default: int | None = None,
            min: int | None = None,
            max: int | None = None,
            step: int | None = None,
            control_after_generate: bool | None = None,
            display_mode: NumberDisplay | None = None,
            socketless: bool | None = None,
            force_input: bool | None = None,
            extra_dict: dict[str, Any] | None = None,
            raw_link: bool | None = None,
        ) -> None:
            super().__init__(
                id, display_name, optional, tooltip, lazy, default, socketless, None, force_input, extra_dict, raw_link
            )
            self.min, self.max, self.step = min, max, step
            self.control_after_generate, self.display_mode = control_after_generate, display_mode

        def as_dict(self) -> dict[str, Any]:
            display = self.display_mode.value if isinstance(self.display_mode, Enum) else self.display_mode
            return super().as_dict() | _prune(
                {
                    "min": self.min,
                    "max": self.max,
                    "step": self.step,
                    "control_after_generate": self.control_after_generate,
                    "display": display,
                }
            )


@comfytype(io_type="FLOAT")
class Float(ComfyTypeIO):
    Type = float

    class Input(WidgetInput):
        def __init__(
            self,
            id: str,
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            default: float | None = None,
            min: float | None = None,
            max: float | None = None,
            step: float | None = None,
            round: float | None = None,
            display_mode: NumberDisplay | None = None,
            socketless: bool | None = None,
            force_input: bool | None = None,
            extra_dict: dict[str, Any] | None = None,
            raw_link: bool | None = None,
        ) -> None:
            super().__init__(
                id, display_name, optional, tooltip, lazy, default, socketless, None, force_input, extra_dict, raw_link
            )
            self.min, self.max, self.step, self.round, self.display_mode = min, max, step, round, display_mode

        def as_dict(self) -> dict[str, Any]:
            display = self.display_mode.value if isinstance(self.display_mode, Enum) else self.display_mode
            return super().as_dict() | _prune(
                {"min": self.min, "max": self.max, "step": self.step, "round": self.round, "display": display}
            )


@comfytype(io_type="STRING")
class String(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(
            self,
            id: str,
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            multiline: bool | None = False,
            placeholder: str | None = None,
            default: str | None = None,
            dynamic_prompts: bool | None = None,
            socketless: bool | None = None,
            force_input: bool | None = None,
            extra_dict: dict[str, Any] | None = None,
            raw_link: bool | None = None,
        ) -> None:
            super().__init__(
                id, display_name, optional, tooltip, lazy, default, socketless, None, force_input, extra_dict, raw_link
            )
            self.multiline, self.placeholder, self.dynamic_prompts = multiline, placeholder, dynamic_prompts

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | _prune(
                {"multiline": self.multiline, "placeholder": self.placeholder, "dynamicPrompts": self.dynamic_prompts}
            )


@comfytype(io_type="COMBO")
class Combo(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(
            self,
            id: str,
            options: list[Any] | type[Enum] | None = None,
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            default: Any = None,
            control_after_generate: bool | None = None,
            upload: UploadType | None = None,
            image_folder: FolderType | None = None,
            remote: RemoteOptions | None = None,
            socketless: bool | None = None,
            extra_dict: dict[str, Any] | None = None,
            raw_link: bool | None = None,
        ) -> None:
            if isinstance(options, type) and issubclass(options, Enum):
                options = [member.value for member in options]
            if isinstance(default, Enum):
                default = default.value
            super().__init__(
                id, display_name, optional, tooltip, lazy, default, socketless, None, None, extra_dict, raw_link
            )
            self.multiselect = False
            self.options = list(options) if options is not None else []
            self.control_after_generate, self.upload = control_after_generate, upload
            self.image_folder, self.remote = image_folder, remote

        def as_dict(self) -> dict[str, Any]:
            upload = {self.upload.value: True} if isinstance(self.upload, UploadType) else {}
            folder = self.image_folder.value if isinstance(self.image_folder, Enum) else self.image_folder
            return (
                super().as_dict()
                | _prune(
                    {
                        "multiselect": self.multiselect or None,
                        "control_after_generate": self.control_after_generate,
                        "image_folder": folder,
                        "remote": self.remote.as_dict() if self.remote else None,
                    }
                )
                | upload
            )

    class Output(Output):
        def __init__(
            self,
            id: str | None = None,
            display_name: str | None = None,
            options: list[Any] | None = None,
            tooltip: str | None = None,
            is_output_list: bool = False,
        ) -> None:
            super().__init__(id, display_name, tooltip, is_output_list)
            self.options = list(options or [])


@comfytype(io_type="COMBO")
class MultiCombo(ComfyTypeI):
    Type = list[str]

    class Input(Combo.Input):
        def __init__(
            self,
            id: str,
            options: list[Any],
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            default: list[Any] | None = None,
            placeholder: str | None = None,
            chip: bool | None = None,
            control_after_generate: bool | None = None,
            socketless: bool | None = None,
            extra_dict: dict[str, Any] | None = None,
            raw_link: bool | None = None,
        ) -> None:
            super().__init__(
                id,
                options,
                display_name,
                optional,
                tooltip,
                lazy,
                default,
                control_after_generate,
                socketless=socketless,
                extra_dict=extra_dict,
                raw_link=raw_link,
            )
            self.multiselect = True
            self.placeholder, self.chip = placeholder, chip

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | _prune({"multi_select": {"placeholder": self.placeholder, "chip": self.chip}})
