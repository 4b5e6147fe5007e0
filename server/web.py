"""Serve the canvas: ``web/index.html`` as a jinja2 template, the rest as static files.

Both are served without the access token (:func:`server.auth.public`): they are the same in
every installation and hold no user data, and the page must load to ask for the token.
"""

from __future__ import annotations

import mimetypes
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from nodes.paths import UnsafePathError, safe_join

from .auth import public
from .prompt_server import PromptServer
from .proxy import page_base_path

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/css", ".css")


def _environment(root: Path) -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        autoescape=jinja2.select_autoescape(["html"]),
        auto_reload=True,
    )


def setup(app: web.Application, server: PromptServer, root: Path = WEB_ROOT) -> None:
    env = _environment(root)

    async def index(request: web.Request) -> web.Response:
        nonce = secrets.token_urlsafe(16)
        # X-Forwarded-Prefix from a --trusted-proxy only: from anyone, "//evil.example" became a
        # nonce-approved cross-origin script
        base_path = page_base_path(request, server.config.base_path, server.config.trusted_proxies)
        if not (root / "index.html").is_file():
            return web.Response(
                text="Weft is running; the canvas (web/index.html) is not installed.", content_type="text/plain"
            )
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
        return web.Response(
            text=html, content_type="text/html", headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"}
        )

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

    app.router.add_get("/", public(index, page=True))
    app.router.add_get("/{tail:.*}", public(static))
