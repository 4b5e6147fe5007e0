"""The files of a model folder as a model browser shows them: name, size, dates and family.

The family (``sd1``, ``sd2``, ``sdxl``, or a text encoder's ``clip_l``/``clip_g``/``clip_h``)
comes from a safetensors header alone: a file's ``modelspec.architecture`` metadata, its key
prefixes, or the width its cross-attention layers take (768 for SD1.x, 1024 for SD2.x, 2048
for SDXL; LoRAs and ControlNets included). Weights are never read and pickles never opened,
so listing a folder costs a few milliseconds per file, and each answer is cached under the
file's path, modification time and size. Anything else has no family (``None``).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from .diffusion import detect
from .diffusion import single_file as sf
from .paths import Paths, model_join

#: the width of the text embeddings each family's UNet attends to (``attn2.to_k`` input width)
CONTEXT_FAMILIES = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
#: the token-embedding width of a text encoder file
TEXT_ENCODERS = {768: "clip_l", 1024: "clip_h", 1280: "clip_g"}
_ARCHITECTURES = (("stable-diffusion-xl", "sdxl"), ("stable-diffusion-v2", "sd2"), ("stable-diffusion-v1", "sd1"))
_HEADER_SUFFIXES = (".safetensors", ".sft")


def folder_entries(paths: Paths, folder: str) -> list[dict[str, Any]]:
    """Each file of ``folder`` in ComfyUI's ``/experiment/models/{folder}`` shape (``name``,
    ``pathIndex``, ``modified``, ``created``, ``size``) plus Weft's ``family`` and ``builtin``."""
    roots = paths.model_dirs(folder)
    builtin_root = paths.builtin_models / folder if paths.builtin_models is not None else None
    entries = []
    for name in paths.list_models(folder):
        found = _locate(roots, name)
        if found is None:
            continue
        index, path = found
        try:
            st = path.stat()
        except OSError:
            continue
        entries.append(
            {
                "name": name,
                "pathIndex": index,
                "modified": st.st_mtime,
                "created": st.st_ctime,
                "size": _folder_size(path) if path.is_dir() else st.st_size,
                "family": file_family(path),
                "builtin": builtin_root is not None and roots[index] == builtin_root,
            }
        )
    return entries


def _locate(roots: list[Path], name: str) -> tuple[int, Path] | None:
    for index, root in enumerate(roots):
        try:
            candidate = model_join(root, name)
        except ValueError:
            return None
        if candidate.exists():
            return index, candidate
    return None


def _folder_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def file_family(path: Path) -> str | None:
    """The family of a model file or diffusers folder, or ``None`` when the header cannot tell."""
    if path.is_dir():
        return _diffusers_family(path)
    if path.suffix.lower() not in _HEADER_SUFFIXES:
        return None  # a pickle: reading its keys would mean unpickling it
    try:
        st = path.stat()
    except OSError:
        return None
    return _header_family(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=1024)
def _header_family(path: str, mtime_ns: int, size: int) -> str | None:
    try:
        info = detect.read_safetensors_header(Path(path))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return family_of(info)


def family_of(info: detect.FileInfo) -> str | None:
    """The family a header's metadata, key prefixes or layer widths point to."""
    architecture = str(info.metadata.get("modelspec.architecture", "")).lower()
    for prefix, family in _ARCHITECTURES:
        if architecture.startswith(prefix):
            return family
    if info.has_prefix(sf.SDXL_CLIP_G_PREFIX) or info.has_prefix("lora_te2_"):
        return "sdxl"
    if info.has_prefix(sf.SD2_CLIP_PREFIX):
        return "sd2"
    if info.has_prefix(sf.SD1_CLIP_PREFIX):
        return "sd1"
    for prefix in (sf.UNET_PREFIX, sf.CONTROLNET_PREFIX, ""):
        unet = info.strip(prefix) if prefix else info.shapes
        if "input_blocks.0.0.weight" in unet:
            try:
                return detect.unet_family(unet, info.path.name)
            except detect.ModelFileError:
                break
    width = _context_width(info.shapes)
    if width in CONTEXT_FAMILIES:
        return CONTEXT_FAMILIES[width]
    return TEXT_ENCODERS.get(_token_width(info.shapes) or 0)


def _context_width(shapes: dict[str, tuple[int, ...]]) -> int | None:
    """The input width of a cross-attention key projection (full weight or a LoRA's down part)."""
    for key, shape in shapes.items():
        if "attn2" not in key or "to_k" not in key or len(shape) != 2:
            continue
        if "lora_up" in key or "lora_B" in key or key.endswith("alpha"):
            continue
        return shape[1]
    return None


def _token_width(shapes: dict[str, tuple[int, ...]]) -> int | None:
    for key, shape in shapes.items():
        if key.endswith("token_embedding.weight") and len(shape) == 2:
            return shape[1]
    return None


def _diffusers_family(folder: Path) -> str | None:
    """A diffusers pipeline folder: its pipeline class, else its UNet's cross-attention width."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        if "XL" in str(index.get("_class_name", "")):
            return "sdxl"
        config = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, AttributeError):
        return None
    width = config.get("cross_attention_dim") if isinstance(config, dict) else None
    if isinstance(width, list):
        width = width[0] if width else None
    return CONTEXT_FAMILIES.get(width) if isinstance(width, int) else None
