"""Read ComfyUI's node definitions from its source, without importing ComfyUI, into a JSON table.

    python -m weft_tools.comfyui_node_table COMFYUI_PATH [OUT_JSON]

``COMFYUI_PATH`` is a ComfyUI checkout or a bare git mirror of one (read at ``HEAD``). The
table (default ``tests/parity/comfyui_nodes.json``) maps each node name to its category,
display name, inputs (name, type, which group, and the options ComfyUI states: default,
min, max, step, combo choices) and outputs (types and names). The parity tests compare
Weft's node schemas against it, so a node that claims a ComfyUI name keeps ComfyUI's
widgets and sockets.

Why parse rather than import: importing ComfyUI needs its whole dependency set (and a GPU
build of torch in places) and runs its start-up code; the definitions themselves are
literals in the source. Two styles are read with :mod:`ast`:

* classic nodes: ``INPUT_TYPES`` returning a dict literal, ``RETURN_TYPES``/``RETURN_NAMES``/
  ``CATEGORY``/``OUTPUT_NODE``/``DEPRECATED``/``EXPERIMENTAL`` class attributes (inherited
  from a base class of the same file when absent) and ``NODE_CLASS_MAPPINGS``;
* v3 nodes (``comfy_api.latest``): ``define_schema`` returning ``io.Schema(...)`` with
  ``io.<Type>.Input(...)`` / ``io.<Type>.Output(...)`` calls; the io types come from the
  ``@comfytype(io_type=...)`` decorators of ``comfy_api/latest/_io.py``.

Values the source computes at run time (file listings, sampler name lists) are recorded as
``"choices": null`` (a dynamic combo); anything else unresolvable is left out of the entry.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from weft_tools.comfyui_v1_inputs import Scope, Unresolved, dotted, structured_entry, template_of

#: Source files read by default (paths inside a ComfyUI checkout).
DEFAULT_FILES: tuple[str, ...] = (
    "nodes.py",
    "comfy_extras/nodes_mask.py",
    "comfy_extras/nodes_images.py",
    "comfy_extras/nodes_latent.py",
    "comfy_extras/nodes_post_processing.py",
    "comfy_extras/nodes_canny.py",
    "comfy_extras/nodes_model_merging.py",
    "comfy_extras/nodes_freelunch.py",
    "comfy_extras/nodes_hypertile.py",
    "comfy_extras/nodes_differential_diffusion.py",
    "comfy_extras/nodes_model_advanced.py",
    "comfy_extras/nodes_sag.py",
    "comfy_extras/nodes_perpneg.py",
    "comfy_extras/nodes_custom_sampler.py",
    "comfy_extras/nodes_align_your_steps.py",
    "comfy_extras/nodes_clip_sdxl.py",
    "comfy_extras/nodes_upscale_model.py",
    "comfy_extras/nodes_torch_compile.py",
    "comfy_extras/nodes_logic.py",
)

#: Names the definitions use for constants, with their values in ComfyUI.
CONSTANTS: dict[str, Any] = {"MAX_RESOLUTION": 16384, "nodes.MAX_RESOLUTION": 16384}

_UNRESOLVED = object()


class SourceReader:
    """Reads files of a ComfyUI checkout or of a bare git mirror (at HEAD)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bare = not (root / "nodes.py").exists() and (root / "HEAD").exists()

    def read(self, path: str) -> str | None:
        if not self.bare:
            file = self.root / path
            return file.read_text(encoding="utf-8") if file.exists() else None
        done = subprocess.run(
            ["git", "--git-dir", str(self.root), "show", f"HEAD:{path}"], capture_output=True, text=True, check=False
        )
        return done.stdout if done.returncode == 0 else None


def _value(node: ast.AST | None) -> Any:
    """A literal's value, a known constant, or ``_UNRESOLVED``."""
    if node is None:
        return _UNRESOLVED
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _value(node.operand)
        return -inner if isinstance(inner, (int, float)) else _UNRESOLVED
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left), _value(node.right)
        if isinstance(left, (int, float)) and isinstance(right, (int, float)):
            ops = {
                ast.Add: lambda a, b: a + b,
                ast.Sub: lambda a, b: a - b,
                ast.Mult: lambda a, b: a * b,
                ast.Pow: lambda a, b: a**b,
            }
            fn = ops.get(type(node.op))
            return fn(left, right) if fn else _UNRESOLVED
        return _UNRESOLVED
    name = dotted(node)
    if name in CONSTANTS:
        return CONSTANTS[name]
    if name and name.startswith("IO.") and name[3:].isupper():  # comfy_types.IO enum: IO.STRING == "STRING"
        return name[3:]
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_value(e) for e in node.elts]
        return _UNRESOLVED if any(i is _UNRESOLVED for i in items) else list(items)
    return _UNRESOLVED


def _options(node: ast.AST | None) -> dict[str, Any]:
    """The resolvable keys of an options dict literal (default, min, max, step, ...)."""
    out: dict[str, Any] = {}
    if not isinstance(node, ast.Dict):
        return out
    for key, val in zip(node.keys, node.values, strict=True):
        k = _value(key) if key is not None else _UNRESOLVED
        v = _value(val)
        if isinstance(k, str) and v is not _UNRESOLVED:
            out[k] = v
    return out


_KEPT_OPTIONS = ("default", "min", "max", "step", "multiline", "forceInput")


def _classic_input(name: str, spec: ast.AST, group: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "group": group}
    if isinstance(spec, ast.Constant) and isinstance(spec.value, str):  # hidden: "PROMPT"
        entry["type"] = spec.value
        return entry
    if not isinstance(spec, (ast.Tuple, ast.List)) or not spec.elts:
        entry["type"] = "?"
        return entry
    first = spec.elts[0]
    opts = _options(spec.elts[1]) if len(spec.elts) > 1 else {}
    kind = _value(first)
    if isinstance(kind, str):
        entry["type"] = kind
    elif isinstance(kind, list):
        entry["type"] = "COMBO"
        entry["choices"] = kind
    else:  # a computed list: folder listing, sampler names...
        name_of_type = dotted(first)
        if name_of_type and name_of_type.startswith("IO."):
            entry["type"] = name_of_type.split(".", 1)[1].upper()
        else:
            entry["type"] = "COMBO"
            entry["choices"] = None
    entry.update({k: v for k, v in opts.items() if k in _KEPT_OPTIONS})
    return entry


def _returned_dict(fn: ast.FunctionDef) -> ast.Dict | None:
    for stmt in ast.walk(fn):
        if isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Dict):
            return stmt.value
    return None


def _class_attrs(cls: ast.ClassDef) -> dict[str, ast.AST]:
    attrs: dict[str, ast.AST] = {}
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    attrs[target.id] = stmt.value
        elif isinstance(stmt, ast.FunctionDef):
            attrs["def " + stmt.name] = stmt  # type: ignore[assignment]
    return attrs


def _lookup(classes: dict[str, ast.ClassDef], cls: ast.ClassDef, key: str) -> ast.AST | None:
    """A class attribute, searched through base classes defined in the same file."""
    seen: set[str] = set()
    todo = [cls]
    while todo:
        current = todo.pop(0)
        if current.name in seen:
            continue
        seen.add(current.name)
        attrs = _class_attrs(current)
        if key in attrs:
            return attrs[key]
        for base in current.bases:
            name = dotted(base)
            if name in classes:
                todo.append(classes[name])
    return None


def _classic_node(classes: dict[str, ast.ClassDef], cls: ast.ClassDef) -> dict[str, Any] | None:
    fn = _lookup(classes, cls, "def INPUT_TYPES")
    if not isinstance(fn, ast.FunctionDef):
        return None
    returned = _returned_dict(fn)
    if returned is None:
        return None
    inputs: list[dict[str, Any]] = []
    for gkey, gval in zip(returned.keys, returned.values, strict=True):
        group = _value(gkey) if gkey is not None else None
        if group not in ("required", "optional", "hidden") or not isinstance(gval, ast.Dict):
            continue
        for key, spec in zip(gval.keys, gval.values, strict=True):
            name = _value(key) if key is not None else None
            if isinstance(name, str):
                inputs.append(_classic_input(name, spec, group))

    def attr(key: str, default: Any) -> Any:
        node = _lookup(classes, cls, key)
        value = _value(node) if node is not None else default
        return default if value is _UNRESOLVED else value

    types = attr("RETURN_TYPES", [])
    names = attr("RETURN_NAMES", None) or list(types)
    return {
        "category": attr("CATEGORY", None),
        "inputs": inputs,
        "outputs": [{"type": t, "name": n} for t, n in zip(types, names, strict=False)],
        "output_node": bool(attr("OUTPUT_NODE", False)),
        "deprecated": bool(attr("DEPRECATED", False)),
        "experimental": bool(attr("EXPERIMENTAL", False)),
    }


def io_types(reader: SourceReader) -> dict[str, str]:
    """``io.<Class>`` name -> io_type string, from the decorators in comfy_api/latest/_io.py."""
    source = reader.read("comfy_api/latest/_io.py")
    found: dict[str, str] = {}
    if source is None:
        return found
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and dotted(deco.func) == "comfytype":
                for kw in deco.keywords:
                    if kw.arg == "io_type" and isinstance(_value(kw.value), str):
                        found[node.name] = _value(kw.value)
    return found


def _v3_kwargs(call: ast.Call) -> dict[str, ast.AST]:
    return {kw.arg: kw.value for kw in call.keywords if kw.arg}


def _v3_input(call: ast.Call, types: dict[str, str], scope: Scope) -> dict[str, Any] | None:
    func = dotted(call.func) or ""
    parts = func.split(".")
    if len(parts) < 3 or parts[-1] != "Input":
        return None
    io_class = parts[-2]
    kwargs = _v3_kwargs(call)
    name = _value(call.args[0]) if call.args else _value(kwargs.get("id"))
    if not isinstance(name, str):
        return None
    entry: dict[str, Any] = {
        "name": name,
        "type": types.get(io_class, io_class.upper()),
        "group": "optional" if _value(kwargs.get("optional")) is True else "required",
    }
    if io_class == "Combo":
        options = call.args[1] if len(call.args) > 1 else kwargs.get("options")
        try:  # a literal, or a class attribute / local name the scope resolves
            choices = scope.value(options) if options is not None else None
        except Unresolved:
            choices = None
        entry["choices"] = choices if isinstance(choices, list) else None
    for key in ("default", "min", "max", "step", "multiline"):
        value = _value(kwargs.get(key))
        if value is not _UNRESOLVED:
            entry[key] = value
    structured = structured_entry(call, scope)
    if structured is not None:
        entry["v1"] = structured
    return entry


def _v3_output(call: ast.Call, types: dict[str, str], scope: Scope) -> dict[str, Any] | None:
    func = dotted(call.func) or ""
    parts = func.split(".")
    if len(parts) < 3 or parts[-1] != "Output":
        return None
    io_type = types.get(parts[-2], parts[-2].upper())
    kwargs = _v3_kwargs(call)
    ident = _value(call.args[0]) if call.args else _value(kwargs.get("id"))
    display = _value(kwargs.get("display_name"))
    if parts[-2] == "MatchType" and not isinstance(display, str) and not isinstance(ident, str):
        display = "MATCHTYPE"  # ComfyUI's name for an unnamed MatchType output
    name = display if isinstance(display, str) else (ident if isinstance(ident, str) else io_type)
    entry = {"type": io_type, "name": name}
    if parts[-2] == "MatchType":
        try:  # the template the output follows (/object_info's ``output_matchtypes``)
            entry["matchtype"] = template_of(call.args[0] if call.args else kwargs["template"], scope)["template_id"]
        except (Unresolved, KeyError):
            pass
    return entry


def _v3_node(
    classes: dict[str, ast.ClassDef], cls: ast.ClassDef, types: dict[str, str]
) -> tuple[str, dict[str, Any]] | None:
    fn = next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "define_schema"), None)
    if fn is None:
        return None
    schema = next(
        (n for n in ast.walk(fn) if isinstance(n, ast.Call) and (dotted(n.func) or "").endswith(".Schema")), None
    )
    if schema is None:
        return None
    kw = _v3_kwargs(schema)
    node_id = _value(kw.get("node_id"))
    if not isinstance(node_id, str):
        return None
    scope = Scope(_value, _UNRESOLVED, classes, cls, fn, types)
    inputs = []
    if isinstance(kw.get("inputs"), ast.List):
        for item in kw["inputs"].elts:  # type: ignore[union-attr]
            if isinstance(item, ast.Call):
                entry = _v3_input(item, types, scope)
                if entry is not None:
                    inputs.append(entry)
    outputs = []
    if isinstance(kw.get("outputs"), ast.List):
        for item in kw["outputs"].elts:  # type: ignore[union-attr]
            if isinstance(item, ast.Call):
                entry = _v3_output(item, types, scope)
                if entry is not None:
                    outputs.append(entry)
    hidden = kw.get("hidden")
    if isinstance(hidden, ast.List):
        for item in hidden.elts:
            name = (dotted(item) or "").rsplit(".", 1)[-1]
            if name:
                inputs.append({"name": name, "type": name.upper(), "group": "hidden"})
    display = _value(kw.get("display_name"))

    def flag(key: str) -> bool:
        return _value(kw.get(key)) is True

    return node_id, {
        "category": _value(kw.get("category")) if isinstance(_value(kw.get("category")), str) else None,
        "display_name": display if isinstance(display, str) else None,
        "inputs": inputs,
        "outputs": outputs,
        "output_node": flag("is_output_node"),
        "deprecated": flag("is_deprecated"),
        "experimental": flag("is_experimental"),
    }


def _registered_v3(tree: ast.Module) -> set[str] | None:
    """The classes a v3 extension's ``get_node_list`` returns (ComfyUI registers only these;
    a file also defines test nodes and nodes left out, commented away in the list), or
    ``None`` when the file has no such list."""
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.name == "get_node_list":
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.List):
                    return {name for item in stmt.value.elts if (name := dotted(item))}
    return None


def read_file(
    source: str, path: str, types: dict[str, str], display: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Every node a source file defines, by the name it is registered under.

    ``display`` collects the file's ``NODE_DISPLAY_NAME_MAPPINGS`` (ComfyUI merges them all,
    so nodes.py names nodes of other files too).
    """
    tree = ast.parse(source)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    mapping: dict[str, str] = {}
    display = {} if display is None else display
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Dict):
            target = stmt.targets[0]
            if not isinstance(target, ast.Name):
                continue
            if target.id == "NODE_CLASS_MAPPINGS":
                for k, v in zip(stmt.value.keys, stmt.value.values, strict=True):
                    if k is not None and isinstance(_value(k), str) and dotted(v) in classes:
                        mapping[_value(k)] = dotted(v)  # type: ignore[assignment]
            elif target.id == "NODE_DISPLAY_NAME_MAPPINGS":
                for k, v in zip(stmt.value.keys, stmt.value.values, strict=True):
                    if k is not None and isinstance(_value(k), str) and isinstance(_value(v), str):
                        display[_value(k)] = _value(v)
    table: dict[str, dict[str, Any]] = {}
    for node_name, class_name in mapping.items():
        entry = _classic_node(classes, classes[class_name])
        if entry is not None:
            entry["display_name"] = None
            entry["source"] = path
            table[node_name] = entry
    registered = _registered_v3(tree)
    for cls in classes.values():
        if registered is not None and cls.name not in registered:
            continue
        found = _v3_node(classes, cls, types)
        if found is not None:
            name, entry = found
            entry["source"] = path
            table.setdefault(name, entry)
    return table


def build_table(root: Path, files: tuple[str, ...] = DEFAULT_FILES) -> dict[str, Any]:
    reader = SourceReader(root)
    types = io_types(reader)
    nodes: dict[str, Any] = {}
    display: dict[str, str] = {}
    for path in files:
        source = reader.read(path)
        if source is None:
            print(f"warning: {path} not found in {root}", file=sys.stderr)
            continue
        for name, entry in read_file(source, path, types, display).items():
            nodes.setdefault(name, entry)
    for name, entry in nodes.items():
        # the mapping wins over a v3 schema's own name, as in ComfyUI's /object_info
        if name in display:
            entry["display_name"] = display[name]
    return {
        "generated_by": "python -m weft_tools.comfyui_node_table",
        "files": list(files),
        "nodes": dict(sorted(nodes.items())),
    }


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    root = Path(args[0])
    out = Path(args[1]) if len(args) > 1 else Path(__file__).resolve().parent.parent / "tests/parity/comfyui_nodes.json"
    table = build_table(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(table, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"{len(table['nodes'])} nodes -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
