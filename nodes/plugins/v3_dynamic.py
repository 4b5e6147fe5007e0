"""ComfyUI's dynamic v3 inputs on the engine: which inputs one node of a prompt has, and the
nested values its classmethods receive.

A v3 class declares ``io.Autogrow``, ``io.DynamicCombo`` and ``io.DynamicSlot`` inputs as one
input each, of type ``COMFY_AUTOGROW_V3`` / ``COMFY_DYNAMICCOMBO_V3`` /
``COMFY_DYNAMICSLOT_V3``, whose options hold the classic (V1) declarations of what they may
bring (what /object_info publishes); Weft's own nodes declare the same (``nodes/dynamic.py``). A prompt names what they
brought flattened, joined by dots: ``images.image0``, ``resize_type.multiplier``,
``combo.subcombo.float_x``. :func:`expand` works out, from one node's own inputs, the
flattened inputs it declares (with their types, ranges and whether they are required), which
validation checks like any others; :func:`nest` rebuilds the flat values into what ComfyUI
hands to ``execute``::

    {"images": {"image0": ..., "image1": ...},
     "resize_type": {"resize_type": "scale by", "multiplier": 1.5},
     "hint": {"hint": <the slot's value>, "strength": 0.5}}    # a DynamicSlot, once given

What differs from ComfyUI 0.8.0 (which does not check it): a DynamicCombo whose value is no
option key is reported as a value not in the list. An Autogrow's ``min`` is not enforced by
either. A DynamicSlot is typed by its ``slotType`` (ComfyUI's server keeps the slot's
``COMFY_DYNAMICSLOT_V3`` as its type). ``io.MatchType`` inputs become inputs
typed by their allowed types with a template (:attr:`engine.schema.InputSpec.template`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.prompt import is_link
from engine.schema import InputSpec, OutputSpec

from .classic import convert_input

AUTOGROW = "COMFY_AUTOGROW_V3"
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
MATCH_TYPE = "COMFY_MATCHTYPE_V3"
DYNAMIC_SLOT = "COMFY_DYNAMICSLOT_V3"
DYNAMIC_TYPES = frozenset({AUTOGROW, DYNAMIC_COMBO, DYNAMIC_SLOT})

Path = tuple[str, ...]


@dataclass
class Layout:
    """The inputs one node has, and where each flattened one goes in the nested values."""

    specs: list[InputSpec] = field(default_factory=list)
    #: flattened name -> keys down to its place (``("resize_type", "multiplier")``)
    paths: dict[str, Path] = field(default_factory=dict)
    #: flattened names passed as ``None`` when absent (an option's inputs, as in ComfyUI)
    always: set[str] = field(default_factory=set)


def spec_of(name: str, declared: Any, kind: str) -> InputSpec:
    """One V1 declaration as an engine input; a MatchType becomes its allowed types plus its template."""
    spec = convert_input(name, declared, kind)
    if spec.type != MATCH_TYPE:
        return spec
    template = spec.options.get("template")
    template = template if isinstance(template, Mapping) else {}
    return dataclasses.replace(
        spec, type=str(template.get("allowed_types") or "*"), template=str(template.get("template_id") or name)
    )


def output_spec_of(output: Any) -> OutputSpec:
    """One v3 output declaration as an engine output (a MatchType's carries its template)."""
    kind = output.get_io_type()
    name = str(output.display_name or kind)
    template = getattr(output, "template", None) if kind == MATCH_TYPE else None
    if template is None:
        return OutputSpec(kind, name, bool(output.is_output_list), output.tooltip)
    described = template.as_dict()
    return OutputSpec(
        str(described.get("allowed_types") or "*"),
        name,
        bool(output.is_output_list),
        output.tooltip,
        str(described["template_id"]),
    )


def is_dynamic(specs: Sequence[InputSpec]) -> bool:
    return any(spec.type in DYNAMIC_TYPES for spec in specs)


def expand(specs: Sequence[InputSpec], live: Mapping[str, Any]) -> Layout:
    """The inputs of one node whose own inputs (values and links, by flattened name) are ``live``."""
    layout = Layout()
    for spec in specs:
        if spec.type in DYNAMIC_TYPES:
            _dynamic(layout, (spec.name,), spec.type, spec.options, spec.kind, live)
        else:
            layout.specs.append(spec)
    return layout


def _dynamic(layout: Layout, path: Path, kind_name: str, options: Mapping[str, Any], kind: str, live: Any) -> None:
    if kind_name == AUTOGROW:
        _grow(layout, path, options, kind, live)
    elif kind_name == DYNAMIC_SLOT:
        _slot(layout, path, options, live)
    else:
        _combo(layout, path, options, kind, live)


def _entry(layout: Layout, path: Path, declared: Any, kind: str, live: Mapping[str, Any]) -> str | None:
    """One declaration brought by a dynamic input; its flattened name (``None`` for a nested dynamic one)."""
    head = declared[0] if isinstance(declared, (list, tuple)) and declared else declared
    if isinstance(head, str) and head in DYNAMIC_TYPES:
        options = declared[1] if len(declared) > 1 and isinstance(declared[1], Mapping) else {}
        _dynamic(layout, path, head, options, kind, live)
        return None
    name = ".".join(path)
    layout.specs.append(spec_of(name, declared, kind))
    layout.paths[name] = path
    return name


def _grow(layout: Layout, path: Path, options: Mapping[str, Any], kind: str, live: Mapping[str, Any]) -> None:
    template = options.get("template") or {}
    groups = template.get("input") or {}
    declared = next((entry for group in groups.values() for entry in group.values()), None)
    if declared is None:
        return
    if "names" in template:
        names = [str(n) for n in template["names"]]
    else:
        names = [f"{template.get('prefix', '')}{i}" for i in range(int(template.get("max", 10)))]
    # only the copies given are inputs: like ComfyUI's server, ``min`` is not enforced (its
    # frontend shows that many sockets), so a workflow with fewer copies runs here as there
    for name in names:
        if ".".join((*path, name)) in live:
            _entry(layout, (*path, name), declared, "optional", live)


def _brought(layout: Layout, path: Path, inputs: Mapping[str, Any], live: Mapping[str, Any]) -> None:
    """The inputs a chosen option or a given slot brings; passed as ``None`` when left out."""
    for group, entries in inputs.items():
        if group not in ("required", "optional"):
            continue
        for sub, declared in entries.items():
            flat = _entry(layout, (*path, str(sub)), declared, group, live)
            if flat is not None:
                layout.always.add(flat)


def _slot(layout: Layout, path: Path, options: Mapping[str, Any], live: Mapping[str, Any]) -> None:
    """A DynamicSlot: an optional socket of ``slotType``; once given, its own inputs join."""
    name = ".".join(path)
    own = {k: options[k] for k in ("tooltip", "display_name", "forceInput") if k in options}
    slot_type = str(options.get("slotType") or "*")
    slot_type = "*" if slot_type == MATCH_TYPE else slot_type  # its template is not published
    layout.specs.append(InputSpec(name, slot_type, "optional", own, bool(options.get("lazy"))))
    if name in live:
        _brought(layout, path, options.get("inputs") or {}, live)
    layout.paths[name] = (*path, path[-1])  # after its inputs: ComfyUI's key order


def _combo(layout: Layout, path: Path, options: Mapping[str, Any], kind: str, live: Mapping[str, Any]) -> None:
    name = ".".join(path)
    choices = [o.get("key") for o in options.get("options") or () if isinstance(o, Mapping)]
    shown = {k: options[k] for k in ("tooltip", "display_name") if k in options}
    layout.specs.append(InputSpec(name, "COMBO", kind, {**shown, "choices": choices}))  # type: ignore[arg-type]
    chosen = live.get(name)
    for option in options.get("options") or ():
        if is_link(chosen) or not isinstance(option, Mapping) or option.get("key") != chosen:
            continue
        _brought(layout, path, option.get("inputs") or {}, live)
        break
    layout.paths[name] = (*path, path[-1])


def nest(values: Mapping[str, Any], layout: Layout, tagged: bool = False) -> dict[str, Any]:
    """Flat values (by flattened name) as the nested values ComfyUI passes; ``tagged`` gives
    each nested value as ``(value, flattened name)``, as ComfyUI does for ``check_lazy_status``
    so a node can name what it wants evaluated."""
    nested = {name: value for name, value in values.items() if name not in layout.paths}
    for name, path in layout.paths.items():
        if name not in values and name not in layout.always:
            continue
        value = values.get(name)
        _place(nested, path[:-1])[path[-1]] = (value, name) if tagged else value
    return nested


def _place(nested: dict[str, Any], path: Path) -> dict[str, Any]:
    """The dict at ``path`` (made on the way)."""
    current = nested
    for key in path:
        below = current.get(key)
        if not isinstance(below, dict):
            below = current[key] = {}
        current = below
    return current
