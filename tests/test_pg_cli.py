"""``DATABASE_URL=postgresql://…``: the real CLI in a subprocess against a real
PostgreSQL server (``tests/pg_server.py``), each test in its own empty schema."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Settings
from bot.errors import ConfigError
from bot.records import CampaignStatus
from bot.store_pg.schema import MIGRATIONS as PG_MIGRATIONS
from bot.store_pg.store import PgStore
from bot.wiring import ROLE_SERVE, PgSenderLock, SenderBusy, sender_active
from tests.conftest import ROOT

SECRET = "s3cret-Pa55"


def run(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": url,
        "DATABASE_PATH": str(tmp_path / "data" / "sendmail.db"),
        "DATABASE_BUSY_SECONDS": "3",
        "SANDBOX_OUTBOX": str(tmp_path / "data" / "outbox"),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        "SENDER_ADDRESS": "team@mailbolt.example",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def recipients(tmp_path: Path, n: int) -> str:
    rows = "".join(f"p{i}@example.com,P{i},Acme,https://x.example\r\n" for i in range(n))
    (tmp_path / "r.csv").write_text("email,name,team,start_url\r\n" + rows)
    return "r.csv"


def test_send_status_and_quota_read_the_campaign_back_from_postgres(tmp_path, pg_url):
    sent = run(
        tmp_path, pg_url, "send", "--template", "welcome", "--recipients", recipients(tmp_path, 7)
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert not (tmp_path / "data" / "sendmail.db").exists(), "SQLite was used"

    status = run(tmp_path, pg_url, "status", "1")
    assert status.returncode == 0, status.stderr
    assert "Campaign 1: completed" in status.stdout
    assert "│ sent  │        7 │" in status.stdout
    quota = run(tmp_path, pg_url, "quota")
    assert quota.returncode == 0, quota.stderr
    assert "7 of 500" in quota.stdout

    store = PgStore(pg_url)
    try:
        campaign = store.campaigns.get(1)
        assert campaign is not None and campaign.status == CampaignStatus.COMPLETED
        assert store.outbox.counts(1)["sent"] == 7
        assert store.schema_version == len(PG_MIGRATIONS)
    finally:
        store.close()


def test_a_second_sender_is_refused_while_one_holds_the_lock(tmp_path, pg_url):
    """One sender per database, as with SQLite's lock file, across processes."""
    settings = Settings.defaults(database_url=pg_url)
    holder = PgSenderLock(settings, role=ROLE_SERVE)
    holder.acquire()
    try:
        assert sender_active(settings)
        with pytest.raises(SenderBusy) as busy:
            PgSenderLock(settings).acquire()
        assert (busy.value.pid, busy.value.role) == (os.getpid(), ROLE_SERVE)
        assert socket.gethostname() in str(busy.value)
        # The CLI hands --resume to the "server" that holds the lock.
        resumed = run(tmp_path, pg_url, "send", "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert f"is running (pid {os.getpid()})" in resumed.stdout
    finally:
        holder.release()
    assert not sender_active(settings)
    again = PgSenderLock(settings)
    again.acquire()
    again.release()


def test_schemas_do_not_share_the_sender_lock(pg_server):
    first, second = pg_server.fresh_url(), pg_server.fresh_url()
    try:
        a = PgSenderLock(Settings.defaults(database_url=first))
        b = PgSenderLock(Settings.defaults(database_url=second))
        a.acquire()
        b.acquire()
        a.release()
        b.release()
    finally:
        pg_server.drop(first)
        pg_server.drop(second)


def test_config_shows_the_database_url_without_its_password(tmp_path):
    url = f"postgresql://mailbolt:{SECRET}@db.example.com:5432/mail?sslmode=require"
    shown = run(tmp_path, url, "config")
    assert shown.returncode == 0, shown.stderr
    assert "postgresql://mailbolt:***@db.example.com:5432/mail?sslmode=require" in shown.stdout
    assert SECRET not in shown.stdout + shown.stderr

    wrong = run(tmp_path, f"mysql://mailbolt:{SECRET}@db.example.com/mail", "config")
    assert wrong.returncode == 2
    assert "DATABASE_URL='mysql://mailbolt:***@db.example.com/mail': must be a PostgreSQL URL" in (
        wrong.stderr.replace("\n", "")
    )
    assert SECRET not in wrong.stdout + wrong.stderr


@pytest.mark.parametrize(
    "value",
    ["sqlite:///x.db", "postgresql://h:notaport/db", "db.example.com/mail", "postgresql://a\nb"],
)
def test_only_postgres_urls_are_accepted(value):
    with pytest.raises(ConfigError):
        Settings.load(environ={"DATABASE_URL": value}, env_file=None)


def test_an_unreachable_server_is_one_readable_line_without_the_password(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://mailbolt:{SECRET}@127.0.0.1:{port}/mail"
    result = run(tmp_path, url, "status")
    assert result.returncode == 1
    assert SECRET not in result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert f"Cannot use the database postgresql://mailbolt:***@127.0.0.1:{port}/mail:" in message
    assert "the server cannot be reached" in message
    assert "Traceback" not in result.stderr


def test_a_missing_database_is_named(tmp_path, pg_server):
    url = pg_server.url.replace("/postgres?", "/no_such_db?")
    result = run(tmp_path, url, "status")
    assert result.returncode == 1
    assert "the database does not exist" in " ".join(result.stderr.split())
