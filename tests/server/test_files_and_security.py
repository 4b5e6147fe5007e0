"""Uploads and /view stay inside their folders; cross-site writes and foreign hosts are refused."""

from __future__ import annotations

import io
import os
import uuid

import aiohttp
import pytest
from PIL import Image

from tests.support.server import LiveServer


def png_bytes(color: tuple[int, int, int] = (10, 20, 30), size: tuple[int, int] = (4, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(
    fields: dict[str, str], filename: str, data: bytes, extra_files: dict[str, bytes] | None = None
) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    for name, blob in (extra_files or {}).items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="blob"\r\n\r\n'.encode()
            + blob
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(
    live: LiveServer, filename: str, data: bytes, path: str = "/upload/image", **fields: str
) -> tuple[int, object]:
    body, content_type = multipart(fields, filename, data)
    return live.request("POST", path, raw=body, headers={"Content-Type": content_type})


def test_upload_then_view_roundtrip(live_server: LiveServer) -> None:
    data = png_bytes()
    status, body = upload(live_server, "cat.png", data)
    assert status == 200 and body == {"name": "cat.png", "subfolder": "", "type": "input"}
    assert (live_server.base_dir / "input" / "cat.png").read_bytes() == data
    status, served = live_server.get("/view?filename=cat.png&type=input")
    assert status == 200 and served == data


def test_upload_renames_on_conflict_unless_overwrite_or_identical(live_server: LiveServer) -> None:
    first, second = png_bytes((1, 1, 1)), png_bytes((2, 2, 2))
    assert upload(live_server, "a.png", first)[1]["name"] == "a.png"
    assert upload(live_server, "a.png", first)[1]["name"] == "a.png"  # identical content reuses the file
    assert upload(live_server, "a.png", second)[1]["name"] == "a (1).png"
    assert upload(live_server, "a.png", second, overwrite="true")[1]["name"] == "a.png"
    assert (live_server.base_dir / "input" / "a.png").read_bytes() == second


def test_upload_into_subfolder_and_temp(live_server: LiveServer) -> None:
    status, body = upload(live_server, "x.png", png_bytes(), subfolder="clipspace", type="temp")
    assert status == 200 and body == {"name": "x.png", "subfolder": "clipspace", "type": "temp"}
    assert live_server.get("/view?filename=x.png&type=temp&subfolder=clipspace")[0] == 200


@pytest.mark.parametrize(
    "fields",
    [
        {"subfolder": "../outside"},
        {"subfolder": "/etc"},
        {"subfolder": "a/../../b"},
        {"type": "models"},
        {"type": "../input"},
    ],
)
def test_upload_refuses_paths_outside_and_unknown_types(live_server: LiveServer, fields: dict[str, str]) -> None:
    status, body = upload(live_server, "evil.png", png_bytes(), **fields)
    assert status in (400, 403), body
    assert body["error"]["message"]
    assert not any(p.name == "evil.png" for p in live_server.base_dir.parent.rglob("evil.png"))


def test_upload_rejects_non_images_and_non_multipart(live_server: LiveServer) -> None:
    status, body = upload(live_server, "notes.png", b"definitely not an image")
    assert status == 400 and "not an image" in body["error"]["message"]
    status, body = live_server.request("POST", "/upload/image", raw=b"{}", headers={"Content-Type": "application/json"})
    assert status == 400 and "multipart" in body["error"]["message"]
    body, content_type = multipart({}, "", b"")
    status, _ = live_server.request("POST", "/upload/image", raw=body, headers={"Content-Type": content_type})
    assert status == 400


def test_upload_filename_with_path_is_reduced_to_its_name(live_server: LiveServer) -> None:
    status, body = upload(live_server, "../../escape.png", png_bytes())
    assert status == 200 and body["name"] == "escape.png"
    assert (live_server.base_dir / "input" / "escape.png").exists()


def test_mask_upload_merges_alpha_into_the_original(live_server: LiveServer) -> None:
    upload(live_server, "photo.png", png_bytes((200, 100, 50), (8, 8)))
    mask = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(mask, format="PNG")
    body, content_type = multipart(
        {"type": "input", "subfolder": "clipspace"},
        "photo-mask.png",
        mask.getvalue(),
        {"original_ref": b'{"filename": "photo.png", "subfolder": "", "type": "input"}'},
    )
    status, result = live_server.request("POST", "/upload/mask", raw=body, headers={"Content-Type": content_type})
    assert status == 200, result
    merged = Image.open(live_server.base_dir / "input" / "clipspace" / result["name"])
    assert merged.mode == "RGBA" and merged.getpixel((0, 0)) == (200, 100, 50, 0)


@pytest.mark.parametrize(
    "query",
    [
        "filename=../../etc/passwd",
        "filename=passwd&subfolder=../../../etc",
        "filename=passwd&subfolder=/etc",
        "filename=x.png&type=secret",
        "filename=",
        "type=output",
    ],
)
def test_view_refuses_escapes_and_bad_parameters(live_server: LiveServer, query: str) -> None:
    status, body = live_server.get("/view?" + query)
    assert status in (400, 403)
    assert body["error"]["message"]


def test_view_does_not_follow_symlinks_out_of_its_folder(
    live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    secret = tmp_path_factory.mktemp("elsewhere") / "secret.png"
    secret.write_bytes(png_bytes())
    os.symlink(secret, live_server.base_dir / "output" / "link.png")
    os.symlink(secret.parent, live_server.base_dir / "output" / "linkdir")
    assert live_server.get("/view?filename=link.png")[0] == 403
    assert live_server.get("/view?filename=secret.png&subfolder=linkdir")[0] == 403
    assert live_server.get("/view?filename=missing.png")[0] == 404


def test_view_never_serves_active_content_as_html(live_server: LiveServer) -> None:
    (live_server.base_dir / "output" / "page.html").write_text("<script>alert(1)</script>")
    import urllib.request

    with urllib.request.urlopen(live_server.url + "/view?filename=page.html") as response:
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1"])
def test_cross_site_writes_are_refused(live_server: LiveServer, origin: str) -> None:
    body = {
        "prompt": {
            "1": {"class_type": "PrimitiveString", "inputs": {"value": "x"}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        }
    }
    status, answer = live_server.post("/prompt", body, headers={"Origin": origin, "Content-Type": "application/json"})
    assert status == 403 and answer["error"]["type"] == "forbidden"
    for path in ("/queue", "/history", "/interrupt", "/free"):
        assert live_server.post(path, {"clear": True}, headers={"Origin": origin})[0] == 403
    assert live_server.get("/queue")[1]["queue_pending"] == []


def test_cross_site_fetch_metadata_without_origin_is_refused(live_server: LiveServer) -> None:
    status, _ = live_server.post("/interrupt", {}, headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403


def test_same_origin_and_originless_clients_are_allowed(live_server: LiveServer) -> None:
    assert live_server.post("/interrupt", {}, headers={"Origin": live_server.url})[0] == 200
    assert (
        live_server.post(
            "/interrupt",
            {},
            headers={"Origin": f"http://localhost:{live_server.port}", "Host": f"localhost:{live_server.port}"},
        )[0]
        == 200
    )
    assert live_server.post("/interrupt", {})[0] == 200


def test_foreign_host_header_is_refused_on_loopback(live_server: LiveServer) -> None:
    status, body = live_server.get("/queue", headers={"Host": "attacker.example:8188"})
    assert status == 403 and "not allowed" in body["error"]["message"]
    assert live_server.get("/queue", headers={"Host": f"[::1]:{live_server.port}"})[0] == 200


async def test_websocket_from_another_origin_is_refused(live_server: LiveServer) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(live_server.ws_url + "?clientId=x", headers={"Origin": "http://evil.example"})
        assert info.value.status == 403
        ws = await session.ws_connect(live_server.ws_url + "?clientId=y", headers={"Origin": live_server.url})
        message = await ws.receive_json(timeout=5)
        assert message["type"] == "status" and message["data"]["sid"] == "y"
        await ws.close()
