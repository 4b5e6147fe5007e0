"""A v3 pack whose nodes use ComfyUI's dynamic inputs: ``io.Autogrow`` (prefix and names
templates, and an Autogrow of MatchType inputs), ``io.DynamicCombo`` (nested, with an Autogrow
inside an option), ``io.DynamicSlot`` and ``io.MatchType`` templates, with lazy inputs and ``validate_inputs``
reading nested values. Each output node shows the arguments its ``execute`` received as JSON,
so the tests read exactly what a node got.
"""

from .nodes import DynamicExtension

__version__ = "0.1.0"


async def comfy_entrypoint() -> DynamicExtension:
    return DynamicExtension()
