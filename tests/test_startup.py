"""Start-up stays fast: building the catalogue and the app must not import torch or diffusers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_catalogue_and_app_do_not_import_heavy_libraries(tmp_path: Path) -> None:
    code = (
        "import sys, pathlib\n"
        "from server.app import create_app\n"
        "from server.config import ServerConfig\n"
        f"create_app(ServerConfig(base_directory=pathlib.Path({str(tmp_path)!r})))\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers', 'numpy', 'PIL') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported at start-up: {done.stdout.strip()}"
