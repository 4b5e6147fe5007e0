"""ComfyUI's dynamic inputs for Weft's own nodes: a socket that grows copies of itself
(:func:`Autogrow`), a combo whose chosen option brings inputs of its own (:func:`DynamicCombo`)
and type variables (:func:`MatchType`, :func:`MatchOutput`).

ComfyUI writes some core nodes on these (BatchImagesNode, ResizeImageMaskNode,
ComfySwitchNode). Weft's versions must publish the /object_info entries ComfyUI's
``get_v1_info`` gives them, or ComfyUI's frontend and API clients would draw and fill other
sockets. So the declarations here produce that same classic (V1) shape, and the engine reads
it back exactly as it does for a v3 pack's node (``nodes/plugins/v3_dynamic.py``): one node's
inputs are flattened (``images.image0``, ``resize_type.multiplier``) for validation, and
``run`` receives them nested, as ComfyUI's ``execute`` does::

    run(images={"image0": ..., "image1": ...})
    run(resize_type={"resize_type": "scale by multiplier", "multiplier": 1.5}, ...)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from engine.schema import InputSpec, NodeSchema, OutputSpec

from .api import Node, NodeClassDefinition
from .plugins.v3_dynamic import AUTOGROW, DYNAMIC_COMBO, MATCH_TYPE, expand, is_dynamic, nest

__all__ = ["Autogrow", "DynamicCombo", "MatchType", "MatchOutput", "DynamicNodeDefinition", "node_definition"]


def v1_entry(spec: InputSpec) -> list[Any]:
    """A declaration nested in a dynamic input, in ComfyUI's spelling there: a combo as
    ``["COMBO", {"options": [...], "multiselect": false}]``, a type variable as a MatchType."""
    options = {k: v for k, v in spec.options.items() if k != "choices"}
    if spec.lazy:
        options["lazy"] = True
    if spec.type == "COMBO":
        return ["COMBO", {**options, "multiselect": False, "options": list(spec.options.get("choices") or [])}]
    if spec.template is not None:
        return [MATCH_TYPE, {**options, "template": {"template_id": spec.template, "allowed_types": spec.type}}]
    return [spec.type, options]


def grouped_v1(specs: Sequence[InputSpec]) -> dict[str, dict[str, list[Any]]]:
    """Declarations as an ``INPUT_TYPES``-style dict (``"required"`` always present, as in ComfyUI)."""
    groups: dict[str, dict[str, list[Any]]] = {"required": {}}
    for spec in specs:
        groups.setdefault(spec.kind, {})[spec.name] = v1_entry(spec)
    return groups


def _shown(tooltip: str | None) -> dict[str, Any]:
    return {"tooltip": tooltip} if tooltip is not None else {}


def Autogrow(
    name: str,
    template: InputSpec,
    *,
    prefix: str | None = None,
    names: Sequence[str] | None = None,
    min: int = 1,
    max: int = 10,
    optional: bool = False,
    tooltip: str | None = None,
) -> InputSpec:
    """Copies of ``template`` named ``<prefix>0``, ``<prefix>1``... up to ``max`` (or the given
    ``names``); ``run`` gets ``{copy name: value}`` of the copies linked, in that order."""
    if (prefix is None) == (names is None):
        raise ValueError(f"Autogrow {name!r}: give a prefix or a list of names")
    if min < 0 or (names is None and not 1 <= max <= 100):
        raise ValueError(f"Autogrow {name!r}: need min >= 0 and 1 <= max <= 100")
    described: dict[str, Any] = {"input": grouped_v1([template])}
    if names is not None:
        described |= {"names": list(names)[:100], "min": min}
    else:
        described |= {"prefix": prefix, "min": min, "max": max}
    kind = "optional" if optional else "required"
    return InputSpec(name, AUTOGROW, kind, {**_shown(tooltip), "template": described})


def DynamicCombo(
    name: str,
    options: Sequence[tuple[str, Sequence[InputSpec]]],
    *,
    optional: bool = False,
    tooltip: str | None = None,
) -> InputSpec:
    """A combo of option keys; the chosen option's inputs join the node (``<name>.<input>``)
    and ``run`` gets ``{<name>: key, <input>: value, ...}``."""
    keys = [key for key, _ in options]
    if len(set(keys)) != len(keys):
        raise ValueError(f"DynamicCombo {name!r}: an option key is given twice")
    described = [{"key": key, "inputs": grouped_v1(inputs)} for key, inputs in options]
    kind = "optional" if optional else "required"
    return InputSpec(name, DYNAMIC_COMBO, kind, {**_shown(tooltip), "options": described})


def MatchType(
    name: str,
    template: str,
    allowed: Sequence[str] = ("*",),
    *,
    optional: bool = False,
    lazy: bool = False,
    tooltip: str | None = None,
) -> InputSpec:
    """A socket typed by the type variable ``template``: the links into a node's inputs that
    share it must carry one of the ``allowed`` types, and the same one."""
    kind = "optional" if optional else "required"
    return InputSpec(name, ",".join(allowed), kind, _shown(tooltip), lazy, template=template)


def MatchOutput(template: str, allowed: Sequence[str] = ("*",), name: str = "MATCHTYPE") -> OutputSpec:
    """An output of whatever type the node's inputs bound ``template`` to."""
    return OutputSpec(",".join(allowed), name, template=template)


class DynamicNodeDefinition(NodeClassDefinition):
    """A :class:`Node` class with dynamic inputs: a schema per node, nested values in ``run``."""

    def node_schema(self, inputs: Mapping[str, Any]) -> NodeSchema:
        """The inputs one node has, given its own (:func:`engine.schema.own_schema`)."""
        schema = self.schema
        return dataclasses.replace(schema, inputs=tuple(expand(schema.inputs, inputs).specs))

    def nested(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return nest(values, expand(self.schema.inputs, values))

    def filter_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return super().filter_args(self.nested(args))

    def call_args(self, args: Mapping[str, Any]) -> Mapping[str, Any]:
        return super().call_args(self.nested(args))

    def validate(self, inputs: Mapping[str, Any], input_types: Mapping[str, str] | None = None) -> bool | str:
        return super().validate(self.nested(inputs), input_types)

    def fingerprint(self, inputs: Mapping[str, Any]) -> Any:
        return super().fingerprint(self.nested(inputs))


def node_definition(cls: type[Node], origin: Mapping[str, str] | None = None) -> NodeClassDefinition:
    """The engine's definition of a Weft node class: per-node schemas where it has dynamic inputs."""
    if is_dynamic(cls.inputs):
        return DynamicNodeDefinition(cls, origin)
    return NodeClassDefinition(cls, origin)
