"""Check a pack's declared Python requirements against what is installed; install nothing.

Looking each name up with :func:`importlib.metadata.version` walks every ``sys.path`` entry
per call, which adds up with many packs. Instead the installed distributions are indexed
once from the ``*.dist-info`` / ``*.egg-info`` folder names (name and version are encoded
in them), and only names missing from that index fall back to ``importlib.metadata``.
``packaging`` is imported only when a requirement carries a version specifier or marker.
"""

from __future__ import annotations

import os
import re
import sys
from functools import lru_cache

from .report import RequirementStatus

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """PEP 503 normalisation: ``Pillow`` and ``pillow``, ``foo_bar`` and ``foo-bar`` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=1)
def _installed_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        for name in names:
            for suffix in (".dist-info", ".egg-info"):
                if name.endswith(suffix):
                    stem = name[: -len(suffix)]
                    dist, _, version = stem.partition("-")
                    index.setdefault(canonical(dist), version.split("-")[0] if version else "")
    return index


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or ``None`` if it is not installed."""
    version = _installed_index().get(canonical(name))
    if version:
        return version
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as metadata_version

    try:
        return metadata_version(name)
    except PackageNotFoundError:
        return None
    except Exception:  # a broken dist-info must not break start-up
        return None


_SIMPLE_SPEC = re.compile(r"^\s*(==|!=|>=|<=|~=|>|<)\s*(\d+(?:\.\d+)*)(\.\*)?\s*$")
_RELEASE = re.compile(r"^(\d+(?:\.\d+)*)(?:\+[A-Za-z0-9.]+)?$")


def _simple_satisfies(specifiers: str, installed: str) -> bool | None:
    """Decide plain numeric specifiers (``>=1.2, <3``) without importing ``packaging``.

    ``packaging.requirements`` costs over 100 ms to import, a large share of a fast start, and
    nearly every real requirement is of this simple shape. ``None`` means "not simple":
    pre-releases, local versions with letters, markers; then ``packaging`` decides.
    """
    release = _RELEASE.match(installed)
    if not release:
        return None
    have = [int(x) for x in release.group(1).split(".")]
    for part in specifiers.split(","):
        match = _SIMPLE_SPEC.match(part)
        if not match:
            return None
        op, text, star = match.groups()
        want = [int(x) for x in text.split(".")]
        if star:
            if op not in ("==", "!="):
                return None
            prefix_equal = have[: len(want)] + [0] * (len(want) - len(have[: len(want)])) == want
            if prefix_equal != (op == "=="):
                return False
            continue
        width = max(len(have), len(want))
        a, b = have + [0] * (width - len(have)), want + [0] * (width - len(want))
        if op == "~=":
            if len(want) < 2 or a < b or have[: len(want) - 1] != want[:-1]:
                return False
            continue
        ok = {"==": a == b, "!=": a != b, ">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b}[op]
        if not ok:
            return False
    return True


def check(requirement: str) -> RequirementStatus:
    """Whether ``requirement`` (a PEP 508 string) is satisfied in this environment.

    A requirement whose environment marker does not apply (``; sys_platform == "win32"`` on
    Linux) counts as satisfied. One that cannot be parsed is reported unsatisfied with its
    text, so the user sees exactly what the pack asked for.
    """
    match = _NAME.match(requirement)
    if not match:
        return RequirementStatus(requirement, requirement, None, False)
    name = match.group(1)
    rest = requirement[match.end() :].strip()
    if not rest:
        version = installed_version(name)
        return RequirementStatus(requirement, name, version, version is not None)
    if not rest.startswith(("[", ";", "@")):
        version = installed_version(name)
        if version is None:
            return RequirementStatus(requirement, name, None, False)
        decided = _simple_satisfies(rest.strip("()"), version)
        if decided is not None:
            return RequirementStatus(requirement, name, version, decided)
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # no packaging: presence is all we can check
        version = installed_version(name)
        return RequirementStatus(requirement, name, version, version is not None)
    try:
        parsed = Requirement(requirement)
    except InvalidRequirement:
        return RequirementStatus(requirement, name, installed_version(name), False)
    if parsed.marker is not None and not parsed.marker.evaluate():
        return RequirementStatus(requirement, parsed.name, installed_version(parsed.name), True)
    version = installed_version(parsed.name)
    if version is None:
        return RequirementStatus(requirement, parsed.name, None, False)
    if not parsed.specifier:
        return RequirementStatus(requirement, parsed.name, version, True)
    return RequirementStatus(requirement, parsed.name, version, parsed.specifier.contains(version, prereleases=True))


def check_all(requirements: list[str]) -> list[RequirementStatus]:
    return [check(r) for r in requirements]
