"""A finished campaign's results as CSV (``/sendmail export`` into the conversation,
``python -m bot export``), and the audit log (``python -m bot audit``, App Home for
admins), through the real server, the Slack fake and the real command line."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from bot.handlers.export import COLUMNS
from bot.slack import views
from tests.conftest import ROOT
from tests.fakes.slack_fake import (
    SlackFake,
    compose_values,
    running_mailbolt,
    wait_for,
)

OWNER, OTHER, ADMIN = "U0OWNER", "U0OTHER", "U0ADMIN"
STATUS = "C0STATUS"
VARS = "team=Acme\nstart_url=https://acme.example/start"
TRICKY = '=HYPERLINK("http://evil.example","click")'


@pytest.fixture
def fake():
    with SlackFake() as slack:
        slack.add_user(OWNER, "owner@acme.example", "Olive Owner")
        slack.add_user(OTHER, "other@acme.example", "Otto Other")
        slack.add_user(ADMIN, "admin@acme.example", "Ada Admin")
        slack.add_user("U0TRICKY", "tricky@acme.example", TRICKY)
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


@pytest.fixture
def configured(settings):
    return settings.replace(allowed_slack_users=f"{OWNER},{OTHER},{ADMIN}", admin_slack_users=ADMIN)


@pytest.fixture
def mailbolt(configured, fake):
    with running_mailbolt(configured, fake) as running:
        yield running


def cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_PATH": str(settings.database_path),
        "SANDBOX_OUTBOX": str(settings.sandbox_outbox),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        "POSTAL_ADDRESS": settings.postal_address,
        "SENDER_ADDRESS": settings.sender_address,
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "300",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=settings.database_path.parent.parent,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def finished_campaign(fake: SlackFake, mailbolt) -> int:
    """A campaign sent from Slack, with a test send first, to three people."""
    fake.command("", user=OWNER)
    compose = wait_for(lambda: fake.top_view(OWNER), "the compose modal")
    values = compose_values(
        variables=VARS,
        channel=STATUS,
        paste="ann@example.com, -bob@example.com",
        people=["U0TRICKY"],
    )
    fake.submit_view(compose["id"], values, user=OWNER)
    preview = wait_for(
        lambda: (v := fake.top_view(OWNER)) and v["callback_id"] == views.CB_PREVIEW and v,
        "the preview",
    )
    fake.click(views.A_SEND_TEST, user=OWNER, view_id=preview["id"])
    mailbolt.settle()
    fake.submit_view(preview["id"], {}, user=OWNER)
    campaign = wait_for(lambda: mailbolt.deps.store.campaigns.recent(), "the campaign")[0]
    wait_for(
        lambda: mailbolt.deps.store.campaigns.get(campaign.id).status == "completed",
        "the campaign to finish",
    )
    return campaign.id


def rows_of(data: bytes) -> list[dict[str, Any]]:
    assert data.startswith(b"\xef\xbb\xbf")  # spreadsheets read it as UTF-8
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_export_posts_a_spreadsheet_safe_csv_and_the_cli_writes_the_same(
    fake, mailbolt, configured, tmp_path
):
    campaign_id = finished_campaign(fake, mailbolt)
    reply, _ = fake.command(f"export {campaign_id}", user=OWNER, channel=STATUS)
    assert "Preparing the results" in reply.json["text"]
    shared = wait_for(lambda: fake.shared_files, "the file in the channel")[0]
    assert shared["channel"] == STATUS and shared["name"] == f"campaign-{campaign_id}-results.csv"

    rows = rows_of(shared["content"])
    assert list(rows[0]) == list(COLUMNS)
    # Formula-looking cells are shown as text (a leading '), never evaluated.
    assert {r["address"] for r in rows} == {
        "ann@example.com",
        "'-bob@example.com",
        "tricky@acme.example",
    }
    by_address = {r["address"].removeprefix("'"): r for r in rows}
    stored = {m.email: m for m in mailbolt.deps.store.outbox.messages(campaign_id)}
    for address, row in by_address.items():
        assert row["state"] == "sent"
        assert row["time"].endswith("Z") and row["time"][:4].isdigit()
        assert row["gmail_message_id"] == (stored[address].provider_id or "")
        assert row["error"] == ""
    assert by_address["tricky@acme.example"]["name"] == "'" + TRICKY

    out = tmp_path / "exports" / "results.csv"
    done = cli(configured, "export", str(campaign_id), "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert f"Wrote 3 row(s) of campaign {campaign_id}" in done.stdout
    assert out.read_bytes() == shared["content"]
    assert out.stat().st_mode & 0o777 == 0o600
    printed = cli(configured, "export", str(campaign_id))
    # (text mode reads the CSV's CRLF line ends as \n)
    assert printed.stdout == shared["content"].decode("utf-8-sig").replace("\r\n", "\n")


def test_only_the_owner_and_admins_may_export(fake, mailbolt):
    campaign_id = finished_campaign(fake, mailbolt)
    reply, _ = fake.command(f"export {campaign_id}", user=OTHER, channel=STATUS)
    assert f"Only <@{OWNER}>" in reply.json["text"]
    mailbolt.settle()
    assert fake.shared_files == []
    assert fake.calls_to("files.getUploadURLExternal") == []

    reply, _ = fake.command(f"export {campaign_id}", user=ADMIN, channel=STATUS)
    assert "Preparing" in reply.json["text"]
    wait_for(lambda: fake.shared_files, "the admin's file")


def test_export_says_why_when_slack_refuses_the_file(fake, mailbolt):
    campaign_id = finished_campaign(fake, mailbolt)
    fake.non_member.add("C0ELSEWHERE")
    fake.command(f"export {campaign_id}", user=OWNER, channel="C0ELSEWHERE")
    note = wait_for(
        lambda: next((e for e in fake.ephemerals if "not_in_channel" in e["text"]), None),
        "a private note saying why",
    )
    assert note["user"] == OWNER and f"python -m bot export {campaign_id}" in note["text"]
    assert fake.shared_files == []


def test_export_of_an_unknown_campaign_is_refused_on_the_cli(configured):
    done = cli(configured, "export", "99")
    assert done.returncode == 2 and "There is no campaign #99" in done.stderr


def test_the_audit_lists_every_action_of_the_flow(fake, mailbolt, configured):
    campaign_id = finished_campaign(fake, mailbolt)
    fake.command(f"export {campaign_id}", user=OWNER, channel=STATUS)
    wait_for(lambda: fake.shared_files, "the file")
    fake.command("unsubscribe carl@example.com", user=OTHER)
    assert cli(configured, "resolve", str(campaign_id), "--retry-failed").returncode == 0
    assert cli(configured, "unsubscribes", "export").returncode == 0

    listed = cli(configured, "audit")
    assert listed.returncode == 0, listed.stderr
    text = listed.stdout
    for words in (
        f"started campaign #{campaign_id} (welcome) to 3 recipient(s) from sandbox",
        "sent a test of welcome to owner@acme.example",
        "test #1: sent",
        f"exported the results of campaign #{campaign_id} (3 row(s))",
        "unsubscribed carl@example.com",
        f"retried 0 failed message(s) of campaign #{campaign_id}",
        "exported the unsubscribe list (1 row(s))",
    ):
        assert words in text, words
    assert OWNER in text and "slack:U0OTHER" in text

    one = cli(configured, "audit", "--campaign", str(campaign_id)).stdout
    assert "exported" in one and "unsubscribed" not in one
    assert "No audit entries match." in cli(configured, "audit", "--since", "2999-01-01").stdout
    assert "exported" in cli(configured, "audit", "--since", "1h").stdout
    newest = cli(configured, "audit", "--limit", "1").stdout
    assert "unsubscribe list" in newest and "retried" not in newest
    bad = cli(configured, "audit", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "is not a time" in bad.stderr


def home_text(fake: SlackFake, user: str) -> str:
    fake.home.pop(user, None)
    fake.event({"type": "app_home_opened", "user": user, "channel": "D0X", "tab": "home"})
    home = wait_for(lambda: fake.home.get(user), "the Home tab")
    return json.dumps(home["blocks"], ensure_ascii=False)


def test_app_home_shows_the_audit_to_admins_only(fake, mailbolt):
    campaign_id = finished_campaign(fake, mailbolt)
    admin = home_text(fake, ADMIN)
    assert "Audit (admins only)" in admin
    assert f"started campaign #{campaign_id}" in admin and f"<@{OWNER}>" in admin
    for user in (OWNER, OTHER):
        shown = home_text(fake, user)
        assert "Recent campaigns" in shown
        assert "Audit" not in shown and "started campaign" not in shown


def test_admin_slack_users_takes_user_ids_only():
    from bot.config import Settings
    from bot.errors import ConfigError

    assert Settings.load(
        environ={"ADMIN_SLACK_USERS": "U1AB, W2CD"}, env_file=None
    ).admin_users == {
        "U1AB",
        "W2CD",
    }
    for bad in ("*", "alice", "C0CHANNEL"):
        with pytest.raises(ConfigError, match="ADMIN_SLACK_USERS"):
            Settings.load(environ={"ADMIN_SLACK_USERS": bad}, env_file=None)
