"""Running a node with a file-list combo (every model loader) does not rescan its folder:
validation reads the list once, the call itself needs only the node's fixed outputs."""

from __future__ import annotations

from nodes.api import Combo, Node, NodeClassDefinition, Output

SCANS: list[str] = []


def listing() -> list[str]:
    SCANS.append("scan")
    return ["a.safetensors", "b.safetensors"]


class PickFile(Node):
    inputs = (Combo("name", listing),)
    outputs = (Output("STRING"), Output("INT"))

    def run(self, name: str) -> tuple:
        return name, len(name)


class PickOne(Node):
    inputs = (Combo("name", listing),)
    outputs = (Output("STRING"),)

    def run(self, name: str) -> tuple:
        return (name,)


def test_a_call_and_an_estimate_do_not_rebuild_the_schema():
    definition = NodeClassDefinition(PickFile)
    assert definition.schema.inputs[0].options["choices"] == ["a.safetensors", "b.safetensors"]  # validation's read
    SCANS.clear()
    result = definition.create().call({"name": "a.safetensors"})
    assert result.outputs == ("a.safetensors", 13)
    assert definition.estimate({"name": "a.safetensors"}) is None
    assert SCANS == []


def test_a_single_output_node_still_reads_a_one_tuple_as_its_outputs():
    SCANS.clear()
    result = NodeClassDefinition(PickOne).create().call({"name": "b.safetensors"})
    assert result.outputs == ("b.safetensors",)
    assert SCANS == []
