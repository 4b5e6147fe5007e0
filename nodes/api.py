"""Weft's node contract: declare a node as a small class with typed fields.

A node is a subclass of :class:`Node` with ``inputs`` and ``outputs`` declared by the
helpers below and a ``run`` method (plain or ``async def``) whose keyword arguments are the
input names::

    class StringConcatenate(Node):
        category = "utils/string"
        description = "Joins two strings with a delimiter between them."
        inputs = (String("string_a", multiline=True), String("string_b", multiline=True),
                  String("delimiter", default=""))
        outputs = (Output("STRING"),)

        def run(self, string_a, string_b, delimiter):
            return string_a + delimiter + string_b

``run`` returns the outputs as a tuple (or a bare value for a single output), or a
:class:`Result` when it also shows something in the UI or expands into a sub-graph.
``self.ctx`` reports progress, sends previews and checks for interruption.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from engine.blocker import ExecutionBlocker
from engine.context import ExecutionContext, Interrupted, current_context
from engine.resources import Estimate, TensorInfo
from engine.schema import InputSpec, NodeResult, NodeSchema, OutputSpec

__all__ = [
    "Node",
    "Result",
    "Output",
    "Input",
    "Int",
    "Float",
    "String",
    "Boolean",
    "Combo",
    "ModelFile",
    "Hidden",
    "ExecutionBlocker",
    "Interrupted",
    "NodeDefinitionError",
    "ExecutionContext",
    "Estimate",
    "TensorInfo",
]

Choices = Sequence[Any] | Callable[[], Sequence[Any]]


class NodeDefinitionError(TypeError):
    """A node class is declared wrongly; raised at registration, naming the class."""


def _spec(name: str, type_: str, optional: bool, lazy: bool, **options: Any) -> InputSpec:
    clean = {k: v for k, v in options.items() if v is not None}
    return InputSpec(name, type_, "optional" if optional else "required", clean, lazy)


def Input(
    name: str, type: str, *, optional: bool = False, lazy: bool = False, tooltip: str | None = None, **options: Any
) -> InputSpec:
    """A socket input of any type (``"MODEL"``, ``"LATENT"``, ``"*"``...)."""
    return _spec(name, type, optional, lazy, tooltip=tooltip, **options)


def Int(
    name: str,
    default: int = 0,
    *,
    min: int | None = -(2**63),
    max: int | None = 2**63 - 1,
    step: int = 1,
    optional: bool = False,
    lazy: bool = False,
    tooltip: str | None = None,
    control_after_generate: bool | None = None,
    **options: Any,
) -> InputSpec:
    return _spec(
        name,
        "INT",
        optional,
        lazy,
        default=default,
        min=min,
        max=max,
        step=step,
        tooltip=tooltip,
        control_after_generate=control_after_generate,
        **options,
    )


def Float(
    name: str,
    default: float = 0.0,
    *,
    min: float | None = -1e9,
    max: float | None = 1e9,
    step: float = 0.01,
    round: float | bool | None = None,
    optional: bool = False,
    lazy: bool = False,
    tooltip: str | None = None,
    **options: Any,
) -> InputSpec:
    return _spec(
        name,
        "FLOAT",
        optional,
        lazy,
        default=default,
        min=min,
        max=max,
        step=step,
        round=round,
        tooltip=tooltip,
        **options,
    )


def String(
    name: str,
    default: str = "",
    *,
    multiline: bool = False,
    optional: bool = False,
    lazy: bool = False,
    tooltip: str | None = None,
    **options: Any,
) -> InputSpec:
    return _spec(name, "STRING", optional, lazy, default=default, multiline=multiline, tooltip=tooltip, **options)


def Boolean(
    name: str,
    default: bool = False,
    *,
    optional: bool = False,
    lazy: bool = False,
    label_on: str | None = None,
    label_off: str | None = None,
    tooltip: str | None = None,
    **options: Any,
) -> InputSpec:
    return _spec(
        name,
        "BOOLEAN",
        optional,
        lazy,
        default=default,
        label_on=label_on,
        label_off=label_off,
        tooltip=tooltip,
        **options,
    )


def Combo(
    name: str,
    choices: Choices,
    *,
    default: Any = None,
    optional: bool = False,
    lazy: bool = False,
    tooltip: str | None = None,
    **options: Any,
) -> InputSpec:
    """A choice list; ``choices`` may be a function (a folder listing) read at each use."""
    return _spec(name, "COMBO", optional, lazy, choices=choices, default=default, tooltip=tooltip, **options)


def ModelFile(
    name: str,
    folder: str,
    *,
    optional: bool = False,
    lazy: bool = False,
    tooltip: str | None = None,
    **options: Any,
) -> InputSpec:
    """A combo of the files of a model folder (``models/<folder>``: ``checkpoints``, ``loras``,
    ...), listed at each use. /object_info names the folder in the input's options
    (``model_folder``), so a client can tell the user where a missing file belongs."""
    from .paths import get_paths

    def files() -> list[str]:
        return get_paths().list_models(folder)

    return Combo(name, files, optional=optional, lazy=lazy, tooltip=tooltip, model_folder=folder, **options)


def Hidden(name: str, kind: str) -> InputSpec:
    """A value the engine fills in: ``UNIQUE_ID``, ``PROMPT``, ``EXTRA_PNGINFO``, ``DYNPROMPT``."""
    return InputSpec(name, kind, "hidden", {}, False)


def Output(type: str, name: str | None = None, *, is_list: bool = False, tooltip: str | None = None) -> OutputSpec:
    return OutputSpec(type, name or type, is_list, tooltip)


@dataclass
class Result:
    """Outputs plus what to show in the UI, or a sub-graph to run in the node's place."""

    outputs: tuple[Any, ...] = ()
    ui: dict[str, Any] | None = None
    expand: dict[str, Any] | None = None

    def __init__(self, *outputs: Any, ui: dict[str, Any] | None = None, expand: dict[str, Any] | None = None):
        self.outputs, self.ui, self.expand = tuple(outputs), ui, expand


class Node:
    """Base class of Weft nodes. Override the class attributes and :meth:`run`.

    A node that can serve several prompts' calls in one (``--batch-prompts``: samplers, the
    VAE decoder) also defines a classmethod ``run_batch(calls)``: one outcome per call, as
    :meth:`run` returns it, or ``None`` to have each call run alone (:mod:`engine.batch`).
    """

    name: ClassVar[str | None] = None  # defaults to the class name; it is the prompt's class_type
    display_name: ClassVar[str | None] = None
    category: ClassVar[str] = "misc"
    description: ClassVar[str] = ""
    inputs: ClassVar[Sequence[InputSpec]] = ()
    outputs: ClassVar[Sequence[OutputSpec]] = ()
    output_node: ClassVar[bool] = False
    #: receive every input as a whole list instead of being mapped over list items
    input_is_list: ClassVar[bool] = False
    deprecated: ClassVar[bool] = False
    experimental: ClassVar[bool] = False
    #: inputs whose values :meth:`validate` checks itself: the generic type, range and
    #: choice-list checks are skipped for them (ComfyUI's VALIDATE_INPUTS naming an input),
    #: e.g. a file combo that also accepts ``"name.png [output]"``
    validates_inputs: ClassVar[tuple[str, ...]] = ()

    @property
    def ctx(self) -> ExecutionContext:
        ctx = current_context()
        if ctx is None:
            raise RuntimeError(f"{type(self).__name__}.ctx is only available while the node runs")
        return ctx

    def run(self, **inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define run()")

    def check_lazy(self, **inputs: Any) -> Sequence[str]:
        """Names of lazy inputs needed, given the inputs known so far (unevaluated are None)."""
        return [name for name, value in inputs.items() if value is None]

    @classmethod
    def fingerprint(cls, **inputs: Any) -> Any:
        """Outside state read by the node (file mtime, ...); ``float("nan")`` means never cache."""
        return None

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        """Extra checks on constant inputs before anything runs; ``True`` or a message."""
        return True

    @classmethod
    def estimate(cls, **inputs: Any) -> Estimate | None:
        """The memory this node would allocate, known before anything runs (engine/resources.py).

        Called at validation with each constant input's value and, for a linked input, what
        the source node's estimate said of that output (a :class:`TensorInfo` for tensors) or
        ``None``. Return an :class:`Estimate` (peak bytes, a description per output, the input
        that drives the size) or ``None`` when unknown. A prompt whose estimate for one node
        exceeds ``--max-node-memory`` is refused with an error naming that input, instead of
        being OOM-killed with everyone's queue. Keep it a cheap lower bound: no file reads,
        no torch. Not overriding it passes a lone LATENT/IMAGE/MASK input's shape on to the
        outputs of the same type (samplers, filters), see :func:`passthrough_estimate`.
        """
        return None


#: value types whose size follows a shape; what :func:`passthrough_estimate` carries along links
TENSOR_TYPES = frozenset({"LATENT", "IMAGE", "MASK"})


def passthrough_estimate(schema: NodeSchema, inputs: Mapping[str, Any]) -> Estimate | None:
    """The default estimate: a node with exactly one LATENT, IMAGE or MASK input of a type it
    also outputs makes outputs of that type the same size (a sampler's latent, a filtered image).

    Nodes that change the size (crops, upscales, batches) declare their own estimate; list
    nodes and nodes with several inputs of the type are left unknown.
    """
    if schema.input_is_list or any(o.is_list for o in schema.outputs):
        return None
    produced = {o.type for o in schema.outputs} & TENSOR_TYPES
    if not produced:
        return None
    by_type: dict[str, list[str]] = {}
    for spec in schema.inputs:
        if spec.kind != "hidden" and spec.type in produced:
            by_type.setdefault(spec.type, []).append(spec.name)
    known: dict[str, TensorInfo] = {}
    for type_, names in by_type.items():
        value = inputs.get(names[0]) if len(names) == 1 else None
        if isinstance(value, TensorInfo):
            known[type_] = value
    if not known:
        return None
    outputs = tuple(known.get(o.type) for o in schema.outputs)
    return Estimate(sum(info.nbytes for info in outputs if info is not None), outputs)


def _may_estimate(cls: type[Node]) -> bool:
    """False for a class whose estimate is always ``None``: the pass-through rule with no
    tensor output (text, numbers, models)."""
    if cls.estimate.__func__ is not Node.estimate.__func__:  # type: ignore[attr-defined]
        return True
    if cls.input_is_list or any(o.is_list for o in cls.outputs):
        return False
    return any(o.type in TENSOR_TYPES for o in cls.outputs)


def _resolve_inputs(specs: Sequence[InputSpec]) -> tuple[InputSpec, ...]:
    resolved = []
    for spec in specs:
        choices = spec.options.get("choices")
        if callable(choices):
            spec = InputSpec(spec.name, spec.type, spec.kind, {**spec.options, "choices": list(choices())}, spec.lazy)
        resolved.append(spec)
    return tuple(resolved)


class NodeClassDefinition:
    """Adapts a :class:`Node` subclass to the engine's ``NodeDefinition`` protocol."""

    def __init__(self, cls: type[Node], origin: Mapping[str, str] | None = None, name: str | None = None) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Node)):
            raise NodeDefinitionError(f"{cls!r} is not a subclass of nodes.api.Node")
        if cls.run is Node.run:
            raise NodeDefinitionError(f"node class {cls.__name__} does not define run()")
        names = [s.name for s in cls.inputs]
        if len(set(names)) != len(names):
            raise NodeDefinitionError(f"node class {cls.__name__} declares an input name twice")
        for spec in cls.inputs:
            if not isinstance(spec, InputSpec):
                raise NodeDefinitionError(
                    f"node class {cls.__name__}: input {spec!r} is not declared with Int/Float/..."
                )
        self.cls = cls
        self.name = name or cls.name or cls.__name__
        self._dynamic = any(callable(s.options.get("choices")) for s in cls.inputs)
        self._origin = dict(origin or {})
        self._schema = None if self._dynamic else self._build()
        #: all a call needs of the schema; fixed (unlike file-list choices), so running a node
        #: never rescans model folders: the engine validated the inputs against .schema already
        self.output_count = len(cls.outputs)
        parameters = inspect.signature(cls.run).parameters
        self._accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        self._accepted = frozenset(parameters) - {"self"}
        #: whether :meth:`estimate` can ever answer (the validator skips the call when not)
        self.estimates = _may_estimate(cls)
        #: the engine's batch capability (engine/batch.py): the class has a classmethod
        #: ``run_batch(calls) -> [outcome per call] | None`` making several prompts' calls at once
        self.batches = callable(getattr(cls, "run_batch", None))

    def _build(self, resolve_choices: bool = True) -> NodeSchema:
        cls = self.cls
        return NodeSchema(
            name=self.name,
            display_name=cls.display_name or self.name,
            category=cls.category,
            description=cls.description or inspect.cleandoc(cls.__doc__ or ""),
            inputs=_resolve_inputs(cls.inputs) if resolve_choices else tuple(cls.inputs),
            outputs=tuple(cls.outputs),
            output_node=cls.output_node,
            input_is_list=cls.input_is_list,
            is_async=inspect.iscoroutinefunction(cls.run),
            deprecated=cls.deprecated,
            experimental=cls.experimental,
            origin=self._origin,
        )

    @property
    def schema(self) -> NodeSchema:
        """The node's schema; with file-list combos, rebuilt (a folder scan) on each access."""
        return self._schema if self._schema is not None else self._build()

    def set_origin(self, origin: Mapping[str, str]) -> None:
        self._origin = dict(origin)
        if self._schema is not None:
            self._schema = self._build()

    def create(self) -> _Instance:
        return _Instance(self, self.cls())

    def fingerprint(self, inputs: Mapping[str, Any]) -> Any:
        if self.cls.fingerprint.__func__ is Node.fingerprint.__func__:  # type: ignore[attr-defined]
            return None
        return self.cls.fingerprint(**inputs)

    def estimate(self, inputs: Mapping[str, Any]) -> Estimate | None:
        """The engine's memory hook: the class's :meth:`Node.estimate`, or the pass-through rule."""
        if self.cls.estimate.__func__ is Node.estimate.__func__:  # type: ignore[attr-defined]
            # reads input and output types only: the choices need no folder scan
            schema = self._schema if self._schema is not None else self._build(resolve_choices=False)
            return passthrough_estimate(schema, inputs)
        parameters = inspect.signature(self.cls.estimate).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            inputs = {k: v for k, v in inputs.items() if k in parameters}
        return self.cls.estimate(**inputs)

    def validate(self, inputs: Mapping[str, Any], input_types: Mapping[str, str] | None = None) -> bool | str:
        """``Node.validate`` sees constants only; the linked types are for ComfyUI-style nodes."""
        if self.cls.validate.__func__ is Node.validate.__func__:  # type: ignore[attr-defined]
            return True
        return self.cls.validate(**inputs)

    def skips_default_validation(self, input_name: str) -> bool:
        return input_name in self.cls.validates_inputs

    def skips_link_type_check(self, input_name: str) -> bool:
        """Links into a Weft node are always type-checked by the engine."""
        return False

    def batch(self, calls: Sequence[Mapping[str, Any]]) -> list[NodeResult] | None:
        """Several prompts' calls made as one (``run_batch``), or ``None`` when it declines."""
        outcomes = self.cls.run_batch([self.filter_args(args) for args in calls])  # type: ignore[attr-defined]
        if outcomes is None:
            return None
        return [to_result(outcome, self.output_count) for outcome in outcomes]

    def filter_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        if self._accepts_any:
            return dict(args)
        return {k: v for k, v in args.items() if k in self._accepted}

    def call_args(self, args: Mapping[str, Any]) -> Mapping[str, Any]:
        """:meth:`filter_args` for a ``**`` call, which copies anyway: ``args`` itself when
        ``run`` takes every name in it (the usual case, one C-level subset test per call)."""
        if self._accepts_any or self._accepted.issuperset(args):
            return args
        return {k: v for k, v in args.items() if k in self._accepted}


class _Instance:
    __slots__ = ("definition", "node")

    def __init__(self, definition: NodeClassDefinition, node: Node) -> None:
        self.definition, self.node = definition, node

    def check_lazy(self, inputs: Mapping[str, Any], unevaluated: frozenset[str]) -> Sequence[str]:
        return self.node.check_lazy(**self.definition.call_args(inputs)) or ()

    def call(self, inputs: Mapping[str, Any]) -> Any:
        outcome = self.node.run(**self.definition.call_args(inputs))
        if inspect.isawaitable(outcome):
            return _finish_async(outcome, self.definition.output_count)
        return to_result(outcome, self.definition.output_count)


async def _finish_async(awaitable: Any, output_count: int) -> NodeResult:
    return to_result(await awaitable, output_count)


def to_result(outcome: Any, output_count: int) -> NodeResult:
    """Normalise what ``run`` returned: a tuple of outputs, a bare value or a :class:`Result`.

    For a single-output node a 1-tuple is read as the outputs tuple (ComfyUI's habit) and
    anything else as the value itself.
    """
    if isinstance(outcome, NodeResult):
        return outcome
    if isinstance(outcome, Result):
        return NodeResult(outcome.outputs or None, outcome.ui, outcome.expand)
    if outcome is None:
        return NodeResult(None)
    if isinstance(outcome, tuple) and (output_count != 1 or len(outcome) == 1):
        return NodeResult(outcome)
    return NodeResult((outcome,))
