"""main.py: `run FILE.json` headless, serving prints the URL, unknown flags are refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_run_executes_a_prompt_file_headless(tmp_path: Path) -> None:
    prompt = {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": "headless"}},
        "2": {"class_type": "StringConcatenate", "inputs": {"string_a": ["1", 0], "string_b": "run", "delimiter": " "}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    file = tmp_path / "prompt.json"
    file.write_text(json.dumps({"prompt": prompt}))
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "run", str(file), "--base-directory", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3: headless run" in done.stdout


def test_run_reports_validation_errors_with_node_and_input(tmp_path: Path) -> None:
    file = tmp_path / "bad.json"
    file.write_text(json.dumps({"1": {"class_type": "PrimitiveInt", "inputs": {"value": "x"}},
                                "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}))
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "run", str(file), "--base-directory", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "node 1 (PrimitiveInt)" in done.stderr and "value" in done.stderr


def test_unknown_flag_is_a_clear_error() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--no-such-flag"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unrecognized arguments: --no-such-flag" in done.stderr


def test_serve_prints_url_and_answers(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--port", str(port), "--base-directory", str(tmp_path),
         "--cache-lru", "10", "--cpu", "--disable-all-custom-nodes"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
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
        [sys.executable, str(ROOT / "main.py"), "run", str(file), "--base-directory", str(tmp_path),
         "--custom-nodes-directory", str(packs)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "2: QUIET" in done.stdout
