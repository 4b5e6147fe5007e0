"""A pack written in ComfyUI's classic contract, the way real packs are written.

It imports ComfyUI's utility modules by their ComfyUI names (``folder_paths``, ``comfy.utils``,
``comfy.model_management``, ``comfy_execution.graph_utils``) and uses relative imports, so
loading it exercises the compatibility layer as a real pack would.
"""

from .image_nodes import NODE_CLASS_MAPPINGS as _IMAGE
from .image_nodes import NODE_DISPLAY_NAME_MAPPINGS as _IMAGE_NAMES
from .logic_nodes import NODE_CLASS_MAPPINGS as _LOGIC

NODE_CLASS_MAPPINGS = {**_IMAGE, **_LOGIC}
NODE_DISPLAY_NAME_MAPPINGS = {**_IMAGE_NAMES, "ClassicLazySwitch": "Lazy Switch (classic)"}
WEB_DIRECTORY = "./js"
__version__ = "2.5.0"
