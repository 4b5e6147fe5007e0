"""Starting the server from a command line: environment, logging, serving, the browser.

``main.py`` parses the flags (``server.config``) and calls :func:`serve`. What must happen
before torch is imported (``--cuda-device``, ``--default-device``, ``--cuda-malloc``,
``--deterministic``) happens in :func:`prepare_environment`, first. Failures a user can fix
(the port is taken, the address is not this machine's, a TLS file is missing, authentication
turned off on a public address) end with one sentence that says what to do, not a traceback.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, MutableMapping
from typing import TextIO

from .config import ServerConfig

log = logging.getLogger("weft")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LaunchError(Exception):
    """A start-up failure the user can fix; the message says how. Exit status 1, no traceback."""


def prepare_environment(config: ServerConfig, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set the environment variables the device flags stand for, as ComfyUI does; returns what was set.

    Must run before torch is imported: CUDA reads ``CUDA_VISIBLE_DEVICES`` and the allocator
    ``PYTORCH_CUDA_ALLOC_CONF`` once, when torch initialises.
    """
    env = os.environ if environ is None else environ
    changed: list[str] = []

    def put(name: str, value: str) -> None:
        env[name] = value
        changed.append(f"{name}={value}")

    if config.default_device is not None:
        order = [config.default_device, *(d for d in range(32) if d != config.default_device)]
        put("CUDA_VISIBLE_DEVICES", ",".join(map(str, order)))
        put("HIP_VISIBLE_DEVICES", ",".join(map(str, order)))
    if config.cuda_device is not None:
        for name in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES"):
            put(name, str(config.cuda_device))
        log.info("Set cuda device to: %s", config.cuda_device)
    if config.cuda_malloc:
        current = env.get("PYTORCH_CUDA_ALLOC_CONF")
        if not current or "cudaMallocAsync" not in current:
            put(
                "PYTORCH_CUDA_ALLOC_CONF",
                f"{current},backend:cudaMallocAsync" if current else "backend:cudaMallocAsync",
            )
    if config.deterministic and "CUBLAS_WORKSPACE_CONFIG" not in env:
        put("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if changed and env is os.environ and "torch" in sys.modules:
        log.warning(
            "torch was loaded before the device flags were applied; %s takes effect at the next start",
            ", ".join(changed),
        )
    return changed


def setup_logging(
    level: str, *, to_stdout: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> None:
    """The root logger at ``level``. ``--log-stdout`` (``to_stdout``) sends records below ERROR to
    stdout and errors to stderr, as ComfyUI does; otherwise everything goes to stderr."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_weft", False):
            root.removeHandler(handler)
    root.setLevel(getattr(logging, level, logging.INFO))
    formatter = logging.Formatter(LOG_FORMAT)
    errors = logging.StreamHandler(stderr or sys.stderr)
    errors.setFormatter(formatter)
    errors._weft = True  # type: ignore[attr-defined]
    if to_stdout:
        errors.addFilter(lambda record: record.levelno >= logging.ERROR)
        normal = logging.StreamHandler(stdout or sys.stdout)
        normal.setFormatter(formatter)
        normal.addFilter(lambda record: record.levelno < logging.ERROR)
        normal._weft = True  # type: ignore[attr-defined]
        root.addHandler(normal)
    root.addHandler(errors)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def report_flags(config: ServerConfig) -> None:
    """One line naming the ComfyUI flags given that mean nothing here (nothing when none were)."""
    if config.ignored_flags:
        log.warning(
            "ComfyUI flags with no effect in Weft (accepted and ignored): %s; see docs/compatibility.md",
            " ".join(config.ignored_flags),
        )


def display_url(config: ServerConfig) -> str:
    """The address to print and open: the first listen address, loopback for the wildcards."""
    shown = config.listen[0]
    host = f"[{shown}]" if ":" in shown else shown
    if host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1"
    scheme = "https" if config.tls else "http"
    return f"{scheme}://{host}:{config.port}{config.base_path}/"


def access_lines(config: ServerConfig, url: str, generated: bool) -> list[str]:
    """What to tell the user about the access token at start (nothing on a loopback server
    without one). A generated token is printed in the address to open; a configured one is
    the user's already and stays out of the logs."""
    if not config.auth_token:
        if config.needs_token:
            return ["WARNING: --insecure-no-auth: anyone who can reach this server can use it (docs/security.md)"]
        return []
    if generated:
        elsewhere = (
            " (from other machines, with this one's address)" if "127.0.0.1" in url and not config.loopback_only else ""
        )
        return [
            f"Access token (new at each start; --auth-token-file keeps one): open {url}?token={config.auth_token}"
            f"{elsewhere}",
            f"  scripts send 'Authorization: Bearer {config.auth_token}'",
        ]
    return [
        "Access token required: the one configured (--auth-token, --auth-token-file or $WEFT_AUTH_TOKEN); "
        f"open {url}?token=TOKEN once, or send 'Authorization: Bearer TOKEN'"
    ]


def open_browser(url: str) -> None:
    """``--auto-launch``: the default browser (``$BROWSER`` where set), never fatal."""
    import webbrowser

    try:
        if not webbrowser.open(url):
            log.warning("--auto-launch: no browser could be started; open %s yourself", url)
    except Exception as exc:  # a broken browser setup must not stop the server
        log.warning("--auto-launch: could not open a browser (%s); open %s yourself", exc, url)


def bind_error(exc: OSError, config: ServerConfig) -> LaunchError | None:
    """The user-facing message for a failure to listen, or ``None`` for other errors."""
    hosts = ", ".join(config.listen)
    if exc.errno == errno.EADDRINUSE:
        return LaunchError(
            f"port {config.port} is already in use on {hosts} (another Weft or ComfyUI, or another program). "
            f"Stop it, or pick another port with --port, for example: --port {config.port + 1}"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return LaunchError(
            f"cannot listen on {hosts}: not an address of this machine. "
            "Use --listen with one of its addresses, or bare --listen for all of them"
        )
    if exc.errno == errno.EACCES:
        return LaunchError(
            f"not allowed to listen on port {config.port} (ports below 1024 need administrator "
            "rights). Pick another port with --port, for example: --port 8188"
        )
    return None


def ssl_context(config: ServerConfig) -> object | None:
    """``--tls-keyfile`` + ``--tls-certfile``: the server speaks https (both are needed, as in ComfyUI)."""
    if not config.tls:
        return None
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile=str(config.tls_certfile), keyfile=str(config.tls_keyfile))
    except (OSError, ssl.SSLError) as exc:
        raise LaunchError(
            f"cannot use --tls-certfile {config.tls_certfile} / --tls-keyfile {config.tls_keyfile}: {exc}"
        ) from exc
    return context


def serve(config: ServerConfig, *, announce: Callable[[str], None] | None = None) -> int:
    """Build the app and serve until Ctrl+C; returns the exit status.

    ``announce(url)`` runs once every address is bound (default: print the URL, unless
    ``--dont-print-server``); ``--auto-launch`` opens the browser then, not before.
    """
    from aiohttp import web

    from .app import create_app
    from .auth import AuthConfigError
    from .heap import settle_after_startup

    context = ssl_context(config)
    if config.backend == "ray" and importlib.util.find_spec("ray") is None:
        raise LaunchError("--backend ray needs Ray, which is not installed here: pip install 'weft[ray]'")
    generated = config.auth_token is None
    try:
        app = create_app(config)  # generates the access token where one is needed
    except AuthConfigError as exc:
        raise LaunchError(str(exc)) from None
    generated = generated and bool(config.auth_token)
    if config.quick_test_for_ci:
        log.info("--quick-test-for-ci: everything loaded; exiting without serving")
        return 0
    url = display_url(config)

    def started(_message: str) -> None:
        settle_after_startup()  # everything is loaded and bound: keep the collector off it
        if announce is not None:
            announce(url)
        else:
            if not config.dont_print_server:
                print(f"Weft is running at {url}  (Ctrl+C to stop)", flush=True)
            for line in access_lines(config, url, generated):  # even so: without it nobody gets in
                print(line, flush=True)
        if config.auto_launch:
            # the browser trades ?token= for a cookie; a configured token is the user's to type
            open_browser(f"{url}?token={config.auth_token}" if generated else url)

    try:
        # keepalive_timeout also bounds a connection still sending its headers (aiohttp closes
        # a connection that has no complete request when it runs out); bodies: --body-timeout
        web.run_app(
            app,
            host=config.listen,
            port=config.port,
            ssl_context=context,  # type: ignore[arg-type]
            print=started,
            access_log=None,
            keepalive_timeout=config.idle_timeout,
        )
    except OSError as exc:
        friendly = bind_error(exc, config)
        if friendly is None:
            raise
        raise friendly from None
    return 0
