"""main.py: `run FILE.json` headless, serving prints the URL, unknown flags are refused, ComfyUI
launch lines start (real processes: the printed URL, the browser, TLS, a taken port)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_run_executes_a_prompt_file_headless(tmp_path: Path) -> None:
    prompt = {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": "headless"}},
        "2": {"class_type": "StringConcatenate", "inputs": {"string_a": ["1", 0], "string_b": "run", "delimiter": " "}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    file = tmp_path / "prompt.json"
    file.write_text(json.dumps({"prompt": prompt}))
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "run", str(file), "--base-directory", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "3: headless run" in done.stdout


def test_run_reports_validation_errors_with_node_and_input(tmp_path: Path) -> None:
    file = tmp_path / "bad.json"
    file.write_text(
        json.dumps(
            {
                "1": {"class_type": "PrimitiveInt", "inputs": {"value": "x"}},
                "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
            }
        )
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "run", str(file), "--base-directory", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "node 1 (PrimitiveInt)" in done.stderr and "value" in done.stderr


def test_unknown_flag_is_a_clear_error() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--no-such-flag"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "unrecognized arguments: --no-such-flag" in done.stderr


def test_serve_prints_url_and_answers(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "--port",
            str(port),
            "--base-directory",
            str(tmp_path),
            "--cache-lru",
            "10",
            "--cpu",
            "--disable-all-custom-nodes",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "running at" not in line:
            line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/prompt", timeout=10) as response:
            assert json.loads(response.read()) == {"exec_info": {"queue_remaining": 0}}
    finally:
        proc.terminate()
        proc.wait(30)


def test_run_loads_packs_that_use_prompt_server_instance(tmp_path: Path) -> None:
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "server_user.py").write_text(
        "from server import PromptServer\n"
        "ROUTES = PromptServer.instance.routes\n"
        "class Shout:\n"
        "    @classmethod\n"
        "    def INPUT_TYPES(cls):\n"
        "        return {'required': {'text': ('STRING', {'default': 'hi'})}}\n"
        "    RETURN_TYPES = ('STRING',)\n"
        "    FUNCTION = 'run'\n"
        "    CATEGORY = 'test'\n"
        "    def run(self, text):\n"
        "        PromptServer.instance.send_sync('shout', {'text': text})\n"
        "        return (text.upper(),)\n"
        "NODE_CLASS_MAPPINGS = {'Shout': Shout}\n"
    )
    prompt = {
        "1": {"class_type": "Shout", "inputs": {"text": "quiet"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    file = tmp_path / "prompt.json"
    file.write_text(json.dumps(prompt))
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "run",
            str(file),
            "--base-directory",
            str(tmp_path),
            "--custom-nodes-directory",
            str(packs),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "2: QUIET" in done.stdout


# -- ComfyUI launch lines, the console, the browser, a taken port ----------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--base-directory", str(tmp_path), "--disable-all-custom-nodes", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
    )


def _wait_answering(url: str, proc: subprocess.Popen, timeout: float = 90, context: object = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            with urllib.request.urlopen(url + "/system_stats", timeout=5, context=context) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.terminate()
    out, err = proc.communicate(timeout=30)
    return out, err


def test_a_comfyui_launch_line_starts_and_reports_what_does_not_apply(tmp_path: Path) -> None:
    """A portable-build style line: every flag accepted, one line naming those without effect."""
    port = _free_port()
    proc = _start(
        [
            "--listen",
            "127.0.0.1",
            "--port",
            str(port),
            "--windows-standalone-build",
            "--disable-auto-launch",
            "--lowvram",
            "--preview-method",
            "auto",
            "--use-sage-attention",
            "--fast",
            "--disable-xformers",
            "--force-fp16",
            "--fp16-vae",
            "--disable-metadata",
            "--dont-print-server",
            "--cache-classic",
            "--multi-user",
            "--cuda-device",
            "0",
            "--reserve-vram",
            "0.5",
        ],
        tmp_path,
    )
    try:
        stats = _wait_answering(f"http://127.0.0.1:{port}", proc)
        assert stats["devices"]
    finally:
        out, err = _stop(proc)
    notes = [line for line in err.splitlines() if "no effect in Weft" in line]
    assert len(notes) == 1, err
    assert notes[0].endswith("--use-sage-attention --fast --multi-user; see docs/compatibility.md")
    assert "running at" not in out  # --dont-print-server
    assert "Set cuda device to: 0" in err
    assert "Traceback" not in err


def test_auto_launch_opens_the_browser_and_log_stdout_moves_the_logs(tmp_path: Path) -> None:
    port = _free_port()
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text("import sys, pathlib\npathlib.Path(sys.argv[1]).write_text(sys.argv[2])\n")
    proc = _start(
        ["--port", str(port), "--auto-launch", "--log-stdout"],
        tmp_path,
        env={"BROWSER": f"{sys.executable} {browser} {opened} %s"},
    )
    try:
        _wait_answering(f"http://127.0.0.1:{port}", proc)
        deadline = time.monotonic() + 30
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        out, err = _stop(proc)
    assert opened.read_text() == f"http://127.0.0.1:{port}/"
    assert f"Weft is running at http://127.0.0.1:{port}/" in out
    assert "INFO" in out and "INFO" not in err  # logs below ERROR go to stdout


def test_a_port_in_use_says_which_and_how_to_pick_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "main.py"),
                "--port",
                str(port),
                "--base-directory",
                str(tmp_path),
                "--disable-all-custom-nodes",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert f"port {port} is already in use" in done.stderr and f"--port {port + 1}" in done.stderr
    assert "Traceback" not in done.stderr


def test_tls_files_serve_https(tmp_path: Path) -> None:
    import shutil
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = _free_port()
    proc = _start(["--port", str(port), "--tls-keyfile", str(key), "--tls-certfile", str(cert)], tmp_path)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        assert _wait_answering(f"https://127.0.0.1:{port}", proc, context=context)["devices"]
    finally:
        out, _ = _stop(proc)
    assert f"https://127.0.0.1:{port}/" in out


def test_run_errors_show_node_inputs_and_message_without_unrelated_tracebacks(tmp_path: Path) -> None:
    file = tmp_path / "divide.json"
    file.write_text(
        json.dumps(
            {
                "1": {"class_type": "MathInt", "inputs": {"a": 1, "b": 0, "operation": "divide"}},
                "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
            }
        )
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "run", str(file), "--base-directory", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "running node 1 (MathInt)" in done.stderr  # stderr is not a terminal: node lines, no step bar
    assert "!!! Exception during processing !!! node 1 (MathInt): input 'b' is 0" in done.stderr
    assert "inputs: a=1, b=0" in done.stderr
    assert "no running event loop" not in done.stderr and "During handling" not in done.stderr
    assert "\r" not in done.stderr
