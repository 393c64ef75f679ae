"""SIGKILL the real ``python -m bot send`` mid-campaign, resume, repeat.

Every recipient must end with exactly one message in the outbox (or be reported
``uncertain``): none lost, none duplicated. The sandbox can find a message by its
Message-ID, so here every uncertain message is settled and the result is exact.
The same run on PostgreSQL (``DATABASE_URL``) keeps the same promise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from email import policy
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from pathlib import Path

import pytest

from bot.store import Store
from bot.store_pg.store import PgStore
from tests.conftest import ROOT

N = 600


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """'' for SQLite, else a fresh PostgreSQL schema every process of the test uses."""
    return request.getfixturevalue("pg_url") if request.param == "postgres" else ""


def _env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DATABASE_PATH": str(tmp_path / "data" / "sendmail.db"),
        "SANDBOX_OUTBOX": str(tmp_path / "data" / "outbox"),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        "SENDER_ADDRESS": "team@mailbolt.example",
    }


def _outbox(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "data" / "outbox").glob("*.eml"))


def _start(tmp_path: Path, database_url: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "send", *args],
        cwd=tmp_path,
        env=_env(tmp_path, database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _written(tmp_path: Path) -> int:
    """How many messages are in the outbox: a plain listing, polled every 5 ms (a glob
    building hundreds of paths each time cost more CPU than the sender)."""
    try:
        return sum(name.endswith(".eml") for name in os.listdir(tmp_path / "data" / "outbox"))
    except FileNotFoundError:
        return 0


def _kill_after(proc: subprocess.Popen, tmp_path: Path, more_than: int) -> None:
    deadline = time.monotonic() + 60
    while _written(tmp_path) <= more_than and proc.poll() is None:
        assert time.monotonic() < deadline, "the sender made no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_sigkill_and_resume_never_loses_or_duplicates(tmp_path, database_url):
    rows = "".join(f"p{i:04d}@example.com,P{i},Acme,https://x.example\r\n" for i in range(N))
    (tmp_path / "r.csv").write_text("email,name,team,start_url\r\n" + rows)
    first = _start(tmp_path, database_url, "--template", "welcome", "--recipients", "r.csv")
    _kill_after(first, tmp_path, 50)
    kills = 1
    for target in (200, 350, 500):
        resume = _start(tmp_path, database_url, "--resume")
        _kill_after(resume, tmp_path, target)
        kills += 1
    final = subprocess.run(
        [sys.executable, "-m", "bot", "send", "--resume"],
        cwd=tmp_path,
        env=_env(tmp_path, database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stdout + final.stderr
    delivered = Counter()
    headers = BytesHeaderParser(policy=policy.compat32)  # only To is read: 10× faster
    for path in _outbox(tmp_path):
        with path.open("rb") as fp:
            delivered[parseaddr(headers.parse(fp)["To"])[1]] += 1
    store = PgStore(database_url) if database_url else Store(tmp_path / "data" / "sendmail.db")
    counts = store.outbox.counts(1)
    assert kills == 4
    assert counts["sent"] == N and counts["uncertain"] == 0
    assert len(delivered) == N, "a recipient got no message"
    assert max(delivered.values()) == 1, "a recipient got two messages"
