"""Command-line configuration, accepting ComfyUI's launcher flags so launch scripts carry over."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 8188


@dataclass
class ServerConfig:
    listen: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = DEFAULT_PORT
    base_directory: Path | None = None
    output_directory: Path | None = None
    input_directory: Path | None = None
    temp_directory: Path | None = None
    extra_model_paths_config: list[Path] = field(default_factory=list)
    cpu: bool = False
    cache_lru: int = 0  # 0 = no entry limit (memory budget still applies)
    cache_none: bool = False
    cache_ram_gb: float = 4.0
    disable_all_custom_nodes: bool = False
    disable_custom_nodes: list[str] = field(default_factory=list)
    extra_custom_node_dirs: list[Path] = field(default_factory=list)
    base_path: str = ""
    max_upload_size_mb: float = 100.0
    history_max_items: int = 10000
    verbose: str = "INFO"
    enable_cors_header: str | None = None

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weft",
        description="Weft: a node-based workflow editor for diffusion models (ComfyUI-compatible API).",
    )
    parser.add_argument(
        "--listen", type=str, default="127.0.0.1", metavar="IP", nargs="?", const="0.0.0.0,::",
        help="address(es) to listen on, comma-separated (default 127.0.0.1; bare --listen means all interfaces)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8188)")
    parser.add_argument("--base-directory", type=Path, help="root for models/, input/, output/, temp/, user/")
    parser.add_argument("--output-directory", type=Path, help="where SaveImage writes")
    parser.add_argument("--input-directory", type=Path, help="where uploads and LoadImage files live")
    parser.add_argument("--temp-directory", type=Path, help="where previews are written (cleared at start)")
    parser.add_argument(
        "--extra-model-paths-config", type=Path, action="append", default=[], metavar="PATH",
        help="YAML file(s) naming more model folders, in ComfyUI's extra_model_paths.yaml format",
    )
    parser.add_argument("--cpu", action="store_true", help="run everything on the CPU")
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--cache-lru", type=int, default=0, metavar="N", help="keep at most N cached node outputs")
    cache.add_argument("--cache-none", action="store_true", help="cache no node outputs between runs")
    parser.add_argument(
        "--cache-ram", type=float, default=4.0, metavar="GB", help="memory budget of the output cache (default 4 GB)"
    )
    parser.add_argument("--disable-all-custom-nodes", action="store_true", help="load no custom node packs")
    parser.add_argument(
        "--disable-custom-nodes", type=str, default="", metavar="PACKS",
        help="comma-separated custom node packs not to load",
    )
    parser.add_argument(
        "--custom-nodes-directory", type=Path, action="append", default=[], metavar="PATH",
        help="another folder of custom node packs",
    )
    parser.add_argument("--base-path", type=str, default="", help="URL prefix when served behind a reverse proxy")
    parser.add_argument("--max-upload-size", type=float, default=100.0, metavar="MB", help="largest upload accepted")
    parser.add_argument(
        "--verbose", type=str, default="INFO", nargs="?", const="DEBUG",
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], help="log level",
    )
    parser.add_argument(
        "--enable-cors-header", type=str, default=None, metavar="ORIGIN", nargs="?", const="*",
        help="allow cross-origin requests from ORIGIN (off by default)",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> ServerConfig:
    args = build_parser().parse_args(argv)
    listen = [h.strip() for h in (args.listen or "127.0.0.1").split(",") if h.strip()]
    base_path = args.base_path.strip()
    if base_path and not base_path.startswith("/"):
        base_path = "/" + base_path
    return ServerConfig(
        listen=listen,
        port=args.port,
        base_directory=args.base_directory,
        output_directory=args.output_directory,
        input_directory=args.input_directory,
        temp_directory=args.temp_directory,
        extra_model_paths_config=list(args.extra_model_paths_config),
        cpu=args.cpu,
        cache_lru=args.cache_lru,
        cache_none=args.cache_none,
        cache_ram_gb=args.cache_ram,
        disable_all_custom_nodes=args.disable_all_custom_nodes,
        disable_custom_nodes=[p.strip() for p in args.disable_custom_nodes.split(",") if p.strip()],
        extra_custom_node_dirs=list(args.custom_nodes_directory),
        base_path=base_path.rstrip("/"),
        max_upload_size_mb=args.max_upload_size,
        verbose=args.verbose,
        enable_cors_header=args.enable_cors_header,
    )
