"""A pack written against ComfyUI's v3 node API (``comfy_api.latest``), as newer packs are.

It registers its nodes the v3 way (``comfy_entrypoint`` returning a ``ComfyExtension``)
and one more the way ComfyUI also accepts (a v3 class in ``NODE_CLASS_MAPPINGS``). Between
them the nodes use every part of the API Weft's compatibility layer supports: widget and
socket inputs with options, optional and lazy inputs, hidden inputs, list outputs and list
inputs, ``validate_inputs`` (with ``input_types``), ``fingerprint_inputs``,
``check_lazy_status``, an ``async`` execute reporting progress through ``ComfyAPI``,
``NodeOutput(ui=...)``, ``NodeOutput(expand=...)`` and ``block_execution``.
"""

from .nodes import NODES, STATE, MappedUpper, V3TestExtension

NODE_CLASS_MAPPINGS = {"V3MappedUpper": MappedUpper}
NODE_DISPLAY_NAME_MAPPINGS = {"V3MappedUpper": "Upper (v3 in NODE_CLASS_MAPPINGS)"}
__version__ = "3.0.1"
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "NODES", "STATE", "comfy_entrypoint"]


async def comfy_entrypoint() -> V3TestExtension:
    return V3TestExtension()
