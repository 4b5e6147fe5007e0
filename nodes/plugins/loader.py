"""Import custom node packs one by one, each in its own failure boundary, and register nodes.

The order of work per pack: read its declared requirements (no code runs yet), import it
under ``custom_nodes.<pack>`` with its import time measured, then register what it exports:
``WEFT_NODES`` (Weft's contract) and/or ``NODE_CLASS_MAPPINGS`` (ComfyUI's classic
contract) and/or ``comfy_entrypoint`` (ComfyUI's v3 extension API, see ``v3.py``). Any
exception, even ``SystemExit`` from a pack that calls ``sys.exit``, is caught
and recorded in the :class:`~nodes.plugins.report.PluginReport`; the next pack and the
server carry on. Nothing here installs anything.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import importlib.machinery
import importlib.util
import inspect
import logging
import shlex
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..api import Node, NodeClassDefinition
from . import support
from .classic import ClassicNodeDefinition
from .discovery import PackSource, discover
from .report import Collision, PackReport, PluginReport
from .requirements import check_all
from .v3 import V3NodeDefinition, is_v3_node

log = logging.getLogger("weft.plugins")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FOLDER = REPO_ROOT / "custom_nodes"
COMPAT_DIR = REPO_ROOT / "compat"
#: Separator of namespaced node ids: ``<pack>::<node>``. It cannot clash with a URL path
#: segment (``/object_info/<id>``) and no known pack uses it in a node name.
NAMESPACE_SEPARATOR = "::"
#: A pack whose import takes longer gets a warning in the report suggesting lazy imports.
SLOW_IMPORT_MS = 500.0


@dataclass
class PluginConfig:
    """What to load. ``folders`` replaces the default ``custom_nodes/``; ``extra_folders`` adds.

    ``disable_all`` is ``--disable-all-custom-nodes``; ``enabled`` then lists the packs that
    load anyway (ComfyUI's ``--whitelist-custom-nodes``). ``disabled`` names packs to skip.
    """

    folders: list[Path] = field(default_factory=lambda: [DEFAULT_FOLDER])
    extra_folders: list[Path] = field(default_factory=list)
    disable_all: bool = False
    disabled: set[str] = field(default_factory=set)
    enabled: set[str] = field(default_factory=set)

    @classmethod
    def coerce(cls, config: Any) -> PluginConfig:
        """Accept a :class:`PluginConfig`, a mapping or an object with the same attribute names.

        The server passes its ``ServerConfig``; the names understood are ``folders`` /
        ``custom_nodes_dirs`` (default: the repository's ``custom_nodes/`` plus
        ``<base_directory>/custom_nodes``), ``extra_folders`` / ``extra_custom_node_dirs``,
        ``disable_all`` / ``disable_all_custom_nodes``, ``disabled`` / ``disable_custom_nodes``
        (a list or a comma-separated string) and ``enabled`` / ``whitelist_custom_nodes``.
        """
        if config is None:
            return cls()
        if isinstance(config, PluginConfig):
            return config

        def get(*names: str) -> Any:
            for name in names:
                if isinstance(config, Mapping) and name in config:
                    return config[name]
                if not isinstance(config, Mapping) and getattr(config, name, None) is not None:
                    return getattr(config, name)
            return None

        folders = get("folders", "custom_nodes_dirs")
        if not folders:
            folders = [DEFAULT_FOLDER]
            base = get("base_directory")
            if base is not None and Path(base).resolve() / "custom_nodes" != DEFAULT_FOLDER:
                folders.append(Path(base) / "custom_nodes")
        disabled = get("disabled", "disabled_custom_nodes", "disable_custom_nodes") or ()
        if isinstance(disabled, str):
            disabled = [p.strip() for p in disabled.split(",") if p.strip()]
        return cls(
            folders=[Path(f) for f in folders],
            extra_folders=[Path(f) for f in get("extra_folders", "extra_custom_nodes", "extra_custom_node_dirs") or []],
            disable_all=bool(get("disable_all", "disable_all_custom_nodes")),
            disabled=set(disabled),
            enabled=set(get("enabled", "whitelist_custom_nodes") or ()),
        )

    def all_folders(self) -> list[Path]:
        seen: set[Path] = set()
        result = []
        for folder in [*self.folders, *self.extra_folders]:
            resolved = Path(folder).expanduser().resolve()
            if resolved not in seen:
                seen.add(resolved)
                result.append(resolved)
        return result


_compat_installed = False


def install_compat() -> None:
    """Make ComfyUI's module names importable for packs, once per process.

    The ``compat/`` folder goes first on ``sys.path`` only when packs are loaded: a Weft
    process without plugins (a script, ``--disable-all-custom-nodes``) never sees top-level
    names like ``folder_paths`` or ``comfy``, and a real ComfyUI installed in the same
    environment cannot shadow the shims. A finder placed last on ``sys.meta_path`` turns
    imports of ComfyUI internals the folder lacks into a clear "not supported in Weft" error.
    """
    global _compat_installed
    if _compat_installed:
        return
    compat = str(COMPAT_DIR)
    if compat not in sys.path:
        sys.path.insert(0, compat)
    if not any(isinstance(f, support.UnsupportedComfyFinder) for f in sys.meta_path):
        sys.meta_path.append(support.UnsupportedComfyFinder())
    import nodes

    # ``from nodes import MAX_RESOLUTION`` is the most common reach into ComfyUI's nodes.py.
    if not hasattr(nodes, "MAX_RESOLUTION"):
        nodes.MAX_RESOLUTION = 16384  # type: ignore[attr-defined]
    _compat_installed = True


def _ensure_parent_package(folders: list[Path]) -> None:
    """``custom_nodes`` must exist as a package for ``custom_nodes.<pack>`` submodules."""
    parent = sys.modules.get("custom_nodes")
    if parent is None:
        parent = types.ModuleType("custom_nodes", "Custom node packs loaded by Weft.")
        parent.__path__ = []  # type: ignore[attr-defined]
        parent.__spec__ = importlib.machinery.ModuleSpec("custom_nodes", None, is_package=True)
        sys.modules["custom_nodes"] = parent
    path = getattr(parent, "__path__", None)
    if isinstance(path, list):
        for folder in folders:
            if str(folder) not in path:
                path.append(str(folder))


def _publish_pack_folders(folders: list[Path]) -> None:
    """``folder_paths.get_folder_paths("custom_nodes")`` answers the folders packs load from,
    as in ComfyUI (managers and packs that look for their neighbours read it)."""
    try:
        import folder_paths  # the compatibility module, now on sys.path
    except ImportError:
        return
    entries = getattr(folder_paths, "folder_names_and_paths", None)
    if isinstance(entries, dict):
        entries["custom_nodes"] = ([str(f) for f in folders], set())


def _forget_module(name: str) -> None:
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


def import_pack(source: PackSource, pack: PackReport) -> types.ModuleType | None:
    """Import one pack afresh; on failure record the error and leave no half-module behind."""
    name = source.module_name
    _forget_module(name)
    support.register_pack_root(source.path, source.name)
    started = time.perf_counter()
    try:
        spec = importlib.util.spec_from_file_location(
            name,
            source.entry,
            submodule_search_locations=[str(source.path)] if source.kind == "package" else None,
        )
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {source.entry}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a pack must not stop the server
        _forget_module(name)
        pack.status = "failed"
        pack.error = f"{type(exc).__name__}: {exc}"
        pack.traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if isinstance(exc, AttributeError) and "NoneType" in str(exc) and "PromptServer.instance" in pack.traceback:
            pack.error += (
                " (PromptServer.instance is set only once a server object exists: load packs after creating it)"
            )
        log.warning("Custom node pack %r failed to import:\n%s", source.name, pack.traceback)
        return None
    finally:
        pack.import_ms = (time.perf_counter() - started) * 1000


def _node_id(registry: Mapping[str, Any], wanted: str, pack: PackReport) -> str | None:
    """``wanted`` if free, else ``<pack>::<wanted>`` (recorded as a collision), else ``None``."""
    if wanted not in registry:
        return wanted
    namespaced = f"{pack.name}{NAMESPACE_SEPARATOR}{wanted}"
    taken_by = registry[wanted].schema.origin.get("pack", "?")
    if namespaced in registry:
        pack.node_errors.append({"node": wanted, "error": f"{wanted!r} and {namespaced!r} are both taken"})
        return None
    pack.collisions.append(Collision(wanted, namespaced, taken_by))
    log.warning(
        "Node %r of pack %r is registered as %r: %r already provides it", wanted, pack.name, namespaced, taken_by
    )
    return namespaced


def _web_extensions(module: types.ModuleType, source: PackSource, pack: PackReport) -> None:
    web = getattr(module, "WEB_DIRECTORY", None)
    if not web:
        return
    base = source.path if source.kind == "package" else source.path.parent
    folder = (base / str(web)).resolve()
    if not folder.is_dir():
        pack.warnings.append(f"WEB_DIRECTORY {web!r} is not a folder ({folder})")
        return
    pack.web_directory = str(folder)
    prefix = f"/extensions/{quote(source.name)}/"
    pack.extensions = [
        prefix + "/".join(quote(part) for part in path.relative_to(folder).parts)
        for path in sorted(folder.rglob("*.js"))
        if path.is_file()
    ]


def register_pack(registry: Any, module: types.ModuleType, source: PackSource, pack: PackReport) -> None:
    """Register a pack's nodes one by one; a node that fails is recorded, the rest still load."""
    started = time.perf_counter()
    version = source.version or getattr(module, "__version__", None) or "0.0.0"
    pack.version = str(version)
    _web_extensions(module, source, pack)
    add = _node_adder(registry, pack)
    _register_weft_nodes(module, pack, add)
    _register_classic_nodes(module, pack, add)
    _register_v3_nodes(module, pack, add)
    _settle_status(pack)
    pack.register_ms = (time.perf_counter() - started) * 1000


#: ``add(wanted_id, build)``: registers ``build(node_id)`` under a free id, recording failures
NodeAdder = Callable[[str, Callable[[str], Any]], None]


def _node_adder(registry: Any, pack: PackReport) -> NodeAdder:
    def add(wanted: str, build: Callable[[str], Any]) -> None:
        try:
            node_id = _node_id(registry, wanted, pack)
            if node_id is None:
                return
            definition = build(node_id)
            registry.register(definition, pack=pack.name, version=pack.version)
            pack.nodes.append(node_id)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            pack.node_errors.append({"node": wanted, "error": f"{type(exc).__name__}: {exc}"})
            log.warning("Node %r of pack %r refused: %s", wanted, pack.name, exc)

    return add


def _register_weft_nodes(module: types.ModuleType, pack: PackReport, add: NodeAdder) -> None:
    """``WEFT_NODES``: Weft's own contract, a list of :class:`~nodes.api.Node` subclasses."""
    weft_nodes = getattr(module, "WEFT_NODES", None)
    if weft_nodes is None:
        return
    pack.contracts.append("weft")
    if not isinstance(weft_nodes, Iterable) or isinstance(weft_nodes, (str, bytes)):
        pack.node_errors.append({"node": "WEFT_NODES", "error": "WEFT_NODES must be a list of Node subclasses"})
        weft_nodes = []
    for cls in weft_nodes:
        if not (isinstance(cls, type) and issubclass(cls, Node)):
            pack.node_errors.append({"node": repr(cls), "error": "not a subclass of nodes.api.Node"})
            continue
        wanted = cls.name or cls.__name__

        def build_weft(node_id: str, cls: type[Node] = cls) -> NodeClassDefinition:
            return NodeClassDefinition(cls, {"pack": pack.name, "version": pack.version}, name=node_id)

        add(wanted, build_weft)


def _register_classic_nodes(module: types.ModuleType, pack: PackReport, add: NodeAdder) -> None:
    """``NODE_CLASS_MAPPINGS`` (+ ``NODE_DISPLAY_NAME_MAPPINGS``): ComfyUI's classic contract."""
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
    if mappings is None:
        return
    display_names = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {}
    pack.contracts.append("classic")
    if not isinstance(mappings, Mapping):
        pack.node_errors.append({"node": "NODE_CLASS_MAPPINGS", "error": "NODE_CLASS_MAPPINGS must be a dict"})
        mappings = {}
    for class_type, cls in mappings.items():
        display = display_names.get(class_type) if isinstance(display_names, Mapping) else None

        def build_classic(node_id: str, cls: Any = cls, class_type: str = class_type, display: Any = display) -> Any:
            shown = str(display) if display else class_type
            if node_id != class_type:
                shown = f"{shown} [{pack.name}]"
            origin = {"pack": pack.name, "version": pack.version}
            if is_v3_node(cls):  # ComfyUI accepts v3 classes in NODE_CLASS_MAPPINGS too
                named = display or node_id != class_type
                return V3NodeDefinition(cls, node_id, shown if named else None, origin)
            return ClassicNodeDefinition(cls, node_id, shown, origin)

        add(str(class_type), build_classic)


def _register_v3_nodes(module: types.ModuleType, pack: PackReport, add: NodeAdder) -> None:
    """``comfy_entrypoint``: ComfyUI's v3 extension API (see ``v3.py``)."""
    if not hasattr(module, "comfy_entrypoint"):
        return
    entrypoint = module.comfy_entrypoint
    pack.contracts.append("v3")
    try:
        if not callable(entrypoint):
            raise TypeError("comfy_entrypoint must be an async function returning a ComfyExtension")
        v3_nodes = run_to_completion(_open_extension(entrypoint))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the extension's own code: record it, keep the server up
        v3_nodes = []
        pack.node_errors.append({"node": "comfy_entrypoint", "error": f"{type(exc).__name__}: {exc}"})
        log.warning("comfy_entrypoint of pack %r failed: %s", pack.name, exc)
    for cls in v3_nodes:
        if not is_v3_node(cls):
            pack.node_errors.append({"node": repr(cls), "error": "not a subclass of comfy_api.latest.io.ComfyNode"})
            continue
        try:
            wanted = str(cls.GET_SCHEMA().node_id)
        except Exception as exc:
            pack.node_errors.append({"node": cls.__name__, "error": f"define_schema() failed: {exc}"})
            continue

        def build_v3(node_id: str, cls: Any = cls, wanted: str = wanted) -> Any:
            shown = None
            if node_id != wanted:  # namespaced after a collision: say whose it is
                shown = f"{cls.GET_SCHEMA().display_name or wanted} [{pack.name}]"
            return V3NodeDefinition(cls, node_id, shown, {"pack": pack.name, "version": pack.version})

        add(wanted, build_v3)


def _settle_status(pack: PackReport) -> None:
    """The pack's status once its contracts are read: skipped, partial or failed, or as it was."""
    if not pack.contracts:
        if pack.web_directory:
            pack.warnings.append("the pack exports no nodes, only web extensions")
        else:
            pack.status = "skipped"
            pack.warnings.append("the pack exports neither WEFT_NODES nor NODE_CLASS_MAPPINGS")
    elif pack.node_errors:
        if pack.nodes:
            pack.status = "partial"
        else:
            pack.status = "failed"
            first = pack.node_errors[0]
            pack.error = f"no node could be registered; {first['node']}: {first['error']}"


async def _open_extension(entrypoint: Any) -> list[Any]:
    """ComfyUI's v3 pack protocol: ``await comfy_entrypoint()`` gives a ``ComfyExtension``;
    ``await on_load()``, then ``await get_node_list()``. One coroutine, so whatever the
    extension sets up in ``on_load`` belongs to the same event loop as its node list."""
    extension = entrypoint()
    if inspect.isawaitable(extension):
        extension = await extension
    on_load = getattr(extension, "on_load", None)
    if callable(on_load):
        loaded = on_load()
        if inspect.isawaitable(loaded):
            await loaded
    nodes = extension.get_node_list()
    if inspect.isawaitable(nodes):
        nodes = await nodes
    return list(nodes or [])


def run_to_completion(awaitable: Any) -> Any:
    """Run a coroutine from synchronous code, on a helper thread when this thread's loop runs."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(awaitable)
    # the helper thread runs in a copy of this context: the extension sees the same runtime
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="weft-plugins") as pool:
        return pool.submit(context.run, asyncio.run, awaitable).result()


def _pip_hint(requirements: list[str]) -> str:
    return "pip install " + " ".join(shlex.quote(r) for r in requirements)


def load_plugins(registry: Any, config: Any = None) -> PluginReport:
    """Discover, check, import and register every custom node pack; never raises for a pack.

    ``registry`` is a :class:`nodes.registry.NodeRegistry` already holding the built-in
    nodes (they keep their ids on collisions). ``config`` is anything
    :meth:`PluginConfig.coerce` accepts. Returns the report the server publishes.
    Packs import under the calling thread's runtime (:mod:`nodes.runtime`): the server binds
    the one it is building, so what packs reach at import time (``PromptServer.instance``,
    ``folder_paths``) is that server's.
    """
    started = time.perf_counter()
    cfg = PluginConfig.coerce(config)
    folders = cfg.all_folders()
    report = PluginReport(folders=[str(f) for f in folders], disabled_all=cfg.disable_all)
    seen: dict[str, PackSource] = {}
    for source in discover(folders):
        pack = PackReport(
            name=source.name,
            path=str(source.path),
            module=source.module_name,
            kind=source.kind,  # type: ignore[arg-type]
            version=source.version or "0.0.0",
        )
        report.packs.append(pack)
        if _may_load(source, pack, cfg, seen):
            _load_pack(registry, source, pack, report, folders)
    report.total_ms = (time.perf_counter() - started) * 1000
    report.log_summary()
    return report


def _may_load(source: PackSource, pack: PackReport, cfg: PluginConfig, seen: dict[str, PackSource]) -> bool:
    """Whether the pack is to be imported: not disabled, not a second pack of the same name,
    its declared requirements installed. Records why not in ``pack``."""
    if source.disabled_by_suffix:
        pack.status, pack.warnings = "disabled", [f"disabled by the '.disabled' suffix of {source.path.name}"]
        return False
    if source.name in cfg.disabled or (cfg.disable_all and source.name not in cfg.enabled):
        pack.status = "disabled"
        return False
    if source.name in seen:
        pack.status = "skipped"
        pack.error = f"a pack named {source.name!r} was already loaded from {seen[source.name].path}"
        log.warning("Custom node pack %s skipped: %s", source.path, pack.error)
        return False
    seen[source.name] = source
    if source.kind == "package" and source.requirements:
        pack.requirements = check_all(source.requirements)
        if pack.missing_requirements:
            pack.status = "missing_requirements"
            pack.error = (
                f"missing Python requirements: {', '.join(pack.missing_requirements)}. "
                f"Install them into Weft's environment ({_pip_hint(pack.missing_requirements)}) "
                "and restart; Weft never installs packages itself."
            )
            log.warning("Custom node pack %r not loaded: %s", source.name, pack.error)
            return False
    return True


def _load_pack(registry: Any, source: PackSource, pack: PackReport, report: PluginReport, folders: list[Path]) -> None:
    """Import one pack and register its nodes (the ComfyUI module names first, for the first pack)."""
    if not report.compat_installed:
        install_compat()
        _ensure_parent_package(folders)
        _publish_pack_folders(folders)
        report.compat_installed = True
    module = import_pack(source, pack)
    if module is not None:
        register_pack(registry, module, source, pack)
    if pack.import_ms > SLOW_IMPORT_MS:
        pack.warnings.append(
            f"importing took {pack.import_ms:.0f} ms; heavy imports (torch, diffusers, ...) belong inside "
            "the nodes' functions so the server starts fast"
        )
