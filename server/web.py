"""Serve the canvas: ``web/index.html`` as a jinja2 template, the rest as static files."""

from __future__ import annotations

import mimetypes
import re
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from nodes.paths import UnsafePathError, safe_join

from .prompt_server import PromptServer

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/css", ".css")


def _environment(root: Path) -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)), autoescape=jinja2.select_autoescape(["html"]),
        auto_reload=True,
    )


#: a URL path prefix: segments of unreserved characters, no "//" (a scheme-relative URL), no ".."
_SAFE_PREFIX = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")


def page_base_path(configured: str, forwarded: str | None) -> str:
    """The prefix the page builds its URLs from (script and style tags carry the CSP nonce).

    ``X-Forwarded-Prefix`` is anyone's to send: trusted blindly, ``//evil.example`` became a
    nonce-approved cross-origin script. It is honoured only when ``--base-path`` says the
    server sits behind a reverse proxy, and only when it is a plain path; otherwise the
    configured base path (empty by default) is used.
    """
    if configured and forwarded:
        prefix = forwarded.strip().rstrip("/")
        if _SAFE_PREFIX.fullmatch(prefix):
            return prefix
    return configured


def setup(app: web.Application, server: PromptServer, root: Path = WEB_ROOT) -> None:
    env = _environment(root)

    async def index(request: web.Request) -> web.Response:
        nonce = secrets.token_urlsafe(16)
        base_path = page_base_path(server.config.base_path, request.headers.get("X-Forwarded-Prefix"))
        if not (root / "index.html").is_file():
            return web.Response(text="Weft is running; the canvas (web/index.html) is not installed.", content_type="text/plain")
        from importlib.metadata import PackageNotFoundError, version

        try:
            weft_version = version("weft")
        except PackageNotFoundError:
            weft_version = "0.1.0"
        html = env.get_template("index.html").render(
            version=weft_version,
            base_path=base_path,
            csp_nonce=nonce,
            features={"max_upload_size": int(server.config.max_upload_size_mb * 1024 * 1024)},
        )
        csp = (
            f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}' 'unsafe-inline'; "
            "img-src 'self' data: blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'self'; frame-ancestors 'self'"
        )
        return web.Response(text=html, content_type="text/html", headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"})

    async def static(request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        if not tail:
            return await index(request)
        try:
            path = safe_join(root, *tail.split("/"))
        except UnsafePathError:
            raise web.HTTPNotFound() from None
        if not path.is_file() or path.name == "index.html":
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", index)
    app.router.add_get("/{tail:.*}", static)
