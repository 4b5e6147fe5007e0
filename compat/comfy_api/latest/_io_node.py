"""The v3 node class, ``ComfyNode``, and what its ``execute`` returns (``NodeOutput``).

``ComfyNode`` also derives the classic (V1) attributes from the schema, so code that reads
node classes the old way reads v3 nodes too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from ._io_schema import HiddenHolder, Schema
from ._io_widgets import Combo


# -- results --------------------------------------------------------------------------------
class _UIOutput(ABC):
    """Base of ``comfy_api.latest.ui`` classes: something shown on the node."""

    @abstractmethod
    def as_dict(self) -> dict[str, Any]:
        """The UI output entry ComfyUI's ``executed`` event carries for this value."""


class NodeOutput:
    """What ``execute`` returns: output values, plus optional ``ui``, ``expand`` (a sub-graph
    to run in the node's place) and ``block_execution`` (a message: block the outputs)."""

    def __init__(
        self,
        *args: Any,
        ui: _UIOutput | dict[str, Any] | None = None,
        expand: dict[str, Any] | None = None,
        block_execution: str | None = None,
    ) -> None:
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self) -> tuple[Any, ...] | None:
        return self.args if self.args else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeOutput:
        result = data.get("result", ())
        if type(result).__name__ == "ExecutionBlocker":
            return cls(block_execution=getattr(result, "message", None))
        return cls(*(result or ()), ui=data.get("ui"), expand=data.get("expand"))

    def __getitem__(self, index: int) -> Any:
        return self.args[index]


# -- the node class -------------------------------------------------------------------------
class _classproperty:  # noqa: N801 - reads like a property
    def __init__(self, getter: Callable[[Any], Any]) -> None:
        self.getter = getter

    def __get__(self, instance: Any, owner: type) -> Any:
        return self.getter(owner)


class ComfyNode:
    """Base of v3 nodes. Override :meth:`define_schema` and :meth:`execute` (classmethods);
    optionally :meth:`validate_inputs`, :meth:`fingerprint_inputs`, :meth:`check_lazy_status`.
    ``execute`` may be ``async``. Inside it, ``cls.hidden`` holds the hidden values."""

    hidden: ClassVar[HiddenHolder] = HiddenHolder()
    #: marks v3 classes for the loader (a duck-typed check would also catch look-alikes)
    _weft_v3_node: ClassVar[bool] = True

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError(f"{cls.__name__} must define define_schema()")

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise NotImplementedError(f"{cls.__name__} must define execute()")

    @classmethod
    def validate_inputs(cls, **kwargs: Any) -> bool | str:
        """Checks before the run, on constants (links are ``None``): ``True`` or a message."""
        return True

    @classmethod
    def fingerprint_inputs(cls, **kwargs: Any) -> Any:
        """Outside state the node reads; a changed value re-runs the node (``IS_CHANGED``)."""
        return None

    @classmethod
    def check_lazy_status(cls, **kwargs: Any) -> list[str]:
        """Names of lazy inputs needed, given those known so far (unevaluated ones are ``None``)."""
        return [name for name, value in kwargs.items() if value is None]

    # -- the schema, read the way ComfyUI reads it --------------------------------------------
    @classmethod
    def GET_SCHEMA(cls) -> Schema:  # noqa: N802 - ComfyUI's name
        schema = cls.define_schema()
        if not isinstance(schema, Schema):
            raise TypeError(f"{cls.__name__}.define_schema() must return io.Schema, got {type(schema).__name__}")
        schema.validate()
        schema.finalize()
        return schema

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, Any]]:  # noqa: N802 - ComfyUI's name
        """The schema's inputs in the classic shape: ``{"required": {id: (type, options)}, ...}``."""
        schema = cls.GET_SCHEMA()
        declared: dict[str, dict[str, Any]] = {"required": {}, "optional": {}}
        for item in schema.inputs:
            options = item.as_dict()
            if isinstance(item, Combo.Input):
                entry: tuple[Any, ...] = (list(item.options), options)
            else:
                entry = (item.get_io_type(), options)
            declared["optional" if item.optional else "required"][item.id] = entry
        if schema.hidden:
            declared["hidden"] = {member.name: member.value for member in schema.hidden}
        return declared

    @_classproperty
    def RETURN_TYPES(cls) -> tuple[str, ...]:  # noqa: N802, N805
        return tuple(o.get_io_type() for o in cls.GET_SCHEMA().outputs)

    @_classproperty
    def RETURN_NAMES(cls) -> tuple[str, ...]:  # noqa: N802, N805
        return tuple(o.display_name or o.get_io_type() for o in cls.GET_SCHEMA().outputs)

    @_classproperty
    def OUTPUT_IS_LIST(cls) -> tuple[bool, ...]:  # noqa: N802, N805
        return tuple(bool(o.is_output_list) for o in cls.GET_SCHEMA().outputs)

    @_classproperty
    def OUTPUT_TOOLTIPS(cls) -> tuple[str | None, ...]:  # noqa: N802, N805
        return tuple(o.tooltip for o in cls.GET_SCHEMA().outputs)

    @_classproperty
    def OUTPUT_NODE(cls) -> bool:  # noqa: N802, N805
        return cls.GET_SCHEMA().is_output_node

    @_classproperty
    def INPUT_IS_LIST(cls) -> bool:  # noqa: N802, N805
        return cls.GET_SCHEMA().is_input_list

    @_classproperty
    def CATEGORY(cls) -> str:  # noqa: N802, N805
        return cls.GET_SCHEMA().category

    @_classproperty
    def DESCRIPTION(cls) -> str:  # noqa: N802, N805
        return cls.GET_SCHEMA().description

    @_classproperty
    def DEPRECATED(cls) -> bool:  # noqa: N802, N805
        return cls.GET_SCHEMA().is_deprecated

    @_classproperty
    def EXPERIMENTAL(cls) -> bool:  # noqa: N802, N805
        return cls.GET_SCHEMA().is_experimental

    @_classproperty
    def NOT_IDEMPOTENT(cls) -> bool:  # noqa: N802, N805
        return cls.GET_SCHEMA().not_idempotent

    FUNCTION: ClassVar[str] = "execute"
