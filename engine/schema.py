"""The shape of a node as the engine sees it.

The engine never imports a node pack: it receives a registry of objects that satisfy
:class:`NodeDefinition`. Weft's own authoring API (``nodes/api.py``) and the adapter for
ComfyUI-style classes both produce these, so validation, caching and execution have one
code path whatever contract a node was written in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

InputKind = Literal["required", "optional", "hidden"]

#: Types whose values may be typed straight into the prompt (widgets).
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One declared input.

    ``type`` is a socket type name (``"MODEL"``, ``"INT"``, ``"*"``, or ``"COMBO"`` for a
    choice list given in ``options["choices"]``). ``options`` carries widget metadata in
    ComfyUI's vocabulary (default, min, max, step, multiline, tooltip, ...), so /object_info
    can publish it unchanged.
    """

    name: str
    type: str
    kind: InputKind = "required"
    options: Mapping[str, Any] = field(default_factory=dict)
    lazy: bool = False
    #: a type variable (ComfyUI's MatchType template): the links into one node's inputs that
    #: share it must carry one type, which that node's outputs with the same template produce;
    #: ``type`` then lists the types the variable may take (``"*"`` for any)
    template: str | None = None

    @property
    def choices(self) -> Sequence[Any] | None:
        return self.options.get("choices") if self.type == "COMBO" else None

    @property
    def raw_link(self) -> bool:
        """ComfyUI's ``rawLink`` option: the node receives the link ``[id, index]`` itself.

        The source still runs first (flow-control nodes read the graph around it, as a
        loop's close node does with its open node), but the value is never looked up.
        """
        return bool(self.options.get("rawLink"))


@dataclass(frozen=True, slots=True)
class OutputSpec:
    type: str
    name: str
    is_list: bool = False
    tooltip: str | None = None
    #: the type variable (see :attr:`InputSpec.template`) whose binding this output produces;
    #: ``type`` is what it produces while nothing binds it
    template: str | None = None


@dataclass(frozen=True, slots=True)
class NodeSchema:
    """Everything a client or the validator needs to know about a node class."""

    name: str
    display_name: str
    category: str
    description: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    output_node: bool = False
    input_is_list: bool = False
    is_async: bool = False
    deprecated: bool = False
    experimental: bool = False
    #: who provided the node: {"pack": ..., "version": ...}; filled by the registry.
    origin: Mapping[str, str] = field(default_factory=dict)

    #: names of the lazy inputs; derived from ``inputs``, kept because the executor asks often
    lazy_inputs: frozenset[str] = field(init=False, default=frozenset())
    #: names of the ``rawLink`` inputs (see :attr:`InputSpec.raw_link`); derived like ``lazy_inputs``
    raw_link_inputs: frozenset[str] = field(init=False, default=frozenset())
    #: every declared input name, hidden ones included
    input_names: frozenset[str] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        object.__setattr__(self, "lazy_inputs", frozenset(s.name for s in self.inputs if s.lazy))
        object.__setattr__(self, "raw_link_inputs", frozenset(s.name for s in self.inputs if s.raw_link))
        object.__setattr__(self, "input_names", frozenset(s.name for s in self.inputs))

    def input(self, name: str) -> InputSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None


@dataclass(slots=True)
class NodeResult:
    """What one call of a node produced.

    ``outputs`` holds one value per declared output (``None`` when the node produced no
    values). ``ui`` is shown to clients in the ``executed`` event and stored in history.
    ``expand`` is an API-format sub-graph that runs in the node's place; then ``outputs``
    may contain links (``["id", index]``) into that sub-graph. A sub-graph node may carry
    ``override_display_id`` (ComfyUI's key): the node id clients are told to highlight.
    """

    outputs: tuple[Any, ...] | None = None
    ui: dict[str, Any] | None = None
    expand: dict[str, Any] | None = None
    #: ``False``: the sub-graph's ids are local and the engine prefixes them with the node's
    #: id (Weft's contract). ``True``: they are already unique in the prompt and are used as
    #: given (ComfyUI's contract: ``GraphBuilder`` prefixes them with the node id itself).
    expand_ids_global: bool = False


class NodeDefinition(Protocol):
    """A node class as registered with the engine."""

    schema: NodeSchema

    def create(self) -> NodeInstance:
        """A fresh instance for one node of one prompt."""
        ...

    def fingerprint(self, inputs: Mapping[str, Any]) -> Any:
        """Outside state the node reads (a file's mtime, a clock), or ``None``.

        Called with constant inputs only, before anything runs; the value becomes part of
        the cache signature, so a changed file invalidates the cached output.
        """
        ...

    def validate(self, inputs: Mapping[str, Any], input_types: Mapping[str, str]) -> Any:
        """Extra validation before anything runs: ``True`` or a message, or an awaitable of one.

        ``inputs`` holds the constant inputs; ``input_types`` the type each linked input
        receives (the source output's declared type), which ComfyUI hands to a
        ``VALIDATE_INPUTS`` that asks for ``input_types``. An awaitable is awaited by
        :func:`engine.validation.validate_prompt_async` (ComfyUI allows async validators).
        """
        ...

    def skips_default_validation(self, input_name: str) -> bool:
        """True when the node checks this constant input itself: no range or choice check.

        The value is still converted to its widget type (``"7"`` to ``7`` for an INT).
        """
        ...

    def skips_link_type_check(self, input_name: str) -> bool:
        """True when the node checks the type of a link into this input itself.

        ComfyUI skips the socket-type check of links only for a ``VALIDATE_INPUTS`` that
        takes ``input_types``; naming an input is not enough. Optional: the validator
        treats a definition without this method as answering ``False``.
        """
        ...


def own_schema(definition: NodeDefinition, inputs: Mapping[str, Any]) -> NodeSchema | None:
    """The schema of one node whose declared inputs depend on its own input values, or
    ``None`` when the class schema holds for it.

    A definition opts in with a ``node_schema(inputs)`` method (ComfyUI's dynamic inputs: a
    combo whose chosen option brings inputs of its own, a socket that grows a copy of itself
    as each is linked). Validation and the run then see that node's inputs, flattened to
    names such as ``"resize_type.multiplier"``; /object_info keeps publishing the class schema.
    """
    per_node = getattr(definition, "node_schema", None)
    return per_node(inputs) if per_node is not None else None


class NodeInstance(Protocol):
    def check_lazy(self, inputs: Mapping[str, Any], unevaluated: frozenset[str]) -> Any:
        """Names of lazy inputs that must be evaluated before the node can run.

        Unevaluated lazy inputs are passed as ``None``. The executor asks again each time
        inputs it asked for arrive, until the node asks for nothing new. May return an
        awaitable (ComfyUI allows an async ``check_lazy_status``).
        """
        ...

    def call(self, inputs: Mapping[str, Any]) -> Any:
        """Run once; returns a :class:`NodeResult` or an awaitable of one."""
        ...


def types_compatible(produced: str, accepted: str) -> bool:
    """ComfyUI's rule: ``*`` matches anything; comma lists are unions; COMBO feeds lists."""
    if produced == accepted or "*" in (produced, accepted):
        return True
    produced_set = {t.strip() for t in produced.split(",")}
    accepted_set = {t.strip() for t in accepted.split(",")}
    if produced_set & accepted_set:
        return True
    return produced == "COMBO" and accepted == "COMBO"
