"""Secret files: created whole or not at all, private from the start, and never weak.

The race is driven with real processes: each imports mailbolt, waits for a
start signal, then loads the unsubscribe key from the same fresh folder.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_cli import run

PROCESSES = 6
ROUNDS = 12

# One loader process per racer serves every round (starting 72 interpreters cost
# more than the rest of the file): each round has its own fresh folder and its own
# start signal, so every round is still a race on an empty folder.
_LOADER = r"""
import sys
from pathlib import Path
from bot.errors import ConfigError
from bot.handlers.unsubscribe import load_secret

go, folders = Path(sys.argv[1]), sys.argv[2:]
for round_no, folder in enumerate(folders):
    print("ready", flush=True)
    while not (go / str(round_no)).exists():
        pass
    try:
        print(load_secret("", Path(folder)).hex(), flush=True)
    except ConfigError as exc:
        print("refused:", exc, flush=True)
"""


def _dry_run(tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A command that needs the unsubscribe key (``templates`` no longer opens it)."""
    people = tmp_path / "people.txt"
    people.write_text("ann@example.com\n", encoding="utf-8")
    return run(
        tmp_path,
        *("send", "--dry-run", "--template", "welcome", "--recipients", str(people)),
        *("--var", "team=Ops", "--var", "start_url=https://example.com/start"),
        env=env,
    )


def _race(tmp: Path, rounds: int) -> list[list[str]]:
    """Start PROCESSES loaders; in each round, let them load the key from the empty
    folder ``tmp/<round>/data`` together. Their outputs, round by round."""
    go = tmp / "go"
    go.mkdir()
    folders = [tmp / str(n) / "data" for n in range(rounds)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _LOADER, str(go), *map(str, folders)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(PROCESSES)
    ]
    try:
        outputs = []
        for round_no in range(rounds):
            for proc in procs:
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            (go / str(round_no)).touch()
            outputs.append([proc.stdout.readline().strip() for proc in procs])  # type: ignore[union-attr]
        for proc in procs:
            proc.wait(timeout=60)
        return outputs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def test_processes_starting_together_all_read_the_same_strong_key(tmp_path):
    for round_no, keys in enumerate(_race(tmp_path, ROUNDS)):
        folder = tmp_path / str(round_no)
        assert len(set(keys)) == 1, f"round {round_no}: the processes read different keys {keys}"
        key = bytes.fromhex(keys[0])
        assert len(key) >= 32, f"round {round_no}: a key of {len(key)} bytes"
        path = folder / "data" / "unsubscribe.key"
        assert path.read_bytes().strip() == key
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in path.parent.iterdir()] == ["unsubscribe.key"]  # no temp left


@pytest.mark.parametrize(("content", "what"), [(b"", "is empty"), (b"short\n", "5 bytes")])
def test_a_weak_key_file_stops_the_cli_with_exit_2(tmp_path, content, what):
    key = tmp_path / "data" / "unsubscribe.key"
    key.parent.mkdir(parents=True)
    key.write_bytes(content)
    result = _dry_run(tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "unsubscribe.key" in message and what in message
    assert "at least 32 bytes" in message and "delete it" in message
    assert key.read_bytes() == content  # refused, not silently replaced


def test_a_short_unsubscribe_secret_setting_is_refused(tmp_path):
    result = _dry_run(tmp_path, env={"UNSUBSCRIBE_SECRET": "hunter2"})
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "UNSUBSCRIBE_SECRET" in message and "is 7 bytes" in message and "at least 32" in message
    assert "hunter2" not in result.stderr + result.stdout


def test_a_long_enough_setting_is_used_and_no_key_file_is_written(tmp_path):
    result = _dry_run(tmp_path, env={"UNSUBSCRIBE_SECRET": "k" * 32})
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "data" / "unsubscribe.key").exists()
