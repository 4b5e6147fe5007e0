"""ComfyUI's user-data routes: the user's files (saved workflows and the like), and its users.

Same paths, query parameters, answers and status codes as ComfyUI 0.8.0's
``app/user_manager.py`` in single-user mode (Weft has one user, ``default``, see
:mod:`server.userfiles`):

* ``GET /userdata?dir=D&recurse=&full_info=&split=``: the files under ``D`` (400 without
  ``dir``, 403 for a path that leaves the user's folder, 404 when ``D`` does not exist).
* ``GET /v2/userdata?path=P``: files and folders under ``P``, folders first.
* ``GET``/``POST``/``DELETE /userdata/{file}``: read, write (``overwrite=false`` answers 409
  when the file exists; ``full_info=true`` answers the file's info), delete (204).
* ``POST /userdata/{file}/move/{dest}``: rename or move (404, 409 as above).
* ``GET /users``: ``{"storage": "server", "migrated": bool}``; ``POST /users`` is refused
  (one user).

``{file}`` is one path segment: ``workflows%2Fa.json`` names ``workflows/a.json``.
Differences on purpose: a name with a ``..`` component is refused even where it would stay
inside the folder, symlinks that lead out are refused, a folder named where a file is
expected is a 400 (ComfyUI fails with a 500), and dotfiles stay out of ``/userdata`` listings
as they do in ComfyUI's (its ``glob`` skips them).
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib import parse

from aiohttp import web

from .. import userfiles
from ..http import BadRequest, json_response, read_body, read_json
from ..keys import runtime_of

T = TypeVar("T")
#: content types never served as they are from user files (same origin as the canvas)
ACTIVE_TYPES = ("text/html", "image/svg+xml", "application/javascript", "text/javascript", "application/xhtml+xml")


def _root(request: web.Request) -> Path:
    return userfiles.user_root(runtime_of(request).paths.user)


async def _offloop(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _flag(request: web.Request, name: str, default: str = "") -> bool:
    return request.query.get(name, default).lower() == "true"


def _file_param(request: web.Request, param: str = "file") -> tuple[Path, Path, str]:
    """The user's folder, the resolved path a route parameter names, and the name."""
    name = userfiles.decode_name(request.match_info.get(param, ""))
    if not name:
        raise BadRequest(f"missing {param} name")
    root = _root(request)
    path = userfiles.resolve(root, name)
    if path == root.resolve():
        raise BadRequest(f"{param} {name!r} names the user folder itself; name a file in it")
    return root, path, name


# -- listings ---------------------------------------------------------------------------------
def _walk(folder: Path, root: Path, recurse: bool) -> list[Path]:
    """Files under ``folder`` (dotfiles and links that leave ``root`` left out), sorted."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recurse else []
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if not name.startswith(".") and userfiles.inside(path, root) and path.is_file():
                found.append(path)
    return found


def _list_dir(root: Path, folder: Path, name: str, recurse: bool, full_info: bool, split: bool) -> list[Any]:
    if not folder.exists():
        raise BadRequest(f"folder not found: {name}", status=404)
    results: list[Any] = []
    for path in _walk(folder, root.resolve(), recurse):
        if full_info:
            results.append(userfiles.file_info(path, folder))
            continue
        rel = path.relative_to(folder).as_posix()
        results.append([rel, *rel.split("/")] if split else rel)
    return results


async def list_userdata(request: web.Request) -> web.Response:
    directory = request.query.get("dir", "")
    if not directory:
        raise BadRequest("query parameter 'dir' is required: the folder to list, for example dir=workflows")
    root = _root(request)
    name = userfiles.decode_name(directory)
    folder = userfiles.resolve(root, name, what="dir")
    args = (_flag(request, "recurse"), _flag(request, "full_info"), _flag(request, "split"))
    return json_response(await _offloop(_list_dir, root, folder, name, *args))


def _list_v2(root: Path, target: Path, name: str) -> list[dict[str, Any]]:
    base = root.resolve()
    if not target.exists():
        if target == base:
            return []  # a new user: nothing saved yet
        raise BadRequest(f"requested path not found: {name}", status=404)
    if not target.is_dir():
        raise BadRequest(f"requested path is not a directory: {name}")
    results: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(target):
        dirnames[:] = [d for d in sorted(dirnames) if userfiles.inside(Path(dirpath, d), base)]
        for d in dirnames:
            results.append({"name": d, "path": Path(dirpath, d).relative_to(base).as_posix(), "type": "directory"})
        for f in sorted(filenames):
            path = Path(dirpath, f)
            if f.startswith(userfiles.TEMP_PREFIX) or not userfiles.inside(path, base):
                continue
            entry: dict[str, Any] = {"name": f, "path": path.relative_to(base).as_posix(), "type": "file"}
            try:
                stat = path.stat()
                entry.update(size=stat.st_size, modified=stat.st_mtime)
            except OSError:
                pass
            results.append(entry)
    results.sort(key=lambda e: (e["type"] != "directory", e["name"].lower()))
    return results


async def list_userdata_v2(request: web.Request) -> web.Response:
    name = parse.unquote(request.query.get("path", ""))
    root = _root(request)
    try:
        target = userfiles.resolve(root, name) if name else root.resolve()
    except BadRequest as exc:  # ComfyUI answers 400 here, 403 in the other routes
        raise BadRequest(exc.message) from None
    return json_response(await _offloop(_list_v2, root, target, name))


# -- one file ---------------------------------------------------------------------------------
async def get_userdata(request: web.Request) -> web.StreamResponse:
    _, path, name = _file_param(request)
    if not path.exists():
        raise BadRequest(f"user file not found: {name}", status=404)
    if not path.is_file():
        raise BadRequest(f"{name!r} is a folder, not a file; list it with GET /userdata?dir={parse.quote(name)}")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if content_type in ACTIVE_TYPES:
        content_type = "application/octet-stream"  # never render user files as active content
    return web.FileResponse(path, headers={"Content-Type": content_type, "X-Content-Type-Options": "nosniff"})


def _answer(path: Path, root: Path, full_info: bool) -> Any:
    base = root.resolve()
    return userfiles.file_info(path, base) if full_info else userfiles.relative(path, base)


def _write(root: Path, path: Path, name: str, data: bytes, overwrite: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with userfiles.lock_for(root):
        if path.is_dir():
            raise BadRequest(f"{name!r} is a folder; name a file to write")
        if path.exists() and not overwrite:
            raise BadRequest(f"file already exists: {name} (send overwrite=true to replace it)", status=409)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not userfiles.inside(path.parent, root.resolve()):
            raise BadRequest(f"path {name!r} is not allowed: it leaves the user folder", status=403)
        userfiles.write_atomic(path, data)


async def post_userdata(request: web.Request) -> web.Response:
    root, path, name = _file_param(request)
    overwrite = request.query.get("overwrite", "true") != "false"
    data = await read_body(request)
    try:
        await _offloop(_write, root, path, name, data, overwrite)
    except (NotADirectoryError, FileExistsError) as exc:  # a file where a folder of the path should be
        raise BadRequest(f"cannot write {name!r}: a part of its path is a file ({exc.strerror})") from None
    except OSError as exc:
        raise BadRequest(f"cannot write {name!r}: {exc.strerror or exc}") from None
    return json_response(await _offloop(_answer, path, root, _flag(request, "full_info", "false")))


def _delete(root: Path, path: Path, name: str) -> None:
    with userfiles.lock_for(root):
        if not path.exists():
            raise BadRequest(f"user file not found: {name}", status=404)
        if path.is_dir():
            raise BadRequest(f"{name!r} is a folder; only files can be deleted")
        path.unlink()


async def delete_userdata(request: web.Request) -> web.Response:
    root, path, name = _file_param(request)
    await _offloop(_delete, root, path, name)
    return web.Response(status=204)


def _move(root: Path, source: Path, dest: Path, names: tuple[str, str], overwrite: bool) -> None:
    with userfiles.lock_for(root):
        if not source.exists():
            raise BadRequest(f"user file not found: {names[0]}", status=404)
        if dest.is_dir():
            raise BadRequest(f"destination {names[1]!r} is a folder; name the file to move to")
        if dest.exists() and not overwrite:
            raise BadRequest(f"file already exists: {names[1]} (send overwrite=true to replace it)", status=409)
        if source.is_dir() and dest.is_relative_to(source):
            raise BadRequest(f"cannot move the folder {names[0]!r} into itself")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, dest)


async def move_userdata(request: web.Request) -> web.Response:
    root, source, name = _file_param(request)
    _, dest, dest_name = _file_param(request, "dest")
    overwrite = request.query.get("overwrite", "true") != "false"
    try:
        await _offloop(_move, root, source, dest, (name, dest_name), overwrite)
    except OSError as exc:
        raise BadRequest(f"cannot move {name!r} to {dest_name!r}: {exc.strerror or exc}") from None
    return json_response(await _offloop(_answer, dest, root, _flag(request, "full_info", "false")))


# -- users --------------------------------------------------------------------------------------
async def get_users(request: web.Request) -> web.Response:
    migrated = await _offloop(_root(request).exists)
    return json_response({"storage": "server", "migrated": migrated})


async def post_users(request: web.Request) -> web.Response:
    """ComfyUI adds users with ``--multi-user`` only; Weft has one, so this answers why not."""
    try:
        body = await read_json(request)
    except BadRequest as exc:
        return json_response({"error": exc.message}, status=exc.status_code)
    username = body.get("username") if isinstance(body, dict) else None
    if not isinstance(username, str) or not username.strip():
        return json_response({"error": 'username not provided: send {"username": "<name>"}'}, status=400)
    if username == userfiles.DEFAULT_USER:
        return json_response({"error": "Duplicate username."}, status=400)
    message = "this server has one user ('default'): Weft does not support --multi-user, so users cannot be added"
    return json_response({"error": message}, status=400)


def register(routes: web.RouteTableDef) -> None:
    """Add this module's routes to ``routes`` (``create_app`` adds each at /path and /api/path)."""
    routes.get("/users")(get_users)
    routes.post("/users")(post_users)
    routes.get("/userdata")(list_userdata)
    routes.get("/v2/userdata")(list_userdata_v2)
    routes.get("/userdata/{file}")(get_userdata)
    routes.post("/userdata/{file}")(post_userdata)
    routes.delete("/userdata/{file}")(delete_userdata)
    routes.post("/userdata/{file}/move/{dest}")(move_userdata)
