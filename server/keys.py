"""What an app carries (aiohttp's typed ``AppKey``s), in a module of its own so route modules
read their app's state from the request without importing :mod:`server.app`."""

from __future__ import annotations

from aiohttp import web

from .prompt_server import PromptServer
from .runtime import ServerRuntime

#: the app's runtime: paths, launch options, registry, plugin report, configuration
RUNTIME_KEY = web.AppKey("weft_runtime", ServerRuntime)
#: the app's server object (queue, history, worker, events): ``runtime.server``
PROMPT_SERVER_KEY = web.AppKey("weft_server", PromptServer)


def runtime_of(request: web.Request) -> ServerRuntime:
    return request.app[RUNTIME_KEY]


def server_of(request: web.Request) -> PromptServer:
    return request.app[PROMPT_SERVER_KEY]
