"""Request guards that are costly to retrofit: cross-site writes, DNS rebinding, slow bodies.

* State-changing requests (POST/PUT/PATCH/DELETE) and WebSocket upgrades from a browser
  must come from the page's own origin: an ``Origin`` that differs from ``Host``, an
  ``Origin: null`` (sandboxed frames, file:// pages) or ``Sec-Fetch-Site: cross-site`` is
  refused. Clients that send no Origin (scripts, curl) are not browsers and pass.
* The ``Host`` header must name this server (:class:`HostAllowlist`): a loopback name, a
  listen address, or a name of ``--allowed-hosts``. A rebinding domain is none of these, so
  it cannot read the API through a victim's browser, on loopback or off it.
* A request body must arrive within ``--body-timeout``: a client that sends headers and
  then trickles (or never sends) its body would otherwise hold a connection and a handler
  for ever.

:func:`access_middlewares` puts them in order with the trusted-proxy headers
(:mod:`server.proxy`) and the access token (:mod:`server.auth`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from . import auth, proxy
from .config import ServerConfig
from .http import BadRequest, error_response, json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _split_host(host: str) -> tuple[str, str | None]:
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:  # an unclosed bracket names no host
            return "", None
        name, rest = host[1:end], host[end + 1 :]
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


#: listen addresses that stand for every interface
WILDCARDS = frozenset({"0.0.0.0", "::", ""})


@dataclass(frozen=True)
class HostAllowlist:
    """The names a ``Host`` header may carry: loopback ones always, plus ``names`` (the listen
    addresses and ``--allowed-hosts``); ``any_host`` (``--allowed-hosts '*'``) turns the check off."""

    names: frozenset[str] = frozenset()
    any_host: bool = False

    def allows(self, host: str) -> bool:
        if self.any_host or is_loopback_host(host):
            return True
        name, _ = _split_host(host)
        return name.rstrip(".") in self.names


def host_allowlist(config: ServerConfig) -> HostAllowlist:
    """A wildcard listen address (``0.0.0.0``, ``::``) stands for this machine's addresses and
    its host name; a docker port mapping or a DNS name needs ``--allowed-hosts``."""
    names = {h.strip().lower().strip("[]") for h in config.allowed_hosts if h.strip()}
    for address in config.listen:
        address = address.strip().lower().strip("[]")
        names.update(_machine_names() if address in WILDCARDS else {address})
    return HostAllowlist(frozenset(names - {"*"}), "*" in names)


def _machine_names() -> set[str]:
    names: set[str] = set()
    try:
        host = socket.gethostname().lower()
        names.update({host, f"{host}.local"})
    except OSError:
        pass
    try:
        import psutil

        for entries in psutil.net_if_addrs().values():
            for entry in entries:
                if entry.family in (socket.AF_INET, socket.AF_INET6):
                    names.add(entry.address.split("%")[0].lower())
    except Exception:  # no psutil, or interfaces unreadable: the user names them with --allowed-hosts
        log.debug("could not list this machine's addresses", exc_info=True)
    return names


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


def make_guard(hosts: HostAllowlist, allowed_origin: str | None) -> Callable:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        # request.host: a trusted proxy's X-Forwarded-Host where server.proxy applied it
        host = request.host if "Host" in request.headers else ""
        if host and not hosts.allows(host):
            return error_response(
                403,
                f"Host {host!r} is not allowed: this server answers on loopback names, its "
                "listen addresses and the names of --allowed-hosts",
            )
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


def make_body_deadline(seconds: float) -> Callable:
    """A body not complete ``seconds`` after the handler started is answered 408 and its
    connection closed. The deadline ends as soon as the body is in, so a handler's own work
    afterwards (validation, a long write) is never cut short."""

    @web.middleware
    async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.body_exists or request.content.is_eof():
            return await handler(request)
        inside = True

        def body_complete() -> None:
            if inside:
                deadline.reschedule(None)

        try:
            async with asyncio.timeout(seconds) as deadline:
                request.content.on_eof(body_complete)
                return await handler(request)
        except TimeoutError:
            if not deadline.expired():
                raise
            log.info(
                "%s %s from %s: body not complete after %g s, closing",
                request.method,
                request.path,
                request.remote,
                seconds,
            )
            response = json_response(
                {
                    "error": {
                        "type": "timeout",
                        "details": "",
                        "extra_info": {},
                        "message": f"the request body did not arrive within {seconds:g} s (--body-timeout)",
                    }
                },
                408,
            )
            response.force_close()
            # answered and closed here: aiohttp would otherwise linger for the rest of the body
            await response.prepare(request)
            await response.write_eof()
            if request.transport is not None:
                request.transport.close()
            return response
        finally:
            inside = False

    return body_deadline


def access_middlewares(config: ServerConfig) -> list[Callable]:
    """The access guards in the order they apply: the proxy's view of the request first (its
    Host and scheme), then Host and Origin, then the token, then the body deadline. Each one a
    configuration does not need is left out, so a loopback server pays for none of them but
    the guard."""
    trusted = proxy.networks(config.trusted_proxies)
    token = auth.effective_token(config)
    return [
        *([proxy.make_forwarded(trusted)] if trusted else []),
        make_guard(host_allowlist(config), config.enable_cors_header),
        *([auth.make_auth(token, config)] if token else []),
        make_body_deadline(config.body_timeout),
    ]


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
