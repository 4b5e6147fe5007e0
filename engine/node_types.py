"""What validation needs to know about a node beyond its class: its own schema (dynamic
inputs) and the bindings of its type variables (templates).

A template (:attr:`engine.schema.InputSpec.template`) is a type variable of one node, as in
ComfyUI's ``MatchType``: a switch whose output has the type of whatever its inputs carry. The
first link into one of the node's inputs with that template (in declaration order) that
carries a concrete type the input allows binds it; every other link into an input with that
template must agree with the binding, and the outputs with that template carry it. A link from
such an output therefore carries its node's binding, so upstream nodes are bound first, by an
explicit walk (a chain of switches may be longer than Python's recursion limit).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .prompt import Prompt, is_link
from .schema import InputSpec, NodeDefinition, NodeSchema, OutputSpec, own_schema, types_compatible

#: template -> (the bound type, the input whose link bound it)
Bindings = dict[str, tuple[str, str]]


def cached_definition(
    definitions: dict[str, NodeDefinition | None], registry: Mapping[str, NodeDefinition], class_type: Any
) -> NodeDefinition | None:
    """The registered definition of ``class_type`` (``None`` for an unknown or non-string
    class), looked up in ``registry`` once per ``definitions`` dict."""
    if not isinstance(class_type, str):
        return None
    try:
        return definitions[class_type]
    except KeyError:
        definition = definitions[class_type] = registry.get(class_type)
        return definition


def cached_schema(
    schemas: dict[str, NodeSchema], registry: Mapping[str, NodeDefinition], class_type: str
) -> NodeSchema:
    """The class's schema, read once per ``schemas`` dict (a file-list combo rescans a folder)."""
    schema = schemas.get(class_type)
    if schema is None:
        schema = schemas[class_type] = registry[class_type].schema
    return schema


class NodeTypes:
    """Per-node schemas and template bindings of one prompt, each worked out once."""

    def __init__(
        self,
        prompt: Prompt,
        definition_of: Callable[[Any], NodeDefinition | None],
        schema_of: Callable[[str], NodeSchema],
    ) -> None:
        self.prompt = prompt
        self.definition_of = definition_of
        self.schema_of = schema_of
        self.own: dict[str, NodeSchema | None] = {}
        #: per class: whether its definition has per-node schemas (asked once, not per node)
        self.per_node: dict[Any, bool] = {}
        self.bound: dict[str, Bindings] = {}

    # -- schemas ----------------------------------------------------------------------------
    def own_schema(self, node_id: str) -> NodeSchema | None:
        """The node's own schema; ``None`` when its class schema holds (nearly every node)."""
        node = self.prompt[node_id]
        class_type = node.get("class_type")
        per_node = self.per_node.get(class_type)
        if per_node is None:
            definition = self.definition_of(class_type)
            per_node = self.per_node[class_type] = getattr(definition, "node_schema", None) is not None
        if not per_node:
            return None
        if node_id not in self.own:
            self.own[node_id] = own_schema(self.definition_of(class_type), node["inputs"])  # type: ignore[arg-type]
        return self.own[node_id]

    def schema(self, node_id: str) -> NodeSchema | None:
        """The schema that holds for one node; ``None`` for a missing node or unknown class."""
        node = self.prompt.get(node_id)
        if node is None or self.definition_of(node.get("class_type")) is None:
            return None
        own = self.own_schema(node_id)
        return own if own is not None else self.schema_of(node["class_type"])

    # -- templates --------------------------------------------------------------------------
    def produced(self, source_id: str, output: OutputSpec) -> str:
        """The type a link from ``output`` of node ``source_id`` carries."""
        if output.template is None:
            return output.type
        binding = self.bindings(source_id).get(output.template)
        return output.type if binding is None else binding[0]

    def disagreement(self, node_id: str, spec: InputSpec, produced: str) -> tuple[str, str] | None:
        """``(bound type, binding input)`` when a link carrying ``produced`` into ``spec``
        disagrees with what another input already bound the template to."""
        if spec.template is None:
            return None
        binding = self.bindings(node_id).get(spec.template)
        if binding is None or binding[1] == spec.name or types_compatible(produced, binding[0]):
            return None
        return binding

    def bindings(self, node_id: str) -> Bindings:
        found = self.bound.get(node_id)
        if found is not None:
            return found
        stack, entered = [node_id], set()
        while stack:
            current = stack[-1]
            if current in self.bound:
                stack.pop()
                continue
            if current not in entered:
                entered.add(current)
                waits = [s for s in self._templated_sources(current) if s not in self.bound and s not in entered]
                if waits:
                    stack.extend(waits)
                    continue
            # sources still unbound here are on a cycle (reported elsewhere): their declared type stands
            self.bound[current] = self._bind(current)
            stack.pop()
        return self.bound[node_id]

    def _templated_output(self, link: Any) -> OutputSpec | None:
        source = self.prompt.get(link[0])
        if source is None or self.definition_of(source.get("class_type")) is None:
            return None
        outputs = self.schema_of(source["class_type"]).outputs
        if not 0 <= link[1] < len(outputs) or outputs[link[1]].template is None:
            return None
        return outputs[link[1]]

    def _template_links(self, node_id: str) -> list[tuple[InputSpec, Any]]:
        schema = self.schema(node_id)
        if schema is None:
            return []
        inputs = self.prompt[node_id]["inputs"]
        return [
            (spec, inputs[spec.name])
            for spec in schema.inputs
            if spec.template is not None and is_link(inputs.get(spec.name))
        ]

    def _templated_sources(self, node_id: str) -> list[str]:
        return [link[0] for _, link in self._template_links(node_id) if self._templated_output(link) is not None]

    def _carried(self, link: Any) -> str | None:
        """What a link carries, without walking further upstream than what is already bound."""
        source = self.prompt.get(link[0])
        if source is None or self.definition_of(source.get("class_type")) is None:
            return None
        outputs = self.schema_of(source["class_type"]).outputs
        if not 0 <= link[1] < len(outputs):
            return None
        output = outputs[link[1]]
        binding = self.bound.get(link[0], {}).get(output.template) if output.template is not None else None
        return output.type if binding is None else binding[0]

    def _bind(self, node_id: str) -> Bindings:
        bindings: Bindings = {}
        for spec, link in self._template_links(node_id):
            if spec.template in bindings:
                continue
            carried = self._carried(link)
            if carried is None or carried == "*" or not types_compatible(carried, spec.type):
                continue  # an any-typed link binds nothing; a refused one is reported as a mismatch
            bindings[spec.template] = (carried, spec.name)  # type: ignore[index]
        return bindings
