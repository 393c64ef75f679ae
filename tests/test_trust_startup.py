"""Start-up: ``--help`` and the quick commands load only what they use.

A test of imports, not of time: the heavy libraries are named, and a subprocess
says which of them its ``sys.modules`` holds after the command ran. The time it
saves is measured by ``bench/startup.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

HEAVY = ("slack_bolt", "slack_sdk", "googleapiclient", "sqlite_utils", "jinja2")

_PROBE = """
import json, runpy, sys
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["bot", *args]
try:
    runpy.run_module("bot", run_name="__main__")
except SystemExit:
    pass
loaded = [name for name in heavy if name in sys.modules]
print(json.dumps(loaded), file=sys.stderr)
"""


def _loaded_after(args: list[str], tmp_path: Path, **env: str) -> list[str]:
    """The heavy libraries imported by ``python -m bot <args>`` (run for real)."""
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DATABASE_PATH": str(tmp_path / "data" / "sendmail.db"),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=60,
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    assert _loaded_after(["--help"], tmp_path) == []


def test_each_command_help_imports_no_heavy_library(tmp_path: Path) -> None:
    for command in ("send", "templates", "status", "quota", "stats", "serve", "unsubscribes"):
        assert _loaded_after([command, "--help"], tmp_path) == [], command


def test_templates_opens_neither_slack_nor_gmail_nor_the_database(tmp_path: Path) -> None:
    """Listing templates needs the catalogue only (Jinja may load with it)."""
    loaded = _loaded_after(["templates"], tmp_path, MAIL_TRANSPORT="gmail")
    assert [name for name in loaded if name != "jinja2"] == []
    assert not (tmp_path / "data" / "sendmail.db").exists()
