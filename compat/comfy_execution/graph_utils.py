"""``comfy_execution.graph_utils``: ``GraphBuilder`` for node expansion and ``is_link``.

The implementation lives in :mod:`nodes.plugins.graph_tools` (the classic adapter sets the
builder's default prefix before each call); this module only gives it ComfyUI's name.
"""

from nodes.plugins.graph_tools import GraphBuilder, add_graph_prefix, is_link
from nodes.plugins.graph_tools import GraphNode as Node

__all__ = ["GraphBuilder", "Node", "add_graph_prefix", "is_link"]
