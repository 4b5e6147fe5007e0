"""Issue 13, over real sockets: malformed requests get a 4xx naming the problem, one client's
prompt cannot break the shared read routes, ids route events to their owner only, a client
that stops reading cannot stall the others, and oversized work is refused before it starts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodes.api import Node, Output, Result, String
from tests.support.nodes_for_tests import make_registry
from tests.support.server import LiveServer, serve
from tests.support.ws import EventRecorder

from .test_files_and_security import multipart, png_bytes, upload


def tiny(value: str = "x") -> dict[str, Any]:
    return {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": value}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }


def post_raw(live: LiveServer, path: str, raw: bytes, **headers: str) -> tuple[int, Any]:
    return live.request("POST", path, raw=raw, headers={"Content-Type": "application/json", **headers})


def strict_json(text: bytes) -> Any:
    """Parse as a browser would: no NaN, no Infinity."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in a response")

    return json.loads(text, parse_constant=refuse)


@contextlib.contextmanager
def running(base: Path, **config: Any) -> Iterator[LiveServer]:
    """A server with config overrides, for tests that need their own limits."""
    servers = serve(base, make_registry(), **config)
    live = next(servers)
    try:
        yield live
    finally:
        servers.close()


def raw_get(live: LiveServer, path: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(live.url + path, timeout=30) as response:
        return response.read()


def assert_shared_routes_valid(live: LiveServer) -> None:
    """/history, /queue and /api/jobs answer 200 with JSON a browser can parse."""
    for path in ("/history", "/queue", "/api/jobs", "/api/jobs?sort_by=created_at&sort_order=asc", "/prompt"):
        strict_json(raw_get(live, path))


# -- malformed requests: 4xx with a message, never 500 -------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b'{"prompt": {"1": {"class_type": ["PreviewAny"], "inputs": {}}}}', "class_type"),
        (b'{"prompt": {"1": {"class_type": {"a": 1}, "inputs": {}}}}', "class_type"),
        (
            b'{"prompt": {"1": {"class_type": "PrimitiveInt", "inputs": {"value": ' + b"9" * 5000 + b"}}}}",
            "4300 digits",
        ),
        (b'{"prompt": {"1": {"class_type": "PrimitiveFloat", "inputs": {"value": NaN}}}}', "NaN"),
        (b'{"prompt": {}, "number": Infinity}', "Infinity"),
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b'{"prompt": ' + b'{"a": ' * 300 + b"1" + b"}" * 300 + b"}", "--max-json-depth"),
        (
            b'{"prompt": {"1": {"class_type": "PreviewAny", "inputs": {"source": ' + b"[" * 40 + b"]" * 40 + b"}}}}",
            "input 'source' is nested",
        ),
        (json.dumps({"prompt": tiny(), "extra_data": {"extra_pnginfo": "x"}}).encode(), "extra_pnginfo"),
        (json.dumps({"prompt": tiny(), "prompt_id": "p" * 300}).encode(), "prompt_id"),
        (json.dumps({"prompt": tiny(), "client_id": "c" * 300}).encode(), "client_id"),
        (json.dumps({"prompt": tiny(), "number": 1e300}).encode(), "number"),
    ],
    ids=[
        "list-class_type",
        "dict-class_type",
        "huge-int",
        "NaN",
        "Infinity",
        "deep-array",
        "deep-body",
        "deep-input",
        "pnginfo-string",
        "long-prompt-id",
        "long-client-id",
        "huge-number",
    ],
)
def test_malformed_prompt_bodies_get_400_naming_the_problem(live_server: LiveServer, raw: bytes, expected: str) -> None:
    status, body = post_raw(live_server, "/prompt", raw)
    assert status == 400, body
    assert expected in json.dumps(body), body
    assert_shared_routes_valid(live_server)


def test_a_body_over_the_size_limit_is_a_413_naming_the_flag(tmp_path: Path) -> None:
    with running(tmp_path, max_upload_size_mb=1) as live:
        big = json.dumps({"prompt": tiny("y" * (2 << 20))}).encode()
        status, body = post_raw(live, "/prompt", big)
        assert status == 413 and "--max-upload-size" in body["error"]["message"], body
        data = b"z" * (2 << 20)
        status, body = upload(live, "big.png", data)
        assert status == 413 and "--max-upload-size" in body["error"]["message"], body
        assert live.get("/prompt")[0] == 200


def test_multipart_bodies_that_do_not_parse_get_400(live_server: LiveServer) -> None:
    boundary = "abc123"
    cases = [
        # the declared boundary never appears
        (
            b'--other\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\nx\r\n--other--\r\n',
            f"multipart/form-data; boundary={boundary}",
        ),
        # a NUL byte in a part header
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a\x00.png"\r\nX-A\x00: b\r\n\r\n'
            f"x\r\n--{boundary}--\r\n".encode(),
            f"multipart/form-data; boundary={boundary}",
        ),
        # no boundary parameter at all
        (b"--x\r\n\r\n", "multipart/form-data"),
        # a boundary longer than RFC 2046 allows
        (b"--" + b"b" * 200 + b"\r\n\r\n", "multipart/form-data; boundary=" + "b" * 200),
    ]
    for raw, content_type in cases:
        for path in ("/upload/image", "/upload/mask"):
            status, body = live_server.request("POST", path, raw=raw, headers={"Content-Type": content_type})
            assert 400 <= status < 500, (path, content_type, body)
            assert body["error"]["message"]


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes that claim a width x height greyscale image (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    pixels = zlib.compress(row * 16, 9)  # a truncated image: the header is what counts
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_decompression_bombs_and_oversized_images_are_refused(tmp_path: Path) -> None:
    with running(tmp_path, max_image_pixels=64 * 64) as live:
        status, body = upload(live, "bomb.png", bomb_png())
        assert status == 413 and "pixels" in body["error"]["message"], body
        status, body = upload(live, "big.png", png_bytes(size=(65, 64)))
        assert status == 413 and "--max-image-pixels" in body["error"]["message"], body
        assert upload(live, "ok.png", png_bytes(size=(64, 64)))[0] == 200
        # LoadImage refuses the same file at run time, before decoding it
        (tmp_path / "input" / "bomb.png").write_bytes(bomb_png())
        prompt = {
            "1": {"class_type": "LoadImage", "inputs": {"image": "bomb.png"}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        }
        status, body = live.post("/prompt", {"prompt": prompt})
        assert status == 200, body
        entry = live.wait_history(body["prompt_id"])
        assert entry["status"]["status_str"] == "error"
        assert "pixels" in json.dumps(entry["status"]["messages"])


def test_a_mask_that_is_not_an_image_gets_400(live_server: LiveServer) -> None:
    assert upload(live_server, "base.png", png_bytes())[0] == 200
    ref = json.dumps({"filename": "base.png", "subfolder": "", "type": "input"}).encode()
    for mask, ref_value in (
        (b"not an image", ref),
        (bomb_png(), ref),
        (png_bytes(), b'{"filename": ["x"]}'),
        (png_bytes(), b"[1]"),
        (png_bytes(), b"{"),
    ):
        body, content_type = multipart({}, "mask.png", mask, extra_files={"original_ref": ref_value})
        status, answer = live_server.request("POST", "/upload/mask", raw=body, headers={"Content-Type": content_type})
        assert 400 <= status < 500, answer
        assert answer["error"]["message"]


@pytest.mark.parametrize(
    "workflow",
    [
        {"nodes": [{"id": [1], "type": ["X"]}]},
        {"nodes": [{"id": 1, "type": "KSampler"}], "definitions": {"subgraphs": [{"id": ["a"], "nodes": []}]}},
        {"nodes": [{"id": 1, "type": {"a": 1}}]},
        {"1": {"class_type": ["X"]}},
    ],
)
def test_list_typed_ids_in_missing_nodes_get_400(live_server: LiveServer, workflow: dict) -> None:
    status, body = live_server.post("/api/plugins/missing", {"workflow": workflow})
    assert status == 400 and "must be a string" in body["error"]["message"], body


def test_lenient_missing_nodes_shapes_still_work(live_server: LiveServer) -> None:
    workflow = {
        "nodes": [{"id": 1, "type": "NoSuchNode", "properties": {"cnr_id": "pack", "ver": "1"}}, "junk", {}],
        "definitions": {"subgraphs": "nonsense"},
    }
    status, body = live_server.post("/api/plugins/missing", {"workflow": workflow})
    assert status == 200 and [m["class_type"] for m in body["missing"]] == ["NoSuchNode"]


@pytest.mark.parametrize("origin", ["http://127.0.0.1:99999", "http://[::1", "http://[::1]:abc", "http://127.0.0.1:-1"])
def test_an_origin_with_a_bad_port_or_bracket_gets_400(live_server: LiveServer, origin: str) -> None:
    status, body = live_server.request(
        "POST",
        "/prompt",
        raw=json.dumps({"prompt": tiny()}).encode(),
        headers={"Content-Type": "application/json", "Origin": origin},
    )
    assert status == 400 and "Origin" in body["error"]["message"], body


def test_a_host_with_an_unclosed_bracket_is_refused_not_crashed(live_server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall(b"GET /prompt HTTP/1.1\r\nHost: [::1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:200]


# -- one prompt cannot break the shared read routes ----------------------------------------


class NaNOutput(Node):
    """Shows a NaN, an infinity and a deeply nested value in its UI output."""

    category = "testing"
    inputs = (String("value", "x"),)
    outputs = (Output("STRING"),)
    output_node = True

    def run(self, value: str) -> Result:
        nested: Any = "bottom"
        for _ in range(2000):
            nested = [nested]
        return Result(
            value, ui={"numbers": [float("nan"), float("inf"), -float("inf")], "deep": [nested], "big": [10**5000]}
        )


@pytest.fixture
def odd_server(tmp_path: Path) -> Iterator[LiveServer]:
    registry = make_registry()
    registry.register_all([NaNOutput], pack="tests")
    yield from serve(tmp_path, registry)


def test_accepted_prompts_never_break_history_queue_or_jobs(odd_server: LiveServer) -> None:
    live = odd_server
    status, body = live.post(
        "/prompt", {"prompt": tiny(), "extra_data": {"create_time": "yesterday", "extra_pnginfo": {"workflow": "x"}}}
    )
    assert status == 200, body
    live.wait_history(body["prompt_id"])
    status, body = live.post("/prompt", {"prompt": tiny(), "number": 2.5, "extra_data": {"extra_pnginfo": {}}})
    assert status == 200 and body["number"] == 2.5
    live.wait_history(body["prompt_id"])
    status, body = live.post("/prompt", {"prompt": {"1": {"class_type": "NaNOutput", "inputs": {"value": "v"}}}})
    assert status == 200, body
    live.wait_history(body["prompt_id"])
    assert_shared_routes_valid(live)
    history = strict_json(raw_get(live, "/history"))
    outputs = history[body["prompt_id"]]["outputs"]["1"]
    assert outputs["numbers"] == [None, None, None]
    assert isinstance(outputs["big"][0], str)
    jobs = strict_json(raw_get(live, "/api/jobs"))
    assert len(jobs["jobs"]) == 3
    assert all(isinstance(j["create_time"], int) for j in jobs["jobs"])  # the server's clock, not "yesterday"
    strict_json(raw_get(live, f"/api/jobs/{body['prompt_id']}"))


def test_history_pages_with_max_items_and_offset(live_server: LiveServer) -> None:
    ids = []
    for i in range(5):
        ids.append(live_server.queue_prompt(tiny(str(i))))
        live_server.wait_history(ids[-1])
    assert list(live_server.get("/history?max_items=2")[1]) == ids[-2:]
    assert list(live_server.get("/history?max_items=2&offset=2")[1]) == ids[1:3]
    assert live_server.get("/history?max_items=" + "9" * 5000)[0] == 400
    assert live_server.get("/history?offset=-1")[0] == 400


def test_big_bodies_and_big_histories_do_not_stall_other_clients(live_server: LiveServer) -> None:
    """A multi-megabyte prompt is parsed and checked off the event loop, and /history of big
    entries is written off it: meanwhile a small request still answers quickly."""
    prompt = {str(i): {"class_type": "PrimitiveString", "inputs": {"value": f"{i}" + "v" * 400}} for i in range(30_000)}
    prompt["out"] = {"class_type": "PreviewAny", "inputs": {"source": ["0", 0]}}
    body = json.dumps({"prompt": prompt}).encode()
    assert len(body) > 10 << 20
    latencies: list[float] = []
    done = threading.Event()

    def ping() -> None:
        while not done.is_set():
            started = time.monotonic()
            assert live_server.get("/prompt")[0] == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.01)

    pinger = threading.Thread(target=ping)
    started = time.monotonic()
    pinger.start()
    try:
        status, answer = post_raw(live_server, "/prompt", body)
        assert status == 200, answer
        live_server.wait_history(answer["prompt_id"], timeout=120)
        for _ in range(3):
            strict_json(raw_get(live_server, "/history"))
    finally:
        done.set()
        pinger.join()
    elapsed = time.monotonic() - started
    assert len(latencies) > 5
    # generous: the point is that small requests are not queued behind the big ones
    assert max(latencies) < max(2.0, elapsed / 3), (max(latencies), elapsed)


# -- ids and routing ------------------------------------------------------------------------


def test_a_reused_prompt_id_is_refused(live_server: LiveServer) -> None:
    first = live_server.queue_prompt(tiny("first"), prompt_id="mine")
    assert first == "mine"
    live_server.wait_history("mine")
    status, body = live_server.post("/prompt", {"prompt": tiny("second"), "prompt_id": "mine"})
    assert status == 400 and body["error"]["type"] == "prompt_id_in_use" and body["node_errors"] == {}
    assert live_server.wait_history("mine")["outputs"]["2"]["text"] == ["first"]
    # queued (not yet finished) ids are taken too
    slow = {
        "1": {"class_type": "TestSlow", "inputs": {"steps": 50, "step_seconds": 0.01, "value": "s"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    live_server.queue_prompt(slow, prompt_id="busy")
    status, body = live_server.post("/prompt", {"prompt": tiny(), "prompt_id": "busy"})
    assert status == 400 and body["error"]["type"] == "prompt_id_in_use"
    live_server.wait_history("busy")


async def test_a_second_socket_with_a_live_client_id_gets_its_own_id(live_server: LiveServer) -> None:
    async with EventRecorder(live_server.ws_url, "alice") as alice:
        first_status = next(d for e, d in alice.events if e == "status")
        assert first_status["sid"] == "alice"
        async with EventRecorder(live_server.ws_url, "alice") as intruder:
            status = next(d for e, d in intruder.events if e == "status")
            assert status["sid"] != "alice" and status["sid"]
            prompt_id = live_server.queue_prompt(tiny("secret"), client_id="alice")
            await alice.wait_done(prompt_id)
            assert any(e == "executed" for e, _ in alice.for_prompt(prompt_id))
            await asyncio.sleep(0.2)
            assert intruder.for_prompt(prompt_id) == []
            # the intruder's own id works for its own prompts
            own = live_server.queue_prompt(tiny("own"), client_id=status["sid"])
            await intruder.wait_done(own)
            assert alice.for_prompt(own) == []
    # once alice's socket is closed, a reconnect keeps the id
    deadline = time.monotonic() + 10
    while live_server.server.bus.is_live("alice") and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    async with EventRecorder(live_server.ws_url, "alice") as again:
        assert next(d for e, d in again.events if e == "status")["sid"] == "alice"


async def test_prompts_without_client_id_send_their_events_to_nobody(live_server: LiveServer) -> None:
    async with EventRecorder(live_server.ws_url, "bystander") as bystander:
        status, body = live_server.post("/prompt", {"prompt": tiny("private")})
        assert status == 200
        prompt_id = body["prompt_id"]
        assert live_server.wait_history(prompt_id)["outputs"]["2"]["text"] == ["private"]
        mine = live_server.queue_prompt(tiny("mine"), client_id="bystander")
        await bystander.wait_done(mine)
        assert bystander.for_prompt(prompt_id) == []
        assert not any(e == "<binary>" for e, _ in bystander.events)
        assert sum(1 for e, _ in bystander.events if e == "status") >= 2  # queue status still reaches everyone


# -- a client that stops reading --------------------------------------------------------------


def raw_websocket(port: int, client_id: str) -> socket.socket:
    """A WebSocket over a plain socket with a tiny receive buffer, for a client that never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws?clientId={client_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # a byte at a time: the frames after the headers stay unread
    assert b" 101 " in head.split(b"\r\n", 1)[0], head
    return sock


async def test_a_client_that_stops_reading_does_not_delay_the_others(live_server: LiveServer) -> None:
    bus = live_server.server.bus
    slow = raw_websocket(live_server.port, "slow")
    try:
        async with EventRecorder(live_server.ws_url, "fast") as fast:
            deadline = time.monotonic() + 10
            while not bus.is_live("slow") and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            blob = "x" * 100_000
            # 8 MB for a socket that reads nothing: more than the kernel's buffers take, so
            # a backlog builds up in its queue (a single sender used to wait on it for everyone)
            for i in range(80):
                live_server.server.send_sync("weft.test.flood", {"i": i, "blob": blob}, "slow")
                if i % 10 == 0:
                    frame = b"\x00\x00\x00\x01\x00\x00\x00\x02" + b"p" * 50_000
                    live_server.server.send_sync("preview_bytes", frame, "slow")
            deadline = time.monotonic() + 10
            while bus.backlog("slow") == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert bus.is_live("slow") and bus.backlog("slow") > 0
            for round_ in range(3):
                started = time.monotonic()
                prompt_id = live_server.queue_prompt(tiny(f"fast {round_}"), client_id="fast")
                await fast.wait_done(prompt_id, timeout=30)
                delay = time.monotonic() - started
                assert delay < 1.0, f"the fast client waited {delay:.2f} s for a tiny prompt"
            assert bus.is_live("slow")  # behind, not yet cut off

            bus.max_queued_bytes = 4 << 20  # this instance only: reach the limit in a few more MB
            deadline = time.monotonic() + 20
            while bus.is_live("slow") and time.monotonic() < deadline:
                live_server.server.send_sync("weft.test.flood", {"blob": blob}, "slow")
                await asyncio.sleep(0.005)
            assert "slow" not in bus.sockets, "the client that does not read was never disconnected"
            prompt_id = live_server.queue_prompt(tiny("after"), client_id="fast")
            await fast.wait_done(prompt_id, timeout=10)
            assert [e for e, _ in fast.events if e == "weft.test.flood"] == []
    finally:
        slow.close()


# -- resource guards ----------------------------------------------------------------------------


def test_huge_powers_are_refused_before_they_are_computed(live_server: LiveServer) -> None:
    prompt = {
        "1": {"class_type": "MathInt", "inputs": {"a": 10, "b": 9223372036854775807, "operation": "power"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    started = time.monotonic()
    prompt_id = live_server.queue_prompt(prompt)
    entry = live_server.wait_history(prompt_id, timeout=20)
    assert time.monotonic() - started < 10
    assert entry["status"]["status_str"] == "error"
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert error["node_id"] == "1" and "digits" in error["exception_message"] and "'b'" in error["exception_message"]
    # a chain that grows past the limit step by step is refused too, and the worker goes on
    chain = {
        "1": {"class_type": "MathInt", "inputs": {"a": 10, "b": 4000, "operation": "power"}},
        "2": {"class_type": "MathInt", "inputs": {"a": ["1", 0], "b": ["1", 0], "operation": "multiply"}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    entry = live_server.wait_history(live_server.queue_prompt(chain))
    assert entry["status"]["status_str"] == "error" and "digits" in json.dumps(entry["status"]["messages"])
    ok = {
        "1": {"class_type": "MathInt", "inputs": {"a": 2, "b": 100, "operation": "power"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    assert live_server.wait_history(live_server.queue_prompt(ok))["outputs"]["2"]["text"] == [str(2**100)]


def test_string_nodes_refuse_results_over_the_limit(tmp_path: Path) -> None:
    with running(tmp_path, max_string_length=100_000) as live:
        replace = {
            "1": {"class_type": "StringReplace", "inputs": {"string": "a" * 50_000, "find": "", "replace": "bb"}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        }
        entry = live.wait_history(live.queue_prompt(replace))
        assert entry["status"]["status_str"] == "error"
        assert "--max-string-length" in json.dumps(entry["status"]["messages"])
        concat = {
            "1": {
                "class_type": "StringConcatenate",
                "inputs": {"string_a": "a" * 60_000, "string_b": "b" * 60_000, "delimiter": ""},
            },
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        }
        entry = live.wait_history(live.queue_prompt(concat))
        assert entry["status"]["status_str"] == "error"
        fine = {
            "1": {"class_type": "StringReplace", "inputs": {"string": "abc", "find": "b", "replace": "x"}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        }
        assert live.wait_history(live.queue_prompt(fine))["outputs"]["2"]["text"] == ["axc"]


def decode_prompt(width: int, height: int, batch: int) -> dict[str, Any]:
    """Checkpoint -> text -> KSampler -> VAEDecode on an EmptyLatentImage of the given size."""
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "weft-shapes.safetensors"}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch}},
        "sample": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["ckpt", 0],
                "seed": 1,
                "steps": 1,
                "cfg": 1.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["pos", 0],
                "negative": ["neg", 0],
                "latent_image": ["latent", 0],
                "denoise": 1.0,
            },
        },
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "PreviewImage", "inputs": {"images": ["decode", 0]}},
    }


def test_prompts_over_the_memory_budget_are_refused_at_validation(tmp_path: Path) -> None:
    with running(tmp_path, max_node_memory_gb=4) as live:
        huge_latent = {
            "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 16384, "height": 16384, "batch_size": 320}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        }
        status, body = live.post("/prompt", {"prompt": huge_latent})
        assert status == 400, body
        error = body["node_errors"]["1"]["errors"][0]
        assert error["type"] == "memory_budget_exceeded"
        assert error["extra_info"]["input_name"] == "batch_size"
        assert "EmptyLatentImage" in error["details"] and "--max-node-memory" in error["details"]

        # the latent itself fits (1 GiB); decoding it would not: refused at the decoder, through the sampler
        status, body = live.post("/prompt", {"prompt": decode_prompt(8192, 8192, 64)})
        assert status == 400, body
        assert list(body["node_errors"]) == ["decode"]
        error = body["node_errors"]["decode"]["errors"][0]
        assert error["type"] == "memory_budget_exceeded" and error["extra_info"]["input_name"] == "samples"

        for prompt in (
            {
                "1": {
                    "class_type": "EmptyImage",
                    "inputs": {"width": 16384, "height": 16384, "batch_size": 64, "color": 0},
                },
                "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
            },
            {
                "1": {
                    "class_type": "EmptyImage",
                    "inputs": {"width": 1024, "height": 1024, "batch_size": 1, "color": 0},
                },
                "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 4096}},
                "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
            },
            {
                "1": {
                    "class_type": "EmptyImage",
                    "inputs": {"width": 4096, "height": 4096, "batch_size": 4, "color": 0},
                },
                "2": {
                    "class_type": "ImageScaleBy",
                    "inputs": {"image": ["1", 0], "upscale_method": "bilinear", "scale_by": 4.0},
                },
                "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
            },
        ):
            status, body = live.post("/prompt", {"prompt": prompt})
            assert status == 400, body
            assert {e["type"] for entry in body["node_errors"].values() for e in entry["errors"]} == {
                "memory_budget_exceeded"
            }

        status, body = live.post("/prompt", {"prompt": tiny()})
        assert status == 200
        live.wait_history(body["prompt_id"])
        assert live.server.config.node_memory_budget == 4 << 30


def test_ordinary_prompts_pass_the_default_memory_check(live_server: LiveServer) -> None:
    from engine import normalise_prompt, validate_prompt

    config = live_server.server.config
    assert config.max_node_memory_gb is None and config.node_memory_budget > 1 << 30  # half the RAM
    result = validate_prompt(
        normalise_prompt(decode_prompt(1024, 1024, 4)),
        live_server.server.registry,
        memory_budget=config.node_memory_budget,
    )
    assert result.ok and not result.node_errors, result.node_errors


def page(live: LiveServer, prefix: str) -> str:
    status, body = live.request("GET", "/", headers={"X-Forwarded-Prefix": prefix} if prefix else {})
    assert status == 200
    return body.decode() if isinstance(body, bytes) else str(body)


def test_x_forwarded_prefix_is_ignored_without_a_base_path(live_server: LiveServer) -> None:
    assert "evil.example" not in page(live_server, "//evil.example")
    assert 'src="/js/app.js' in page(live_server, "/weft")


def test_x_forwarded_prefix_must_be_a_plain_path_with_a_base_path(tmp_path: Path) -> None:
    with running(tmp_path, base_path="/weft", trusted_proxies=["127.0.0.1"]) as live:  # the page needs no token
        assert 'src="/weft/js/app.js' in page(live, "")
        assert 'src="/proxy/js/app.js' in page(live, "/proxy/")
        for hostile in ("//evil.example", "https://evil.example", "/a/../b", '/x"><script>', "/a//b"):
            html = page(live, hostile)
            assert 'src="/weft/js/app.js' in html and hostile not in html, hostile


# -- randomised bodies and graphs (seeded: a failure reproduces) -------------------------------

KEYS = [
    "prompt",
    "delete",
    "clear",
    "client_id",
    "extra_data",
    "number",
    "prompt_id",
    "workflow",
    "nodes",
    "1",
    "inputs",
    "class_type",
    "type",
    "id",
    "unload_models",
    "free_memory",
    "partial_execution_targets",
    "front",
    "extra_pnginfo",
    "create_time",
    "definitions",
    "subgraphs",
]
SCALARS: list[Any] = [None, True, 0, -1, 10**30, 1.5, 1e308, "x", "", "../..", "\x00", "é" * 3, "1"]


def random_value(rng: Any, depth: int = 0) -> Any:
    kind = rng.randrange(10 if depth < 4 else 6)
    if kind < 6:
        return rng.choice(SCALARS)
    if kind < 8:
        return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_random_bodies_on_every_route_never_get_a_5xx(live_server: LiveServer) -> None:
    import random

    app = live_server.server.app
    assert app is not None
    routes = sorted(
        {
            (r.method, r.resource.canonical)
            for r in app.router.routes()
            if r.method in ("GET", "POST", "PUT", "DELETE")
            and r.resource is not None
            and "{" not in r.resource.canonical
            and not r.resource.canonical.endswith("/ws")
        }
    )
    assert len(routes) > 20
    rng = random.Random(1313)
    queries = [
        "",
        "?max_items=x",
        "?offset=-5",
        "?filename=..&type=input",
        "?status=zz",
        "?limit=1e5",
        "?filename=a&subfolder=%00",
        "?max_items=" + "9" * 30,
        "?sort_by=created_at&sort_order=up",
    ]
    for case in range(400):
        method, path = rng.choice(routes)
        raw = (
            json.dumps(random_value(rng)).encode()
            if rng.random() < 0.9
            else rng.choice([b"", b"{", b"\xff", b"[]", b"null", b"NaN", b"[" * 2000])
        )
        status, body = live_server.request(
            method,
            path + rng.choice(queries),
            raw=None if method == "GET" else raw,
            headers={"Content-Type": "application/json"},
        )
        assert status < 500, (case, method, path, raw[:200], body)
    assert_shared_routes_valid(live_server)


def test_random_graphs_of_utility_nodes_leave_history_valid(live_server: LiveServer) -> None:
    import random

    rng = random.Random(4242)
    registry = live_server.server.registry
    classes = [
        "PrimitiveString",
        "PrimitiveInt",
        "PrimitiveFloat",
        "MathInt",
        "MathFloat",
        "StringConcatenate",
        "StringReplace",
        "StringSubstring",
        "StringLength",
        "IntToFloat",
        "FloatToInt",
        "PreviewAny",
    ]
    odd: list[Any] = [0, 1, -7, 2**62, 2**63 - 1, 9.5, -1e9, 1e300, "a", "", "b" * 50, True, None, [1, 2], {"x": 1}]
    ids = []
    for case in range(40):
        prompt: dict[str, Any] = {}
        for n in range(rng.randrange(1, 6)):
            class_type = rng.choice(classes)
            inputs: dict[str, Any] = {}
            for spec in registry[class_type].schema.inputs:
                if spec.kind == "hidden" or rng.random() < 0.05:
                    continue
                if prompt and (spec.type not in ("COMBO",) and rng.random() < 0.4):
                    inputs[spec.name] = [rng.choice(list(prompt)), 0]
                elif spec.type == "COMBO" and rng.random() < 0.9:
                    inputs[spec.name] = rng.choice(list(spec.options["choices"]))
                else:
                    inputs[spec.name] = rng.choice(odd)
            prompt[str(n)] = {"class_type": class_type, "inputs": inputs}
        prompt["out"] = {"class_type": "PreviewAny", "inputs": {"source": [rng.choice(list(prompt)), 0]}}
        status, body = live_server.post("/prompt", {"prompt": prompt, "client_id": "fuzz"})
        assert status in (200, 400), (case, prompt, body)
        if status == 200:
            ids.append(body["prompt_id"])
    assert len(ids) >= 5, f"only {len(ids)} random graphs were valid; the generator needs work"
    for prompt_id in ids:
        live_server.wait_history(prompt_id)
    assert_shared_routes_valid(live_server)
