"""The runtime node code reads: the user's folders, the launch options, the server object.

Node code and the ComfyUI compatibility modules need process-level things (``folder_paths``,
``comfy.cli_args``, ``PromptServer.instance``, :func:`nodes.paths.get_paths`). They all ask
:func:`current`, and only it, so two servers in one process (tests) each see their own.

Which runtime :func:`current` answers:

1. the one bound to this thread or task (:meth:`Runtime.active`, :func:`bind`): a server's
   worker binds its app's runtime while it runs prompts, each request handler its app's, and
   the plugin loader the runtime being built while packs import;
2. else the process default: the most recent of the runtimes installed (:func:`install`,
   done by a server while it runs and removed on its cleanup, or by :func:`nodes.paths.using`)
   and of those scripts configured (:func:`configure_default`, behind
   :func:`nodes.paths.configure` and :func:`nodes.launch_options.configure`).

Threads a node starts itself begin with no binding and get the process default.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .launch_options import LaunchOptions
    from .paths import Paths


@dataclass(eq=False)
class Runtime:
    #: the user's folders; ``None`` until first use: the current directory's (``WEFT_HOME``)
    paths: Paths | None = None
    #: what node code reads of the command line; ``None``: ComfyUI's defaults
    options: LaunchOptions | None = None
    #: what ComfyUI packs reach as ``PromptServer.instance`` (``None`` without a server)
    server: Any = None
    #: per-runtime state of the compatibility modules (``folder_paths``' table of folders),
    #: so what one server's packs register never shows in another's
    state: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def active(self) -> Iterator[Runtime]:
        """Bind this runtime to the calling thread or task for the block."""
        token = _bound.set(self)
        try:
            yield self
        finally:
            _bound.reset(token)


_bound: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar("weft_runtime", default=None)
_lock = threading.Lock()
#: process defaults, most recent last; the first one is the process's own (created on first use)
_installed: list[Runtime] = []
#: the last runtime :func:`configure_default` made: the next call replaces it while it is on top
_configured: list[Runtime] = []


def current() -> Runtime:
    """The runtime the calling code runs under (see the module's docstring)."""
    bound = _bound.get()
    if bound is not None:
        return bound
    try:
        return _installed[-1]
    except IndexError:
        return default()


def default() -> Runtime:
    """The process default, whatever is bound to the calling thread."""
    with _lock:
        if not _installed:
            _installed.append(Runtime())
        return _installed[-1]


def bind(runtime: Runtime | None) -> contextvars.Token[Runtime | None]:
    """Bind ``runtime`` to the calling thread or task until :func:`unbind` (a server's worker
    thread, a request handler); :meth:`Runtime.active` is the block form."""
    return _bound.set(runtime)


def unbind(token: contextvars.Token[Runtime | None]) -> None:
    _bound.reset(token)


def install(runtime: Runtime) -> None:
    """Make ``runtime`` the process default until :func:`uninstall` (a running server)."""
    default()  # the process's own runtime stays underneath
    with _lock:
        _installed.append(runtime)


def uninstall(runtime: Runtime) -> None:
    """Remove ``runtime`` from the process defaults, wherever it is: servers may stop in any order."""
    with _lock:
        for i in range(len(_installed) - 1, 0, -1):
            if _installed[i] is runtime:
                del _installed[i]
                break


@contextlib.contextmanager
def installed(runtime: Runtime) -> Iterator[Runtime]:
    install(runtime)
    try:
        yield runtime
    finally:
        uninstall(runtime)


def configure_default(**changes: Any) -> Runtime:
    """A new process default: the present one with ``changes`` (``paths``, ``options``, ``server``).

    For scripts and ``main.py run``, which configure the process step by step; the last call
    wins over what was installed before it. New paths start a fresh ``state`` (the compatibility
    modules' folders belong to the paths they were registered with).
    """
    base = default()
    state = {} if "paths" in changes else base.state
    fresh = dataclasses.replace(Runtime(base.paths, base.options, base.server, state), **changes)
    with _lock:
        if _configured and _installed[-1] is _configured[0] and len(_installed) > 1:
            _installed[-1] = fresh
        else:
            _installed.append(fresh)
        _configured[:] = [fresh]
    return fresh
