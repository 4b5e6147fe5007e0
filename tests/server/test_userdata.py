"""ComfyUI's user-data, users, settings and workflow-template routes over the real server:
round trips, nested folders, URL-encoded names, refused traversal, the 4xx cases, and
concurrent writes that leave the settings file whole."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.server import LiveServer, serve

WORKFLOW = {
    "last_node_id": 1,
    "last_link_id": 0,
    "nodes": [{"id": 1, "type": "PrimitiveInt"}],
    "links": [],
    "version": 0.4,
}


def raw(server: LiveServer, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(server.url + path, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def user_root(server: LiveServer) -> Path:
    return server.base_dir / "user" / "default"


def write(server: LiveServer, name: str, data: bytes, query: str = "") -> tuple[int, object]:
    return server.request("POST", f"/userdata/{name}{query}", raw=data)


def test_round_trip_nested_folders_and_encoded_names(live_server):
    assert live_server.get("/users") == (200, {"storage": "server", "migrated": False})
    assert live_server.get("/v2/userdata") == (200, [])  # a new user: nothing yet
    body = json.dumps(WORKFLOW).encode()
    assert write(live_server, "workflows%2Fa.json", body) == (200, "workflows/a.json")
    assert write(live_server, "workflows%2Fsub%2Fb%20c.json", b"{}") == (200, "workflows/sub/b c.json")
    assert (user_root(live_server) / "workflows" / "a.json").read_bytes() == body
    assert (user_root(live_server) / "workflows" / "sub" / "b c.json").read_bytes() == b"{}"
    assert live_server.get("/users")[1]["migrated"] is True

    status, data, headers = raw(live_server, "GET", "/api/userdata/workflows%2Fa.json")
    assert (status, data) == (200, body)
    assert headers["Content-Type"].startswith("application/json")
    assert live_server.get("/userdata/workflows%2Fsub%2Fb%20c.json") == (200, {})

    assert live_server.get("/userdata?dir=workflows") == (200, ["a.json"])
    assert live_server.get("/userdata?dir=workflows&recurse=true") == (200, ["a.json", "sub/b c.json"])
    assert live_server.get("/api/userdata?dir=workflows&recurse=true&split=true") == (
        200,
        [["a.json", "a.json"], ["sub/b c.json", "sub", "b c.json"]],
    )
    status, infos = live_server.get("/userdata?dir=workflows%2Fsub&recurse=true&full_info=true")
    assert status == 200 and [i["path"] for i in infos] == ["b c.json"]
    assert infos[0]["size"] == 2 and isinstance(infos[0]["modified"], float) and "created" in infos[0]

    status, entries = live_server.get("/v2/userdata?path=workflows")
    assert status == 200
    assert [(e["type"], e["path"]) for e in entries] == [
        ("directory", "workflows/sub"),
        ("file", "workflows/a.json"),
        ("file", "workflows/sub/b c.json"),
    ]
    assert entries[1]["name"] == "a.json" and entries[1]["size"] == len(body) and "modified" in entries[1]


def test_overwrite_full_info_move_and_delete(live_server):
    assert write(live_server, "workflows%2Fa.json", b'{"v": 1}')[0] == 200
    status, body = write(live_server, "workflows%2Fa.json", b'{"v": 2}', "?overwrite=false")
    assert status == 409 and "already exists" in body["error"]["message"]
    assert live_server.get("/userdata/workflows%2Fa.json") == (200, {"v": 1})
    status, info = write(live_server, "workflows%2Fa.json", b'{"v": 3}', "?full_info=true")
    assert status == 200 and info["path"] == "workflows/a.json" and info["size"] == 8
    assert live_server.get("/userdata/workflows%2Fa.json") == (200, {"v": 3})

    assert live_server.post("/userdata/workflows%2Fa.json/move/workflows%2Fnew%2Fb.json") == (
        200,
        "workflows/new/b.json",
    )
    assert live_server.get("/userdata/workflows%2Fa.json")[0] == 404
    assert live_server.get("/userdata/workflows%2Fnew%2Fb.json") == (200, {"v": 3})
    assert live_server.post("/userdata/workflows%2Fa.json/move/workflows%2Fc.json")[0] == 404
    write(live_server, "workflows%2Fc.json", b"{}")
    status, _ = live_server.post("/userdata/workflows%2Fnew%2Fb.json/move/workflows%2Fc.json?overwrite=false")
    assert status == 409
    status, info = live_server.post("/userdata/workflows%2Fnew%2Fb.json/move/workflows%2Fc.json?full_info=true")
    assert status == 200 and info["path"] == "workflows/c.json"
    assert live_server.get("/userdata/workflows%2Fc.json") == (200, {"v": 3})

    assert raw(live_server, "DELETE", "/userdata/workflows%2Fc.json")[:2] == (204, b"")
    assert raw(live_server, "DELETE", "/api/userdata/workflows%2Fc.json")[0] == 404
    assert live_server.get("/userdata?dir=workflows&recurse=true") == (200, [])


def test_bad_requests_get_clear_4xx(live_server):
    status, body = live_server.get("/userdata")
    assert status == 400 and "'dir' is required" in body["error"]["message"]
    status, body = live_server.get("/userdata?dir=nothing-here")
    assert status == 404 and "nothing-here" in body["error"]["message"]
    assert live_server.get("/userdata/missing.json")[0] == 404
    assert live_server.get("/v2/userdata?path=missing")[0] == 404
    write(live_server, "workflows%2Fa.json", b"{}")
    assert live_server.get("/v2/userdata?path=workflows%2Fa.json")[0] == 400  # a file, not a folder
    status, body = live_server.get("/userdata/workflows")
    assert status == 400 and "folder" in body["error"]["message"]
    assert write(live_server, "workflows", b"{}")[0] == 400
    assert raw(live_server, "DELETE", "/userdata/workflows")[0] == 400
    status, body = write(live_server, "workflows%2Fa.json%2Fb.json", b"{}")  # a file as a folder
    assert status == 400 and "a.json" in body["error"]["message"]
    assert live_server.post("/userdata/workflows%2Fa.json/move/workflows")[0] == 400
    long = "a" * 300  # longer than any file system takes: a 400, not an OSError
    for method, path in [("GET", f"/userdata/{long}"), ("POST", f"/userdata/{long}"), ("DELETE", f"/userdata/{long}")]:
        status, body = live_server.request(method, path, raw=b"{}" if method == "POST" else None)
        assert status == 400 and "too long" in body["error"]["message"], (method, body)
    assert live_server.get(f"/userdata?dir={long}")[0] == 400
    assert live_server.get(f"/v2/userdata?path={long}")[0] == 400
    assert live_server.post(f"/userdata/workflows%2Fa.json/move/{long}")[0] == 400
    assert live_server.get(f"/api/workflow_templates/weft/{long}")[0] == 400


ESCAPES = [
    "..%2Fsecret.txt",
    "workflows%2F..%2F..%2Fsecret.txt",
    "%252e%252e%252fsecret.txt",  # decoded twice, as ComfyUI does
    "%2Fetc%2Fpasswd",
    "..%2Fweft-state.sqlite3",  # the server's own state beside the user's folder
]


@pytest.mark.parametrize("name", ESCAPES)
def test_traversal_is_refused(live_server, name):
    secret = live_server.base_dir / "user" / "secret.txt"
    secret.write_text("private")
    status, body = live_server.get(f"/userdata/{name}")
    assert status == 403 and "not allowed" in body["error"]["message"]
    assert write(live_server, name, b"overwritten")[0] == 403
    assert raw(live_server, "DELETE", f"/userdata/{name}")[0] == 403
    assert live_server.get(f"/userdata?dir={name}")[0] == 403
    assert live_server.get(f"/v2/userdata?path={name}")[0] == 400
    write(live_server, "a.json", b"{}")
    assert live_server.post(f"/userdata/a.json/move/{name}")[0] == 403
    assert live_server.post(f"/userdata/{name}/move/b.json")[0] == 403
    assert secret.read_text() == "private"
    assert not Path("/etc/passwd").read_bytes().startswith(b"overwritten")


def test_symlinks_out_of_the_user_folder_are_refused(live_server, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.json").write_text('{"secret": true}')
    root = user_root(live_server)
    (root / "workflows").mkdir(parents=True)
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "workflows" / "leak.json").symlink_to(outside / "secret.json")
    (root / "workflows" / "mine.json").write_text("{}")
    for name in ("out%2Fsecret.json", "workflows%2Fleak.json"):
        assert live_server.get(f"/userdata/{name}")[0] == 403
        assert write(live_server, name, b"{}")[0] == 403
    assert write(live_server, "out%2Fnew.json", b"{}")[0] == 403
    assert not (outside / "new.json").exists()
    assert live_server.get("/userdata?dir=out")[0] == 403
    assert live_server.get("/userdata?dir=workflows&recurse=true") == (200, ["mine.json"])
    status, entries = live_server.get("/v2/userdata")
    assert status == 200 and {e["path"] for e in entries} == {"workflows", "workflows/mine.json"}
    assert (outside / "secret.json").read_text() == '{"secret": true}'


def test_users_in_single_user_mode(live_server):
    status, body = live_server.post("/users", {"username": "default"})
    assert (status, body) == (400, {"error": "Duplicate username."})
    status, body = live_server.post("/users", {"username": "alice"})
    assert status == 400 and "one user" in body["error"]
    assert live_server.post("/users", {"name": "alice"})[0] == 400
    status, body = live_server.request("POST", "/users", raw=b"not json")
    assert status == 400 and body["error"]


def test_settings_round_trip_stored_as_comfyui_does(live_server):
    assert live_server.get("/settings") == (200, {})
    assert live_server.get("/settings/Comfy.LinkRenderMode") == (200, None)
    assert live_server.post("/settings/Comfy.LinkRenderMode", 0) == (200, None)
    assert live_server.post("/api/settings/Comfy.ColorPalette", "light") == (200, None)
    assert live_server.post("/settings", {"Comfy.SnapToGrid.GridSize": 20, "pysssss.SnapToGrid": True}) == (200, None)
    assert live_server.get("/settings/Comfy.LinkRenderMode") == (200, 0)
    expected = {
        "Comfy.LinkRenderMode": 0,
        "Comfy.ColorPalette": "light",
        "Comfy.SnapToGrid.GridSize": 20,
        "pysssss.SnapToGrid": True,
    }
    assert live_server.get("/api/settings") == (200, expected)
    stored = user_root(live_server) / "comfy.settings.json"
    assert json.loads(stored.read_text()) == expected
    assert stored.read_text().startswith('{\n    "Comfy.LinkRenderMode": 0')  # ComfyUI's indent=4
    # the same file through the user-data routes, as ComfyUI's front end may read it
    assert live_server.get("/userdata/comfy.settings.json") == (200, expected)

    status, body = live_server.post("/settings", [1, 2])
    assert status == 400 and "JSON object" in body["error"]["message"]
    status, body = live_server.request("POST", "/settings/Comfy.LinkRenderMode", raw=b"")
    assert status == 400 and "Comfy.LinkRenderMode" in body["error"]["message"]
    assert live_server.request("POST", "/settings/x", raw=b"{nope")[0] == 400
    assert live_server.get("/settings") == (200, expected)


def test_concurrent_setting_writes_all_land(live_server):
    def post(i: int) -> int:
        if i % 3 == 0:
            return live_server.post("/settings", {f"bulk.{i}": i, "shared": i})[0]
        return live_server.post(f"/settings/key.{i}", {"value": i, "text": "x" * 2000})[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(post, range(60)))
        reads = list(pool.map(lambda _: live_server.get("/settings")[0], range(20)))
    assert set(statuses) == {200} and set(reads) == {200}
    _, settings = live_server.get("/settings")
    for i in range(60):
        if i % 3 == 0:
            assert settings[f"bulk.{i}"] == i
        else:
            assert settings[f"key.{i}"]["value"] == i
    stored = user_root(live_server) / "comfy.settings.json"
    assert json.loads(stored.read_text()) == settings
    assert not [p for p in stored.parent.iterdir() if p.name.startswith(".weft-tmp-")]


def test_unreadable_settings_are_kept_aside(live_server):
    root = user_root(live_server)
    root.mkdir(parents=True)
    (root / "comfy.settings.json").write_text('{"half": ')
    assert live_server.get("/settings") == (200, {})
    assert live_server.post("/settings/x", 1) == (200, None)
    assert live_server.get("/settings") == (200, {"x": 1})
    (aside,) = root.glob("comfy.settings.json.unreadable-*")
    assert aside.read_text() == '{"half": '


def test_user_directory_flag(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    for server in serve(tmp_path / "base", user_directory=elsewhere):
        assert server.post("/settings/a", 1)[0] == 200
        assert write(server, "workflows%2Fw.json", b"{}")[0] == 200
    assert json.loads((elsewhere / "default" / "comfy.settings.json").read_text()) == {"a": 1}
    assert (elsewhere / "default" / "workflows" / "w.json").is_file()


def test_workflow_templates(live_server):
    status, listing = live_server.get("/workflow_templates")
    assert status == 200
    names = listing["weft"]
    examples = Path(__file__).resolve().parents[2] / "examples"
    ui_files = sorted(p.name[: -len(".json")] for p in examples.glob("*.json") if not p.name.endswith(".api.json"))
    assert names == ui_files and "apg_shapes" in names
    for name in names:
        status, data, headers = raw(live_server, "GET", f"/api/workflow_templates/weft/{name}.json")
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        assert json.loads(data)["nodes"], name
    assert live_server.get("/api/workflow_templates/weft/nothing.json")[0] == 404
    assert live_server.get("/api/workflow_templates/no-such-pack/a.json")[0] == 404
    assert live_server.get("/api/workflow_templates/weft/..%2F..%2Fpyproject.toml")[0] == 403
    assert os.path.isdir(examples)
