"""Access tokens: who may use a server that other machines can reach.

On loopback the server answers whoever runs on this machine, as ComfyUI does (the browser
guards of :mod:`server.security` keep other sites out). Once other machines can reach it
(``--listen`` off loopback, or a reverse proxy named by ``--trusted-proxy``) every request
needs the token: configured (``--auth-token``, ``--auth-token-file``, ``WEFT_AUTH_TOKEN``) or
generated at start and printed with the address to open. Only the canvas' own files (the
page and its scripts and styles, the same in every installation, no user data) are served
without it, so that the page can load and ask for the token.

A request carries the token as ``Authorization: Bearer``, as the cookie the page is given
(HttpOnly, SameSite=Strict: what a WebSocket and ``<img src="/view">`` send), or as a
``token`` query parameter. Opening the page with ``?token=`` trades it for the cookie and
redirects to the address without it, so the token leaves the address bar and the history.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlencode

from aiohttp import web

from .config import ServerConfig
from .http import json_response
from .proxy import page_base_path

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

#: the query parameter a token may come in
TOKEN_QUERY = "token"
#: configured tokens shorter than this are refused: a token is all that guards the server
MIN_TOKEN_LENGTH = 16
#: how long the browser keeps the cookie (a generated token changes at each start anyway)
COOKIE_MAX_AGE = 30 * 24 * 3600
#: characters a cookie value and a header carry without quoting
_TOKEN_TEXT = re.compile(r"[A-Za-z0-9._~+/=-]+")


class AuthConfigError(ValueError):
    """A configuration that would serve other machines without a token, or a token unfit for use."""


def effective_token(config: ServerConfig) -> str | None:
    """The token ``config``'s server requires, or ``None`` when it answers without one.

    One is generated when other machines can reach the server and none was configured; it is
    stored on ``config`` so the start-up lines and the app agree. ``--auth-token ''`` off
    loopback is refused unless ``--insecure-no-auth`` says the user means it.
    """
    token = config.auth_token
    if token:
        if len(token) < MIN_TOKEN_LENGTH or not _TOKEN_TEXT.fullmatch(token):
            raise AuthConfigError(
                f"the access token must be at least {MIN_TOKEN_LENGTH} characters of letters, digits and ._~+/=- "
                '(make one with: python -c "import secrets; print(secrets.token_urlsafe())")'
            )
        return token
    if not config.needs_token or config.insecure_no_auth:
        return None
    if token == "":
        where = (
            f"it listens on {', '.join(config.listen)}"
            if not config.loopback_only
            else "a reverse proxy (--trusted-proxy) forwards to it"
        )
        raise AuthConfigError(
            f"--auth-token '' turns the access token off, but {where}: anyone who reaches it could "
            "run prompts and read every output. Give a token, or add --insecure-no-auth to "
            "serve without one"
        )
    config.auth_token = secrets.token_urlsafe(32)
    return config.auth_token


def public(handler: H, *, page: bool = False) -> H:
    """Mark a handler of the canvas' own files as served without a token; ``page``: the one
    that trades ``?token=`` for the cookie."""
    handler.weft_public = "page" if page else "file"  # type: ignore[attr-defined]
    return handler


def cookie_name(request: web.Request) -> str:
    """Per port: browsers share cookies between the ports of a host, not the servers on them."""
    transport = request.transport
    name = transport.get_extra_info("sockname") if transport is not None else None
    return f"weft_token_{name[1]}" if isinstance(name, tuple) and len(name) > 1 else "weft_token"


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def unauthorized() -> web.Response:
    body = {
        "error": {
            "type": "unauthorized",
            "details": "",
            "extra_info": {},
            "message": "this server needs its access token: open the address printed when it started "
            "(ending in ?token=...), or send 'Authorization: Bearer TOKEN' (docs/security.md)",
        }
    }
    response = json_response(body, 401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="weft"'
    return response


def make_auth(token: str, config: ServerConfig) -> Callable:
    expected = token.encode()

    def matches(candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), expected)  # type: ignore[union-attr]

    def enter(request: web.Request) -> web.Response:
        """``/?token=``: the cookie, and the page's address without the token."""
        rest = [(k, v) for k, v in request.query.items() if k != TOKEN_QUERY]
        response = web.Response(
            status=303,
            headers={
                "Location": "./" + (f"?{urlencode(rest)}" if rest else ""),
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
            },
        )
        path = page_base_path(request, config.base_path, config.trusted_proxies) + "/"
        response.set_cookie(
            cookie_name(request),
            token,
            max_age=COOKIE_MAX_AGE,
            path=path,
            secure=request.secure,
            httponly=True,
            samesite="Strict",
        )
        return response

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        kind = getattr(request.match_info.handler, "weft_public", None)
        query = request.query.get(TOKEN_QUERY)
        if kind is not None:
            if kind == "page" and query and request.method == "GET" and matches(query):
                return enter(request)
            return await handler(request)  # a wrong ?token= still gets the page, which asks again
        if matches(_bearer(request)) or matches(request.cookies.get(cookie_name(request))) or matches(query):
            return await handler(request)
        return unauthorized()

    return auth
