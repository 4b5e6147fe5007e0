"""X-Forwarded-* headers: believed only from the reverse proxies ``--trusted-proxy`` names.

Anyone can send these headers. Believed from anyone, ``X-Forwarded-Host`` would pass the DNS
rebinding guard, ``X-Forwarded-For`` would let a client pick the address it is logged under,
and ``X-Forwarded-Prefix`` ended up as a nonce-approved cross-origin script URL in the page.
So they are read only when the connection's peer (the socket's address, not a header) is a
trusted proxy; then the request is seen as the proxy saw it: scheme, host, client address
and the URL prefix the browser used.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: a URL path prefix: segments of unreserved characters, no "//" (a scheme-relative URL), no ".."
_SAFE_PREFIX = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")
#: what a Host header may hold: a name or address, an optional port
_SAFE_HOST = re.compile(r"[A-Za-z0-9._~-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")


def networks(addresses: Iterable[str]) -> tuple[Network, ...]:
    return _networks(tuple(addresses))


@functools.lru_cache(maxsize=8)
def _networks(addresses: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(a.strip(), strict=False) for a in addresses if a.strip())


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def from_trusted_proxy(request: web.Request, trusted: tuple[Network, ...]) -> bool:
    return bool(trusted) and _trusted(peer(request), trusted)


def _trusted(text: str | None, trusted: tuple[Network, ...]) -> bool:
    address = _address(text) if text else None
    return address is not None and any(address in net for net in trusted)


def peer(request: web.Request) -> str | None:
    """The address of the socket's other end, whatever headers say."""
    transport = request.transport
    name = transport.get_extra_info("peername") if transport is not None else None
    return name[0] if isinstance(name, tuple) and name else None


def _last(value: str | None) -> str:
    """The value the nearest proxy set: a proxy that appends puts its own last."""
    return value.rsplit(",", 1)[-1].strip() if value else ""


def _client(forwarded_for: str | None, trusted: tuple[Network, ...]) -> str | None:
    """The right-most address not a trusted proxy's: those left of it are the client's to write."""
    for hop in reversed([h.strip() for h in (forwarded_for or "").split(",") if h.strip()]):
        if not _trusted(hop, trusted):
            return hop if _address(hop) is not None else None
    return None


def make_forwarded(trusted: tuple[Network, ...]) -> Callable:
    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not from_trusted_proxy(request, trusted):
            return await handler(request)
        changes: dict[str, str] = {}
        scheme = _last(request.headers.get("X-Forwarded-Proto")).lower()
        if scheme in ("http", "https"):
            changes["scheme"] = scheme
        host = _last(request.headers.get("X-Forwarded-Host"))
        if host and _SAFE_HOST.fullmatch(host):
            changes["host"] = host
        client = _client(request.headers.get("X-Forwarded-For"), trusted)
        if client:
            changes["remote"] = client
        if changes:
            request = request.clone(**changes)  # type: ignore[assignment]
        return await handler(request)

    return forwarded


def page_base_path(request: web.Request, configured: str, trusted: Iterable[str]) -> str:
    """The prefix the browser reaches the server under, from which the page builds its URLs
    (its script and style tags carry the CSP nonce) and the token cookie its path.

    A trusted proxy's ``X-Forwarded-Prefix`` when it is a plain path, else ``--base-path``.
    """
    proxies = networks(trusted)
    if proxies and from_trusted_proxy(request, proxies):
        prefix = _last(request.headers.get("X-Forwarded-Prefix")).rstrip("/")
        if _SAFE_PREFIX.fullmatch(prefix):
            return prefix
    return configured
