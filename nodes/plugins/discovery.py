"""Find custom node packs on disk and read what they declare before any of their code runs.

A pack is a folder holding ``__init__.py`` or a single ``.py`` file in one of the custom-node
folders. Its version and requirements come from files (``pyproject.toml``'s ``[project]``
table, ``requirements.txt``) rather than from its module, because Weft must know what a pack
needs *before* importing it: a pack whose requirements are missing is not imported at all
(many such packs would otherwise crash, or try to ``pip install`` themselves on import).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

#: Names that are never packs: caches, hidden folders, ComfyUI's own examples.
_IGNORED = {"__pycache__", "example_node.py.example", "websocket_image_save.py"}


@dataclass
class PackSource:
    """A pack found on disk, not yet imported."""

    name: str
    path: Path
    kind: str  # "package" | "file"
    folder: Path
    version: str | None = None
    requirements: list[str] = field(default_factory=list)
    disabled_by_suffix: bool = False

    @property
    def module_name(self) -> str:
        """The name the pack is imported under; also its ``python_module`` in /object_info."""
        return f"custom_nodes.{self.name}"

    @property
    def entry(self) -> Path:
        return self.path / "__init__.py" if self.kind == "package" else self.path


def discover(folders: list[Path]) -> list[PackSource]:
    """Packs in ``folders``, each folder's packs sorted by name (case-insensitively).

    The order is deterministic so that, when two packs define the same node id, the same
    pack keeps the plain id on every start. A name ending in ``.disabled`` (ComfyUI's
    convention) is listed as disabled rather than silently skipped.
    """
    found: list[PackSource] = []
    for folder in folders:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name.lower())
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            continue
        for entry in entries:
            name = entry.name
            if name.startswith((".", "_")) or name in _IGNORED:
                continue
            disabled = name.endswith(".disabled")
            base = name[: -len(".disabled")] if disabled else name
            path = Path(entry.path)
            if entry.is_dir():
                if not (path / "__init__.py").is_file():
                    continue
                source = PackSource(base, path, "package", folder, disabled_by_suffix=disabled)
                read_metadata(source)
            elif base.endswith(".py") and entry.is_file():
                source = PackSource(base[:-3], path, "file", folder, disabled_by_suffix=disabled)
            else:
                continue
            found.append(source)
    return found


_REQ_LINE = re.compile(r"^\s*([^#\s][^#]*?)\s*(?:#.*)?$")


def read_requirements_txt(path: Path) -> list[str]:
    """Requirement strings of a ``requirements.txt``; options, includes and URLs are skipped.

    Lines such as ``-r other.txt``, ``--extra-index-url`` or ``git+https://...`` cannot be
    checked without a resolver, so they are left out rather than reported as missing.
    """
    requirements: list[str] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return requirements
    for raw in text.splitlines():
        match = _REQ_LINE.match(raw)
        if not match:
            continue
        line = match.group(1).strip()
        if not line or line.startswith("-") or "://" in line or line.startswith(("git+", "./", "../", "/")):
            continue
        requirements.append(line)
    return requirements


def read_metadata(source: PackSource) -> None:
    """Fill ``version`` and ``requirements`` from ``pyproject.toml`` / ``requirements.txt``.

    ``pyproject.toml`` is what the ComfyUI registry asks packs to ship (``[project]`` name,
    version, dependencies); ``requirements.txt`` is the older habit. When both list
    requirements, ``requirements.txt`` wins because that is what pack authors keep current.
    """
    pyproject = source.path / "pyproject.toml"
    dependencies: list[str] = []
    if pyproject.is_file():
        import tomllib

        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            data = {}
        project = data.get("project", {}) if isinstance(data, dict) else {}
        version = project.get("version")
        if isinstance(version, str):
            source.version = version
        deps = project.get("dependencies")
        if isinstance(deps, list):
            dependencies = [d for d in deps if isinstance(d, str)]
    requirements_txt = source.path / "requirements.txt"
    source.requirements = read_requirements_txt(requirements_txt) if requirements_txt.is_file() else dependencies
