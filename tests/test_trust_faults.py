"""Faults of the machine read as one line, leave nothing half-written, and
``send --resume`` finishes the job once they are fixed (issue 8, item 7).

Real faults, as root: a file where the outbox folder should be, a file-size limit
(RLIMIT_FSIZE, what a full disk looks like to a writer), an immutable database
file (``chattr +i`` stops root too) and a database another process holds in an
exclusive transaction.
"""

from __future__ import annotations

import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ROOT

CSV = "".join(
    ["email,name,team,start_url\r\n"]
    + [f"p{i}@example.com,P {i},Acme,https://a.example\r\n" for i in range(3)]
)


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None, fsize: int | None = None):
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_PATH": str(tmp_path / "data" / "sendmail.db"),
        "SANDBOX_OUTBOX": str(tmp_path / "data" / "outbox"),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        "SENDER_ADDRESS": "team@mailbolt.example",
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=limit_file_size if fsize is not None else None,
    )


def send(tmp_path: Path, template: str = "welcome", **kwargs):
    (tmp_path / "r.csv").write_text(CSV)
    return run(tmp_path, "send", "--template", template, "--recipients", "r.csv", **kwargs)


def delivered(tmp_path: Path) -> Counter[str]:
    """Recipients of the .eml files in the outbox, with how many each got."""
    files = (tmp_path / "data" / "outbox").glob("*.eml")
    return Counter(p.name.split("-")[2] for p in files)


def leftovers(tmp_path: Path) -> list[Path]:
    outbox = tmp_path / "data" / "outbox"
    return [p for p in outbox.iterdir() if p.suffix == ".tmp"] if outbox.is_dir() else []


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    text = result.stdout + result.stderr
    return " ".join(text.split())


def test_a_file_where_the_outbox_should_be_pauses_then_resume_finishes(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "outbox").write_text("not a folder")

    result = send(tmp_path)
    assert result.returncode == 1
    text = one_line_error(result)
    assert str(tmp_path / "data" / "outbox") in text
    assert "a file is in the way where a folder should be" in text
    assert "paused" in text and "send --resume" in text
    assert "failed" not in result.stdout.lower().split("campaign")[0]

    (tmp_path / "data" / "outbox").unlink()
    resumed = run(tmp_path, "send", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert delivered(tmp_path) == Counter({f"p{i}_example.com": 1 for i in range(3)})


def _big_template(tmp_path: Path) -> Path:
    """A template whose messages are ~2 MB: larger than the file-size limit below."""
    folder = tmp_path / "templates"
    folder.mkdir()
    shutil.copy(ROOT / "templates" / "base.html.j2", folder)
    (folder / "catalogue.toml").write_text(
        '[big]\ndescription = "big"\ncategory = "transactional"\nsubject = "Big"\n'
        'required = []\nhtml = "big.html.j2"\ntext = "big.txt.j2"\n'
    )
    body = "{% for i in range(60000) %}lorem ipsum dolor {% endfor %}"
    (folder / "big.html.j2").write_text(
        '{% extends "base.html.j2" %}{% block content %}<p>' + body + "</p>{% endblock %}"
    )
    (folder / "big.txt.j2").write_text(body)
    return folder


def test_a_full_disk_while_writing_a_message_leaves_no_temp_file_and_resume_finishes(tmp_path):
    env = {"TEMPLATES_DIR": str(_big_template(tmp_path))}
    result = send(tmp_path, "big", env=env, fsize=1_000_000)
    assert result.returncode == 1
    text = one_line_error(result)
    assert str(tmp_path / "data" / "outbox") in text
    assert "too large" in text and "send --resume" in text
    assert leftovers(tmp_path) == []
    assert delivered(tmp_path) == Counter()

    resumed = run(tmp_path, "send", "--resume", env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert delivered(tmp_path) == Counter({f"p{i}_example.com": 1 for i in range(3)})
    assert leftovers(tmp_path) == []


def test_a_full_disk_under_the_database_is_one_line_and_records_nothing(tmp_path):
    assert send(tmp_path).returncode == 0
    db = tmp_path / "data" / "sendmail.db"
    assert not Path(f"{db}-wal").exists()  # the next write starts a new, empty WAL

    result = send(tmp_path, fsize=1000)
    assert result.returncode == 1
    text = one_line_error(result)
    assert f"Cannot use the database {db}" in text
    assert "send --resume" in text

    status = run(tmp_path, "status")
    assert status.returncode == 0
    assert status.stdout.count("welcome") == 1  # the failed send recorded no campaign


@pytest.fixture
def immutable(tmp_path):
    """``chattr +i`` a path (root cannot write it either); undone at the end."""
    marked: list[Path] = []

    def mark(path: Path) -> None:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
            pytest.skip("chattr +i is not available on this filesystem")
        marked.append(path)

    yield mark
    for path in marked:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_a_read_only_database_is_one_line_and_send_works_once_fixed(tmp_path, immutable):
    assert send(tmp_path).returncode == 0
    db = tmp_path / "data" / "sendmail.db"
    immutable(db)

    result = send(tmp_path)
    assert result.returncode == 1
    text = one_line_error(result)
    assert f"Cannot use the database {db}" in text and "read-only" in text

    subprocess.run(["chattr", "-i", str(db)], check=True)
    again = send(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert delivered(tmp_path) == Counter({f"p{i}_example.com": 2 for i in range(3)})


def test_an_unwritable_outbox_folder_pauses_then_resume_finishes(tmp_path, immutable):
    outbox = tmp_path / "data" / "outbox"
    outbox.mkdir(parents=True)
    immutable(outbox)

    result = send(tmp_path)
    assert result.returncode == 1
    text = one_line_error(result)
    assert str(outbox) in text and "send --resume" in text

    subprocess.run(["chattr", "-i", str(outbox)], check=True)
    resumed = run(tmp_path, "send", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert delivered(tmp_path) == Counter({f"p{i}_example.com": 1 for i in range(3)})


def test_a_database_locked_by_another_program_is_one_line(tmp_path):
    assert send(tmp_path).returncode == 0
    db = tmp_path / "data" / "sendmail.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = send(tmp_path)
    finally:
        holder.communicate("")
    assert result.returncode == 1
    text = one_line_error(result)
    assert f"Cannot use the database {db}" in text and "locked by another program" in text
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from campaigns").fetchone()[0] == 1


def test_a_database_locked_in_the_middle_of_a_campaign_stops_cleanly_and_resume_finishes(
    tmp_path,
):
    n = 400
    (tmp_path / "many.csv").write_text(
        "email,name,team,start_url\r\n"
        + "".join(f"m{i}@example.com,M {i},Acme,https://a.example\r\n" for i in range(n))
    )
    assert run(tmp_path, "status").returncode == 0  # creates the database
    db = tmp_path / "data" / "sendmail.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None, "
            "timeout=60); sys.stdin.readline(); c.execute('BEGIN EXCLUSIVE'); "
            "print('locked', flush=True); sys.stdin.readline()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_PATH": str(db),
        "DATABASE_BUSY_SECONDS": "3",  # give up on the lock after 3 s, not the default 30
        "SANDBOX_OUTBOX": str(tmp_path / "data" / "outbox"),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        "SENDER_ADDRESS": "team@mailbolt.example",
        "PYTHONPATH": str(ROOT),
    }
    sender = subprocess.Popen(
        [sys.executable, "-m", "bot", "send", "--template", "welcome", "--recipients", "many.csv"],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while sum(delivered(tmp_path).values()) < 10:
            assert sender.poll() is None, "the campaign finished before the lock was taken"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        holder.stdin.write("lock\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "locked"
        out, err = sender.communicate(timeout=180)
    finally:
        holder.communicate("release\n")
    assert sender.returncode == 1, out + err
    assert "Traceback" not in err, err
    assert f"Cannot use the database {db}" in err and "locked by another program" in err
    assert sum(delivered(tmp_path).values()) < n

    resumed = run(tmp_path, "send", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert delivered(tmp_path) == Counter({f"m{i}_example.com": 1 for i in range(n)})
    assert leftovers(tmp_path) == []
