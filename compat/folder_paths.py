"""ComfyUI's ``folder_paths`` for custom node packs, backed by Weft's ``nodes.paths``.

Packs use it to find model files (``get_filename_list("loras")``, ``get_full_path``), the
input/output/temp folders, and to register folders of their own by adding to
``folder_names_and_paths``. That dict is a live, mutable mapping here too: it starts as
Weft's model folders (same names as ComfyUI's) and a pack may add entries; Weft's own
loaders see folders added through :func:`add_model_folder_path`. It belongs to the current
runtime (:mod:`nodes.runtime`), like the folders themselves, so each server in a process (and
each test's paths) has its own.

This file sits in ``compat/``, which the plugin loader puts on ``sys.path`` only when packs
load; see ``docs/plugins.md``.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from nodes import paths as _paths
from nodes import runtime as _runtime
from nodes.plugins.support import unsupported_attribute

supported_pt_extensions: set[str] = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}


class _Folders:
    """One runtime's view: folder name -> (folders, accepted extensions), an empty extension set
    accepting every file. Starts as Weft's model folders; packs add to it."""

    def __init__(self, paths: _paths.Paths) -> None:
        self.paths = paths
        self.table: dict[str, tuple[list[str], set[str]]] = {
            name: ([str(p) for p in paths.model_dirs(name)], set(exts)) for name, exts in _paths.MODEL_FOLDERS.items()
        }
        self.filename_list_cache: dict[str, tuple[list[str], float]] = {}


def _folders() -> _Folders:
    """The current runtime's folders (:mod:`nodes.runtime`), made on first use: what a pack
    registers under one server never shows under another. Cheap, as it must be: ``INPUT_TYPES``
    of many packs calls ``get_filename_list``."""
    state = _runtime.current().state
    folders = state.get("folder_paths")
    if folders is None:
        folders = state.setdefault("folder_paths", _Folders(_weft()))
    return folders


def _weft() -> _paths.Paths:
    return _paths.get_paths()


def __getattr__(name: str) -> Any:
    # the table and the folders follow the current runtime instead of being frozen at import
    if name == "folder_names_and_paths":
        return _folders().table
    if name == "base_path":
        return str(_weft().base)
    if name == "models_dir":
        return str(_weft().models)
    if name == "output_directory":
        return str(_weft().output)
    if name == "input_directory":
        return str(_weft().input)
    if name == "temp_directory":
        return str(_weft().temp)
    if name == "user_directory":
        return str(_weft().user)
    if name.startswith("__"):
        raise AttributeError(name)
    raise unsupported_attribute("folder_paths", name)


# -- user folders ----------------------------------------------------------------------
def get_input_directory() -> str:
    return str(_weft().input)


def get_output_directory() -> str:
    return str(_weft().output)


def get_temp_directory() -> str:
    return str(_weft().temp)


def get_user_directory() -> str:
    return str(_weft().user)


def get_directory_by_type(type_name: str) -> str | None:
    """``"input"``, ``"output"`` or ``"temp"``; ``None`` for anything else, as in ComfyUI."""
    if type_name in ("input", "output", "temp"):
        return str(_weft().directory(type_name))
    return None


def set_output_directory(output_dir: str) -> None:
    _weft().output = Path(output_dir).resolve()


def set_input_directory(input_dir: str) -> None:
    _weft().input = Path(input_dir).resolve()


def set_temp_directory(temp_dir: str) -> None:
    _weft().temp = Path(temp_dir).resolve()


_ANNOTATION = re.compile(r"^(.*) \[(input|output|temp)\]$")


def annotated_filepath(name: str) -> tuple[str, str | None]:
    """``"a.png [output]"`` -> ``("a.png", output folder)``; no annotation -> ``(name, None)``."""
    match = _ANNOTATION.match(name)
    if match:
        return match.group(1), get_directory_by_type(match.group(2))
    return name, None


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    name, base_dir = annotated_filepath(name)
    if base_dir is None:
        base_dir = default_dir if default_dir is not None else get_input_directory()
    return str(_paths.safe_join(Path(base_dir), name))


def exists_annotated_filepath(name: str) -> bool:
    try:
        return os.path.exists(get_annotated_filepath(name))
    except _paths.UnsafePathError:
        return False


# -- model folders ---------------------------------------------------------------------
def map_legacy(folder_name: str) -> str:
    return {"unet": "diffusion_models", "clip": "text_encoders"}.get(folder_name, folder_name)


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    """Register a folder for ``folder_name``; Weft's own model loaders see it too."""
    view = _folders()
    folder_name = map_legacy(folder_name) if folder_name not in view.table else folder_name
    folders, exts = view.table.setdefault(folder_name, ([], set()))
    if full_folder_path in folders:
        folders.remove(full_folder_path)
    if is_default:
        folders.insert(0, full_folder_path)
    else:
        folders.append(full_folder_path)
    if folder_name in _paths.MODEL_FOLDERS:
        extra = view.paths.extra_model_dirs.setdefault(folder_name, [])
        resolved = Path(full_folder_path).resolve()
        if resolved not in extra:
            extra.append(resolved)
    view.filename_list_cache.pop(folder_name, None)


def _entry(folder_name: str) -> tuple[str, tuple[list[str], set[str]] | None]:
    """The folder's name as stored (``unet`` -> ``diffusion_models`` unless a pack added ``unet``) and its entry."""
    table = _folders().table
    folder_name = map_legacy(folder_name) if folder_name not in table else folder_name
    return folder_name, table.get(folder_name)


def get_folder_paths(folder_name: str) -> list[str]:
    _, entry = _entry(folder_name)
    return list(entry[0]) if entry else []


def filter_files_extensions(files: Any, extensions: Any) -> list[str]:
    exts = {e.lower() for e in extensions}
    return sorted(f for f in files if not exts or os.path.splitext(f)[1].lower() in exts)


def recursive_search(directory: str, excluded_dir_names: list[str] | None = None) -> tuple[list[str], dict[str, float]]:
    """Files under ``directory`` (relative, forward slashes) and the folders' mtimes."""
    if not os.path.isdir(directory):
        return [], {}
    excluded = set(excluded_dir_names or [".git"])
    result: list[str] = []
    dirs: dict[str, float] = {directory: os.path.getmtime(directory)}
    for dirpath, subdirs, filenames in os.walk(directory, followlinks=True):
        subdirs[:] = [d for d in subdirs if d not in excluded]
        for filename in filenames:
            result.append(os.path.relpath(os.path.join(dirpath, filename), directory).replace(os.sep, "/"))
        for d in subdirs:
            path = os.path.join(dirpath, d)
            try:
                dirs[path] = os.path.getmtime(path)
            except OSError:
                pass
    return result, dirs


def get_filename_list(folder_name: str) -> list[str]:
    """Model files of a folder, relative with forward slashes, sorted (a combo's choices)."""
    folder_name, entry = _entry(folder_name)
    if entry is None:
        return []
    folders, exts = entry
    if "folder" in exts:
        found = {d for f in folders if os.path.isdir(f) for d in os.listdir(f) if os.path.isdir(os.path.join(f, d))}
        return sorted(found)
    found_files: set[str] = set()
    for folder in folders:
        files, _ = recursive_search(folder, excluded_dir_names=[".git"])
        found_files.update(filter_files_extensions(files, exts))
    result = sorted(found_files)
    _folders().filename_list_cache[folder_name] = (result, time.time())
    return result


def get_full_path(folder_name: str, filename: str) -> str | None:
    """The file behind a combo value, or ``None``; refuses ``..`` and absolute names.

    Model folders follow symlinks (Weft's ``model_join``): a checkpoint linked in from a
    shared models folder loads, as it does in ComfyUI.
    """
    _, entry = _entry(folder_name)
    if entry is None:
        return None
    for folder in entry[0]:
        try:
            candidate = _paths.model_join(Path(folder), filename)
        except _paths.UnsafePathError:
            return None
        if candidate.is_file() or candidate.is_dir():
            return str(candidate)
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full = get_full_path(folder_name, filename)
    if full is None:
        searched = ", ".join(get_folder_paths(folder_name)) or "no folders"
        raise FileNotFoundError(
            f"model in folder '{folder_name}' with filename '{filename}' not found (searched: {searched})"
        )
    return full


def get_save_image_path(
    filename_prefix: str, output_dir: str, image_width: int = 0, image_height: int = 0
) -> tuple[str, str, int, str, str]:
    """ComfyUI's contract: ``(full_output_folder, filename, counter, subfolder, filename_prefix)``.

    ``%width%`` / ``%height%`` in the prefix are replaced; ``counter`` is one more than the
    highest ``<filename>_NNNNN_`` already in the folder, so files are never overwritten.
    """
    filename_prefix = filename_prefix.replace("%width%", str(image_width)).replace("%height%", str(image_height))
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = (
        str(_paths.safe_join(Path(output_dir), subfolder)) if subfolder else str(Path(output_dir).resolve())
    )
    counter = 1
    if os.path.isdir(full_output_folder):
        pattern = re.compile(re.escape(filename) + r"_(\d+)_?")
        highest = 0
        for existing in os.listdir(full_output_folder):
            match = pattern.match(existing)
            if match:
                highest = max(highest, int(match.group(1)))
        counter = highest + 1
    return full_output_folder, filename, counter, subfolder, filename_prefix


def get_input_subfolders() -> list[str]:
    base = get_input_directory()
    found = []
    for dirpath, subdirs, _ in os.walk(base):
        for d in subdirs:
            found.append(os.path.relpath(os.path.join(dirpath, d), base).replace(os.sep, "/"))
    return sorted(found)
