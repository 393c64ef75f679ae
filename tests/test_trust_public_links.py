"""No real mail carries an unsubscribe link that cannot work.

Through Gmail, a marketing campaign needs ``PUBLIC_BASE_URL`` to be a public
https address (not unset, not http, not localhost, a loopback or private
address): the CLI exits 2 and sends nothing, the Slack form shows the problem on
the template field, ``serve`` warns at start. The sandbox may keep its localhost
link. No message advertises a ``mailto:`` opt-out, since nothing reads those
replies.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
from email import policy as email_policy
from pathlib import Path

import pytest

from bot.cli import serve_cmds
from bot.slack import views
from tests.conftest import ROOT
from tests.fakes.gmail_fake import FakeGmail
from tests.fakes.slack_fake import SlackFake, compose_values, running_mailbolt, wait_for
from tests.test_gmail_e2e import SENDER, UNPACED, Mailbolt, text

NEWSLETTER = ("send", "--template", "newsletter", "--recipients", "news.csv")


@pytest.fixture
def fake():
    with FakeGmail(email_address=SENDER, units_per_minute=UNPACED) as server:
        yield server


def mailbolt_with(tmp_path: Path, fake: FakeGmail, **settings: str) -> Mailbolt:
    bolt = Mailbolt(tmp_path, fake, **settings)
    bolt.grant()
    (tmp_path / "news.csv").write_text(
        "email,name,headline,body\r\n"
        "ann@example.com,Ann Lee,Spring news,We shipped things.\r\n"
        "bob@example.com,Bob Ray,Spring news,We shipped things.\r\n"
    )
    return bolt


@pytest.mark.parametrize(
    ("base_url", "said"),
    [
        ("", "unsubscribe links would point to http://localhost:3000"),
        ("http://mail.example.com", "which is not https"),
        ("https://localhost:3000", "only this machine or its network can reach"),
        ("https://127.0.0.1", "only this machine or its network can reach"),
        ("https://127.10.0.3:8443/mailbolt", "only this machine or its network can reach"),
        ("https://[::1]", "only this machine or its network can reach"),
        ("https://192.168.1.20", "only this machine or its network can reach"),
    ],
)
def test_gmail_marketing_send_without_a_public_https_base_is_refused(
    tmp_path, fake, base_url, said
):
    bolt = mailbolt_with(tmp_path, fake, PUBLIC_BASE_URL=base_url)
    result = bolt.run(*NEWSLETTER)
    assert result.returncode == 2, text(result)
    shown = text(result)
    assert said in shown and "set PUBLIC_BASE_URL" in shown
    assert fake.sent == []
    assert not bolt.database.exists() or bolt.rows() == []


def test_gmail_transactional_mail_needs_no_public_base(tmp_path, fake):
    bolt = mailbolt_with(tmp_path, fake)
    bolt.recipients(2)
    result = bolt.run("send")
    assert result.returncode == 0, text(result)
    assert len(fake.sent) == 2


def test_gmail_marketing_mail_carries_only_the_https_one_click_link(tmp_path, fake):
    bolt = mailbolt_with(tmp_path, fake, PUBLIC_BASE_URL="https://mail.example.com")
    result = bolt.run(*NEWSLETTER)
    assert result.returncode == 0, text(result)
    assert len(fake.sent) == 2
    for sent in fake.sent:
        msg = email.message_from_bytes(sent.raw, policy=email_policy.default)
        header = str(msg["List-Unsubscribe"])
        assert header.startswith("<https://mail.example.com/unsubscribe/v1.")
        assert header.count("<") == 1 and "mailto:" not in header
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_the_sandbox_keeps_its_localhost_link(tmp_path):
    (tmp_path / "news.csv").write_text("email,headline,body\nann@example.com,News,Body\n")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DATABASE_PATH": str(tmp_path / "data" / "sendmail.db"),
        "SANDBOX_OUTBOX": str(tmp_path / "outbox"),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        "POSTAL_ADDRESS": "1 Harbour Street, Bristol",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", *NEWSLETTER],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email_policy.default)
    assert str(msg["List-Unsubscribe"]).startswith("<http://localhost:3000/unsubscribe/")
    assert "mailto:" not in str(msg["List-Unsubscribe"])


# -- Slack --------------------------------------------------------------------------------

OWNER = "U0OWNER"


def test_slack_shows_the_missing_public_base_on_the_template_field(settings):
    gmail = settings.replace(mail_transport="gmail", allowed_slack_users=OWNER)
    with SlackFake() as slack:
        slack.add_user(OWNER, "owner@acme.example", "Olive Owner")
        with running_mailbolt(gmail, slack) as running:
            reply, _ = slack.command("", user=OWNER)
            assert reply.status == 200
            compose = wait_for(lambda: slack.top_view(OWNER), "the compose modal")
            values = compose_values(
                template="newsletter", paste="ann@example.com", variables="headline=H\nbody=B"
            )
            answer = slack.submit_view(compose["id"], values, user=OWNER).json
            assert answer["response_action"] == "errors", answer
            error = answer["errors"][views.B_TEMPLATE]
            assert "http://localhost:3000" in error and "set PUBLIC_BASE_URL" in error
            assert running.deps.store.campaigns.recent() == []
        assert slack.problems == []


# -- serve ----------------------------------------------------------------------------------


def test_serve_warns_at_start_when_gmail_links_would_not_work(settings):
    base = settings.replace(allowed_slack_users="*", mail_transport="gmail")
    _, warnings = serve_cmds.startup_problems(base)
    assert any("PUBLIC_BASE_URL is not set" in w for w in warnings), warnings
    _, warnings = serve_cmds.startup_problems(base.replace(public_base_url="https://127.0.0.1"))
    assert any("Marketing templates will be refused" in w for w in warnings), warnings
    _, warnings = serve_cmds.startup_problems(
        base.replace(public_base_url="https://mail.example.com")
    )
    assert warnings == []
    _, warnings = serve_cmds.startup_problems(base.replace(mail_transport="sandbox"))
    assert warnings == []


def test_a_campaign_resumed_after_the_base_was_unset_sends_no_local_links(tmp_path, fake):
    bolt = mailbolt_with(tmp_path, fake, PUBLIC_BASE_URL="https://mail.example.com")
    bolt.grant(expires_in=-60)
    fake.revoke()  # paused before anything left: every message stays queued
    assert bolt.run(*NEWSLETTER).returncode == 1
    assert bolt.campaign().status == "paused"
    bolt.grant()
    bolt.settings["PUBLIC_BASE_URL"] = ""  # the setting was lost across the restart
    resumed = bolt.run("send", "--resume")
    assert resumed.returncode == 1, text(resumed)
    assert fake.sent == []
    rows = bolt.rows()
    assert {r.state for r in rows} == {"failed"}
    assert all("set PUBLIC_BASE_URL" in r.last_error for r in rows)
