"""The classic (V1) /object_info entry of a ComfyUI v3 input, read from the source with :mod:`ast`.

For most inputs the parity table keeps a few facts (type, default, range, choices). Inputs
whose entry is a structure (``io.MatchType``'s template, ``io.Autogrow``'s template input,
``io.DynamicCombo``'s options with their own inputs, ``io.DynamicSlot``) are compared whole, so
the table records the entry ComfyUI's ``get_v1_info`` gives them. This module rebuilds it
from the ``io.<Type>.Input(...)`` call the way ComfyUI's ``as_dict`` methods do: keyword
options under their V1 names with ``None`` left out, ``multiline: false`` for strings,
``multiselect: false`` and ``options`` for combos, ``forceInput`` on an Autogrow's widget
template, ``",".join`` of a MultiType's types.

Names inside ``define_schema`` are followed to what they stand for: its local variables
(``template = io.MatchType.Template(...)``), ``cls.<attribute>`` of the node class, members of
the file's enums (``ResizeType.SCALE_BY``) and the constants of
:mod:`weft_tools.comfyui_node_table`. Anything else makes the entry unresolvable (``None``).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

#: io types whose V1 entry is a structure, compared whole
STRUCTURED = frozenset({"COMFY_MATCHTYPE_V3", "COMFY_AUTOGROW_V3", "COMFY_DYNAMICCOMBO_V3", "COMFY_DYNAMICSLOT_V3"})
#: ``io.<Type>.Input`` keyword -> V1 option name
_KEYWORDS = {
    "display_name": "display_name",
    "tooltip": "tooltip",
    "lazy": "lazy",
    "raw_link": "rawLink",
    "default": "default",
    "socketless": "socketless",
    "force_input": "forceInput",
    "min": "min",
    "max": "max",
    "step": "step",
    "round": "round",
    "control_after_generate": "control_after_generate",
    "multiline": "multiline",
    "placeholder": "placeholder",
    "label_on": "label_on",
    "label_off": "label_off",
}
_WIDGETS = frozenset({"Int", "Float", "String", "Boolean", "Combo"})
#: the second positional argument, by io class
_SECOND = {"Combo": "options", "MatchType": "template", "MultiType": "types", "Autogrow": "template"}
_SECOND |= {"DynamicCombo": "options"}

Resolve = Callable[[ast.AST], Any]


class Unresolved(Exception):
    """A value the source computes at run time."""


class Scope:
    """What names mean inside one node class's ``define_schema``."""

    def __init__(
        self,
        value: Callable[[ast.AST], Any],
        unresolved: object,
        classes: dict[str, ast.ClassDef],
        cls: ast.ClassDef,
        fn: ast.FunctionDef,
        types: dict[str, str],
    ) -> None:
        self._value, self._unresolved, self.types = value, unresolved, types
        self.members = {name: _literal_attrs(c, value, unresolved) for name, c in classes.items()}
        self.own = self.members.get(cls.name, {})
        self.locals: dict[str, ast.AST] = {}
        for stmt in ast.walk(fn):
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                self.locals[stmt.targets[0].id] = stmt.value

    def node(self, node: ast.AST) -> ast.AST:
        """A local variable's expression in place of its name."""
        seen = 0
        while isinstance(node, ast.Name) and node.id in self.locals and seen < 10:
            node, seen = self.locals[node.id], seen + 1
        return node

    def value(self, node: ast.AST | None) -> Any:
        if node is None:
            raise Unresolved
        node = self.node(node)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = self.own if node.value.id == "cls" else self.members.get(node.value.id)
            if owner is not None and node.attr in owner:
                return owner[node.attr]
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.value(item) for item in node.elts]
        found = self._value(node)
        if found is self._unresolved:
            raise Unresolved
        return found

    def io_type(self, node: ast.AST) -> str:
        """``io.Image`` -> ``"IMAGE"``."""
        name = (dotted(self.node(node)) or "").rsplit(".", 1)[-1]
        if name not in self.types:
            raise Unresolved
        return self.types[name]


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a name or attribute chain, ``None`` for anything else (a call, a subscript)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _literal_attrs(cls: ast.ClassDef, value: Callable[[ast.AST], Any], unresolved: object) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            literal = value(stmt.value)
            if literal is not unresolved:
                found[stmt.targets[0].id] = literal
    return found


def _arguments(call: ast.Call, positional: tuple[str, ...]) -> dict[str, ast.AST]:
    named = dict(zip(positional, call.args, strict=False))
    named.update({kw.arg: kw.value for kw in call.keywords if kw.arg})
    return named


def _io_class(call: ast.AST, suffix: str) -> str | None:
    parts = (dotted(call.func) or "").split(".") if isinstance(call, ast.Call) else []
    return parts[-2] if len(parts) >= 2 and parts[-1] == suffix else None


def template_of(node: ast.AST, scope: Scope) -> dict[str, Any]:
    call = scope.node(node)
    if not isinstance(call, ast.Call) or _io_class(call, "Template") != "MatchType":
        raise Unresolved
    args = _arguments(call, ("template_id", "allowed_types"))
    allowed = args.get("allowed_types")
    if allowed is None:
        kinds = ["*"]
    else:
        allowed = scope.node(allowed)
        kinds = (
            [scope.io_type(item) for item in allowed.elts]
            if isinstance(allowed, ast.List)
            else [scope.io_type(allowed)]
        )
    return {"template_id": scope.value(args["template_id"]), "allowed_types": ",".join(kinds)}


def _grouped(items: ast.AST, scope: Scope) -> dict[str, dict[str, list[Any]]]:
    items = scope.node(items)
    if not isinstance(items, (ast.List, ast.Tuple)):
        raise Unresolved
    groups: dict[str, dict[str, list[Any]]] = {"required": {}}
    for item in items.elts:
        item = scope.node(item)
        if not isinstance(item, ast.Call):
            raise Unresolved
        name, entry, optional = v1_input(item, scope)
        groups.setdefault("optional" if optional else "required", {})[name] = entry
    return groups


def _autogrow(node: ast.AST, scope: Scope) -> dict[str, Any]:
    call = scope.node(node)
    kind = _io_class(call, "TemplatePrefix") or _io_class(call, "TemplateNames")
    if not isinstance(call, ast.Call) or kind != "Autogrow":
        raise Unresolved
    prefix = (dotted(call.func) or "").endswith("TemplatePrefix")
    args = _arguments(call, ("input", "prefix", "min", "max") if prefix else ("input", "names", "min"))
    template = scope.node(args["input"])
    if not isinstance(template, ast.Call):
        raise Unresolved
    name, entry, optional = v1_input(template, scope)
    if _io_class(template, "Input") in _WIDGETS:
        entry[1]["forceInput"] = True
    described: dict[str, Any] = {"input": {"optional" if optional else "required": {name: entry}}}
    if prefix:
        described["prefix"] = scope.value(args["prefix"])
        described["min"] = scope.value(args["min"]) if "min" in args else 1
        described["max"] = scope.value(args["max"]) if "max" in args else 10
    else:
        described["names"] = scope.value(args["names"])[:100]
        described["min"] = scope.value(args["min"]) if "min" in args else 1
    return described


def _dynamic_options(node: ast.AST, scope: Scope) -> list[dict[str, Any]]:
    options = scope.node(node)
    if not isinstance(options, ast.List):
        raise Unresolved
    described = []
    for option in options.elts:
        option = scope.node(option)
        if not isinstance(option, ast.Call) or _io_class(option, "Option") != "DynamicCombo":
            raise Unresolved
        args = _arguments(option, ("key", "inputs"))
        described.append({"key": scope.value(args["key"]), "inputs": _grouped(args["inputs"], scope)})
    return described


def v1_input(call: ast.Call, scope: Scope) -> tuple[str, list[Any], bool]:
    """``(id, [io type, options], optional)`` of one ``io.<Type>.Input(...)`` call."""
    io_class = _io_class(call, "Input")
    if io_class is None or io_class not in scope.types and io_class != "MultiType":
        raise Unresolved
    second = _SECOND.get(io_class)
    args = _arguments(call, ("id", second) if second else ("id",))
    options: dict[str, Any] = {}
    for keyword, v1_name in _KEYWORDS.items():
        if keyword in args:
            value = scope.value(args[keyword])
            if value is not None:
                options[v1_name] = value
    io_type = scope.types.get(io_class, "")
    if io_class == "String":
        options.setdefault("multiline", False)
    elif io_class == "Combo":
        options |= {"multiselect": False, "options": scope.value(args["options"])}
    elif io_class == "MatchType":
        options["template"] = template_of(args["template"], scope)
    elif io_class == "MultiType":
        types = scope.node(args["types"])
        io_type = ",".join(dict.fromkeys(scope.io_type(t) for t in getattr(types, "elts", ())))
    elif io_class == "Autogrow":
        options["template"] = _autogrow(args["template"], scope)
    elif io_class == "DynamicCombo":
        options["options"] = _dynamic_options(args["options"], scope)
    optional = "optional" in args and scope.value(args["optional"]) is True
    return str(scope.value(args["id"])), [io_type, options], optional


def structured_entry(call: ast.Call, scope: Scope) -> list[Any] | None:
    """The V1 entry of an input compared whole (:data:`STRUCTURED`), ``None`` for others or
    where the source computes part of it."""
    io_class = _io_class(call, "Input")
    if scope.types.get(io_class or "") not in STRUCTURED:
        return None
    try:
        return v1_input(call, scope)[1]
    except (Unresolved, KeyError):
        return None
