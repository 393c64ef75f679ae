"""``serve --no-send`` beside a worker (issue 12): the Slack flow records the
campaign, the worker process sends it, and the status message still follows it to
the end; Cancel works with nobody sending in the server's process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from bot.errors import PermanentSendError
from bot.slack import views
from tests.conftest import ROOT
from tests.fakes.slack_fake import SlackFake, compose_values, running_mailbolt, wait_for

OWNER = "U0OWNER"
STATUS = "C0STATUS"
VARS = "team=Acme\nstart_url=https://acme.example/start"


class MustNotSend:
    """The server's own transport: it must never be asked to send."""

    name = "must-not-send"
    max_in_flight = 1

    def __init__(self) -> None:
        self.calls = 0

    def send(self, message):
        self.calls += 1
        raise PermanentSendError("serve --no-send tried to send")

    def find_sent(self, message_id: str):
        self.calls += 1
        return None


@pytest.fixture
def fake():
    with SlackFake() as slack:
        slack.add_user(OWNER, "owner@acme.example", "Olive Owner")
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


@pytest.fixture
def no_send(settings, pg_url):
    return settings.replace(allowed_slack_users=OWNER, database_url=pg_url)


def send_from_slack(fake: SlackFake, n: int) -> None:
    fake.command("", user=OWNER)
    compose = wait_for(lambda: fake.top_view(OWNER), "the compose modal")
    paste = ", ".join(f"p{i}@example.com" for i in range(n))
    reply = fake.submit_view(
        compose["id"], compose_values(paste=paste, variables=VARS, channel=STATUS), user=OWNER
    )
    assert reply.json.get("response_action") == "update", reply.json
    preview = wait_for(
        lambda: (v := fake.top_view(OWNER)) and v["callback_id"] == views.CB_PREVIEW and v,
        "the preview",
    )
    fake.submit_view(preview["id"], {}, user=OWNER)


def status_saying(fake: SlackFake, word: str) -> dict:
    return wait_for(
        lambda: next(
            (m for m in fake.messages_in(STATUS) if not m["thread_ts"] and word in m["text"]),
            None,
        ),
        f"a status message that says {word!r}",
    )


def start_worker(settings) -> subprocess.Popen[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": settings.database_url,
        "DATABASE_PATH": str(settings.database_path),
        "SANDBOX_OUTBOX": str(settings.sandbox_outbox),
        "TEMPLATES_DIR": str(settings.templates_dir),
        "SENDER_ADDRESS": settings.sender_address,
        "FROM_NAME": settings.from_name,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_worker_sends_and_slack_follows(fake, no_send):
    transport = MustNotSend()
    with running_mailbolt(no_send, fake, transport=transport, hand_off=True) as running:
        send_from_slack(fake, 12)
        store = running.deps.store
        campaign = wait_for(lambda: store.campaigns.recent(), "the campaign")[0]
        wait_for(lambda: running.runner.is_running(campaign.id), "the hand-off")
        worker = start_worker(no_send)
        try:
            done = status_saying(fake, "finished")
        finally:
            worker.send_signal(signal.SIGTERM)
            _, log = worker.communicate(timeout=30)
        assert "Worker stopped" in log, log
        shown = json.dumps(done["blocks"])
        assert "sent *12*" in shown and "failed *0*" in shown
        assert store.campaigns.get(campaign.id).status == "completed"
        assert len(running.eml_files()) == 12
    assert transport.calls == 0


def test_cancel_without_a_worker_skips_what_nobody_claimed(fake, no_send):
    transport = MustNotSend()
    with running_mailbolt(no_send, fake, transport=transport, hand_off=True) as running:
        send_from_slack(fake, 5)
        store = running.deps.store
        campaign = wait_for(lambda: store.campaigns.recent(), "the campaign")[0]
        message = wait_for(lambda: fake.messages_in(STATUS), "the status message")[0]
        where = (STATUS, message["ts"])
        wait_for(lambda: "campaign_cancel" in json.dumps(fake.messages[where]["blocks"]), "Cancel")
        fake.click(views.A_CANCEL, user=OWNER, message=where)
        status_saying(fake, "cancelled")
        counts = store.outbox.counts(campaign.id)
        assert (counts["skipped"], counts["sent"]) == (5, 0)
        assert store.campaigns.get(campaign.id).status == "cancelled"
    assert transport.calls == 0
