"""The weights files behind loader inputs: where they are, what identifies them, what their headers say.

Every loader (checkpoint, diffusers folder, separate component files, LoRA, ControlNet) keys
its handles and its cache fingerprint on the same file identity, and reports a bad file
under the node input that named it; keeping those rules in one place keeps them alike.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from nodes.paths import get_paths

from . import detect
from . import single_file as sf
from .detect import FileInfo, ModelFileError


class LoaderInputError(ModelFileError):
    """A loader input names a file that is missing or unusable; says which input."""


def model_file(folder: str, name: str, input_name: str) -> Path:
    """The path behind a combo value, or an error naming the input and the folders searched."""
    try:
        return get_paths().model_path(folder, name)
    except FileNotFoundError as exc:
        raise LoaderInputError(f"{input_name}: {exc}. Put the file in models/{folder} or pick another") from exc
    except ValueError as exc:
        raise LoaderInputError(f"{input_name}: {exc}") from exc


def file_key(path: Path) -> tuple[str, int, int]:
    """Identity of a file's contents for caching: path, modification time, size."""
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


def file_fingerprint(folder: str, name: str) -> Any:
    """What a loader node's output depends on outside the prompt: the file's mtime and size."""
    try:
        return file_key(get_paths().model_path(folder, name))[1:]
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=64)
def _file_info(key: tuple[str, int, int]) -> FileInfo:
    path = Path(key[0])
    if path.suffix.lower() in sf.PICKLE_SUFFIXES:
        import torch

        state = sf.load_pickle(path)
        return FileInfo(path, {k: tuple(v.shape) for k, v in state.items() if torch.is_tensor(v)})
    return detect.read_safetensors_header(path)


def file_info(path: Path) -> FileInfo:
    """Header of a weights file (cached by path+mtime+size); pickles only if the user allowed them."""
    if path.suffix.lower() in sf.PICKLE_SUFFIXES and sf.pickle_policy(path) is None:
        sf.load_pickle(path)  # raises the explanatory error
    return _file_info(file_key(path))


def info_bytes(path: Path, prefix: str) -> int:
    return file_info(path).nbytes(prefix)


def with_input(input_name: str, exc: Exception) -> LoaderInputError:
    """``exc`` restated under the node input that named the file, so the user knows which to change."""
    return LoaderInputError(f"{input_name}: {exc}")
