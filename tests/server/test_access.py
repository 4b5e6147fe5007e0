"""Who may use the server: access tokens off loopback, the Host allowlist (DNS rebinding),
X-Forwarded-* only from trusted proxies, and bodies that never arrive.

The server is a real ``main.py`` process on 127.0.0.2, a second loopback address standing in
for a LAN address (Linux routes all of 127.0.0.0/8 to lo). Being loopback, it needs its token
configured to require one; what happens with a generated token is checked without binding
a public address.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.auth import AuthConfigError, effective_token
from server.config import ServerConfig, parse_args
from server.launch import LaunchError, access_lines, serve
from server.security import host_allowlist
from tests.support.server import LiveServer
from tests.support.server import serve as serve_embedded

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"
HOST = "127.0.0.2"
BODY_TIMEOUT = 1.0


@dataclass
class Remote:
    """A server process reached as from another machine."""

    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def cookie(self) -> str:
        return f"weft_token_{self.port}"

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, token: str | None = TOKEN
    ) -> tuple[int, Any, Any]:
        """(status, body, headers); ``token`` goes in an Authorization header unless None."""
        all_headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=all_headers)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(request, timeout=30) as response:
                payload, status, answer_headers = response.read(), response.status, response.headers
        except urllib.error.HTTPError as exc:
            payload, status, answer_headers = exc.read(), exc.code, exc.headers
        try:
            return status, json.loads(payload) if payload else None, answer_headers
        except ValueError:
            return status, payload.decode(errors="replace"), answer_headers


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    base = tmp_path_factory.mktemp("weft-remote")
    port = _free_port(HOST)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "--base-directory",
            str(base),
            "--disable-all-custom-nodes",
            "--listen",
            HOST,
            "--port",
            str(port),
            "--auth-token",
            TOKEN,
            "--allowed-hosts",
            "weft.example",
            "--body-timeout",
            str(BODY_TIMEOUT),
            "--idle-timeout",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    server = Remote(port, proc)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if server.request("GET", "/system_stats")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err
    assert f"Weft is running at http://{HOST}:{port}/" in out
    assert TOKEN not in out + err  # a configured token stays out of the logs


PROMPT = {
    "1": {"class_type": "PrimitiveString", "inputs": {"value": "x"}},
    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
}

ROUTES = [
    ("GET", "/queue", None),
    ("GET", "/api/history", None),
    ("GET", "/object_info", None),
    ("GET", "/view?filename=a.png", None),
    ("GET", "/api/system_stats", None),
    ("GET", "/api/jobs", None),
    ("GET", "/extensions", None),
    ("GET", "/api/plugins", None),
    ("GET", "/weft/extension-host.js", None),
    ("POST", "/prompt", {"prompt": PROMPT}),
    ("POST", "/api/queue", {"clear": True}),
    ("POST", "/history", {"clear": True}),
    ("POST", "/interrupt", {}),
    ("POST", "/free", {}),
    ("POST", "/upload/image", None),
    ("DELETE", "/queue", None),
]


@pytest.mark.parametrize("method, path, body", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_without_the_token_every_route_answers_401(remote: Remote, method: str, path: str, body: Any) -> None:
    for token in (None, "wrong-token-0123456789abcdef"):
        status, answer, headers = remote.request(method, path, body, token=token)
        assert status == 401, (path, answer)
        assert answer["error"]["type"] == "unauthorized" and "Bearer" in answer["error"]["message"]
        assert headers["WWW-Authenticate"].startswith("Bearer")
    assert remote.request("GET", "/queue")[1]["queue_pending"] == []  # nothing was queued


def test_the_canvas_files_load_without_it_so_the_page_can_ask(remote: Remote) -> None:
    status, page, _ = remote.request("GET", "/", token=None)
    assert status == 200 and 'src="/js/app.js' in page
    assert remote.request("GET", "/js/api.js", token=None)[0] == 200
    assert remote.request("GET", "/js/token.js", token=None)[0] == 200
    status, page, _ = remote.request("GET", "/?token=wrong-token-0123456789abcdef", token=None)
    assert status == 200 and 'src="/js/app.js' in page  # the page loads and asks again


def test_the_token_in_a_header_a_query_or_the_cookie_the_page_sets(remote: Remote) -> None:
    assert remote.request("GET", "/queue")[0] == 200
    assert remote.request("GET", "/queue", headers={"Authorization": f"bearer {TOKEN}"}, token=None)[0] == 200
    assert remote.request("GET", f"/queue?token={TOKEN}", token=None)[0] == 200
    status, body, _ = remote.request("POST", f"/prompt?token={TOKEN}", {"prompt": PROMPT}, token=None)
    assert status == 200 and body["prompt_id"]

    status, _, headers = remote.request("GET", f"/?token={TOKEN}&x=1", token=None)
    assert status == 303 and headers["Location"] == "./?x=1"  # the token leaves the address bar
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{remote.cookie}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/;" in cookie + ";"
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    assert remote.request("GET", "/queue", headers={"Cookie": f"{remote.cookie}={TOKEN}"}, token=None)[0] == 200
    assert remote.request("GET", "/queue", headers={"Cookie": f"weft_token_1={TOKEN}"}, token=None)[0] == 401


async def test_the_websocket_needs_it_too(remote: Remote) -> None:
    ws_url = f"ws://{HOST}:{remote.port}/ws"
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789abcdef"}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(ws_url + "?clientId=a", headers=headers)
            assert refused.value.status == 401
        for url, headers in (
            (ws_url + f"?clientId=b&token={TOKEN}", {}),
            (ws_url + "?clientId=c", {"Cookie": f"{remote.cookie}={TOKEN}", "Origin": remote.url}),
            (ws_url + "?clientId=d", {"Authorization": f"Bearer {TOKEN}"}),
        ):
            ws = await session.ws_connect(url, headers=headers)
            message = await ws.receive_json(timeout=10)
            assert message["type"] == "status"
            await ws.close()


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "127.0.0.2.evil.example", "weft.example.evil.example"]
)
def test_a_foreign_host_is_refused_even_with_the_token(remote: Remote, host: str) -> None:
    """DNS rebinding: a page on evil.example, re-pointed at this address, sends its own name."""
    host = host.format(port=remote.port)
    for method, path, body in (("GET", "/queue", None), ("GET", "/", None), ("POST", "/prompt", {"prompt": PROMPT})):
        status, answer, _ = remote.request(method, path, body, headers={"Host": host})
        assert status == 403 and "--allowed-hosts" in answer["error"]["message"], (method, path)
    # X-Forwarded-Host is not believed from a peer that is not a --trusted-proxy
    assert remote.request("GET", "/queue", headers={"Host": host, "X-Forwarded-Host": HOST})[0] == 403


def test_loopback_names_the_listen_address_and_allowed_hosts_pass(remote: Remote) -> None:
    for host in (f"{HOST}:{remote.port}", f"localhost:{remote.port}", "[::1]", "weft.example", "WEFT.example:80"):
        assert remote.request("GET", "/queue", headers={"Host": host})[0] == 200, host


async def test_the_websocket_from_a_foreign_host_is_refused(remote: Remote) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(
                f"ws://{HOST}:{remote.port}/ws?clientId=e&token={TOKEN}", headers={"Host": "evil.example"}
            )
        assert refused.value.status == 403


def test_a_foreign_host_is_refused_on_127_0_0_1_too(live_server: LiveServer) -> None:
    status, body = live_server.get("/queue", headers={"Host": "evil.example"})
    assert status == 403 and "not allowed" in body["error"]["message"]
    assert live_server.get("/queue")[0] == 200  # loopback without a configured token: no token needed


@pytest.mark.parametrize("prefix", ["//evil.example", "https://evil.example", "/weft"])
def test_x_forwarded_prefix_never_reaches_the_page_without_a_trusted_proxy(remote: Remote, prefix: str) -> None:
    status, page, _ = remote.request("GET", "/", headers={"X-Forwarded-Prefix": prefix})
    assert status == 200 and 'src="/js/app.js' in page and prefix not in page


def test_a_trusted_proxy_is_believed(tmp_path: Path) -> None:
    """Behind a proxy on this machine (the peer is 127.0.0.1): its prefix, host and scheme count,
    and the server, reachable from elsewhere through it, generates a token."""
    live = next(
        servers := serve_embedded(
            tmp_path, trusted_proxies=["127.0.0.1"], base_path="/weft", allowed_hosts=["weft.example"]
        )
    )
    try:
        token = live.server.config.auth_token
        assert token and len(token) >= 32
        assert live.get("/queue")[0] == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert live.get("/queue", headers=auth)[0] == 200
        status, page = live.get("/", headers={"X-Forwarded-Prefix": "/proxy/"})
        assert status == 200 and 'src="/proxy/js/app.js' in page.decode()
        for hostile in ("//evil.example", "/a/../b", '/x"><script>'):
            page = live.get("/", headers={"X-Forwarded-Prefix": hostile})[1].decode()
            assert 'src="/weft/js/app.js' in page and hostile not in page
        forwarded = {**auth, "X-Forwarded-Host": "weft.example", "X-Forwarded-Proto": "https"}
        assert live.get("/queue", headers=forwarded)[0] == 200
        assert live.get("/queue", headers={**forwarded, "X-Forwarded-Host": "evil.example"})[0] == 403
        # the browser's origin is the proxy's: https://weft.example
        assert live.post("/interrupt", {}, headers={**forwarded, "Origin": "https://weft.example"})[0] == 200
        assert live.post("/interrupt", {}, headers={**forwarded, "Origin": live.url})[0] == 403
        request = urllib.request.Request(
            f"{live.url}/?token={token}",
            headers={"X-Forwarded-Host": "weft.example", "X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/proxy"},
        )
        with pytest.raises(urllib.error.HTTPError) as redirect:
            urllib.request.build_opener(NoRedirect).open(request, timeout=30)
        cookie = redirect.value.headers["Set-Cookie"]
        assert redirect.value.code == 303 and "Secure" in cookie and "Path=/proxy/" in cookie
    finally:
        servers.close()


def _send_headers_only(remote: Remote, content_length: int = 1000) -> socket.socket:
    sock = socket.create_connection((HOST, remote.port), timeout=30)
    sock.sendall(
        (
            f"POST /prompt HTTP/1.1\r\nHost: {HOST}:{remote.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
        ).encode()
    )
    return sock


def _read_to_close(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_bodies_that_never_arrive_are_answered_408_and_closed(remote: Remote) -> None:
    socks = [_send_headers_only(remote) for _ in range(50)]
    try:
        for sock in socks:
            sock.settimeout(BODY_TIMEOUT + 20)  # a bound for a hung test, not a timing claim
            answer = _read_to_close(sock)  # returns once the server closed the connection
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b"--body-timeout" in answer
    finally:
        for sock in socks:
            sock.close()
    assert remote.request("GET", "/queue")[0] == 200  # and the server answers the others


def test_a_body_that_completes_in_time_is_read(remote: Remote) -> None:
    body = json.dumps({"prompt": PROMPT}).encode()
    sock = _send_headers_only(remote, len(body))
    try:
        time.sleep(BODY_TIMEOUT / 4)
        sock.sendall(body)
        sock.settimeout(30)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        sock.close()


def test_headers_that_never_end_and_idle_connections_are_closed(remote: Remote) -> None:
    partial = socket.create_connection((HOST, remote.port), timeout=30)
    idle = socket.create_connection((HOST, remote.port), timeout=30)
    try:
        partial.sendall(f"GET /queue HTTP/1.1\r\nHost: {HOST}\r\n".encode())
        for sock in (partial, idle):
            assert _read_to_close(sock) == b""  # --idle-timeout 2: closed without an answer
    finally:
        partial.close()
        idle.close()


# -- configuration: when a token is needed, generated, refused ----------------------------------------


def test_off_loopback_a_token_is_generated_unless_explicitly_off() -> None:
    config = ServerConfig(listen=["0.0.0.0"])
    token = effective_token(config)
    assert token and len(token) >= 32 and config.auth_token == token
    assert effective_token(config) == token  # once: the printed token is the app's
    assert effective_token(ServerConfig(listen=["0.0.0.0"], insecure_no_auth=True)) is None
    with pytest.raises(AuthConfigError, match="--insecure-no-auth"):
        effective_token(ServerConfig(listen=["192.168.1.5"], auth_token=""))
    assert effective_token(ServerConfig(listen=["0.0.0.0"], auth_token="", insecure_no_auth=True)) is None
    assert effective_token(ServerConfig(listen=["::"], auth_token=TOKEN, insecure_no_auth=True)) == TOKEN


def test_on_loopback_only_a_configured_token_is_required() -> None:
    assert effective_token(ServerConfig()) is None
    assert effective_token(ServerConfig(listen=["127.0.0.1", "::1", "localhost"])) is None
    assert effective_token(ServerConfig(auth_token=TOKEN)) == TOKEN
    assert effective_token(ServerConfig(auth_token="")) is None
    assert effective_token(ServerConfig(trusted_proxies=["127.0.0.1"]))  # a proxy brings others in
    for weak in ("short", "has spaces in it 0123456789", "semi;colon;0123456789abc"):
        with pytest.raises(AuthConfigError, match="at least 16"):
            effective_token(ServerConfig(auth_token=weak))


def test_token_flags_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("WEFT_AUTH_TOKEN", raising=False)
    assert parse_args([]).auth_token is None
    assert parse_args(["--auth-token", TOKEN]).auth_token == TOKEN
    assert parse_args(["--auth-token", ""]).auth_token == ""
    file = tmp_path / "token"
    file.write_text(TOKEN + "\n")
    assert parse_args(["--auth-token-file", str(file)]).auth_token == TOKEN
    monkeypatch.setenv("WEFT_AUTH_TOKEN", "from-the-environment-0123")
    assert parse_args([]).auth_token == "from-the-environment-0123"
    assert parse_args(["--auth-token", TOKEN]).auth_token == TOKEN
    for argv, says in (
        (["--auth-token-file", str(tmp_path / "missing")], "cannot read"),
        (["--auth-token-file", str(tmp_path)], "cannot read"),
        (["--auth-token", TOKEN, "--auth-token-file", str(file)], "not allowed with"),
        (["--trusted-proxy", "proxy.example"], "not an IP address"),
        (["--body-timeout", "0"], "above 0"),
    ):
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert says in capsys.readouterr().err, argv
    config = parse_args(
        [
            "--allowed-hosts",
            "A.example, b.example",
            "--trusted-proxy",
            "10.0.0.1,fd00::/8",
            "--body-timeout",
            "5",
            "--idle-timeout",
            "7",
            "--insecure-no-auth",
        ]
    )
    assert config.allowed_hosts == ["a.example", "b.example"]
    assert config.trusted_proxies == ["10.0.0.1", "fd00::/8"]
    assert (config.body_timeout, config.idle_timeout, config.insecure_no_auth) == (5, 7, True)


def test_launch_refuses_a_public_address_with_authentication_off(tmp_path: Path) -> None:
    config = parse_args(
        ["--listen", "0.0.0.0", "--auth-token", "", "--base-directory", str(tmp_path), "--disable-all-custom-nodes"]
    )
    with pytest.raises(LaunchError, match="--insecure-no-auth"):
        serve(config)


def test_the_start_up_lines_give_the_address_to_open() -> None:
    config = ServerConfig(listen=["0.0.0.0"], port=8188)
    token = effective_token(config)
    lines = access_lines(config, "http://127.0.0.1:8188/", generated=True)
    assert f"open http://127.0.0.1:8188/?token={token}" in lines[0] and "other machines" in lines[0]
    lines = access_lines(ServerConfig(listen=["0.0.0.0"], auth_token=TOKEN), "http://127.0.0.1:8188/", generated=False)
    assert TOKEN not in " ".join(lines) and "?token=TOKEN" in lines[0]
    assert access_lines(ServerConfig(), "http://127.0.0.1:8188/", generated=False) == []
    insecure = ServerConfig(listen=["0.0.0.0"], insecure_no_auth=True)
    assert "anyone" in access_lines(insecure, "http://127.0.0.1:8188/", generated=False)[0]


def test_the_host_allowlist() -> None:
    hosts = host_allowlist(ServerConfig(listen=["192.168.1.5"], allowed_hosts=["weft.example"]))
    assert all(
        hosts.allows(h)
        for h in ("192.168.1.5:8188", "localhost", "127.0.0.1", "[::1]:1", "weft.example.", "sub.localhost")
    )
    assert not any(hosts.allows(h) for h in ("192.168.1.6", "evil.example", "weft.example.evil", "[::2]"))
    wildcard = host_allowlist(ServerConfig(listen=["0.0.0.0"]))
    assert wildcard.allows(socket.gethostname()) and not wildcard.allows("evil.example")
    assert host_allowlist(ServerConfig(allowed_hosts=["*"])).allows("anything.example")
