"""A CLI send while ``serve`` runs on the same database (issue 8, item 9).

The real ``python -m bot serve`` (HTTP mode, against the loopback Slack fake) and
the real ``python -m bot send`` run as two processes on one database: the CLI
hands its campaign to the server and follows it to the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store import Store
from tests.conftest import ROOT
from tests.fakes.slack_fake import SlackFake, wait_for


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


def environment(folder: Path, slack: SlackFake) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
        "DATABASE_PATH": str(folder / "data" / "sendmail.db"),
        "SANDBOX_OUTBOX": str(folder / "outbox"),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.api_url,
        "ALLOWED_SLACK_USERS": "U0ADMIN",
    }


@pytest.fixture
def server(tmp_path: Path, slack: SlackFake) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m bot serve`` on a free port, up and holding the sender lock."""
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"],
            cwd=tmp_path,
            env=environment(tmp_path, slack),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: "listening on" in log.read_text() or proc.poll() is not None,
            "the server to start",
            timeout=60,
        )
        assert proc.poll() is None, log.read_text()
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def cli(folder: Path, slack: SlackFake, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=folder,
        env=environment(folder, slack),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_cli_send_is_handed_to_the_running_server(tmp_path, slack, server) -> None:
    addresses = [f"r{i:02d}@example.com" for i in range(25)]
    rows = "".join(f"{a},Person {i},Acme,https://start.example\n" for i, a in enumerate(addresses))
    (tmp_path / "r.csv").write_text("email,name,team,start_url\n" + rows)

    sent = cli(tmp_path, slack, "send", "--template", "welcome", "--recipients", "r.csv")

    output = sent.stdout + sent.stderr
    assert sent.returncode == 0, output
    assert f"handed to the running server (pid {server.pid})" in output
    assert "completed" in output
    recipients = Counter(
        path.name.split("-", 2)[2].rsplit("-", 1)[0] for path in (tmp_path / "outbox").glob("*.eml")
    )
    assert recipients == Counter({a.replace("@", "_"): 1 for a in addresses})  # each once
    store = Store(tmp_path / "data" / "sendmail.db")
    try:
        assert store.outbox.counts(1)["sent"] == 25
    finally:
        store.close()

    resumed = cli(tmp_path, slack, "send", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumes unfinished campaigns by itself" in resumed.stdout


def test_ctrl_c_stops_following_not_sending(tmp_path, slack, gmail_fake) -> None:
    """The server paces Gmail at one send per ten seconds, so the CLI is still
    following when it is interrupted; the campaign goes on in the server."""
    from tests.test_gmail_e2e import Mailbolt

    mailbolt = Mailbolt(tmp_path, gmail_fake, GMAIL_QUOTA_UNITS_PER_MINUTE="600")
    mailbolt.grant()
    addresses = mailbolt.recipients(2)
    env = {**mailbolt.env(), **environment(tmp_path, slack)}
    env["DATABASE_PATH"] = str(mailbolt.database)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    follower_log = tmp_path / "send.log"
    try:
        wait_for(lambda: "listening on" in log.read_text(), "the server to start", timeout=60)
        send = ("send", "--template", "welcome", "--recipients", "r.csv")
        with open(follower_log, "wb") as out:
            follower = subprocess.Popen(
                [sys.executable, "-m", "bot", *send],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: "following its progress" in follower_log.read_text(), "the hand-off")
        follower.send_signal(signal.SIGINT)
        assert follower.wait(30) == 130
        said = follower_log.read_text()
        assert "Stopped following" in said and "python -m bot status 1" in said
        wait_for(lambda: len(gmail_fake.sent) == 2, "the server to send both", timeout=60)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    assert sorted(m.message["To"].addresses[0].addr_spec for m in gmail_fake.sent) == addresses
