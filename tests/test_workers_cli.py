"""``python -m bot worker`` from the command line: refused on SQLite, shared with
other workers, exclusive of a process that sends by itself, and a CLI ``send``
hands its campaign to the workers (issue 12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.config import Settings
from bot.store_pg.store import PgStore
from bot.wiring import ROLE_SEND, ROLE_SERVE, ROLE_WORKER, PgSenderLock, SenderBusy
from tests.conftest import ROOT

N = 30


def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DATABASE_PATH": str(tmp_path / "data" / "sendmail.db"),
        "SANDBOX_OUTBOX": str(tmp_path / "data" / "outbox"),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        "SENDER_ADDRESS": "team@mailbolt.example",
    }


def bot(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=env(tmp_path, database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_worker(tmp_path: Path, database_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "worker"],
        cwd=tmp_path,
        env=env(tmp_path, database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_worker(settings: Settings, worker: subprocess.Popen[str]) -> None:
    """Until the worker holds its share of the sender lock."""
    probe = PgSenderLock(settings, role=ROLE_SEND)
    deadline = time.monotonic() + 30
    try:
        while not probe.held_by_other():
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.05)
    finally:
        probe.release()


def stop(worker: subprocess.Popen[str]) -> str:
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=30)
    return stderr


def test_a_worker_needs_postgresql(tmp_path):
    result = bot(tmp_path, "", "worker")
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr and "PostgreSQL" in result.stderr


def test_a_cli_send_is_handed_to_the_workers(tmp_path, pg_url, settings):
    settings = settings.replace(database_url=pg_url)
    rows = "".join(f"p{i:03d}@example.com,P{i},Acme,https://x.example\r\n" for i in range(N))
    (tmp_path / "r.csv").write_text("email,name,team,start_url\r\n" + rows)
    workers = [start_worker(tmp_path, pg_url) for _ in range(2)]  # two share the lock
    try:
        for worker in workers:
            wait_for_worker(settings, worker)
        sent = bot(tmp_path, pg_url, "send", "--template", "welcome", "--recipients", "r.csv")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "handed to the workers" in sent.stdout
        resumed = bot(tmp_path, pg_url, "send", "--resume")
        assert resumed.returncode == 0 and "Workers" in resumed.stdout
    finally:
        logs = [stop(w) for w in workers]
    assert all("Worker stopped" in log for log in logs), logs
    assert "UNSUBSCRIBE_SECRET is not set" in logs[0]  # each machine would make its own
    store = PgStore(pg_url)
    try:
        campaign = store.campaigns.get(1)
        assert campaign is not None and campaign.status == "completed"
        assert store.outbox.counts(1)["sent"] == N
    finally:
        store.close()
    assert len(list((tmp_path / "data" / "outbox").glob("*.eml"))) == N


def test_workers_and_a_lone_sender_exclude_each_other(tmp_path, pg_url, settings):
    settings = settings.replace(database_url=pg_url)
    lone = PgSenderLock(settings, role=ROLE_SEND)
    lone.acquire()
    try:
        refused = bot(tmp_path, pg_url, "worker")
        assert refused.returncode != 0
        assert "python -m bot send" in refused.stderr, refused.stderr
    finally:
        lone.release()

    worker = start_worker(tmp_path, pg_url)
    try:
        wait_for_worker(settings, worker)
        server = PgSenderLock(settings, role=ROLE_SERVE)
        with pytest.raises(SenderBusy) as busy:
            server.acquire()
        server.release()
        assert busy.value.role == ROLE_WORKER
        assert "serve --no-send" in str(busy.value)
    finally:
        stop(worker)


def test_workers_start_a_scheduled_campaign_at_its_time(tmp_path, pg_url, settings):
    """No sending server beside the workers: they release a scheduled campaign
    themselves when its time comes (the database is as ``send --at`` left it once
    the time has passed; the CLI refuses a past time, so it is set back)."""
    from datetime import UTC, datetime, timedelta

    from bot.records import CampaignStatus

    settings = settings.replace(database_url=pg_url)
    rows = "".join(f"s{i:03d}@example.com,S{i},Acme,https://x.example\r\n" for i in range(5))
    (tmp_path / "r.csv").write_text("email,name,team,start_url\r\n" + rows)
    later = datetime.now(UTC) + timedelta(minutes=10)
    scheduled = bot(
        tmp_path,
        pg_url,
        "send",
        "--template",
        "welcome",
        "--recipients",
        "r.csv",
        "--at",
        f"{later:%Y-%m-%d %H:%M} UTC",
    )
    assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
    worker = start_worker(tmp_path, pg_url)
    store = PgStore(pg_url)
    try:
        wait_for_worker(settings, worker)
        assert store.campaigns.get(1).status == CampaignStatus.SCHEDULED  # not before its time
        assert store.campaigns.update_if(
            1, CampaignStatus.SCHEDULED, scheduled_at=time.time() - 1
        )  # its time comes
        deadline = time.monotonic() + 60
        while store.campaigns.get(1).status != CampaignStatus.COMPLETED:
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
            assert time.monotonic() < deadline, "the worker did not start it"
            time.sleep(0.1)
        assert store.outbox.counts(1)["sent"] == 5
    finally:
        store.close()
        stop(worker)
    assert len(list((tmp_path / "data" / "outbox").glob("*.eml"))) == 5
