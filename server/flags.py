"""The launcher's flags: ComfyUI 0.8.0's (same names, types, defaults, groups) and Weft's own.

``server.config`` turns what they parse into a :class:`~server.config.ServerConfig`; this module
only declares them, one argument group per area, in the order ``--help`` shows.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path

from .flags_worker import DESTS as WORKER_DESTS
from .flags_worker import add_pool_flags, add_worker_flags

DEFAULT_PORT = 8188
#: the environment variable ``--auth-token`` defaults to
TOKEN_ENV = "WEFT_AUTH_TOKEN"

#: memory modes (``--gpu-only``, ``--highvram``, ``--normalvram``, ``--lowvram``, ``--novram``)
VRAM_MODES = ("gpu_only", "high", "normal", "low", "none")

#: ComfyUI flags that have no meaning in Weft, by argparse destination, with the reason
#: (shown by ``--help``; docs/compatibility.md repeats them).
NOT_APPLICABLE: dict[str, str] = {
    "fp64_unet": "Weft's UNets compute in fp32, fp16 or bf16",
    "fp8_e8m0fnu_unet": "no fp8_e8m0fnu storage in Weft",
    "force_channels_last": "diffusers modules keep their memory format",
    "directml": "Weft runs on CUDA, MPS or the CPU",
    "oneapi_device_selector": "Weft runs on CUDA, MPS or the CPU",
    "disable_ipex_optimize": "Weft does not use Intel's extension for PyTorch",
    "supports_fp8_compute": "fp8 weights are upcast per layer, never computed in fp8",
    "use_split_cross_attention": "attention is diffusers' (PyTorch scaled-dot-product)",
    "use_quad_cross_attention": "attention is diffusers' (PyTorch scaled-dot-product)",
    "use_sage_attention": "attention is diffusers' (PyTorch scaled-dot-product)",
    "use_flash_attention": "attention is diffusers' (PyTorch's SDPA picks flash kernels itself)",
    "force_upcast_attention": "attention upcasting is set by each diffusers model",
    "dont_upcast_attention": "attention upcasting is set by each diffusers model",
    "enable_manager": "ComfyUI-Manager is not part of Weft",
    "disable_manager_ui": "ComfyUI-Manager is not part of Weft",
    "enable_manager_legacy_ui": "ComfyUI-Manager is not part of Weft",
    "async_offload": "the model manager moves whole modules between devices",
    "disable_async_offload": "the model manager moves whole modules between devices",
    "force_non_blocking": "the model manager moves whole modules between devices",
    "fast": "no experimental performance switches in Weft",
    "disable_pinned_memory": "Weft does not pin memory",
    "mmap_torch_files": "weights are read through safetensors/torch.load as they are",
    "disable_mmap": "weights are read through safetensors/torch.load as they are",
    "multi_user": "Weft has one user directory (no per-user storage)",
    "front_end_version": "the canvas is built into Weft",
    "front_end_root": "the canvas is built into Weft",
    "comfy_api_base": "Weft has no API nodes",
    "database_url": "Weft keeps its state in its own files",
}

#: ComfyUI flags whose effect is what Weft does anyway (accepted silently).
ALREADY_WEFT_DEFAULT = frozenset(
    {
        "disable_cuda_malloc",
        "cache_classic",
        "use_pytorch_cross_attention",
        "disable_xformers",
        "disable_api_nodes",
        "normalvram",
        "disable_auto_launch",
    }
)


def _existing_directory(value: str) -> str:
    """ComfyUI's check for ``--user-directory`` / ``--front-end-root``: it must already exist."""
    if not os.path.exists(value):
        raise argparse.ArgumentTypeError(f"the path '{value}' does not exist")
    if not os.path.isdir(value):
        raise argparse.ArgumentTypeError(f"'{value}' is not a directory")
    if not os.access(value, os.R_OK):
        raise argparse.ArgumentTypeError(f"you do not have read permissions for '{value}'")
    return value


def _na(dest: str) -> str:
    return f"ComfyUI flag, no effect in Weft: {NOT_APPLICABLE[dest]}"


def build_parser() -> argparse.ArgumentParser:
    """ComfyUI 0.8.0's flags (same names, types, defaults, mutually exclusive groups) and Weft's
    own, in one argument group per area (what ``--help`` shows)."""
    p = argparse.ArgumentParser(
        prog="weft",
        description="Weft: a node-based workflow editor for diffusion models (ComfyUI-compatible API). "
        "Accepts ComfyUI's launcher flags; those marked 'no effect in Weft' are accepted and reported.",
    )
    # in this order, the flags with no effect are named at start-up in ComfyUI's order
    for add_flags in (
        _network_flags,
        _folder_flags,
        _precision_flags,
        _device_flags,
        _preview_flags,
        _cache_flags,
        _attention_flags,
        _manager_flags,
        _memory_flags,
        _custom_node_flags,
        _console_flags,
        _limit_flags,
        _access_flags,
        _queue_flags,
        add_worker_flags,
        add_pool_flags,
    ):
        add_flags(p)
    return p


def _network_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("network")
    g.add_argument(
        "--listen",
        type=str,
        default="127.0.0.1",
        metavar="IP",
        nargs="?",
        const="0.0.0.0,::",
        help="address(es) to listen on, comma-separated (default 127.0.0.1; bare --listen means all interfaces)",
    )
    g.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8188)")
    g.add_argument("--tls-keyfile", type=str, help="TLS key file; with --tls-certfile the server speaks https")
    g.add_argument("--tls-certfile", type=str, help="TLS certificate file; with --tls-keyfile the server speaks https")
    g.add_argument(
        "--enable-cors-header",
        type=str,
        default=None,
        metavar="ORIGIN",
        nargs="?",
        const="*",
        help="allow cross-origin requests from ORIGIN (off by default; bare flag: any origin)",
    )
    g.add_argument("--max-upload-size", type=float, default=100, help="largest upload accepted, in MB (default 100)")
    g.add_argument(
        "--default-hashing-function",
        type=str,
        choices=["md5", "sha1", "sha256", "sha512"],
        default="sha256",
        help="hash that tells an upload with a taken name from the same file (default sha256)",
    )
    g.add_argument(
        "--enable-compress-response-body", action="store_true", help="gzip responses for clients that accept it"
    )
    g.add_argument(
        "--base-path",
        type=str,
        default="",
        help="URL prefix when served behind a reverse proxy (a --trusted-proxy's X-Forwarded-Prefix wins)",
    )


def _folder_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("folders")
    g.add_argument("--base-directory", type=str, default=None, help="root for models/, input/, output/, temp/, user/")
    g.add_argument(
        "--extra-model-paths-config",
        type=str,
        default=None,
        metavar="PATH",
        nargs="+",
        action="append",
        help="YAML file(s) naming more model folders, in ComfyUI's extra_model_paths.yaml format",
    )
    g.add_argument(
        "--output-directory", type=str, default=None, help="where SaveImage writes (overrides --base-directory)"
    )
    g.add_argument("--temp-directory", type=str, default=None, help="where previews are written, cleared at start")
    g.add_argument("--input-directory", type=str, default=None, help="where uploads and LoadImage files live")
    g.add_argument(
        "--user-directory",
        type=_existing_directory,
        default=None,
        help="the user directory (an existing folder; overrides --base-directory)",
    )


def _device_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("devices")
    g.add_argument(
        "--cuda-device",
        type=int,
        default=None,
        metavar="DEVICE_ID",
        help="use only this CUDA device (sets CUDA_VISIBLE_DEVICES before torch loads)",
    )
    g.add_argument(
        "--default-device",
        type=int,
        default=None,
        metavar="DEFAULT_DEVICE_ID",
        help="make this CUDA device the default, others stay visible",
    )
    cm = g.add_mutually_exclusive_group()
    cm.add_argument("--cuda-malloc", action="store_true", help="use PyTorch's cudaMallocAsync allocator")
    cm.add_argument(
        "--disable-cuda-malloc", action="store_true", help="use PyTorch's default allocator (Weft's default)"
    )
    g.add_argument("--force-channels-last", action="store_true", help=_na("force_channels_last"))
    g.add_argument("--directml", type=int, nargs="?", metavar="DIRECTML_DEVICE", const=-1, help=_na("directml"))
    g.add_argument(
        "--oneapi-device-selector",
        type=str,
        default=None,
        metavar="SELECTOR_STRING",
        help=_na("oneapi_device_selector"),
    )
    g.add_argument("--disable-ipex-optimize", action="store_true", help=_na("disable_ipex_optimize"))
    g.add_argument("--supports-fp8-compute", action="store_true", help=_na("supports_fp8_compute"))


def _precision_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("precision")
    fp = g.add_mutually_exclusive_group()
    fp.add_argument("--force-fp32", action="store_true", help="compute every model in fp32")
    fp.add_argument("--force-fp16", action="store_true", help="compute the UNet in fp16")
    fpunet = g.add_mutually_exclusive_group()
    fpunet.add_argument("--fp32-unet", action="store_true", help="compute the UNet in fp32")
    fpunet.add_argument("--fp64-unet", action="store_true", help=_na("fp64_unet"))
    fpunet.add_argument("--bf16-unet", action="store_true", help="compute the UNet in bf16")
    fpunet.add_argument("--fp16-unet", action="store_true", help="compute the UNet in fp16")
    fpunet.add_argument("--fp8_e4m3fn-unet", action="store_true", help="store UNet weights in fp8 (e4m3fn)")
    fpunet.add_argument("--fp8_e5m2-unet", action="store_true", help="store UNet weights in fp8 (e5m2)")
    fpunet.add_argument("--fp8_e8m0fnu-unet", action="store_true", help=_na("fp8_e8m0fnu_unet"))
    fpvae = g.add_mutually_exclusive_group()
    fpvae.add_argument("--fp16-vae", action="store_true", help="compute the VAE in fp16 (may give black images)")
    fpvae.add_argument("--fp32-vae", action="store_true", help="compute the VAE in fp32")
    fpvae.add_argument("--bf16-vae", action="store_true", help="compute the VAE in bf16")
    g.add_argument("--cpu-vae", action="store_true", help="run the VAE on the CPU")
    fpte = g.add_mutually_exclusive_group()
    fpte.add_argument("--fp8_e4m3fn-text-enc", action="store_true", help="store text encoder weights in fp8 (e4m3fn)")
    fpte.add_argument("--fp8_e5m2-text-enc", action="store_true", help="store text encoder weights in fp8 (e5m2)")
    fpte.add_argument("--fp16-text-enc", action="store_true", help="compute text encoders in fp16")
    fpte.add_argument("--fp32-text-enc", action="store_true", help="compute text encoders in fp32")
    fpte.add_argument("--bf16-text-enc", action="store_true", help="compute text encoders in bf16")


def _preview_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("previews")
    g.add_argument(
        "--preview-method",
        type=str,
        default="none",
        choices=["none", "auto", "latent2rgb", "taesd"],
        metavar="[none,auto,latent2rgb,taesd]",
        help="sampler previews when a client does not ask (default none; auto and taesd use latent2rgb)",
    )
    g.add_argument(
        "--preview-size", type=int, default=512, help="longest side of sampler previews in pixels (default 512)"
    )


def _cache_flags(p: argparse.ArgumentParser) -> None:
    cache = p.add_argument_group("output cache").add_mutually_exclusive_group()
    cache.add_argument(
        "--cache-classic", action="store_true", help="cache node outputs within the RAM budget (the default)"
    )
    cache.add_argument("--cache-lru", type=int, default=0, metavar="N", help="keep at most N cached node outputs")
    cache.add_argument("--cache-none", action="store_true", help="cache no node outputs between runs")
    cache.add_argument(
        "--cache-ram",
        nargs="?",
        const=4.0,
        type=float,
        default=0,
        metavar="GB",
        help="memory budget of the output cache in GB (default and bare flag: 4)",
    )


def _attention_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("attention")
    attn = g.add_mutually_exclusive_group()
    attn.add_argument("--use-split-cross-attention", action="store_true", help=_na("use_split_cross_attention"))
    attn.add_argument("--use-quad-cross-attention", action="store_true", help=_na("use_quad_cross_attention"))
    attn.add_argument(
        "--use-pytorch-cross-attention", action="store_true", help="PyTorch SDPA attention (Weft's default)"
    )
    attn.add_argument("--use-sage-attention", action="store_true", help=_na("use_sage_attention"))
    attn.add_argument("--use-flash-attention", action="store_true", help=_na("use_flash_attention"))
    g.add_argument("--disable-xformers", action="store_true", help="do not use xformers (Weft never does)")
    upcast = g.add_mutually_exclusive_group()
    upcast.add_argument("--force-upcast-attention", action="store_true", help=_na("force_upcast_attention"))
    upcast.add_argument("--dont-upcast-attention", action="store_true", help=_na("dont_upcast_attention"))


def _manager_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ComfyUI-Manager")
    g.add_argument("--enable-manager", action="store_true", help=_na("enable_manager"))
    manager = g.add_mutually_exclusive_group()
    manager.add_argument("--disable-manager-ui", action="store_true", help=_na("disable_manager_ui"))
    manager.add_argument("--enable-manager-legacy-ui", action="store_true", help=_na("enable_manager_legacy_ui"))


def _memory_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("memory")
    vram = g.add_mutually_exclusive_group()
    vram.add_argument("--gpu-only", action="store_true", help="keep every model on the GPU, never offload")
    vram.add_argument("--highvram", action="store_true", help="keep models on the GPU up to its whole memory")
    vram.add_argument(
        "--normalvram", action="store_true", help="keep what fits the GPU budget, offload the rest (default)"
    )
    vram.add_argument("--lowvram", action="store_true", help="only the model in use stays on the GPU")
    vram.add_argument(
        "--novram", action="store_true", help="like --lowvram, and everything leaves the GPU after each run"
    )
    vram.add_argument("--cpu", action="store_true", help="run everything on the CPU")
    g.add_argument(
        "--reserve-vram",
        type=float,
        default=None,
        metavar="GB",
        help="GPU memory in GB to leave for other programs (default 1)",
    )
    g.add_argument(
        "--async-offload", nargs="?", const=2, type=int, default=None, metavar="NUM_STREAMS", help=_na("async_offload")
    )
    g.add_argument("--disable-async-offload", action="store_true", help=_na("disable_async_offload"))
    g.add_argument("--force-non-blocking", action="store_true", help=_na("force_non_blocking"))
    g.add_argument("--disable-smart-memory", action="store_true", help="move every model off the GPU after each run")
    g.add_argument(
        "--deterministic", action="store_true", help="make PyTorch use deterministic algorithms where it can"
    )
    g.add_argument(
        "--fast",
        nargs="*",
        type=str,
        choices=["fp16_accumulation", "fp8_matrix_mult", "cublas_ops", "autotune"],
        help=_na("fast"),
    )
    compile_help = "torch.compile every UNet, once per model and size (Weft's; the backend is inductor unless given)"
    g.add_argument("--compile-unet", nargs="?", const="inductor", choices=["inductor", "cudagraphs"], help=compile_help)
    g.add_argument("--disable-pinned-memory", action="store_true", help=_na("disable_pinned_memory"))
    g.add_argument("--mmap-torch-files", action="store_true", help=_na("mmap_torch_files"))
    g.add_argument("--disable-mmap", action="store_true", help=_na("disable_mmap"))


def _custom_node_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("custom nodes")
    g.add_argument("--disable-all-custom-nodes", action="store_true", help="load no custom node packs")
    g.add_argument(
        "--whitelist-custom-nodes",
        type=str,
        nargs="+",
        default=[],
        metavar="PACK",
        help="packs to load even with --disable-all-custom-nodes",
    )
    g.add_argument(
        "--disable-custom-nodes",
        type=str,
        default="",
        metavar="PACKS",
        help="comma-separated custom node packs not to load",
    )
    g.add_argument(
        "--custom-nodes-directory",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="another folder of custom node packs",
    )
    g.add_argument("--disable-api-nodes", action="store_true", help="no API nodes (Weft has none)")


def _console_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("console and start-up")
    g.add_argument("--auto-launch", action="store_true", help="open the editor in the default browser once serving")
    g.add_argument("--disable-auto-launch", action="store_true", help="do not open a browser (the default)")
    g.add_argument("--dont-print-server", action="store_true", help="do not print the server's address at start")
    g.add_argument("--quick-test-for-ci", action="store_true", help="load everything, then exit without serving")
    g.add_argument(
        "--windows-standalone-build",
        action="store_true",
        help="what ComfyUI's portable build passes: opens the browser",
    )
    g.add_argument("--disable-metadata", action="store_true", help="saved images carry no prompt or workflow")
    g.add_argument("--multi-user", action="store_true", help=_na("multi_user"))
    g.add_argument(
        "--verbose",
        default="INFO",
        const="DEBUG",
        nargs="?",
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="log level (bare flag: DEBUG)",
    )
    g.add_argument("--log-stdout", action="store_true", help="log to stdout (errors still go to stderr)")
    g.add_argument(
        "--front-end-version", type=str, default="comfyanonymous/ComfyUI@latest", help=_na("front_end_version")
    )
    g.add_argument("--front-end-root", type=_existing_directory, default=None, help=_na("front_end_root"))
    g.add_argument("--comfy-api-base", type=str, default="https://api.comfy.org", help=_na("comfy_api_base"))
    g.add_argument("--database-url", type=str, default=None, help=_na("database_url"))


def _limit_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("resource limits (Weft's; docs/security.md)")
    g.add_argument(
        "--max-node-memory",
        type=float,
        default=None,
        metavar="GB",
        help="refuse at validation a prompt whose node would allocate more than GB (estimated from its "
        "inputs: latents, images, decodes, upscales); default half the RAM, 0 turns the check off",
    )
    g.add_argument(
        "--max-image-pixels",
        type=int,
        default=16384 * 16384,
        metavar="N",
        help="largest image (width x height) decoded from an upload or input file (default 16384x16384)",
    )
    g.add_argument(
        "--max-string-length",
        type=int,
        default=16 * 1024 * 1024,
        metavar="N",
        help="longest string a string node may produce, in characters (default 16 Mi)",
    )
    g.add_argument(
        "--max-json-depth",
        type=int,
        default=128,
        metavar="N",
        help="deepest nesting accepted in a JSON request body (default 128)",
    )


def _access_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("access (Weft's; docs/security.md)")
    token = g.add_mutually_exclusive_group()
    token.add_argument(
        "--auth-token",
        type=str,
        default=None,
        metavar="TOKEN",
        help="token every request must carry (Authorization: Bearer, ?token=, or the cookie the page "
        f"sets); default: ${TOKEN_ENV}, else one is generated and printed when the server is "
        "reachable from other machines (--listen off loopback, --trusted-proxy)",
    )
    token.add_argument(
        "--auth-token-file",
        type=str,
        default=None,
        metavar="PATH",
        help="read the token from PATH (keeps it out of the process list)",
    )
    g.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve off loopback without a token: anyone who reaches the port can use everything",
    )
    g.add_argument(
        "--allowed-hosts",
        type=str,
        default="",
        metavar="NAMES",
        help="comma-separated Host names accepted besides loopback and the listen addresses "
        "(a DNS rebinding guard; '*' accepts any)",
    )
    g.add_argument(
        "--trusted-proxy",
        type=_addresses,
        default=[],
        metavar="ADDRESSES",
        help="comma-separated addresses or networks of reverse proxies whose X-Forwarded-For/-Proto/"
        "-Host/-Prefix headers are believed (ignored from anyone else)",
    )
    g.add_argument(
        "--body-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="a request body not complete after SECONDS is answered 408 and its connection closed (default 60)",
    )
    g.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=75.0,
        metavar="SECONDS",
        help="close a connection idle, or still sending its request headers, after SECONDS (default 75)",
    )


def _addresses(value: str) -> list[str]:
    """``--trusted-proxy``: IP addresses or networks (a host name could resolve to anyone)."""
    found = [part.strip() for part in value.split(",") if part.strip()]
    for part in found:
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not an IP address or network") from None
    return found


def _seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise argparse.ArgumentTypeError("must be a number of seconds above 0")
    return seconds


def _queue_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("queue and history (Weft's; docs/security.md)")
    g.add_argument(
        "--memory-only-queue",
        action="store_true",
        help="keep the queue, history and prompt numbers in memory only (lost when the server stops); "
        "by default they are kept in <user directory>/weft-state.sqlite3 and survive a crash",
    )
    g.add_argument(
        "--on-restart-running",
        choices=["fail", "requeue"],
        default="fail",
        help="the prompt that was running when the server was killed: marked failed in the history "
        "(default), or queued again (it may be what killed the server)",
    )
    g.add_argument(
        "--max-queue-items",
        type=_count,
        default=10000,
        metavar="N",
        help="most prompts waiting in the queue; POST /prompt answers 429 past it (default 10000, 0: no bound)",
    )
    g.add_argument(
        "--max-queue-size",
        type=_megabytes,
        default="256",
        metavar="MB",
        help="most MB of waiting prompts (as JSON); POST /prompt answers 429 past it (default 256, 0: no bound)",
    )
    g.add_argument(
        "--max-history-items",
        type=_count,
        default=10000,
        metavar="N",
        help="history entries kept; the oldest are dropped past it, their output files stay "
        "(default 10000 as ComfyUI, 0: no bound)",
    )
    g.add_argument(
        "--max-history-size",
        type=_megabytes,
        default="256",
        metavar="MB",
        help="most MB of history entries (as JSON); the oldest are dropped past it, their output "
        "files stay (default 256, 0: no bound)",
    )


def _count(value: str) -> int:
    count = int(value)
    if count < 0:
        raise argparse.ArgumentTypeError("must be 0 (no bound) or more")
    return count


def _megabytes(value: str) -> int:
    """A size in MB as bytes."""
    megabytes = float(value)
    if not megabytes >= 0:
        raise argparse.ArgumentTypeError("must be 0 (no bound) or more MB")
    return int(megabytes * (1 << 20))


#: argparse destinations of Weft's own flags (not part of ``comfy.cli_args.args``)
WEFT_ONLY = frozenset(
    {
        "disable_custom_nodes",
        "custom_nodes_directory",
        "base_path",
        "max_node_memory",
        "max_image_pixels",
        "max_string_length",
        "max_json_depth",
        "auth_token",
        "auth_token_file",
        "insecure_no_auth",
        "allowed_hosts",
        "trusted_proxy",
        "body_timeout",
        "idle_timeout",
        "memory_only_queue",
        "on_restart_running",
        "max_queue_items",
        "max_queue_size",
        "max_history_items",
        "max_history_size",
        "compile_unet",
        *WORKER_DESTS,
    }
)
