"""Node schemas in ComfyUI's /object_info shape, so third-party clients work unchanged."""

from __future__ import annotations

from typing import Any

from engine.schema import InputSpec, NodeSchema

#: how ComfyUI names a socket typed by a template (a type variable; its v3 ``io.MatchType``)
MATCH_TYPE = "COMFY_MATCHTYPE_V3"


def input_entry(spec: InputSpec) -> list[Any]:
    options = {k: v for k, v in spec.options.items() if k != "choices"}
    if spec.lazy:
        options["lazy"] = True
    if spec.type == "COMBO":
        return [list(spec.options.get("choices") or []), options]
    if spec.template is not None:
        options.setdefault("template", {"template_id": spec.template, "allowed_types": spec.type})
        return [MATCH_TYPE, options]
    return [spec.type, options] if options else [spec.type]


def describe(schema: NodeSchema, python_module: str = "nodes") -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {"required": {}, "optional": {}, "hidden": {}}
    order: dict[str, list[str]] = {"required": [], "optional": []}
    for spec in schema.inputs:
        if spec.kind == "hidden":
            groups["hidden"][spec.name] = spec.type
            continue
        groups[spec.kind][spec.name] = input_entry(spec)
        order[spec.kind].append(spec.name)
    inputs = {k: v for k, v in groups.items() if v or k == "required"}
    info: dict[str, Any] = {
        "input": inputs,
        "input_order": {k: v for k, v in order.items() if v or k == "required"},
        "output": [o.type if o.template is None else MATCH_TYPE for o in schema.outputs],
        "output_is_list": [o.is_list for o in schema.outputs],
        "output_name": [o.name for o in schema.outputs],
        "output_tooltips": [o.tooltip for o in schema.outputs],
        "name": schema.name,
        "display_name": schema.display_name,
        "description": schema.description,
        "python_module": python_module,
        "category": schema.category,
        "output_node": schema.output_node,
        "deprecated": schema.deprecated,
        "experimental": schema.experimental,
    }
    if any(o.template is not None for o in schema.outputs):
        info["output_matchtypes"] = [o.template for o in schema.outputs]
    if schema.origin:
        info["pack"] = {"name": schema.origin.get("pack"), "version": schema.origin.get("version")}
    return info


def python_module_of(schema: NodeSchema) -> str:
    pack = schema.origin.get("pack") if schema.origin else None
    if not pack or pack == "weft":
        return "nodes"
    return f"custom_nodes.{pack}"
