"""Dynamic inputs of ``comfy_api.latest.io``: ``Autogrow`` (a socket that offers a fresh copy of
itself as each copy is linked), ``DynamicCombo`` (a combo whose chosen option brings inputs
of its own) and ``DynamicSlot`` (an optional socket that brings inputs of its own once it is
given).

These are declarations only. Each publishes itself as one input in the classic (V1) shape
ComfyUI's /object_info gives it: its type name (``COMFY_AUTOGROW_V3``,
``COMFY_DYNAMICCOMBO_V3``, ``COMFY_DYNAMICSLOT_V3``) with the V1 dicts of the inputs it may bring nested in its options.
The adapter (``nodes/plugins/v3_dynamic.py``) reads that same shape back to work out, for one
node of a prompt, the flattened inputs it has (``images.image0``, ``resize_type.multiplier``)
and the nested values its classmethods receive, so a client and the engine read one
description.
"""

from __future__ import annotations

import copy
from enum import Enum
from typing import Any

from ._io_declarations import ComfyTypeI, Input, Output, WidgetInput, _prune, comfytype
from ._io_widgets import Combo


class DynamicInput(Input):
    """Base of inputs that stand for a set of inputs decided per node."""


class DynamicOutput(Output):
    """Base of outputs decided per node (none exist yet; kept for ComfyUI's name)."""


def v1_entry(item: Input) -> tuple[str, dict[str, Any]]:
    """One declaration as ``(type, options)``; a combo carries its choices in ``options``, the
    spelling ComfyUI uses inside dynamic inputs."""
    options = dict(item.as_dict())
    if isinstance(item, Combo.Input):
        options["multiselect"] = bool(item.multiselect)
        options["options"] = list(item.options)
    return item.get_io_type(), options


def input_dict_v1(inputs: list[Input]) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    """Declarations as an ``INPUT_TYPES``-style dict (``"required"`` always present)."""
    grouped: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {"required": {}}
    for item in inputs:
        grouped.setdefault("optional" if item.optional else "required", {})[item.id] = v1_entry(item)
    return grouped


@comfytype(io_type="COMFY_AUTOGROW_V3")
class Autogrow(ComfyTypeI):
    """Copies of one template input, named by a prefix and a counter (``image0``, ``image1``...)
    or from a list of names, handed to ``execute`` as one dict of the linked copies."""

    Type = dict[str, Any]
    _MaxNames = 100

    class _AutogrowTemplate:
        def __init__(self, input: Input) -> None:
            if isinstance(input, DynamicInput):
                raise ValueError(f"Autogrow template {input.id!r}: a dynamic input cannot be a template")
            self.input = copy.copy(input)
            if isinstance(self.input, WidgetInput):
                self.input.force_input = True  # copies are sockets; a widget per copy would be odd
            self.names: list[str] = []
            self.min = 0

        def get_all(self) -> list[Input]:
            copies = []
            for name in self.names:
                named = copy.copy(self.input)
                named.id = name
                copies.append(named)
            return copies

        def as_dict(self) -> dict[str, Any]:
            return {"input": input_dict_v1([self.input])}

    class TemplatePrefix(_AutogrowTemplate):
        def __init__(self, input: Input, prefix: str, min: int = 1, max: int = 10) -> None:
            super().__init__(input)
            if min < 0 or not 1 <= max <= Autogrow._MaxNames:
                raise ValueError(f"Autogrow {prefix!r}: need min >= 0 and 1 <= max <= {Autogrow._MaxNames}")
            self.prefix, self.min, self.max = prefix, min, max
            self.names = [f"{prefix}{i}" for i in range(max)]

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | {"prefix": self.prefix, "min": self.min, "max": self.max}

    class TemplateNames(_AutogrowTemplate):
        def __init__(self, input: Input, names: list[str], min: int = 1) -> None:
            super().__init__(input)
            if min < 0:
                raise ValueError(f"Autogrow {names!r}: need min >= 0")
            self.names = list(names)[: Autogrow._MaxNames]
            self.min = min

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | {"names": list(self.names), "min": self.min}

    class Input(DynamicInput):
        def __init__(
            self,
            id: str,
            template: Autogrow.TemplatePrefix | Autogrow.TemplateNames,
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            extra_dict: dict[str, Any] | None = None,
        ) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
            self.template = template

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | {"template": self.template.as_dict()}

        def get_all(self) -> list[Input]:
            return [self, *self.template.get_all()]


@comfytype(io_type="COMFY_DYNAMICCOMBO_V3")
class DynamicCombo(ComfyTypeI):
    """A combo of option keys; ``execute`` gets ``{<combo id>: <chosen key>, <sub-input>: ...}``
    holding the chosen option's inputs."""

    Type = dict[str, Any]

    class Option:
        def __init__(self, key: str, inputs: list[Input]) -> None:
            self.key = key.value if isinstance(key, Enum) else key
            self.inputs = list(inputs)

        def as_dict(self) -> dict[str, Any]:
            return {"key": self.key, "inputs": input_dict_v1(self.inputs)}

    class Input(DynamicInput):
        def __init__(
            self,
            id: str,
            options: list[DynamicCombo.Option],
            display_name: str | None = None,
            optional: bool = False,
            tooltip: str | None = None,
            lazy: bool | None = None,
            extra_dict: dict[str, Any] | None = None,
        ) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
            self.options = list(options)

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | {"options": [option.as_dict() for option in self.options]}

        def get_all(self) -> list[Input]:
            return [self, *(item for option in self.options for item in option.inputs)]


@comfytype(io_type="COMFY_DYNAMICSLOT_V3")
class DynamicSlot(ComfyTypeI):
    """A socket, always optional, whose linking brings ``inputs`` of its own (named
    ``<slot>.<input>``). Once the slot is given, ``execute`` gets ``{<slot>: {<slot>: value,
    <input>: value, ...}}`` (an input left out as ``None``); before, it gets nothing for it."""

    Type = dict[str, Any]

    class Input(DynamicInput):
        def __init__(
            self,
            slot: Input,
            inputs: list[Input],
            display_name: str | None = None,
            tooltip: str | None = None,
            lazy: bool | None = None,
            extra_dict: dict[str, Any] | None = None,
        ) -> None:
            if isinstance(slot, DynamicInput):
                raise ValueError(f"DynamicSlot {slot.id!r}: a dynamic input cannot be the slot")
            self.slot = copy.copy(slot)
            # the slot's own options win; the DynamicSlot's fill the gaps (ComfyUI's rule)
            for name, given in (("display_name", display_name), ("tooltip", tooltip), ("lazy", lazy)):
                if getattr(self.slot, name) is None:
                    setattr(self.slot, name, given)
            self.slot.extra_dict = self.slot.extra_dict or dict(extra_dict or {})
            super().__init__(
                slot.id, self.slot.display_name, True, self.slot.tooltip, self.slot.lazy, self.slot.extra_dict
            )
            self.inputs = list(inputs)
            self.force_input: bool | None = None
            if isinstance(self.slot, WidgetInput):  # a socket only: a widget would always be "given"
                self.force_input = self.slot.force_input = True

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | _prune(
                {
                    "slotType": str(self.slot.get_io_type()),
                    "inputs": input_dict_v1(self.inputs),
                    "forceInput": self.force_input,
                }
            )

        def get_all(self) -> list[Input]:
            return [self.slot, *self.inputs]
