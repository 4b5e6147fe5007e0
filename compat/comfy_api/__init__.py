"""ComfyUI's ``comfy_api`` for custom node packs: the v3 node API (``comfy_api.latest``) and
the versioned public API (``comfy_api.v0_0_2``: ``ComfyAPI`` / ``ComfyAPISync``).

Weft's own implementation of ComfyUI's documented surface. Nodes written against it are
adapted to Weft's engine by ``nodes/plugins/v3.py``; see docs/plugins.md for what is
supported and what is not (dynamic inputs, video/audio/3D types).
"""
