"""User files: /view serves them, /upload/image and /upload/mask store them.

Every path a client names is resolved under its root folder with ``nodes.paths.safe_join``:
no ``..``, no absolute paths, no symlink that leads outside.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import mimetypes
import os
import re
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from nodes import limits
from nodes.paths import Paths, UnsafePathError, safe_join

from ..http import BadRequest, error_response
from ..keys import runtime_of

FOLDER_TYPES = ("input", "output", "temp")


def _root(paths: Paths, kind: str) -> Path:
    if kind not in FOLDER_TYPES:
        raise BadRequest(f"unknown type {kind!r}: use one of {', '.join(FOLDER_TYPES)}")
    return paths.directory(kind)


def _resolve(paths: Paths, kind: str, subfolder: str, filename: str) -> Path:
    if not filename or filename in (".", ".."):
        raise BadRequest("missing filename")
    if "/" in filename or "\\" in filename:
        raise BadRequest("filename must not contain path separators; use subfolder")
    try:
        return safe_join(_root(paths, kind), subfolder or "", filename)
    except UnsafePathError as exc:
        raise BadRequest(f"invalid path: {exc}", status=403) from exc


def _unique_name(folder: Path, name: str, data: bytes, algorithm: str = "sha256") -> str:
    """Keep ``name`` if free or identical; otherwise ``stem (n).ext`` like ComfyUI.

    ``algorithm`` is ``--default-hashing-function``, what tells identical contents apart.
    """
    target = folder / name
    if not target.exists() or _same_content(target, data, algorithm):
        return name
    stem, ext = Path(name).stem, Path(name).suffix
    n = 1
    while True:
        candidate = f"{stem} ({n}){ext}"
        path = folder / candidate
        if not path.exists() or _same_content(path, data, algorithm):
            return candidate
        n += 1


def _same_content(path: Path, data: bytes, algorithm: str = "sha256") -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return hashlib.new(algorithm, path.read_bytes()).digest() == hashlib.new(algorithm, data).digest()
    except OSError:
        return False


async def _read_upload(request: web.Request) -> tuple[dict[str, str], str, bytes, bytes | None]:
    if not request.content_type.startswith("multipart/"):
        raise BadRequest("expected a multipart/form-data body with an 'image' file field")
    # aiohttp applies --max-upload-size (client_max_size) to read()/post() only, not to a
    # multipart stream: the parts are counted here, so a 10 GB upload is refused, not buffered
    limit = request.app._client_max_size
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    fields: dict[str, str] = {}
    filename, data, original = "", b"", None
    budget = [limit, limit]  # what is left, the whole limit
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "image":
                filename = part.filename or ""
                data = await _read_part(part, budget)
            elif part.name == "original_ref":
                original = await _read_part(part, budget)
            elif part.name:
                fields[part.name] = (await _read_part(part, budget)).decode("utf-8", errors="replace")[:4096]
    except (web.HTTPException, asyncio.CancelledError):
        raise  # a body over --max-upload-size is a 413, not a malformed body
    except Exception as exc:  # aiohttp's multipart parser raises many kinds for a bad body
        # (a boundary that is not there, a NUL or a bad encoding in a part header...): all of
        # them are the client's mistake
        raise BadRequest(f"malformed multipart body: {type(exc).__name__}: {exc}") from exc
    if not filename:
        raise BadRequest("missing 'image' file field (with a filename)")
    return fields, filename, data, original


def _too_large(limit: int) -> BadRequest:
    return BadRequest(
        f"upload is larger than this server accepts ({limit / (1 << 20):g} MB; see --max-upload-size)", status=413
    )


async def _read_part(part: BodyPartReader, budget: list[int]) -> bytes:
    """One part's bytes, charged to ``budget[0]``: what is left of the limit ``budget[1]``."""
    data = bytearray()
    while chunk := await part.read_chunk(1 << 16):
        data += chunk
        if len(data) > budget[0]:
            raise _too_large(budget[1])
    budget[0] -= len(data)
    return bytes(data)


async def view(request: web.Request) -> web.StreamResponse:
    filename = request.query.get("filename", "")
    kind = request.query.get("type", "output") or "output"
    path = _resolve(runtime_of(request).paths, kind, request.query.get("subfolder", ""), filename)
    if not path.is_file():
        return error_response(404, f"file not found: {filename}")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    headers = {
        "Content-Disposition": f'filename="{path.name}"',
        "Content-Type": content_type,
        "X-Content-Type-Options": "nosniff",
    }
    if content_type in ("text/html", "image/svg+xml", "application/javascript", "text/javascript"):
        headers["Content-Type"] = "application/octet-stream"  # never render user files as active content
    return web.FileResponse(path, headers=headers)


async def _store_upload(request: web.Request, mask: bool) -> web.Response:
    runtime = runtime_of(request)
    fields, filename, data, original_ref = await _read_upload(request)
    kind = fields.get("type", "input") or "input"
    subfolder = fields.get("subfolder", "")
    overwrite = fields.get("overwrite", "").lower() in ("true", "1")
    filename = Path(filename.replace("\\", "/")).name
    target = _resolve(runtime.paths, kind, subfolder, filename)
    loop = asyncio.get_running_loop()
    if mask:
        data = await loop.run_in_executor(None, _merge_mask, data, original_ref, runtime.paths)
    await loop.run_in_executor(None, _check_image, data, filename)
    target.parent.mkdir(parents=True, exist_ok=True)
    algorithm = runtime.config.default_hashing_function
    name = filename if overwrite else _unique_name(target.parent, filename, data, algorithm)
    final = _resolve(runtime.paths, kind, subfolder, name)
    await loop.run_in_executor(None, final.write_bytes, data)
    return web.json_response({"name": name, "subfolder": subfolder, "type": kind})


async def upload_image(request: web.Request) -> web.Response:
    return await _store_upload(request, mask=False)


async def upload_mask(request: web.Request) -> web.Response:
    return await _store_upload(request, mask=True)


def _visible_files(root: Path) -> list[str]:
    """The plain files directly in ``root``, newest first, without dotfiles and without links
    that lead outside it (ComfyUI's ``/internal/files`` listing)."""
    if not root.is_dir():
        return []
    resolved_root = root.resolve()
    found: list[tuple[int, str]] = []
    for entry in os.scandir(root):
        if entry.name.startswith("."):
            continue
        try:
            if not entry.is_file():
                continue
            if entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(resolved_root):
                continue
            found.append((entry.stat().st_mtime_ns, entry.name))
        except OSError:
            continue  # removed while listing
    found.sort(key=lambda item: (-item[0], item[1]))
    return [name for _, name in found]


async def list_files(request: web.Request) -> web.Response:
    """``GET /internal/files/{directory_type}``: the names of the files in input/, output/ or
    temp/ (not in subfolders), newest first, as ComfyUI's front end lists them."""
    kind = request.match_info["directory_type"]
    if kind not in FOLDER_TYPES:
        return web.json_response({"error": "Invalid directory type"}, status=400)
    root = runtime_of(request).paths.directory(kind)
    names = await asyncio.get_running_loop().run_in_executor(None, _visible_files, root)
    return web.json_response(names)


def register(routes: web.RouteTableDef) -> None:
    """Add this module's routes to ``routes`` (``create_app`` adds each at /path and /api/path)."""
    routes.get("/view")(view)
    routes.post("/upload/image")(upload_image)
    routes.post("/upload/mask")(upload_mask)
    routes.get("/internal/files/{directory_type}")(list_files)


def _open_image(data_or_path: bytes | Path, what: str) -> Any:
    """Open an image for reading, refusing what Pillow cannot read and what is too large to
    decode (``--max-image-pixels``): a 100 kB PNG can claim 100,000 x 100,000 pixels."""
    import io

    from PIL import UnidentifiedImageError

    image_module = limits.pillow()
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    try:
        image = image_module.open(source)
    except image_module.DecompressionBombError as exc:
        raise BadRequest(f"{what} is too large to decode: {exc} (--max-image-pixels)", status=413) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise BadRequest(f"{what} is not an image this server can read: {exc}") from exc
    try:
        limits.check_image_pixels(image.width, image.height, what)
    except limits.ResultTooLarge as exc:
        image.close()
        raise BadRequest(str(exc), status=413) from exc
    return image


def _check_image(data: bytes, filename: str) -> None:
    image = _open_image(data, filename)
    try:
        image.verify()
    except Exception as exc:  # Pillow's verify raises many kinds for a broken file
        raise BadRequest(f"{filename} is not an image this server can read: {exc}") from exc
    finally:
        image.close()


def _merge_mask(mask_png: bytes, original_ref: bytes | None, paths: Paths) -> bytes:
    """ComfyUI's mask upload: the mask's alpha becomes the alpha of the referenced image."""
    import io

    if original_ref is None:
        raise BadRequest("mask upload needs 'original_ref' ({filename, subfolder, type})")
    try:
        ref = json.loads(original_ref)
    except ValueError as exc:
        raise BadRequest(f"bad original_ref: not JSON ({exc})") from exc
    if not isinstance(ref, dict) or not all(isinstance(ref.get(k, ""), str) for k in ("filename", "subfolder", "type")):
        raise BadRequest('bad original_ref: expected {"filename": str, "subfolder": str, "type": str}')
    if not ref.get("filename"):
        raise BadRequest("bad original_ref: missing 'filename'")
    # ComfyUI's forms: "name.png [input]" names its folder; without one, type (default output)
    filename, kind = ref["filename"], ref.get("type") or "output"
    annotated = re.fullmatch(r"(.*) \[(input|output|temp)\]", filename)
    if annotated:
        filename, kind = annotated.group(1), annotated.group(2)
    source = _resolve(paths, kind, ref.get("subfolder", ""), filename)
    if not source.is_file():
        raise BadRequest(f"original image not found: {ref.get('filename')} in {kind}/")
    mask = _open_image(mask_png, "the mask")
    try:
        original = _open_image(source, f"original image {filename}")
        try:
            text = dict(getattr(original, "text", None) or {})  # the prompt/workflow chunks stay
            merged = original.convert("RGBA")
            alpha = mask.convert("RGBA").getchannel("A").resize(merged.size)
        except (OSError, ValueError, SyntaxError) as exc:  # truncated or broken pixel data
            raise BadRequest(f"could not read the mask or the original image: {exc}") from exc
        finally:
            original.close()
    finally:
        mask.close()
    merged.putalpha(alpha)
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        if isinstance(key, str) and isinstance(value, str):
            info.add_text(key, value)
    out = io.BytesIO()
    merged.save(out, format="PNG", compress_level=4, pnginfo=info)
    return out.getvalue()
