"""Request guards that are costly to retrofit: cross-site writes and DNS rebinding.

* State-changing requests (POST/PUT/PATCH/DELETE) and WebSocket upgrades from a browser
  must come from the page's own origin: an ``Origin`` that differs from ``Host``, an
  ``Origin: null`` (sandboxed frames, file:// pages) or ``Sec-Fetch-Site: cross-site`` is
  refused. Clients that send no Origin (scripts, curl) are not browsers and pass.
* When the server listens on loopback only, the ``Host`` header must name a loopback
  host, so a rebinding domain cannot read the API through a victim's browser.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from .http import BadRequest, error_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _split_host(host: str) -> tuple[str, str | None]:
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:  # an unclosed bracket names no host
            return "", None
        name, rest = host[1:end], host[end + 1:]
        return name, rest[1:] if rest.startswith(":") else None
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, port
    return host, None


def is_loopback_host(host: str) -> bool:
    name, _ = _split_host(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class MalformedOrigin(ValueError):
    """An ``Origin`` header that is not ``scheme://host[:port]`` (a port out of range, an
    unclosed IPv6 bracket): refused with a 400 that says so, never parsed further."""


def _origin_matches_host(origin: str, host: str, scheme: str) -> bool:
    try:
        parts = urlsplit(origin)
        origin_port = parts.port  # raises for a port that is not a number in 0..65535
    except ValueError as exc:
        raise MalformedOrigin(f"malformed Origin header {origin[:200]!r}: {exc}") from None
    if not parts.scheme or not parts.hostname:
        return False
    origin_port = origin_port or (443 if parts.scheme == "https" else 80)
    name, port = _split_host(host)
    host_port = int(port) if port and port.isdigit() else (443 if scheme == "https" else 80)
    return parts.hostname.lower() == name and origin_port == host_port


def make_guard(loopback_only: bool, allowed_origin: str | None) -> Callable:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if loopback_only and host and not is_loopback_host(host):
            return error_response(403, f"Host {host!r} is not allowed: this server only answers on loopback names")
        is_ws = request.headers.get("Upgrade", "").lower() == "websocket"
        if request.method in UNSAFE_METHODS or is_ws:
            origin = request.headers.get("Origin")
            if allowed_origin and origin and (allowed_origin == "*" or origin == allowed_origin):
                pass
            elif request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site" and not origin:
                return error_response(403, "cross-site request refused")
            elif origin is not None:
                if origin.strip().lower() == "null":
                    return error_response(403, "requests from an opaque origin (Origin: null) are refused")
                try:
                    matches = _origin_matches_host(origin, host, request.scheme)
                except MalformedOrigin as exc:
                    return error_response(400, str(exc))
                if not matches:
                    log.warning("refused %s %s from origin %s (host %s)", request.method, request.path, origin, host)
                    return error_response(403, f"cross-origin request from {origin} refused")
        return await handler(request)

    return guard


def make_cors(allowed_origin: str | None) -> Callable:
    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and allowed_origin:
            response: web.StreamResponse = web.Response()
        else:
            response = await handler(request)
        if allowed_origin:
            response.headers["Access-Control-Allow-Origin"] = allowed_origin
            response.headers["Access-Control-Allow-Methods"] = "POST, GET, DELETE, PUT, OPTIONS, PATCH"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        return response

    return cors


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn client mistakes into JSON 4xx and anything unexpected into a logged JSON 500."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return error_response(exc.status_code, exc.message)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return error_response(exc.status, exc.text or exc.reason)
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal server error; see the server log")
