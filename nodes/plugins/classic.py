"""Adapter: a ComfyUI "classic contract" node class as an engine ``NodeDefinition``.

A classic node is a plain class with ``INPUT_TYPES()``, ``RETURN_TYPES``, ``FUNCTION`` and
friends. This module translates its declarations into :class:`engine.schema.NodeSchema`
once (so a class that raises at definition is refused at load time, naming the pack) and
wraps calls so that everything the class expects at run time holds: inputs as keyword
arguments, lists for ``INPUT_IS_LIST``, ``check_lazy_status`` with ``None`` for inputs not
yet evaluated, ``IS_CHANGED`` as the cache fingerprint, ``VALIDATE_INPUTS`` as the node's
own validation, ``{"ui", "result", "expand"}`` returns and ``DYNPROMPT`` as an object.

Values are passed through unchanged: Weft's IMAGE, LATENT and MASK already use ComfyUI's
layouts (see ``nodes/diffusion/types.py``), so a pack's tensor code runs as written.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from engine.blocker import ExecutionBlocker
from engine.context import current_context
from engine.schema import InputSpec, NodeResult, NodeSchema, OutputSpec

from ..api import NodeDefinitionError
from .graph_tools import DynamicPrompt, GraphBuilder

log = logging.getLogger("weft.plugins")

#: ``INPUT_TYPES()`` is re-read at most this often. ComfyUI calls it on every validation
#: and /object_info request, so combo lists built from folder listings stay current; the
#: engine reads ``schema`` many times per node, so a short memo keeps that cheap.
SCHEMA_TTL_S = 1.0
#: Node objects kept per class between runs (see :meth:`ClassicNodeDefinition.object_for`).
OBJECTS_PER_CLASS = 32

_HIDDEN_KINDS = {"UNIQUE_ID", "PROMPT", "EXTRA_PNGINFO", "DYNPROMPT", "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG"}


def _type_name(raw: Any) -> str:
    """A socket type from a declaration: a string (``IO`` members are strings too)."""
    if isinstance(raw, str):
        return str.__str__(raw) if type(raw) is not str else raw
    raise TypeError(f"type must be a string or a list of choices, got {type(raw).__name__}")


def convert_input(name: str, declared: Any, kind: str) -> InputSpec:
    """One ``INPUT_TYPES`` entry -> :class:`InputSpec`.

    Accepted forms: ``("INT", {...})``, ``("IMAGE",)``, ``"IMAGE"``, ``(["a", "b"], {...})``
    (a combo) and ``("COMBO", {"options": [...]})`` (the newer combo spelling).
    """
    if kind == "hidden":
        hidden = declared[0] if isinstance(declared, (list, tuple)) and declared else declared
        return InputSpec(name, _type_name(hidden), "hidden", {}, False)
    if isinstance(declared, str):
        type_raw, options = declared, {}
    elif isinstance(declared, (list, tuple)) and declared:
        type_raw = declared[0]
        options = declared[1] if len(declared) > 1 and isinstance(declared[1], Mapping) else {}
    else:
        raise TypeError(f"input {name!r}: expected a (type, options) tuple, got {declared!r}")
    options = dict(options)
    lazy = bool(options.pop("lazy", False))
    if isinstance(type_raw, (list, tuple)):
        return InputSpec(name, "COMBO", kind, {**options, "choices": list(type_raw)}, lazy)  # type: ignore[arg-type]
    type_name = _type_name(type_raw)
    if type_name == "COMBO":
        choices = options.pop("options", [])
        return InputSpec(name, "COMBO", kind, {**options, "choices": list(choices)}, lazy)  # type: ignore[arg-type]
    return InputSpec(name, type_name, kind, options, lazy)  # type: ignore[arg-type]


def _call_with_signature(function: Any, values: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Any:
    """Call ``function`` with the values it names; parameters it needs but we lack get ``None``.

    ``IS_CHANGED`` and ``VALIDATE_INPUTS`` see constants only (links are not evaluated before
    the run, as in ComfyUI); filling the gaps with ``None`` keeps a node that lists a linked
    input from failing outright.
    """
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return function(**values)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return function(**values, **(extra or {}))
    args: dict[str, Any] = {}
    for pname, parameter in parameters.items():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            continue
        if pname in values:
            args[pname] = values[pname]
        elif extra and pname in extra:
            args[pname] = extra[pname]
        elif parameter.default is inspect.Parameter.empty:
            args[pname] = None
    return function(**args)


def call_validator(
    fn: Any,
    params: Any,
    takes_all: bool,
    inputs: Mapping[str, Any],
    input_types: Mapping[str, str] | None,
    label: str,
    arrange: Any = None,
) -> Any:
    """A ComfyUI-style input validator (classic ``VALIDATE_INPUTS`` or v3 ``validate_inputs``)
    called as ComfyUI calls it: the constants it names (all with ``**kwargs``), ``None`` for
    links, ``input_types`` when it has that parameter. ``True`` or a message; an ``async``
    validator gives a coroutine of that for the engine to await. ``arrange`` reshapes the
    values first (a v3 node's dynamic inputs arrive nested)."""
    linked = dict(input_types or {})
    values = {**{name: None for name in linked}, **inputs}
    if arrange is not None:
        values = arrange(values)
    if "input_types" in params:
        values["input_types"] = linked
    verdict = fn(**values) if takes_all else _call_with_signature(fn, values)
    if inspect.isawaitable(verdict):
        return _verdict_later(verdict, label)
    return _verdict(verdict, label)


async def _verdict_later(awaitable: Any, label: str) -> bool | str:
    return _verdict(await awaitable, label)


def _verdict(verdict: Any, label: str) -> bool | str:
    if verdict is True or isinstance(verdict, ExecutionBlocker):
        return True
    if isinstance(verdict, str):
        return verdict
    return f"{label} returned {verdict!r}"


class ClassicNodeDefinition:
    """A ComfyUI-style node class adapted to :class:`engine.schema.NodeDefinition`."""

    def __init__(
        self,
        cls: type,
        class_type: str,
        display_name: str | None = None,
        origin: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(cls, type):
            raise NodeDefinitionError(f"{class_type}: NODE_CLASS_MAPPINGS must map to a class, got {cls!r}")
        if not callable(getattr(cls, "INPUT_TYPES", None)):
            raise NodeDefinitionError(f"{class_type}: class {cls.__name__} has no INPUT_TYPES classmethod")
        function = getattr(cls, "FUNCTION", None)
        if not isinstance(function, str) or not callable(getattr(cls, function, None)):
            raise NodeDefinitionError(f"{class_type}: FUNCTION must name a method of {cls.__name__} (got {function!r})")
        self.cls = cls
        self.class_type = class_type
        self.display_name = display_name or class_type
        self.function = function
        self._origin = dict(origin or {})
        self._validate_fn = getattr(cls, "VALIDATE_INPUTS", None)
        self._validate_params: frozenset[str] = frozenset()
        self._validate_all = False
        if callable(self._validate_fn):
            try:
                params = inspect.signature(self._validate_fn).parameters
            except (TypeError, ValueError):
                params = {}
            self._validate_params = frozenset(params)
            self._validate_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self._objects: dict[str, Any] = {}
        self._schema = self._build()
        self._built_at = time.monotonic()

    # -- schema -----------------------------------------------------------------------
    def _build(self) -> NodeSchema:
        cls = self.cls
        try:
            declared = cls.INPUT_TYPES()
        except Exception as exc:
            raise NodeDefinitionError(f"{self.class_type}.INPUT_TYPES() raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(declared, Mapping):
            raise NodeDefinitionError(
                f"{self.class_type}.INPUT_TYPES() must return a dict, got {type(declared).__name__}"
            )
        inputs: list[InputSpec] = []
        try:
            for kind in ("required", "optional", "hidden"):
                section = declared.get(kind) or {}
                if not isinstance(section, Mapping):
                    raise TypeError(f"INPUT_TYPES()[{kind!r}] must be a dict")
                for name, spec in section.items():
                    inputs.append(convert_input(str(name), spec, kind))
            outputs = self._outputs()
        except (TypeError, ValueError, IndexError) as exc:
            raise NodeDefinitionError(f"{self.class_type}: {exc}") from exc
        inputs = _first_of_each_name(inputs)
        description = getattr(cls, "DESCRIPTION", "") or ""
        return NodeSchema(
            name=self.class_type,
            display_name=self.display_name,
            category=str(getattr(cls, "CATEGORY", "sd") or "sd"),
            description=str(description),
            inputs=tuple(inputs),
            outputs=outputs,
            output_node=bool(getattr(cls, "OUTPUT_NODE", False)),
            input_is_list=bool(getattr(cls, "INPUT_IS_LIST", False)),
            is_async=inspect.iscoroutinefunction(getattr(cls, self.function)),
            deprecated=bool(getattr(cls, "DEPRECATED", False)),
            experimental=bool(getattr(cls, "EXPERIMENTAL", False)),
            origin=self._origin,
        )

    def _outputs(self) -> tuple[OutputSpec, ...]:
        cls = self.cls
        types = getattr(cls, "RETURN_TYPES", ())
        if isinstance(types, str) or not isinstance(types, (tuple, list)):
            raise TypeError(f"RETURN_TYPES must be a tuple, got {types!r} (a 1-tuple needs a trailing comma)")
        names = getattr(cls, "RETURN_NAMES", None) or ()
        is_list = getattr(cls, "OUTPUT_IS_LIST", None) or ()
        tooltips = getattr(cls, "OUTPUT_TOOLTIPS", None) or ()
        outputs = []
        for index, raw in enumerate(types):
            type_name = "COMBO" if isinstance(raw, (list, tuple)) else _type_name(raw)
            outputs.append(
                OutputSpec(
                    type_name,
                    str(names[index]) if index < len(names) else type_name,
                    bool(is_list[index]) if index < len(is_list) else False,
                    tooltips[index] if index < len(tooltips) else None,
                )
            )
        return tuple(outputs)

    @property
    def schema(self) -> NodeSchema:
        now = time.monotonic()
        if now - self._built_at > SCHEMA_TTL_S:
            self._built_at = now
            try:
                self._schema = self._build()
            except NodeDefinitionError as exc:  # keep the last good schema; say why once
                log.warning("%s (keeping the previous definition)", exc)
        return self._schema

    def set_origin(self, origin: Mapping[str, str]) -> None:
        """Record who provided the node; the schema is updated without re-reading INPUT_TYPES."""
        self._origin = dict(origin)
        self._schema = dataclasses.replace(self._schema, origin=self._origin)

    # -- NodeDefinition ---------------------------------------------------------------
    def create(self) -> ClassicInstance:
        return ClassicInstance(self)

    def object_for(self, node_id: str | None) -> Any:
        """The pack's object for a prompt node, kept across runs as ComfyUI keeps it.

        Packs store state on ``self`` between runs (a loaded model, a counter); ComfyUI
        creates one object per node id and reuses it while the node exists. The engine
        creates instances without ids, so the object is looked up here by the running
        node's id; the most recently used :data:`OBJECTS_PER_CLASS` are kept.
        """
        if node_id is None:
            return self.cls()
        obj = self._objects.pop(node_id, None)
        if obj is None:
            obj = self.cls()
        self._objects[node_id] = obj
        while len(self._objects) > OBJECTS_PER_CLASS:
            self._objects.pop(next(iter(self._objects)))
        return obj

    def fingerprint(self, inputs: Mapping[str, Any]) -> Any:
        is_changed = getattr(self.cls, "IS_CHANGED", None)
        if not callable(is_changed):
            return None
        return _call_with_signature(is_changed, inputs)

    def validate(self, inputs: Mapping[str, Any], input_types: Mapping[str, str] | None = None) -> Any:
        """``VALIDATE_INPUTS`` as ComfyUI calls it: before the run, links not yet evaluated.

        The function gets the constants it names (all of them with ``**kwargs``), ``None``
        for linked inputs, and, when it has an ``input_types`` parameter, the type each
        linked input receives. An ``async`` validator's coroutine is returned for the
        engine to await.
        """
        if not callable(self._validate_fn):
            return True
        return call_validator(
            self._validate_fn,
            self._validate_params,
            self._validate_all,
            inputs,
            input_types,
            f"{self.class_type}.VALIDATE_INPUTS",
        )

    def skips_default_validation(self, input_name: str) -> bool:
        """Constants that ``VALIDATE_INPUTS`` names (or all, with ``**kwargs``) get no range or
        choice check from Weft: the node checks them itself (ComfyUI's rule)."""
        return self._validate_all or input_name in self._validate_params

    def skips_link_type_check(self, input_name: str) -> bool:
        """ComfyUI skips the socket-type check of links only when ``VALIDATE_INPUTS`` takes
        ``input_types``: the node then judges the received types itself."""
        return "input_types" in self._validate_params


class ClassicInstance:
    """One node of one prompt: the pack's object plus the call bookkeeping."""

    __slots__ = ("definition", "_obj", "calls")

    def __init__(self, definition: ClassicNodeDefinition) -> None:
        self.definition, self._obj, self.calls = definition, None, 0

    @property
    def obj(self) -> Any:
        if self._obj is None:
            ctx = current_context()
            self._obj = self.definition.object_for(ctx.node_id if ctx else None)
        return self._obj

    def _prepare(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        args = dict(inputs)
        for spec in self.definition.schema.inputs:
            if spec.kind == "hidden" and spec.type == "DYNPROMPT" and spec.name in args:
                value = args[spec.name]
                if isinstance(value, list) and self.definition.schema.input_is_list:
                    args[spec.name] = [v if isinstance(v, DynamicPrompt) else DynamicPrompt(v) for v in value]
                elif not isinstance(value, DynamicPrompt):
                    args[spec.name] = DynamicPrompt(value)
        return args

    def check_lazy(self, inputs: Mapping[str, Any], unevaluated: frozenset[str]) -> Any:
        """ComfyUI's rule: without ``check_lazy_status`` a lazy input is never evaluated.

        An ``async def check_lazy_status`` returns a coroutine; the engine awaits it.
        """
        check = getattr(self.obj, "check_lazy_status", None)
        if not callable(check):
            return ()
        wanted = check(**self._prepare(inputs))
        if inspect.isawaitable(wanted):
            return _names_later(wanted)
        return _names(wanted)

    def call(self, inputs: Mapping[str, Any]) -> Any:
        ctx = current_context()
        GraphBuilder.set_default_prefix(ctx.node_id if ctx else "", self.calls, 0)
        self.calls += 1
        outcome = getattr(self.obj, self.definition.function)(**self._prepare(inputs))
        if inspect.isawaitable(outcome):
            return self._finish(outcome)
        return classic_result(outcome, self.definition)

    async def _finish(self, awaitable: Any) -> NodeResult:
        return classic_result(await awaitable, self.definition)


def _names(wanted: Any) -> Sequence[str]:
    if wanted is None:
        return ()
    if isinstance(wanted, str):
        return (wanted,)
    return [w for w in wanted if isinstance(w, str)]


async def _names_later(awaitable: Any) -> Sequence[str]:
    return _names(await awaitable)


def _first_of_each_name(inputs: list[InputSpec]) -> list[InputSpec]:
    """Drop later declarations of a name: ComfyUI lets a name appear in both ``required`` and
    ``optional`` (or ``hidden``) and reads it as the first section that has it."""
    seen: set[str] = set()
    kept = []
    for spec in inputs:
        if spec.name not in seen:
            seen.add(spec.name)
            kept.append(spec)
    return kept


def classic_result(outcome: Any, definition: ClassicNodeDefinition) -> NodeResult:
    """Normalise a classic return: a tuple, ``{"ui", "result", "expand"}``, a blocker or None."""
    count = len(definition.schema.outputs)
    if isinstance(outcome, dict):
        result = outcome.get("result")
        if isinstance(result, ExecutionBlocker):
            result = (result,) * count
        outputs = tuple(result) if result is not None else None
        # GraphBuilder already prefixed the sub-graph's ids with this node's id (ComfyUI's
        # contract), so the engine must not prefix them again
        return NodeResult(outputs, outcome.get("ui"), outcome.get("expand"), expand_ids_global=True)
    if outcome is None:
        return NodeResult(None)
    if isinstance(outcome, ExecutionBlocker):
        return NodeResult((outcome,) * count)
    if isinstance(outcome, (tuple, list)):
        return NodeResult(tuple(outcome))
    raise TypeError(
        f"{definition.class_type}.{definition.function}() returned {type(outcome).__name__}; "
        "a classic node returns a tuple of outputs or a dict with 'result', 'ui' or 'expand'"
    )
