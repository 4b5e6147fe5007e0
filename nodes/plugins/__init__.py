"""Custom node packs: discovery, isolated loading, the classic-contract adapter, the report.

The server calls :func:`load_plugins` once, after the built-in nodes are registered, and
publishes the returned :class:`PluginReport` through ``server/routes/plugins.py``. See
``docs/plugins.md`` for the pack author's guide.
"""

from .classic import ClassicNodeDefinition
from .loader import NAMESPACE_SEPARATOR, PluginConfig, install_compat, load_plugins
from .report import PackReport, PluginReport
from .support import NotSupportedInWeft

__all__ = [
    "ClassicNodeDefinition",
    "NAMESPACE_SEPARATOR",
    "PluginConfig",
    "install_compat",
    "load_plugins",
    "PackReport",
    "PluginReport",
    "NotSupportedInWeft",
    "origin_info",
]


def origin_info(schema: object) -> dict[str, object]:
    """The /object_info fields that say where a node came from.

    ``python_module`` is ComfyUI's field (``"nodes"`` for built-ins, ``"custom_nodes.<pack>"``
    for packs); ``pack`` is Weft's ``{"name", "version"}``, which the canvas copies into each
    saved node's ``properties`` as ``cnr_id`` / ``ver`` (ComfyUI frontend's names).
    """
    origin = dict(getattr(schema, "origin", {}) or {})
    name = str(origin.get("pack", "weft"))
    version = str(origin.get("version", "0.0.0"))
    module = "nodes" if name == "weft" else f"custom_nodes.{name}"
    return {"python_module": module, "pack": {"name": name, "version": version}}
