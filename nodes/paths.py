"""Where user files live: input/, output/, temp/ and the model folders.

Each runtime (:mod:`nodes.runtime`) has its own: a server's comes from its command line, a
script's from :func:`configure`; nodes and the ComfyUI compatibility layer read the current
one with :func:`get_paths`, and tests swap them with :func:`using`. Model folders follow ComfyUI's layout (``models/checkpoints``,
``models/loras``, ...) and may be extended by an extra-model-paths YAML, so an existing
ComfyUI models folder can be reused as it is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import runtime as _runtime

#: Model folder name -> accepted file extensions (ComfyUI's names).
MODEL_FOLDERS: dict[str, frozenset[str]] = {
    name: frozenset(exts)
    for name, exts in {
        "checkpoints": {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft"},
        "diffusion_models": {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft"},
        "unet": {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft"},
        "clip": {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft"},
        "text_encoders": {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft"},
        "vae": {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft"},
        "loras": {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft"},
        "controlnet": {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft"},
        "embeddings": {".safetensors", ".pt", ".bin"},
        "upscale_models": {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft"},
        "clip_vision": {".safetensors", ".ckpt", ".pt", ".pth", ".bin"},
        "vae_approx": {".safetensors", ".pt", ".pth", ".bin"},
        "diffusers": {"folder"},
        "configs": {".yaml"},  # CheckpointLoader's model configs (ComfyUI's models/configs)
    }.items()
}
#: The models that ship with Weft (a ComfyUI-style models folder): listed after the user's own
#: files in each folder, and found only when no user file has the same name.
BUILTIN_MODELS = Path(__file__).resolve().parent.parent / "models_builtin"
#: ComfyUI treats these pairs as one folder; a file in either is found under both names.
FOLDER_ALIASES = {"unet": "diffusion_models", "clip": "text_encoders"}


class UnsafePathError(ValueError):
    """A user-supplied path tried to leave its root (``..``, absolute path, or a symlink out of
    input/, output/ or temp/; model folders follow symlinks, see :func:`model_join`)."""


@dataclass
class Paths:
    base: Path
    input: Path
    output: Path
    temp: Path
    user: Path
    models: Path
    extra_model_dirs: dict[str, list[Path]] = field(default_factory=dict)
    builtin_models: Path | None = BUILTIN_MODELS

    @classmethod
    def at(
        cls,
        base: Path | None = None,
        *,
        input_dir: Path | None = None,
        output_dir: Path | None = None,
        temp_dir: Path | None = None,
        user_dir: Path | None = None,
        models_dir: Path | None = None,
        extra_model_dirs: dict[str, Iterable[Path]] | None = None,
        builtin_models: Path | None = BUILTIN_MODELS,
        create: bool = True,
    ) -> Paths:
        """The folders under ``base`` (default :func:`default_base`), each overridable; creates
        them unless ``create=False``. Changes nothing else: :func:`configure` or :func:`using`
        make them current. ``builtin_models=None`` hides the models that ship with Weft (tests
        that need an exact list)."""
        base = (base or default_base()).resolve()
        paths = cls(
            base=base,
            input=(input_dir or base / "input").resolve(),
            output=(output_dir or base / "output").resolve(),
            temp=(temp_dir or base / "temp").resolve(),
            user=(user_dir or base / "user").resolve(),
            models=(models_dir or base / "models").resolve(),
            extra_model_dirs={k: [Path(p).resolve() for p in v] for k, v in (extra_model_dirs or {}).items()},
            builtin_models=builtin_models.resolve() if builtin_models is not None else None,
        )
        if create:
            for d in (paths.input, paths.output, paths.temp, paths.user):
                d.mkdir(parents=True, exist_ok=True)
            for folder in MODEL_FOLDERS:
                (paths.models / folder).mkdir(parents=True, exist_ok=True)
        return paths

    def directory(self, kind: str) -> Path:
        """``input``, ``output`` or ``temp``; anything else is a ``ValueError``."""
        if kind not in ("input", "output", "temp"):
            raise ValueError(f"unknown directory type {kind!r}: use input, output or temp")
        return getattr(self, kind)

    def model_dirs(self, folder: str) -> list[Path]:
        """Where a folder's files are looked for, in order: the user's folders, then the built-in one."""
        dirs = self.user_model_dirs(folder)
        if self.builtin_models is not None:
            dirs.append(self.builtin_models / folder)
        return dirs

    def user_model_dirs(self, folder: str) -> list[Path]:
        names = (
            [folder]
            + [a for a, b in FOLDER_ALIASES.items() if b == folder]
            + ([FOLDER_ALIASES[folder]] if folder in FOLDER_ALIASES else [])
        )
        dirs: list[Path] = []
        for name in names:
            dirs.append(self.models / name)
            dirs.extend(self.extra_model_dirs.get(name, []))
        seen: set[Path] = set()
        return [d for d in dirs if not (d in seen or seen.add(d))]

    def list_models(self, folder: str) -> list[str]:
        """Files of a model folder, relative and with forward slashes: the user's sorted, then the built-in ones.

        So a fresh install offers the built-in model first, and once the user adds models theirs
        come first (the canvas's default workflow takes the first checkpoint).
        """
        if folder not in MODEL_FOLDERS:
            raise KeyError(f"unknown model folder {folder!r}")
        user = _scan(self.user_model_dirs(folder), MODEL_FOLDERS[folder])
        builtin = _scan([self.builtin_models / folder], MODEL_FOLDERS[folder]) if self.builtin_models else set()
        return sorted(user, key=str.lower) + sorted(builtin - user, key=str.lower)

    def is_builtin(self, folder: str, name: str) -> bool:
        """Whether ``name`` resolves to a model that ships with Weft (no user file shadows it)."""
        if self.builtin_models is None:
            return False
        try:
            return self.model_path(folder, name).is_relative_to(self.builtin_models.resolve())
        except (FileNotFoundError, UnsafePathError):
            return False

    def model_path(self, folder: str, name: str) -> Path:
        """The file behind a combo value; ``FileNotFoundError`` names the folders searched."""
        for root in self.model_dirs(folder):
            candidate = model_join(root, name)  # UnsafePathError for '..' or absolute names
            if candidate.exists():
                return candidate
        searched = ", ".join(str(d) for d in self.model_dirs(folder))
        raise FileNotFoundError(f"{folder} file {name!r} not found (searched: {searched})")


def _scan(roots: list[Path], exts: frozenset[str]) -> set[str]:
    found: set[str] = set()
    for root in roots:
        if not root.is_dir():
            continue
        if "folder" in exts:
            found.update(p.name for p in root.iterdir() if p.is_dir())
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(root)
            for name in filenames:
                if Path(name).suffix.lower() in exts:
                    found.add((rel / name).as_posix())
    return found


def check_relative(*parts: str | None) -> None:
    """Refuse names a client could use to climb out of a folder: absolute paths, drive letters,
    ``..`` components, NUL bytes. A purely lexical check: it touches no file."""
    for part in parts:
        if part is None:
            continue
        if not isinstance(part, str):
            raise UnsafePathError("path parts must be strings")
        if "\x00" in part:
            raise UnsafePathError("path contains a NUL byte")
        pure = Path(part.replace("\\", "/"))
        if pure.is_absolute() or part.startswith(("/", "\\")) or (len(part) > 1 and part[1] == ":"):
            raise UnsafePathError(f"absolute paths are not allowed: {part!r}")
        if ".." in pure.parts:
            raise UnsafePathError(f"'..' is not allowed in paths: {part!r}")


def safe_join(root: Path, *parts: str) -> Path:
    """``root/parts...`` resolved, refusing anything that would land outside ``root``.

    For the folders Weft writes to or serves (input/, output/, temp/, the canvas): a symlink
    placed there must not expose the rest of the disk, so the resolved path must stay inside.
    """
    check_relative(*parts)
    root_resolved = root.resolve()
    target = root_resolved.joinpath(*[p.replace("\\", "/") for p in parts if p]).resolve()
    if target != root_resolved and not target.is_relative_to(root_resolved):
        raise UnsafePathError("path leaves its folder (through a symlink?)")
    return target


def model_join(root: Path, name: str) -> Path:
    """``root/name`` for a model folder, following symlinks wherever they lead.

    Model folders are the user's own read-only roots, and sharing one models folder between
    installs by symlinking files or subfolders into it is common (Stability Matrix does it), so
    where a link leads is the user's business. The name itself still comes from a request:
    it may not be absolute or contain ``..`` (:func:`check_relative`).
    """
    check_relative(name)
    return root.joinpath(*[p for p in name.replace("\\", "/").split("/") if p])


def default_base() -> Path:
    return Path(os.environ.get("WEFT_HOME", Path.cwd())).resolve()


def configure(base: Path | None = None, **options: Any) -> Paths:
    """Make :meth:`Paths.at` ``(base, **options)`` the process's paths (scripts, ``main.py run``);
    returns them. A server keeps its own in its runtime instead, and tests use :func:`using`."""
    paths = Paths.at(base, **options)
    _runtime.configure_default(paths=paths)
    return paths


def get_paths() -> Paths:
    """The current runtime's paths; the current directory's (created) when none were given."""
    runtime = _runtime.current()
    paths = runtime.paths
    if paths is None:
        paths = runtime.paths = Paths.at()
    return paths


@contextlib.contextmanager
def using(paths: Paths) -> Iterator[Paths]:
    """Make ``paths`` the process's paths for the block, then put back what was there.

    For tests and scripts: the block gets a runtime of its own with the present launch options
    and server, so what the compatibility layer registers in it (a pack's model folder through
    ``folder_paths``) goes with it.
    """
    base = _runtime.default()
    with _runtime.installed(_runtime.Runtime(paths, base.options, base.server)):
        yield paths
