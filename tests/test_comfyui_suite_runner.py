"""The runner of ComfyUI's execution suite: staging and counting (the suite itself needs a checkout)."""

from __future__ import annotations

from pathlib import Path

from weft_tools.run_comfyui_execution_tests import WEFT_ROOT, read_junit, stage


def test_stage_points_the_suite_at_weft_without_touching_the_checkout(tmp_path: Path) -> None:
    checkout = tmp_path / "ComfyUI"
    (checkout / "tests" / "execution" / "testing_nodes").mkdir(parents=True)
    (checkout / "tests" / "execution" / "test_execution.py").write_text("# suite\n")
    (checkout / "tests" / "inference" / "samples").mkdir(parents=True)
    staging = tmp_path / "stage"
    staging.mkdir()
    stage(checkout, WEFT_ROOT / "main.py", staging)
    shim = (staging / "main.py").read_text()
    assert repr(str(WEFT_ROOT / "main.py")) in shim and "os.execv" in shim and "--base-directory" in shim
    assert "--memory-only-queue" in shim  # ComfyUI's history starts empty with each server
    assert (staging / "tests" / "execution" / "test_execution.py").is_file()
    assert not (staging / "tests" / "inference" / "samples").exists()  # old outputs are not copied
    assert f"pythonpath = . {checkout}" in (staging / "pytest.ini").read_text()
    assert sorted(p.name for p in checkout.rglob("*")) == sorted(
        ["tests", "execution", "testing_nodes", "test_execution.py", "inference", "samples"]
    )


def test_read_junit_counts_outcomes_per_file(tmp_path: Path) -> None:
    xml = tmp_path / "j.xml"
    xml.write_text(
        "<testsuites><testsuite>"
        '<testcase classname="tests.execution.test_execution.TestExecution" name="a[server0]"/>'
        '<testcase classname="tests.execution.test_execution.TestExecution" name="b"><failure/></testcase>'
        '<testcase classname="tests.execution.test_jobs.TestJobStatus" name="c"><skipped/></testcase>'
        "</testsuite></testsuites>"
    )
    counts = read_junit(xml)
    assert dict(counts["test_execution.py"].counts) == {"passed": 1, "failed": 1}
    assert counts["test_execution.py"].failures == ["TestExecution::b"]
    assert dict(counts["test_jobs.py"].counts) == {"skipped": 1}
