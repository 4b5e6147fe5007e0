"""What happened to each custom node pack at start-up, for the log and for the canvas.

A pack that fails must never take the server down, but it must not fail silently either:
the report keeps, per pack, its status, the error with its traceback, the time its import
took, the nodes it provided (and under which id when a name collided), the requirements it
declared that are missing, and the web extensions it ships. ``GET /api/plugins`` returns
:meth:`PluginReport.to_json` unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger("weft.plugins")

#: ``loaded``: every node registered. ``partial``: imported, but some nodes were refused
#: (see ``node_errors``). ``failed``: the import raised. ``missing_requirements``: not
#: imported because declared requirements are absent. ``disabled``: switched off by config.
#: ``skipped``: not a loadable pack (duplicate name, nothing to register).
PackStatus = Literal["loaded", "partial", "failed", "missing_requirements", "disabled", "skipped"]


@dataclass
class RequirementStatus:
    requirement: str
    name: str
    installed: str | None
    satisfied: bool


@dataclass
class Collision:
    """A node id that was taken; the pack's node was registered as ``registered_as``."""

    node: str
    registered_as: str
    taken_by: str


@dataclass
class PackReport:
    name: str
    path: str
    module: str
    kind: Literal["package", "file"]
    status: PackStatus = "loaded"
    version: str = "0.0.0"
    #: which contracts the pack used: "weft", "classic", both, or none
    contracts: list[str] = field(default_factory=list)
    import_ms: float = 0.0
    register_ms: float = 0.0
    nodes: list[str] = field(default_factory=list)
    node_errors: list[dict[str, str]] = field(default_factory=list)
    collisions: list[Collision] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    requirements: list[RequirementStatus] = field(default_factory=list)
    web_directory: str | None = None
    extensions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def missing_requirements(self) -> list[str]:
        return [r.requirement for r in self.requirements if not r.satisfied]

    @property
    def ok(self) -> bool:
        return self.status in ("loaded", "disabled")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["missing_requirements"] = self.missing_requirements
        data["python_module"] = self.module
        return data


@dataclass
class PluginReport:
    packs: list[PackReport] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    disabled_all: bool = False
    total_ms: float = 0.0
    #: whether the ComfyUI compatibility modules were put on ``sys.path``
    compat_installed: bool = False

    def pack(self, name: str) -> PackReport | None:
        for pack in self.packs:
            if pack.name == name:
                return pack
        return None

    @property
    def failed(self) -> list[PackReport]:
        return [p for p in self.packs if p.status in ("failed", "missing_requirements", "partial")]

    def web_directories(self) -> dict[str, Path]:
        """Pack name -> folder served under ``/extensions/<pack>/``, for loaded packs only."""
        return {
            p.name: Path(p.web_directory) for p in self.packs if p.web_directory and p.status in ("loaded", "partial")
        }

    @property
    def extension_urls(self) -> list[str]:
        """Every ``/extensions/<pack>/<file>.js`` the canvas should import, in load order."""
        return [url for p in self.packs if p.status in ("loaded", "partial") for url in p.extensions]

    def to_json(self) -> dict[str, Any]:
        return {
            "packs": [p.to_json() for p in self.packs],
            "folders": list(self.folders),
            "disabled_all": self.disabled_all,
            "total_ms": round(self.total_ms, 2),
            "compat_installed": self.compat_installed,
            "summary": {
                "total": len(self.packs),
                "loaded": sum(p.status == "loaded" for p in self.packs),
                "problems": len(self.failed),
                "disabled": sum(p.status == "disabled" for p in self.packs),
                "nodes": sum(len(p.nodes) for p in self.packs),
            },
        }

    def log_summary(self) -> None:
        """One line per pack, slowest first, like ComfyUI's "Import times for custom nodes"."""
        if not self.packs:
            return
        log.info("Custom node packs (%d, %.1f ms in all):", len(self.packs), self.total_ms)
        for pack in sorted(self.packs, key=lambda p: -p.import_ms):
            extra = ""
            if pack.status == "missing_requirements":
                extra = f": missing {', '.join(pack.missing_requirements)}"
            elif pack.error:
                extra = f": {pack.error}"
            elif pack.node_errors:
                extra = f": {len(pack.node_errors)} node(s) refused"
            line = f"  {pack.import_ms:8.1f} ms  {pack.status:<20} {pack.name}{extra}"
            if pack.ok:
                log.info(line)
            else:
                log.warning(line)
