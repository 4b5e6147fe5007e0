"""Example custom node pack for Weft: a template to copy.

It shows both contracts side by side:

* Weft's own contract: ``WEFT_NODES`` lists :class:`nodes.api.Node` subclasses (in
  ``text_nodes.py`` and ``image_nodes.py``). This is the recommended way to write new nodes.
* ComfyUI's classic contract: ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS`` (in
  ``classic_nodes.py``), so existing ComfyUI code can be dropped in.

``WEB_DIRECTORY`` points at ``web/``, whose scripts the canvas loads through
``/extensions/example_pack/...``; ``web/example.js`` registers a colour-picker widget, a menu
entry and an event listener through ``window.weft.extensions.register``.

Version and requirements live in ``pyproject.toml`` so Weft can read them before importing.
Keep imports at the top of this file cheap: torch is imported inside the nodes' ``run``.
"""

from .classic_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .image_nodes import ExampleColorSwatch
from .text_nodes import ExampleTextTemplate, ExampleWordStats

WEFT_NODES = [ExampleWordStats, ExampleTextTemplate, ExampleColorSwatch]
WEB_DIRECTORY = "./web"

__all__ = ["WEFT_NODES", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
