"""Adapter: a ComfyUI v3 node class (``comfy_api.latest.io.ComfyNode``) as an engine node.

A v3 node declares itself in ``define_schema()`` (an ``io.Schema``) and runs in
``execute(cls, **inputs)``, both classmethods; optional classmethods ``validate_inputs``,
``fingerprint_inputs`` and ``check_lazy_status`` play the parts of the classic
``VALIDATE_INPUTS``, ``IS_CHANGED`` and ``check_lazy_status``. Hidden values (the node id,
the prompt...) are not arguments: the node reads them from ``cls.hidden``. This adapter
translates the schema into :class:`engine.schema.NodeSchema` (reusing the classic
adapter's input conversion on the schema's V1 view), and for every call runs the node on a
throw-away subclass whose ``hidden`` holds that call's values, so concurrent calls of one
class (async nodes, list items) never see each other's values, which is what ComfyUI's
"class clone" does too.

Dynamic inputs (``io.Autogrow``, ``io.DynamicCombo``) make each node's inputs depend on its
own values: :meth:`V3NodeDefinition.node_schema` gives the engine the flattened inputs of one
node, and the classmethods receive them nested again (``v3_dynamic.py``). ``io.MatchType``
inputs and outputs carry their template to the engine, which checks that the links agree.

The class comes from the pack, built on Weft's ``compat/comfy_api/latest/_io.py``; the
adapter only duck-types it, so it also drives a look-alike that defines the same methods.
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
from engine.schema import InputSpec, NodeResult, NodeSchema

from ..api import NodeDefinitionError
from .classic import SCHEMA_TTL_S, _call_with_signature, call_validator, classic_result
from .graph_tools import DynamicPrompt, GraphBuilder
from .v3_dynamic import expand, is_dynamic, nest, output_spec_of, spec_of

log = logging.getLogger("weft.plugins")

#: the hidden values a v3 schema may ask for: ``io.Hidden`` member name -> engine kind
HIDDEN = {
    "unique_id": "UNIQUE_ID",
    "prompt": "PROMPT",
    "extra_pnginfo": "EXTRA_PNGINFO",
    "dynprompt": "DYNPROMPT",
    "auth_token_comfy_org": "AUTH_TOKEN_COMFY_ORG",
    "api_key_comfy_org": "API_KEY_COMFY_ORG",
}


def is_v3_node(cls: Any) -> bool:
    """True for a v3 node class (Weft's ``io.ComfyNode`` marks its subclasses)."""
    return isinstance(cls, type) and bool(getattr(cls, "_weft_v3_node", False))


def _base_of(cls: type) -> type:
    """The ``ComfyNode`` root class, whose methods are the defaults."""
    for klass in reversed(cls.__mro__):
        if "_weft_v3_node" in klass.__dict__:
            return klass
    return cls


def _overrides(cls: type, name: str) -> bool:
    """Whether the node defines ``name`` itself: ComfyUI calls the optional classmethods only
    when a node overrides them (a lazy input of a node without ``check_lazy_status`` is never
    evaluated)."""
    own = getattr(cls, name, None)
    default = _base_of(cls).__dict__.get(name)
    if own is None:
        return False
    if default is None:
        return True
    return getattr(own, "__func__", own) is not getattr(default, "__func__", default)


def _parameters(function: Any) -> tuple[frozenset[str], bool]:
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return frozenset(), True
    return frozenset(params), any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class V3NodeDefinition:
    """A v3 node class adapted to :class:`engine.schema.NodeDefinition`."""

    def __init__(
        self,
        cls: type,
        class_type: str | None = None,
        display_name: str | None = None,
        origin: Mapping[str, str] | None = None,
    ) -> None:
        if not is_v3_node(cls):
            raise NodeDefinitionError(f"{cls!r} is not a v3 node class (a subclass of comfy_api.latest.io.ComfyNode)")
        self.cls = cls
        self.function = "execute"
        self._origin = dict(origin or {})
        self._display_override = display_name
        schema = self._read_schema()
        self.class_type = class_type or schema.node_id
        self._validate_params: frozenset[str] = frozenset()
        self._validate_all = False
        self._has_validate = _overrides(cls, "validate_inputs")
        if self._has_validate:
            self._validate_params, self._validate_all = _parameters(cls.validate_inputs)
        self._has_fingerprint = _overrides(cls, "fingerprint_inputs")
        self._has_lazy_check = _overrides(cls, "check_lazy_status")
        self._multiselect: frozenset[str] = frozenset()
        #: whether the class has dynamic inputs (``io.Autogrow``, ``io.DynamicCombo``): then each
        #: node has a schema of its own (:meth:`node_schema`) and gets nested values
        self.dynamic = False
        self._schema = self._build(schema)
        self._built_at = time.monotonic()

    # -- schema -----------------------------------------------------------------------
    def _read_schema(self) -> Any:
        try:
            return self.cls.GET_SCHEMA()
        except Exception as exc:
            raise NodeDefinitionError(
                f"{self.cls.__name__}.define_schema() failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _build(self, v3: Any) -> NodeSchema:
        inputs: list[InputSpec] = []
        multiselect = set()
        try:
            for item in v3.inputs:
                kind = "optional" if item.optional else "required"
                options = dict(item.as_dict())
                if hasattr(item, "options") and item.get_io_type() == "COMBO":
                    declared: Any = (list(item.options), options)
                    if getattr(item, "multiselect", False):
                        multiselect.add(item.id)
                else:
                    declared = (item.get_io_type(), options)
                inputs.append(spec_of(str(item.id), declared, kind))
            hidden = {getattr(member, "name", str(member)) for member in v3.hidden}
            if v3.not_idempotent:
                # ComfyUI does not reuse such a node's output for another node with the same
                # inputs; with the node id in its cache key, Weft does not either
                hidden.add("unique_id")
            for name in sorted(hidden):
                if name in HIDDEN:
                    inputs.append(InputSpec(name, HIDDEN[name], "hidden", {}, False))
            outputs = tuple(output_spec_of(o) for o in v3.outputs)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise NodeDefinitionError(f"{self.class_type}: {exc}") from exc
        self._multiselect = frozenset(multiselect)
        self.dynamic = is_dynamic(inputs)
        return NodeSchema(
            name=self.class_type,
            display_name=self._display_override or v3.display_name or self.class_type,
            category=str(v3.category or "sd"),
            description=str(v3.description or ""),
            inputs=tuple(inputs),
            outputs=outputs,
            output_node=bool(v3.is_output_node),
            input_is_list=bool(v3.is_input_list),
            is_async=inspect.iscoroutinefunction(self.cls.execute),
            deprecated=bool(v3.is_deprecated),
            experimental=bool(v3.is_experimental),
            origin=self._origin,
        )

    @property
    def schema(self) -> NodeSchema:
        """Rebuilt at most every :data:`SCHEMA_TTL_S`: choice lists built from folder listings
        in ``define_schema`` stay current, as with classic nodes."""
        now = time.monotonic()
        if now - self._built_at > SCHEMA_TTL_S:
            self._built_at = now
            try:
                self._schema = self._build(self._read_schema())
            except NodeDefinitionError as exc:
                log.warning("%s (keeping the previous definition)", exc)
        return self._schema

    def set_origin(self, origin: Mapping[str, str]) -> None:
        self._origin = dict(origin)
        self._schema = dataclasses.replace(self._schema, origin=self._origin)

    # -- NodeDefinition ---------------------------------------------------------------
    def create(self) -> V3Instance:
        return V3Instance(self)

    def node_schema(self, inputs: Mapping[str, Any]) -> NodeSchema | None:
        """The inputs one node has, given its own (:func:`engine.schema.own_schema`); ``None``
        for a class without dynamic inputs."""
        if not self.dynamic:
            return None
        schema = self.schema
        return dataclasses.replace(schema, inputs=tuple(expand(schema.inputs, inputs).specs))

    def arrange(self, values: Mapping[str, Any], tagged: bool = False) -> dict[str, Any]:
        """Flat values as the node's classmethods take them (nested for dynamic inputs)."""
        if not self.dynamic:
            return dict(values)
        return nest(values, expand(self.schema.inputs, values), tagged)

    def fingerprint(self, inputs: Mapping[str, Any]) -> Any:
        if not self._has_fingerprint:
            return None
        return _call_with_signature(self.cls.fingerprint_inputs, self.arrange(inputs))

    def validate(self, inputs: Mapping[str, Any], input_types: Mapping[str, str] | None = None) -> Any:
        """``validate_inputs`` with ComfyUI's arguments: the constants, ``None`` for links and,
        when it takes ``input_types``, the linked inputs' types; an async one is awaited by
        the engine."""
        if not self._has_validate:
            return True
        return call_validator(
            self.cls.validate_inputs,
            self._validate_params,
            self._validate_all,
            inputs,
            input_types,
            f"{self.class_type}.validate_inputs",
            arrange=self.arrange if self.dynamic else None,
        )

    def skips_default_validation(self, input_name: str) -> bool:
        return self._validate_all or input_name in self._validate_params or input_name in self._multiselect

    def skips_link_type_check(self, input_name: str) -> bool:
        return "input_types" in self._validate_params

    # -- running ----------------------------------------------------------------------
    def clone(self, hidden: Mapping[str, Any]) -> type:
        """The node class with this call's hidden values in ``cls.hidden``."""
        holder_type = type(self.cls.hidden)
        holder = holder_type(**{name: hidden.get(name) for name in HIDDEN})
        return type(
            self.cls.__name__,
            (self.cls,),
            {"hidden": holder, "__module__": self.cls.__module__, "__qualname__": self.cls.__qualname__},
        )


class V3Instance:
    """One node of one prompt. v3 nodes keep no state on objects, so this holds only the
    call count (for ``GraphBuilder``'s default prefix)."""

    __slots__ = ("definition", "calls")

    def __init__(self, definition: V3NodeDefinition) -> None:
        self.definition, self.calls = definition, 0

    def _split(self, inputs: Mapping[str, Any], tagged: bool = False) -> tuple[type, dict[str, Any]]:
        hidden: dict[str, Any] = {}
        visible: dict[str, Any] = {}
        for name, value in inputs.items():
            (hidden if name in HIDDEN else visible)[name] = value
        dynprompt = hidden.get("dynprompt")
        if dynprompt is not None and not isinstance(dynprompt, DynamicPrompt):
            hidden["dynprompt"] = DynamicPrompt(dynprompt)
        return self.definition.clone(hidden), self.definition.arrange(visible, tagged)

    def check_lazy(self, inputs: Mapping[str, Any], unevaluated: frozenset[str]) -> Any:
        if not self.definition._has_lazy_check:
            return ()
        clone, visible = self._split(inputs, tagged=True)
        wanted = clone.check_lazy_status(**visible)
        if inspect.isawaitable(wanted):
            return _names_later(wanted)
        return _names(wanted)

    def call(self, inputs: Mapping[str, Any]) -> Any:
        ctx = current_context()
        GraphBuilder.set_default_prefix(ctx.node_id if ctx else "", self.calls, 0)
        self.calls += 1
        clone, visible = self._split(inputs)
        outcome = clone.execute(**visible)
        if inspect.isawaitable(outcome):
            return self._finish(outcome)
        return v3_result(outcome, self.definition)

    async def _finish(self, awaitable: Any) -> NodeResult:
        return v3_result(await awaitable, self.definition)


def _names(wanted: Any) -> Sequence[str]:
    if wanted is None:
        return ()
    if isinstance(wanted, str):
        return (wanted,)
    return [w for w in wanted if isinstance(w, str)]


async def _names_later(awaitable: Any) -> Sequence[str]:
    return _names(await awaitable)


def v3_result(outcome: Any, definition: V3NodeDefinition) -> NodeResult:
    """``io.NodeOutput`` (or a classic-style return) as a :class:`NodeResult`."""
    if not all(hasattr(outcome, a) for a in ("args", "ui", "expand", "block_execution")):
        return classic_result(outcome, definition)  # type: ignore[arg-type]
    count = len(definition.schema.outputs)
    outputs: tuple[Any, ...] | None = tuple(outcome.args) if outcome.args else None
    if outcome.block_execution is not None:
        outputs = (ExecutionBlocker(outcome.block_execution),) * count
    ui = outcome.ui
    if ui is not None and not isinstance(ui, dict):
        ui = ui.as_dict()
    return NodeResult(outputs, dict(ui) if ui else None, outcome.expand, expand_ids_global=True)
