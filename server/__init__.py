"""HTTP/WebSocket server. ``from server import PromptServer`` works as in ComfyUI."""

from typing import Any

__all__ = ["PromptServer", "create_app"]


def __getattr__(name: str) -> Any:
    # lazy, so importing a submodule (server.config) does not pull in aiohttp and the engine
    if name == "PromptServer":
        from .prompt_server import PromptServer

        return PromptServer
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
