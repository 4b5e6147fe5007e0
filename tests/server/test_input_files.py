"""The file listings of ComfyUI's ``/internal/files/{type}`` and the mask upload the mask editor
uses (``/upload/mask`` with ``original_ref``), as ComfyUI 0.8.0 answers them."""

from __future__ import annotations

import io
import json
import os

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.server.test_files_and_security import multipart
from tests.support.server import LiveServer


def _png(size=(8, 8), color=(200, 100, 50), text: dict[str, str] | None = None) -> bytes:
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def _mask_upload(live: LiveServer, ref: dict[str, str], mask: Image.Image, name: str = "clipspace-mask-1.png"):
    out = io.BytesIO()
    mask.save(out, format="PNG")
    body, content_type = multipart(
        {"type": "input", "subfolder": "clipspace"},
        name,
        out.getvalue(),
        {"original_ref": json.dumps(ref).encode()},
    )
    return live.request("POST", "/upload/mask", raw=body, headers={"Content-Type": content_type})


def test_internal_files_lists_a_folder_newest_first(live_server: LiveServer) -> None:
    folder = live_server.base_dir / "input"
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(("old.png", "mid.jpg", "new.png")):
        (folder / name).write_bytes(_png())
        os.utime(folder / name, (1_700_000_000 + i * 10, 1_700_000_000 + i * 10))
    (folder / ".DS_Store").write_bytes(b"x")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.png").write_bytes(_png())
    outside = live_server.base_dir / "secret.png"
    outside.write_bytes(_png())
    (folder / "link.png").symlink_to(outside)
    for prefix in ("", "/api"):
        status, names = live_server.get(prefix + "/internal/files/input")
        assert status == 200 and names == ["new.png", "mid.jpg", "old.png"], names
    status, names = live_server.get("/internal/files/output")
    assert status == 200 and names == []
    status, body = live_server.get("/internal/files/models")
    assert status == 400 and body == {"error": "Invalid directory type"}


def test_mask_upload_takes_comfyui_forms_of_the_original(live_server: LiveServer) -> None:
    folder = live_server.base_dir / "input"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "photo.png").write_bytes(_png(text={"prompt": '{"1": {}}', "workflow": "{}"}))
    # the mask's alpha: 0 (masked) on the left half, 255 on the right
    mask = Image.new("RGBA", (8, 8), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 4, 8))
    # "name [input]" names the folder (ComfyUI's annotated form) without a type
    status, result = _mask_upload(live_server, {"filename": "photo.png [input]", "subfolder": ""}, mask)
    assert status == 200 and result == {"name": "clipspace-mask-1.png", "subfolder": "clipspace", "type": "input"}
    merged = Image.open(folder / "clipspace" / "clipspace-mask-1.png")
    assert merged.mode == "RGBA"
    assert merged.getpixel((1, 1)) == (200, 100, 50, 0) and merged.getpixel((6, 1)) == (200, 100, 50, 255)
    # the original's text chunks (its prompt and workflow) are kept, as ComfyUI keeps them
    assert merged.text == {"prompt": '{"1": {}}', "workflow": "{}"}
    # a mask of a clipspace copy: the new alpha replaces the old one
    ref = {"filename": "clipspace-mask-1.png", "subfolder": "clipspace", "type": "input"}
    status, result = _mask_upload(live_server, ref, Image.new("RGBA", (8, 8), (0, 0, 0, 255)), "clipspace-mask-2.png")
    assert status == 200, result
    again = Image.open(folder / "clipspace" / result["name"])
    assert again.getpixel((1, 1)) == (200, 100, 50, 255)
    # without a type, ComfyUI looks in output/
    status, body = _mask_upload(live_server, {"filename": "photo.png", "subfolder": ""}, mask, "m.png")
    assert status == 400 and "output/" in body["error"]["message"]
