"""Discovery, failure isolation, reporting, disable flags, requirements and collisions."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from nodes.plugins import PluginConfig, load_plugins
from nodes.plugins.discovery import discover, read_requirements_txt
from nodes.plugins.requirements import check
from nodes.registry import builtin_registry

from .conftest import PACKS


def test_every_fixture_pack_gets_a_status(loaded):
    registry, report = loaded
    statuses = {p.name: p.status for p in report.packs}
    assert statuses == {
        "broken_import_pack": "failed",
        "broken_node_pack": "partial",
        "classic_pack": "loaded",
        "collide_pack": "loaded",
        "deep_comfy_pack": "failed",
        "exit_pack": "failed",
        "needs_missing_req": "missing_requirements",
        "off_pack": "disabled",
        "v3_pack": "loaded",
        "weft_text_pack": "loaded",
    }
    # the healthy packs' nodes are all there despite their broken neighbours
    for name in ("ClassicImageInvert", "ClassicCountdown", "ReverseText", "SlowUpper", "GoodNode"):
        assert name in registry
    assert "BadNode" not in registry


def test_broken_pack_is_reported_with_error_traceback_and_time(loaded):
    _, report = loaded
    broken = report.pack("broken_import_pack")
    assert broken.error == "RuntimeError: this pack is broken on purpose"
    assert "broken_import_pack/__init__.py" in broken.traceback
    assert broken.import_ms > 0
    assert "custom_nodes.broken_import_pack" not in sys.modules
    exited = report.pack("exit_pack")
    assert exited.error.startswith("SystemExit")


def test_report_is_json_and_has_timings_for_every_imported_pack(loaded):
    _, report = loaded
    data = json.loads(json.dumps(report.to_json()))
    by_name = {p["name"]: p for p in data["packs"]}
    for name in ("classic_pack", "weft_text_pack", "broken_import_pack", "broken_node_pack"):
        assert by_name[name]["import_ms"] > 0
    assert by_name["classic_pack"]["python_module"] == "custom_nodes.classic_pack"
    assert data["summary"]["problems"] == 5
    assert by_name["broken_node_pack"]["node_errors"] == [
        {"node": "BadNode", "error": "NodeDefinitionError: BadNode.INPUT_TYPES() raised ValueError: bad definition"}
    ]


def test_failures_are_logged_with_the_pack_name(weft_paths, caplog):
    with caplog.at_level(logging.INFO, logger="weft.plugins"):
        load_plugins(builtin_registry(), PluginConfig(folders=[PACKS]))
    text = caplog.text
    assert "broken_import_pack" in text and "this pack is broken on purpose" in text
    assert "Custom node packs (10" in text
    assert "needs_missing_req" in text and "weft-surely-absent-package" in text


def test_missing_requirements_are_listed_and_the_pack_is_not_imported(loaded):
    _, report = loaded
    pack = report.pack("needs_missing_req")
    assert pack.missing_requirements == ["weft-surely-absent-package>=1.0"]
    satisfied = {r.name: r.satisfied for r in pack.requirements}
    assert satisfied == {"numpy": True, "weft-surely-absent-package": False}
    assert "pip install" in pack.error and "never installs" in pack.error
    assert pack.import_ms == 0


def test_requirement_checks():
    assert check("numpy").satisfied
    assert check("NumPy>=1.0").satisfied
    assert not check("numpy>=999").satisfied
    assert check("surely-absent-dist; sys_platform == 'nonexistent-os'").satisfied
    assert not check("surely-absent-dist").satisfied
    assert check("numpy[extra]>=1; python_version >= '3'").satisfied  # packaging decides this one


@pytest.mark.parametrize(
    ("spec", "installed", "expected"),
    [
        (">=9", "10.4.0", True),
        (">=1.26, <2", "1.26.4", True),
        ("<2", "2.0", False),
        ("==2.*", "2.13.0+cpu", True),
        ("~=1.4", "1.9", True),
        ("~=1.4.2", "1.5.0", False),
        ("!=1.5", "1.5.0", False),
        (">=1.0", "2.0rc1", None),
    ],
)
def test_simple_specifiers_without_packaging(spec: str, installed: str, expected: bool | None):
    from nodes.plugins.requirements import _simple_satisfies

    assert _simple_satisfies(spec, installed) is expected


def test_requirements_txt_parsing(tmp_path: Path):
    req = tmp_path / "requirements.txt"
    req.write_text("# comment\nnumpy>=1.0  # why\n-r other.txt\ngit+https://x/y.git\n\nopencv-python\n")
    assert read_requirements_txt(req) == ["numpy>=1.0", "opencv-python"]


def test_unsupported_comfy_import_names_module_and_pack(loaded):
    _, report = loaded
    error = report.pack("deep_comfy_pack").error
    assert "comfy.sd" in error and "not supported in Weft" in error and "'deep_comfy_pack'" in error


def test_collision_with_builtin_is_namespaced(loaded):
    registry, report = loaded
    assert registry["StringConcatenate"].schema.origin["pack"] == "weft"
    renamed = registry["collide_pack::StringConcatenate"]
    assert renamed.schema.origin == {"pack": "collide_pack", "version": "0.0.0"}
    assert renamed.schema.display_name.endswith("[collide_pack]")
    collision = report.pack("collide_pack").collisions[0]
    assert (collision.node, collision.registered_as, collision.taken_by) == (
        "StringConcatenate",
        "collide_pack::StringConcatenate",
        "weft",
    )


def test_collision_between_two_packs_keeps_the_first_alphabetically(weft_paths, tmp_path: Path):
    for name, result in (("b_pack", "from b"), ("a_pack", "from a")):
        (tmp_path / f"{name}.py").write_text(
            "class Same:\n"
            "    RETURN_TYPES = ('STRING',)\n    FUNCTION = 'run'\n    CATEGORY = 't'\n"
            "    @classmethod\n    def INPUT_TYPES(cls):\n        return {'required': {}}\n"
            f"    def run(self):\n        return ({result!r},)\n"
            "NODE_CLASS_MAPPINGS = {'Same': Same}\n"
        )
    registry = builtin_registry()
    report = load_plugins(registry, PluginConfig(folders=[tmp_path]))
    assert registry["Same"].schema.origin["pack"] == "a_pack"
    assert "b_pack::Same" in registry
    assert report.pack("b_pack").nodes == ["b_pack::Same"]


def test_pack_version_comes_from_pyproject_or_dunder_version(loaded):
    registry, report = loaded
    assert report.pack("weft_text_pack").version == "1.2.0"
    assert registry["ReverseText"].schema.origin == {"pack": "weft_text_pack", "version": "1.2.0"}
    assert report.pack("classic_pack").version == "2.5.0"
    assert registry["ClassicUpper"].schema.origin == {"pack": "classic_pack", "version": "2.5.0"}
    assert report.pack("classic_pack").contracts == ["classic"]
    assert report.pack("weft_text_pack").contracts == ["weft"]


def test_disable_all_loads_nothing_but_lists_packs(weft_paths):
    registry = builtin_registry()
    before = set(registry)
    report = load_plugins(registry, {"disable_all_custom_nodes": True, "custom_nodes_dirs": [PACKS]})
    assert set(registry) == before
    assert {p.status for p in report.packs} == {"disabled"}
    assert report.disabled_all


def test_disable_all_with_an_allow_list(weft_paths):
    registry = builtin_registry()
    report = load_plugins(registry, PluginConfig(folders=[PACKS], disable_all=True, enabled={"weft_text_pack"}))
    assert report.pack("weft_text_pack").status == "loaded"
    assert report.pack("classic_pack").status == "disabled"
    assert "ReverseText" in registry and "ClassicUpper" not in registry


def test_per_pack_disable_list(weft_paths):
    registry = builtin_registry()
    report = load_plugins(registry, PluginConfig(folders=[PACKS], disabled={"classic_pack", "exit_pack"}))
    assert report.pack("classic_pack").status == "disabled"
    assert report.pack("exit_pack").status == "disabled"
    assert "ClassicUpper" not in registry and "ReverseText" in registry


def test_extra_folders_are_searched_and_duplicates_skipped(weft_paths, tmp_path: Path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "extra_pack.py").write_text(
        "from nodes.api import Node, Output\n"
        "class ExtraNode(Node):\n    outputs = (Output('INT'),)\n    def run(self):\n        return 7\n"
        "WEFT_NODES = [ExtraNode]\n"
    )
    (extra / "weft_text_pack.py").write_text("raise AssertionError('shadowed duplicate must not import')\n")
    registry = builtin_registry()
    report = load_plugins(registry, PluginConfig(folders=[PACKS], extra_folders=[extra]))
    assert "ExtraNode" in registry
    duplicates = [p for p in report.packs if p.name == "weft_text_pack"]
    assert [p.status for p in duplicates] == ["loaded", "skipped"]


def test_discovery_finds_packages_and_single_files(tmp_path: Path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "not_a_pack").mkdir()
    (tmp_path / "single.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "gone.disabled").mkdir()
    (tmp_path / "gone.disabled" / "__init__.py").write_text("")
    found = {(s.name, s.kind, s.disabled_by_suffix) for s in discover([tmp_path, tmp_path / "missing"])}
    assert found == {("pkg", "package", False), ("single", "file", False), ("gone", "package", True)}


def test_web_extensions_are_listed_for_loaded_packs(loaded):
    _, report = loaded
    assert report.extension_urls == [
        "/extensions/classic_pack/broken.js",
        "/extensions/classic_pack/classic.js",
        "/extensions/classic_pack/comfy_style.js",
    ]
    assert report.web_directories()["classic_pack"] == PACKS / "classic_pack" / "js"


def test_reloading_imports_packs_afresh(weft_paths):
    first = builtin_registry()
    load_plugins(first, PluginConfig(folders=[PACKS]))
    second = builtin_registry()
    load_plugins(second, PluginConfig(folders=[PACKS]))
    assert first["ClassicUpper"].cls is not second["ClassicUpper"].cls


WEFT_DUPLICATE_INPUT = (
    "from nodes.api import Node, String\n"
    "class Dup(Node):\n    inputs = (String('a'), String('a'))\n    def run(self, a):\n        return a\n"
    "WEFT_NODES = [Dup]"
)


@pytest.mark.parametrize(
    "bad", ["NODE_CLASS_MAPPINGS = 5", "WEFT_NODES = [int]", "comfy_entrypoint = None", WEFT_DUPLICATE_INPUT]
)
def test_malformed_exports_are_reported(weft_paths, tmp_path: Path, bad: str):
    (tmp_path / "odd_pack.py").write_text(bad + "\n")
    report = load_plugins(builtin_registry(), PluginConfig(folders=[tmp_path]))
    pack = report.pack("odd_pack")
    assert pack.status == "failed"
    assert pack.error


def test_a_slow_import_gets_a_hint(weft_paths, tmp_path: Path, monkeypatch):
    from nodes.plugins import loader

    monkeypatch.setattr(loader, "SLOW_IMPORT_MS", 0.0)
    (tmp_path / "any_pack.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    report = load_plugins(builtin_registry(), PluginConfig(folders=[tmp_path]))
    assert any("heavy imports" in w for w in report.pack("any_pack").warnings)


def test_a_pack_needing_the_server_outside_it_gets_a_clear_error(weft_paths, tmp_path: Path, monkeypatch):
    from server.prompt_server import PromptServer

    monkeypatch.setattr(PromptServer, "instance", None)
    (tmp_path / "routes_pack.py").write_text(
        "from server import PromptServer\n\n"
        "@PromptServer.instance.routes.get('/x')\nasync def x(request):\n    return None\n"
    )
    report = load_plugins(builtin_registry(), PluginConfig(folders=[tmp_path]))
    pack = report.pack("routes_pack")
    assert pack.status == "failed" and "set only once a server object exists" in pack.error
