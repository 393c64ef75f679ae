"""The CLI says what is true (issue 8, item 11): the real command line in a
subprocess; Gmail cases against the loopback Gmail fake."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.records import CampaignStatus, MessageState, NewMessage
from bot.store import Store
from tests.conftest import ROOT
from tests.fakes.gmail_fake import READONLY_SCOPE, SEND_SCOPE, FakeGmail
from tests.test_cli import run, write
from tests.test_gmail_e2e import (
    SEND_PATH,
    SENDER,
    UNPACED,
    Mailbolt,
    kill_when,
    text,
    wait_until,
)

SENDING = MessageState.SENDING

CSV = (
    "email,name,team,start_url\r\nann@example.com,Ann Lee,Acme,https://a.example\r\n"
    "bo@example.org,Bo Ek,Acme,https://a.example\r\n"
)


def send(tmp_path: Path, *extra: str, env: dict[str, str] | None = None):
    write(tmp_path, "r.csv", CSV)
    return run(tmp_path, "send", "--template", "welcome", "--recipients", "r.csv", *extra, env=env)


def campaigns(tmp_path: Path) -> int:
    db = tmp_path / "data" / "sendmail.db"
    if not db.exists():
        return 0
    store = Store(db)
    try:
        return len(store.campaigns.recent(limit=100))
    finally:
        store.close()


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_a_limit_below_one_is_refused_and_nothing_recorded(tmp_path, limit):
    result = send(tmp_path, f"--limit={limit}")
    assert result.returncode == 2
    assert "--limit" in result.stderr and "1 or more" in result.stderr
    assert campaigns(tmp_path) == 0


@pytest.mark.parametrize(
    "args", [["resolve", "99", "--skip"], ["resolve", "99", "--retry-failed"], ["status", "99"]]
)
def test_a_campaign_that_does_not_exist_exits_2(tmp_path, args):
    assert send(tmp_path).returncode == 0
    result = run(tmp_path, *args)
    assert result.returncode == 2, result.stdout
    assert "There is no campaign #99" in result.stderr


def test_stats_takes_the_campaign_as_status_does(tmp_path):
    assert send(tmp_path).returncode == 0
    result = run(tmp_path, "stats", "1")
    assert result.returncode == 0, result.stderr
    assert "campaign 1" in result.stdout.lower()
    missing = run(tmp_path, "stats", "7")
    assert missing.returncode == 2 and "There is no campaign #7" in missing.stderr


def test_hints_name_the_cli_flags(tmp_path):
    write(tmp_path, "r.csv", CSV + "not-an-address,X,Acme,https://a.example\r\n")
    invalid = run(tmp_path, "send", "--template", "welcome", "--recipients", "r.csv")
    assert invalid.returncode == 2
    assert "--skip-invalid" in invalid.stderr
    assert "1 invalid" in invalid.stdout and "skipped" not in invalid.stdout  # nothing was
    write(tmp_path, "r2.csv", "email,name,team\r\nann@example.com,Ann,Acme\r\n")
    missing = run(tmp_path, "send", "--template", "welcome", "--recipients", "r2.csv")
    assert missing.returncode == 2
    assert "--var start_url=" in missing.stderr


def test_output_is_not_wrapped_when_it_is_not_a_terminal(tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "outbox"
    environ = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    write(tmp_path, "r.csv", CSV)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "send", "--template", "welcome", "--recipients", "r.csv"],
        cwd=tmp_path,
        env={
            "PATH": environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "DATABASE_PATH": str(tmp_path / "data" / "sendmail.db"),
            "SANDBOX_OUTBOX": str(deep),
            "TEMPLATES_DIR": str(ROOT / "templates"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"{deep}/" in result.stdout  # on one line, as a person copies it


# -- status names the real state ------------------------------------------------------


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[Store]:
    """A campaign of two queued messages, recorded but not sent (as if interrupted)."""
    result = send(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    store = Store(tmp_path / "data" / "sendmail.db")
    store.campaigns.create(
        requested_by="cli",
        template="welcome",
        category="transactional",
        subject="",
        common_vars={},
        messages=[
            NewMessage(
                email=e,
                variables={"team": "A", "start_url": "https://a.x"},
                message_id=f"<m{i}@mailbolt.example>",
            )
            for i, e in enumerate(["ann@example.com", "bo@example.org"])
        ],
    )
    store.campaigns.update(1, status=CampaignStatus.RUNNING)
    yield store
    store.close()


def test_a_running_campaign_nobody_sends_is_interrupted(tmp_path, recorded):
    result = run(tmp_path, "status")
    assert "interrupted" in result.stdout and "send --resume" in result.stdout
    one = run(tmp_path, "status", "1")
    assert "Campaign 1: interrupted" in one.stdout
    assert "running" not in one.stdout


def test_while_a_sender_holds_the_lock_the_campaign_is_sending(tmp_path, recorded):
    with open(f"{tmp_path / 'data' / 'sendmail.db'}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run(tmp_path, "status", "1")
    assert "Campaign 1: sending" in result.stdout
    assert "send --resume" not in result.stdout


def test_deferred_names_the_time_and_uncertain_needs_a_decision(tmp_path, recorded):
    rows = recorded.outbox.messages(1)
    until = time.time() + 3600
    recorded.outbox.mark_deferred(rows[0].id, until, "the daily sending limit is reached")
    assert recorded.outbox.claim(rows[1].id, "sandbox")
    recorded.outbox.mark_uncertain(rows[1].id, "no answer")
    recorded.campaigns.update(1, status=CampaignStatus.COMPLETED)
    result = run(tmp_path, "status", "1")
    assert "Campaign 1: needs a decision: 1 uncertain" in result.stdout
    assert "python -m bot resolve 1 --resend|--skip" in result.stdout
    assert "completed" not in result.stdout

    run(tmp_path, "resolve", "1", "--skip")
    deferred = run(tmp_path, "status", "1")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(until))
    assert f"Campaign 1: deferred until {when}" in deferred.stdout
    assert "running" not in deferred.stdout


# -- Gmail: send-only grants ----------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeGmail]:
    with FakeGmail(email_address=SENDER, units_per_minute=UNPACED) as server:
        yield server


LIST_PATH = "/gmail/v1/users/me/messages"


def crash_mid_send(mailbolt: Mailbolt, fake: FakeGmail) -> None:
    """Leave one message ``sending``: the process dies while Gmail has the request."""
    mailbolt.recipients(1)
    fake.latency_ms = 3000
    proc = mailbolt.start("send")
    kill_when(proc, lambda: fake.requests_by_path[SEND_PATH] == 1, "the send reached Gmail")
    fake.latency_ms = 0
    store = Store(mailbolt.database)
    try:
        assert [r.state for r in store.outbox.messages(1)] == [SENDING]
    finally:
        store.close()


def test_resume_with_a_send_only_grant_does_not_wait_and_says_why(
    tmp_path: Path, fake: FakeGmail
) -> None:
    mailbolt = Mailbolt(tmp_path, fake, GMAIL_RECONCILE_GRACE_SECONDS="5")
    mailbolt.grant(SEND_SCOPE)
    crash_mid_send(mailbolt, fake)
    resumed = mailbolt.run("send", "--resume")
    words = text(resumed)
    assert resumed.returncode == 1
    assert "cannot be looked up" in words and "Waiting" not in words
    assert "needs a decision" in words and "resolve 1 --resend|--skip" in words
    assert fake.requests_by_path["/gmail/v1/users/me/messages"] == 0


def test_resume_with_a_read_grant_says_why_it_waits(tmp_path: Path, fake: FakeGmail) -> None:
    mailbolt = Mailbolt(tmp_path, fake, GMAIL_RECONCILE="on", GMAIL_RECONCILE_GRACE_SECONDS="60")
    mailbolt.grant(SEND_SCOPE, READONLY_SCOPE)
    # Gmail goes on working on the dead process's send until the test lets it finish.
    fake.hold_sends = threading.Event()
    mailbolt.recipients(1)
    kill_when(
        mailbolt.start("send"),
        lambda: fake.requests_by_path[SEND_PATH] == 1,
        "the send reached Gmail",
    )
    resume = mailbolt.start("send", "--resume")
    try:
        wait_until(lambda: fake.requests_by_path[LIST_PATH] >= 1, "the first look-up")
        assert not fake.sent  # the look-up found nothing: the resume must wait, not re-send
        fake.hold_sends.set()
        assert resume.wait(60) == 0
    finally:
        fake.hold_sends.set()
        if resume.poll() is None:
            resume.kill()
    words = " ".join((tmp_path / "sender.log").read_text().split())
    assert "Waiting up to" in words and "GMAIL_RECONCILE_GRACE_SECONDS" in words
    assert len(fake.sent) == 1


def test_auth_check_accepts_a_send_only_grant_when_the_address_is_set(
    tmp_path: Path, fake: FakeGmail
) -> None:
    mailbolt = Mailbolt(tmp_path, fake)
    mailbolt.grant(SEND_SCOPE)
    result = mailbolt.run("auth", "--check")
    assert result.returncode == 0, text(result)
    assert "Not granted" not in text(result)


# -- progress -------------------------------------------------------------------------


def run_on_a_terminal(tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdout, so rich draws its progress bar."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "COLUMNS": "200",
            "TERM": "xterm",
            "DATABASE_PATH": str(tmp_path / "data" / "sendmail.db"),
            "SANDBOX_OUTBOX": str(tmp_path / "data" / "outbox"),
            "TEMPLATES_DIR": str(ROOT / "templates"),
        },
        stdout=slave,
        stderr=subprocess.STDOUT,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def test_progress_never_passes_its_total_on_resume_after_a_crash(tmp_path):
    import re

    assert send(tmp_path, "--dry-run").returncode == 0
    store = Store(tmp_path / "data" / "sendmail.db")
    store.campaigns.create(
        requested_by="cli",
        template="welcome",
        category="transactional",
        subject="",
        common_vars={"team": "Acme", "start_url": "https://a.example"},
        messages=[
            NewMessage(email=f"p{i}@example.com", message_id=f"<p{i}@mailbolt.example>")
            for i in range(25)
        ],
    )
    for row in store.outbox.messages(1)[:5]:  # in flight when the process died
        assert store.outbox.claim(row.id, "sandbox")
    store.campaigns.update(1, status=CampaignStatus.RUNNING)
    store.close()

    code, screen = run_on_a_terminal(tmp_path, "send", "--resume")
    assert code == 0, screen
    shown = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+)", screen)]
    assert shown, screen
    assert all(done <= total for done, total in shown), shown
    assert shown[-1][0] == shown[-1][1] == 25


def test_status_needs_neither_templates_nor_a_grant(tmp_path):
    assert send(tmp_path).returncode == 0
    elsewhere = {"TEMPLATES_DIR": str(tmp_path / "no-templates"), "MAIL_TRANSPORT": "gmail"}
    elsewhere |= {"SENDER_ADDRESS": "", "GMAIL_TOKEN_FILE": str(tmp_path / "none.json")}
    for args in (["status"], ["status", "1"]):
        result = run(tmp_path, *args, env=elsewhere)
        assert result.returncode == 0, result.stderr
        assert "completed" in result.stdout
