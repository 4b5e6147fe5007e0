"""Command-line configuration: every flag of ComfyUI 0.8.0's launcher, so launch scripts carry over.

ComfyUI users start it from scripts (portable ``.bat`` files, Stability Matrix, Docker images,
systemd units) whose flags are theirs to keep. Weft parses all of them with ComfyUI's names,
value types and defaults. Those with a meaning here are honoured (listen address, folders,
memory modes, precisions, previews, metadata, auto-launch, logging...); the rest are accepted
and named in one log line at start-up (:attr:`ServerConfig.ignored_flags`), so a launch line
never fails and the user learns what had no effect. A flag neither launcher knows is still
an error. Weft's own additions (``--custom-nodes-directory``, ``--disable-custom-nodes``,
``--base-path`` and the resource limits ``--max-node-memory``, ``--max-image-pixels``,
``--max-string-length``, ``--max-json-depth``, and the access flags ``--auth-token``,
``--allowed-hosts``, ``--trusted-proxy``, ``--body-timeout``...) sit with the flags of their area
in ``--help``. docs/compatibility.md explains each choice; docs/security.md the limits and access.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .flags import DEFAULT_PORT, NOT_APPLICABLE, TOKEN_ENV, WEFT_ONLY, build_parser
from .flags_worker import worker_settings

__all__ = ["DEFAULT_PORT", "ServerConfig", "build_parser", "config_from_args", "parse_args"]


@dataclass
class ServerConfig:
    listen: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = DEFAULT_PORT
    tls_keyfile: Path | None = None
    tls_certfile: Path | None = None
    base_directory: Path | None = None
    output_directory: Path | None = None
    input_directory: Path | None = None
    temp_directory: Path | None = None
    user_directory: Path | None = None
    extra_model_paths_config: list[Path] = field(default_factory=list)
    # devices and memory (reach nodes.diffusion.model_manager)
    cpu: bool = False
    vram_mode: str = "normal"
    reserve_vram_gb: float | None = None
    disable_smart_memory: bool = False
    deterministic: bool = False
    cuda_device: int | None = None
    default_device: int | None = None
    cuda_malloc: bool = False
    unet_dtype: str = "auto"
    unet_storage: str = "auto"
    text_encoder_dtype: str = "auto"
    text_encoder_storage: str = "auto"
    vae_dtype: str = "auto"
    cpu_vae: bool = False
    #: ``--compile-unet [BACKEND]``: torch.compile every UNet with this backend (None: off)
    compile_unet: str | None = None
    # output cache
    cache_lru: int = 0  # 0 = no entry limit (memory budget still applies)
    cache_none: bool = False
    cache_ram_gb: float = 4.0
    # what nodes see (nodes.launch_options)
    preview_method: str = "none"
    preview_size: int = 512
    disable_metadata: bool = False
    # plugins
    disable_all_custom_nodes: bool = False
    whitelist_custom_nodes: list[str] = field(default_factory=list)
    disable_custom_nodes: list[str] = field(default_factory=list)
    extra_custom_node_dirs: list[Path] = field(default_factory=list)
    # HTTP
    base_path: str = ""
    max_upload_size_mb: float = 100.0
    enable_cors_header: str | None = None
    enable_compress_response_body: bool = False
    default_hashing_function: str = "sha256"
    # queue and history (server/store.py; docs/security.md "Queue and history on disk")
    #: ``--max-history-items`` / ``--max-history-size``: oldest entries pruned past either (0: no bound)
    history_max_items: int = 10000
    history_max_bytes: int = 256 << 20
    #: ``--max-queue-items`` / ``--max-queue-size``: POST /prompt answers 429 past either (0: no bound)
    queue_max_items: int = 10000
    queue_max_bytes: int = 256 << 20
    #: not ``--memory-only-queue``: queue, history and prompt numbers kept in <user>/weft-state.sqlite3
    durable_queue: bool = True
    #: ``--on-restart-running``: the prompt a killed server was running, on restart: "fail" or "requeue"
    on_restart_running: str = "fail"
    # where node code runs (server/backend.py; docs/security.md)
    #: ``--worker-mode``: "process" (a supervised child process; the launcher's default) or "thread"
    #: (the server process; the default of servers built in Python, such as tests')
    worker_mode: str = "thread"
    #: ``--interrupt-grace``: seconds an interrupted prompt has to stop before its worker process is killed
    interrupt_grace: float = 5.0
    #: ``--max-prompt-seconds``: wall-clock limit of one prompt (0: none)
    max_prompt_seconds: float = 0.0
    #: ``--batch-prompts``: most queued prompts sampled as one batch (0: off; server/batching.py)
    batch_prompts: int = 0
    #: ``--backend``: "local" (the one worker above) or "ray" (a pool of Ray actors; docs/scale-out.md)
    backend: str = "local"
    #: ``--ray-address``: "local" (start a Ray instance in this process), "auto" or a cluster's address
    ray_address: str = "local"
    #: ``--ray-workers``: how many worker actors (0: one per GPU, or per ``ray_cpus_per_worker`` CPUs)
    ray_workers: int = 0
    #: ``--ray-cpus-per-worker`` / ``--ray-gpus-per-worker``: each actor's resources (None: chosen
    #: from the cluster, see server/backend_ray.py)
    ray_cpus_per_worker: float | None = None
    ray_gpus_per_worker: float | None = None
    # resource limits (docs/security.md): checked before work starts
    #: ``--max-node-memory``: GB one node may be estimated to allocate; None = half the RAM, 0 = off
    max_node_memory_gb: float | None = None
    #: ``--max-image-pixels``: largest image decoded from an upload or an input file
    max_image_pixels: int = 16384 * 16384
    #: ``--max-string-length``: longest string a string node may produce
    max_string_length: int = 16 * 1024 * 1024
    #: ``--max-json-depth``: how deeply a request body may nest
    max_json_depth: int = 128
    # access (docs/security.md): who may use the server, under which names, through which proxies
    #: ``--auth-token`` / ``--auth-token-file`` / ``WEFT_AUTH_TOKEN``: None = none configured (one is
    #: generated when :attr:`needs_token`), "" = authentication explicitly off
    auth_token: str | None = None
    #: ``--insecure-no-auth``: serve off loopback without a token
    insecure_no_auth: bool = False
    #: ``--allowed-hosts``: ``Host`` names accepted besides loopback and the listen addresses ("*": any)
    allowed_hosts: list[str] = field(default_factory=list)
    #: ``--trusted-proxy``: addresses (or networks) whose X-Forwarded-* headers are believed
    trusted_proxies: list[str] = field(default_factory=list)
    #: ``--body-timeout``: seconds a request body may take to arrive before a 408
    body_timeout: float = 60.0
    #: ``--idle-timeout``: seconds an idle keep-alive connection, or one still sending its headers, is kept
    idle_timeout: float = 75.0
    # console and start-up
    verbose: str = "INFO"
    log_stdout: bool = False
    dont_print_server: bool = False
    auto_launch: bool = False
    quick_test_for_ci: bool = False
    #: ComfyUI flags given that have no effect in Weft, as typed (for the start-up log line)
    ignored_flags: list[str] = field(default_factory=list)
    #: every ComfyUI flag by argparse name, as parsed (what ``comfy.cli_args.args`` answers)
    comfy_args: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_token(self) -> bool:
        """Whether people on other machines can reach the server: it listens off loopback, or a
        reverse proxy forwards to it. Then it runs with a token unless ``--insecure-no-auth``."""
        return not self.loopback_only or bool(self.trusted_proxies)

    @property
    def loopback_only(self) -> bool:
        """True when every bound address is a loopback address (the default)."""
        for host in self.listen:
            if host in ("localhost",):
                continue
            try:
                if not ipaddress.ip_address(host).is_loopback:
                    return False
            except ValueError:
                return False
        return True

    @property
    def node_memory_budget(self) -> int | None:
        """Bytes one node may be estimated to allocate (engine/resources.py), or None (no check).

        By default half of the machine's RAM: more than that for a single node's tensors is
        certain to end with the process OOM-killed, taking every user's queue along.
        """
        if self.max_node_memory_gb is None:
            try:
                import psutil

                return psutil.virtual_memory().total // 2
            except Exception:  # no psutil, or no way to read the RAM: check against 16 GB
                return 16 << 30
        if self.max_node_memory_gb <= 0:
            return None
        return int(self.max_node_memory_gb * (1 << 30))

    @property
    def tls(self) -> bool:
        """TLS needs both files, as in ComfyUI (one alone serves plain HTTP)."""
        return self.tls_keyfile is not None and self.tls_certfile is not None


def _auth_token(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str | None:
    """The token from the flags, else the environment; "" when ``--auth-token ''`` turns it off."""
    if args.auth_token is not None:
        return args.auth_token.strip()
    if args.auth_token_file:
        try:
            token = Path(args.auth_token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"--auth-token-file: cannot read {args.auth_token_file}: {exc}")
        if not token:
            parser.error(f"--auth-token-file: {args.auth_token_file} is empty")
        return token
    return os.environ.get(TOKEN_ENV, "").strip() or None


def _option_strings(parser: argparse.ArgumentParser) -> dict[str, str]:
    return {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings and a.dest != "help"}


def _precision(args: argparse.Namespace) -> dict[str, Any]:
    """The precision flags as model-manager settings (ComfyUI's precedence: the specific flag wins)."""
    unet = "fp32" if args.force_fp32 else "fp16" if args.force_fp16 else "auto"
    unet = next(
        (v for flag, v in (("fp32_unet", "fp32"), ("bf16_unet", "bf16"), ("fp16_unet", "fp16")) if getattr(args, flag)),
        unet,
    )
    storage = next(
        (v for flag, v in (("fp8_e4m3fn_unet", "fp8_e4m3fn"), ("fp8_e5m2_unet", "fp8_e5m2")) if getattr(args, flag)),
        "auto",
    )
    text = "fp32" if args.force_fp32 else "auto"
    text = next(
        (
            v
            for flag, v in (("fp16_text_enc", "fp16"), ("fp32_text_enc", "fp32"), ("bf16_text_enc", "bf16"))
            if getattr(args, flag)
        ),
        text,
    )
    text_storage = next(
        (
            v
            for flag, v in (("fp8_e4m3fn_text_enc", "fp8_e4m3fn"), ("fp8_e5m2_text_enc", "fp8_e5m2"))
            if getattr(args, flag)
        ),
        "auto",
    )
    vae = "fp32" if args.force_fp32 else "auto"
    vae = next(
        (v for flag, v in (("fp16_vae", "fp16"), ("fp32_vae", "fp32"), ("bf16_vae", "bf16")) if getattr(args, flag)),
        vae,
    )
    return {
        "unet_dtype": unet,
        "unet_storage": storage,
        "text_encoder_dtype": text,
        "text_encoder_storage": text_storage,
        "vae_dtype": vae,
    }


def parse_args(argv: Sequence[str] | None = None) -> ServerConfig:
    parser = build_parser()
    return config_from_args(parser.parse_args(argv), parser)


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServerConfig:
    """A :class:`ServerConfig` from parsed flags (``main.py run`` parses with its own parser)."""
    flags = _option_strings(parser)
    ignored = [
        option
        for dest, option in flags.items()
        if dest in NOT_APPLICABLE and getattr(args, dest, None) != parser.get_default(dest)
    ]
    comfy_args = {dest: getattr(args, dest) for dest in flags if dest not in WEFT_ONLY and hasattr(args, dest)}
    return ServerConfig(
        **_network(args),
        **_folders(args),
        **_devices(args),
        **_precision(args),
        **_caches_and_previews(args),
        **_custom_nodes(args),
        **_limits(args),
        **_queue(args),
        **_access(args, parser),
        **_console(args),
        **worker_settings(args),
        ignored_flags=ignored,
        comfy_args=comfy_args,
    )


def _network(args: argparse.Namespace) -> dict[str, Any]:
    base_path = args.base_path.strip()
    if base_path and not base_path.startswith("/"):
        base_path = "/" + base_path
    return {
        "listen": [h.strip() for h in (args.listen or "127.0.0.1").split(",") if h.strip()],
        "port": args.port,
        "tls_keyfile": _optional_path(args.tls_keyfile),
        "tls_certfile": _optional_path(args.tls_certfile),
        "base_path": base_path.rstrip("/"),
        "max_upload_size_mb": args.max_upload_size,
        "enable_cors_header": args.enable_cors_header,
        "enable_compress_response_body": args.enable_compress_response_body,
    }


def _folders(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "base_directory": _optional_path(args.base_directory),
        "output_directory": _optional_path(args.output_directory),
        "input_directory": _optional_path(args.input_directory),
        "temp_directory": _optional_path(args.temp_directory),
        "user_directory": _optional_path(args.user_directory),
        "extra_model_paths_config": [Path(p) for group in args.extra_model_paths_config or [] for p in group],
    }


def _devices(args: argparse.Namespace) -> dict[str, Any]:
    vram_mode = next(
        (
            mode
            for flag, mode in (("gpu_only", "gpu_only"), ("highvram", "high"), ("lowvram", "low"), ("novram", "none"))
            if getattr(args, flag)
        ),
        "normal",
    )
    return {
        "cpu": args.cpu,
        "vram_mode": vram_mode,
        "reserve_vram_gb": args.reserve_vram,
        "disable_smart_memory": args.disable_smart_memory,
        "deterministic": args.deterministic,
        "cuda_device": args.cuda_device,
        "default_device": args.default_device,
        "cuda_malloc": args.cuda_malloc,
        "cpu_vae": args.cpu_vae,
        "compile_unet": args.compile_unet,
    }


def _caches_and_previews(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "cache_lru": args.cache_lru,
        "cache_none": args.cache_none,
        "cache_ram_gb": args.cache_ram or 4.0,
        "preview_method": args.preview_method,
        "preview_size": args.preview_size,
        "disable_metadata": args.disable_metadata,
        "default_hashing_function": args.default_hashing_function,
    }


def _custom_nodes(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "disable_all_custom_nodes": args.disable_all_custom_nodes,
        "whitelist_custom_nodes": list(args.whitelist_custom_nodes),
        "disable_custom_nodes": [p.strip() for p in args.disable_custom_nodes.split(",") if p.strip()],
        "extra_custom_node_dirs": list(args.custom_nodes_directory),
    }


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "max_node_memory_gb": args.max_node_memory,
        "max_image_pixels": args.max_image_pixels,
        "max_string_length": args.max_string_length,
        "max_json_depth": args.max_json_depth,
    }


def _queue(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "durable_queue": not args.memory_only_queue,
        "on_restart_running": args.on_restart_running,
        "queue_max_items": args.max_queue_items,
        "queue_max_bytes": args.max_queue_size,
        "history_max_items": args.max_history_items,
        "history_max_bytes": args.max_history_size,
    }


def _access(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    return {
        "auth_token": _auth_token(args, parser),
        "insecure_no_auth": args.insecure_no_auth,
        "allowed_hosts": [h.strip().lower() for h in args.allowed_hosts.split(",") if h.strip()],
        "trusted_proxies": list(args.trusted_proxy),
        "body_timeout": args.body_timeout,
        "idle_timeout": args.idle_timeout,
    }


def _console(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "verbose": args.verbose,
        "log_stdout": args.log_stdout,
        "dont_print_server": args.dont_print_server,
        "auto_launch": (args.auto_launch or args.windows_standalone_build) and not args.disable_auto_launch,
        "quick_test_for_ci": args.quick_test_for_ci,
    }
