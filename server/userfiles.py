"""The user's own files under the user directory (``--user-directory``, default ``user/``).

ComfyUI keeps each user's data in ``<user directory>/<user id>/``: saved workflows under
``workflows/``, the settings in ``comfy.settings.json`` and whatever else its front end or
extensions store. Weft has one user, ``default`` (``--multi-user`` is accepted and ignored), so
every request reads and writes ``<user directory>/default/``, as ComfyUI does without
``--multi-user``; the same folder can be shared with a ComfyUI install. The server's own state
(``weft-state.sqlite3``) lives beside it, out of reach of these routes.

Names from requests are resolved with :func:`nodes.paths.safe_join`: no ``..``, no absolute
paths, no symlink that leads out of the user's folder. Writes go to a temporary file that is
renamed over the target, under one lock per user folder, so a reader never sees half a file
and concurrent updates of the settings never lose or mangle each other.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib import parse

from nodes.paths import UnsafePathError, safe_join

from .http import BadRequest

log = logging.getLogger(__name__)

DEFAULT_USER = "default"
SETTINGS_FILE = "comfy.settings.json"
#: temporary files of atomic writes (hidden from listings)
TEMP_PREFIX = ".weft-tmp-"

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def user_root(user_dir: Path) -> Path:
    """The single user's folder: ``<user directory>/default``."""
    return user_dir / DEFAULT_USER


def lock_for(root: Path) -> threading.Lock:
    """The lock every write under ``root`` holds (a thread lock: writes run off the event loop,
    and two apps of one process that share a folder share its lock)."""
    key = str(root.resolve())
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def decode_name(name: str) -> str:
    """ComfyUI decodes a name that still holds ``%`` once more (``workflows%252Fa.json``)."""
    return parse.unquote(name) if "%" in name else name


#: the longest file name (one path part, in bytes) and path the file systems take
NAME_MAX, PATH_MAX = 255, 4096


def check_length(name: str, what: str = "path") -> None:
    """A 400 for a name no file system takes, before it reaches one (which would fail with an OSError)."""
    parts = name.replace("\\", "/").split("/")
    if len(name.encode("utf-8", "surrogatepass")) > PATH_MAX or any(
        len(p.encode("utf-8", "surrogatepass")) > NAME_MAX for p in parts
    ):
        raise BadRequest(f"{what} is too long: at most {NAME_MAX} bytes per name and {PATH_MAX} in all")


def resolve(root: Path, name: str, *, what: str = "path") -> Path:
    """``root/name`` resolved inside ``root``, else a 403 that says why (a 400 when too long)."""
    check_length(name, what)
    try:
        return safe_join(root, name)
    except UnsafePathError as exc:
        raise BadRequest(f"{what} {name[:200]!r} is not allowed: {exc}", status=403) from None


def relative(path: Path, root: Path) -> str:
    return path.relative_to(root.resolve()).as_posix()


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, links followed, is in ``root`` (``root`` already resolved)."""
    try:
        return path.resolve().is_relative_to(root)
    except OSError:
        return False


def file_info(path: Path, relative_to: Path) -> dict[str, Any]:
    """ComfyUI's ``FileInfo``: ``path`` (relative, with ``/``), ``size``, ``modified``, ``created``."""
    stat = path.stat()
    return {
        "path": path.relative_to(relative_to).as_posix(),
        "size": stat.st_size,
        "modified": stat.st_mtime,
        "created": stat.st_ctime,
    }


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- settings ----------------------------------------------------------------------------------
def read_settings(path: Path) -> dict[str, Any]:
    """The settings file as a dict; ``{}`` when it is missing or unreadable (as ComfyUI)."""
    return _load_settings(path)[0]


def _load_settings(path: Path) -> tuple[dict[str, Any], bool]:
    """The settings and whether the file was readable (a missing file is)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, True
    except (OSError, UnicodeDecodeError) as exc:
        log.error("the user settings file %s could not be read: %s", path, exc)
        return {}, False
    try:
        data = json.loads(text)
    except ValueError:
        log.error("the user settings file is corrupted: %s", path)
        return {}, False
    return (data, True) if isinstance(data, dict) else ({}, False)


def update_settings(path: Path, changes: dict[str, Any]) -> None:
    """Merge ``changes`` into the settings file, read and written under the folder's lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with lock_for(path.parent):
        current, readable = _load_settings(path)
        if not readable:
            _keep_aside(path)  # keep it for the user rather than overwrite it
        current.update(changes)
        write_atomic(path, json.dumps(current, indent=4).encode("utf-8"))


def _keep_aside(path: Path) -> None:
    aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        os.replace(path, aside)
        log.error("the unreadable settings file was kept as %s; a new one is started", aside)
    except OSError as exc:
        log.error("could not move the unreadable settings file %s aside: %s", path, exc)
