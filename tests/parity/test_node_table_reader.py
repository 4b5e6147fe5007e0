"""The ComfyUI table reader (``weft_tools.comfyui_node_table``) on v3 source it must understand:
only the classes an extension's ``get_node_list`` returns are ComfyUI's nodes, and inputs
whose /object_info entry is a structure (MatchType, Autogrow, DynamicCombo) are recorded as
ComfyUI's ``get_v1_info`` gives them, names followed to the locals, class attributes and
enums they stand for. The table built from ComfyUI 0.8.0 matched ``get_v1_info`` run on
ComfyUI itself for every such input of its core nodes; this pins the rules on a small file.
"""

from __future__ import annotations

import textwrap

from weft_tools.comfyui_node_table import read_file

TYPES = {name: name.upper() for name in ("Int", "Float", "String", "Boolean", "Combo", "Image", "Mask", "Latent")} | {
    "MatchType": "COMFY_MATCHTYPE_V3",
    "Autogrow": "COMFY_AUTOGROW_V3",
    "DynamicCombo": "COMFY_DYNAMICCOMBO_V3",
    "MultiType": "COMFY_MULTITYPED_V3",
}

SOURCE = textwrap.dedent(
    """
    class Mode(str, Enum):
        HALF = "half"
        SIZE = "size"

    class Shown(io.ComfyNode):
        methods = ["area", "bilinear"]

        @classmethod
        def define_schema(cls):
            template = io.MatchType.Template("t", [io.Image, io.Mask])
            grow = io.Autogrow.TemplateNames(io.Float.Input("x", min=0.0), names=["a", "b"])
            return io.Schema(
                node_id="Shown",
                inputs=[
                    io.MatchType.Input("input", template=template, lazy=True),
                    io.Autogrow.Input("values", template=grow),
                    io.DynamicCombo.Input("mode", options=[
                        io.DynamicCombo.Option(Mode.HALF, []),
                        io.DynamicCombo.Option(Mode.SIZE, [
                            io.Int.Input("width", default=8, max=MAX_RESOLUTION),
                            io.MultiType.Input("like", [io.Image, io.Mask], optional=True),
                            io.Combo.Input("method", options=cls.methods),
                        ]),
                    ]),
                    io.Combo.Input("method", options=cls.methods),
                ],
                outputs=[io.MatchType.Output(template=template)],
            )

    class Hidden(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Hidden", inputs=[], outputs=[])

    class Extension(ComfyExtension):
        async def get_node_list(self):
            return [
                Shown,
                # Hidden,
            ]
    """
)


def test_only_registered_classes_are_read_and_structures_are_rendered_as_comfyui_does() -> None:
    table = read_file(SOURCE, "nodes_x.py", TYPES)
    assert list(table) == ["Shown"]  # Hidden is defined but left out of get_node_list
    inputs = {spec["name"]: spec for spec in table["Shown"]["inputs"]}
    assert inputs["input"]["v1"] == [
        "COMFY_MATCHTYPE_V3",
        {"lazy": True, "template": {"template_id": "t", "allowed_types": "IMAGE,MASK"}},
    ]
    assert inputs["values"]["v1"] == [
        "COMFY_AUTOGROW_V3",
        {
            "template": {
                "input": {"required": {"x": ["FLOAT", {"min": 0.0, "forceInput": True}]}},
                "names": ["a", "b"],
                "min": 1,
            }
        },
    ]
    method = ["COMBO", {"multiselect": False, "options": ["area", "bilinear"]}]
    assert inputs["mode"]["v1"] == [
        "COMFY_DYNAMICCOMBO_V3",
        {
            "options": [
                {"key": "half", "inputs": {"required": {}}},
                {
                    "key": "size",
                    "inputs": {
                        "required": {"width": ["INT", {"default": 8, "max": 16384}], "method": method},
                        "optional": {"like": ["IMAGE,MASK", {}]},
                    },
                },
            ]
        },
    ]
    assert inputs["method"]["choices"] == ["area", "bilinear"] and "v1" not in inputs["method"]
    assert table["Shown"]["outputs"] == [{"type": "COMFY_MATCHTYPE_V3", "name": "MATCHTYPE", "matchtype": "t"}]


def test_a_file_without_an_extension_keeps_every_v3_class() -> None:
    source = SOURCE.split("class Extension")[0]
    assert sorted(read_file(source, "nodes_x.py", TYPES)) == ["Hidden", "Shown"]
