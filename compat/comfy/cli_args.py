"""``from comfy.cli_args import args``: ComfyUI's parsed command line, as Weft was launched.

Packs read a few flags (``args.cpu``, ``args.disable_metadata``, ``args.listen``,
``args.preview_method``...) to adapt their behaviour. Weft parses every flag of ComfyUI's
launcher (``server/config.py``) and hands them to ``nodes.launch_options``; this object
answers from there, with ComfyUI's defaults before a launcher ran, and ``None`` for any
name ComfyUI's parser does not have, so reading a flag never crashes a pack.
"""

from __future__ import annotations

import enum
from typing import Any


class LatentPreviewMethod(enum.Enum):
    NoPreviews = "none"
    Auto = "auto"
    Latent2RGB = "latent2rgb"
    TAESD = "taesd"

    @classmethod
    def from_string(cls, value: str) -> LatentPreviewMethod | None:
        for member in cls:
            if member.value == value:
                return member
        return None


class PerformanceFeature(enum.Enum):
    Fp16Accumulation = "fp16_accumulation"
    Fp8MatrixMultiplication = "fp8_matrix_mult"
    CublasOps = "cublas_ops"
    AutoTune = "autotune"


#: ComfyUI's defaults for the flags packs read most, for a process no launcher configured.
_DEFAULTS: dict[str, Any] = {
    "listen": "127.0.0.1",
    "port": 8188,
    "verbose": "INFO",
    "max_upload_size": 100,
    "preview_size": 512,
    "cache_lru": 0,
    "cache_ram": 0,
    "default_hashing_function": "sha256",
    "whitelist_custom_nodes": [],
    "front_end_version": "comfyanonymous/ComfyUI@latest",
    "comfy_api_base": "https://api.comfy.org",
}
_FALSE_FLAGS = (
    "cpu",
    "disable_metadata",
    "disable_all_custom_nodes",
    "lowvram",
    "highvram",
    "novram",
    "normalvram",
    "gpu_only",
    "force_fp16",
    "force_fp32",
    "fp16_vae",
    "bf16_vae",
    "fp32_vae",
    "cpu_vae",
    "dont_print_server",
    "multi_user",
    "auto_launch",
    "disable_auto_launch",
    "windows_standalone_build",
    "deterministic",
    "disable_smart_memory",
    "log_stdout",
    "quick_test_for_ci",
    "disable_xformers",
    "use_pytorch_cross_attention",
    "cache_none",
    "cache_classic",
)


class _Args:
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        from nodes.launch_options import get_options

        options = get_options()
        parsed = options.comfy_args
        if name == "preview_method":  # an enum in ComfyUI
            return LatentPreviewMethod.from_string(options.preview_method) or LatentPreviewMethod.NoPreviews
        if name == "fast":
            chosen = parsed.get("fast")
            if chosen is None:
                return set()
            return {PerformanceFeature(v) for v in chosen} if chosen else set(PerformanceFeature)
        if name == "auto_launch" and parsed:
            return bool(parsed.get("auto_launch") or parsed.get("windows_standalone_build")) and not parsed.get(
                "disable_auto_launch"
            )
        if name in parsed:
            return parsed[name]
        if name == "disable_metadata":
            return options.disable_metadata
        if name in _DEFAULTS:
            return _DEFAULTS[name]
        if name in _FALSE_FLAGS:
            return False
        return None


args = _Args()
