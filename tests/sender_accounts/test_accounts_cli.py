"""``python -m bot accounts …`` and ``send --from`` (issue 10): shared accounts are
linked with the same consent as ``auth``, kept encrypted, listed, opened to people,
sent from, and removed (revoked at Google). The real CLI, in a subprocess where it
can be, against the Gmail fake."""

from __future__ import annotations

import json
import webbrowser
from pathlib import Path

import pytest

from bot.config import Settings
from tests.fakes.gmail_fake import FakeGmail
from tests.sender_accounts.conftest import ALICE, run_cli, write_token_file
from tests.test_cli import run, write
from tests.test_google_auth import ConsentingBrowser

NEWS = "news@acme.example"


@pytest.fixture
def cli_settings(settings: Settings, gmail_fake: FakeGmail, tmp_path: Path) -> Settings:
    client = tmp_path / "credentials.json"
    client.write_text(json.dumps(gmail_fake.client_secrets()))
    return settings.replace(
        mail_transport="gmail",
        google_client_secrets_file=client,
        gmail_token_file=tmp_path / "data" / "token.json",
        gmail_api_url=gmail_fake.api_url,
        google_token_uri=gmail_fake.token_uri,
    )


def env_of(settings: Settings, gmail: FakeGmail) -> dict[str, str]:
    return {
        **gmail.env(),
        "MAIL_TRANSPORT": "gmail",
        "GOOGLE_CLIENT_SECRETS_FILE": str(settings.google_client_secrets_file),
        "GMAIL_TOKEN_FILE": str(settings.gmail_token_file),
    }


@pytest.fixture
def linked(cli_settings, gmail_fake, monkeypatch):
    """``accounts link news --user U0ALICE``, signing in as the news address."""
    consenting = ConsentingBrowser(gmail_fake.ca_file)
    monkeypatch.setattr(webbrowser, "get", lambda using=None: consenting)
    gmail_fake.email_address = NEWS
    assert run_cli(["accounts", "link", "news", "--user", ALICE], cli_settings) == 0
    return cli_settings


def test_a_linked_account_is_listed_and_sends(linked, gmail_fake, tmp_path):
    env = env_of(linked, gmail_fake)
    listed = run(tmp_path, "accounts", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if NEWS in line)
    assert "news" in row and "shared" in row and ALICE in row and "encrypted" in row

    recipients = write(tmp_path, "r.txt", "ann@example.com\nbob@example.com\n")
    sent = run(
        tmp_path,
        "send",
        "--from",
        NEWS,
        "--template",
        "welcome",
        "--recipients",
        str(recipients),
        "--var",
        "team=Acme",
        "--var",
        "start_url=https://acme.example/start",
        env=env,
    )
    assert sent.returncode == 0, sent.stderr
    assert len(gmail_fake.sent_by(NEWS)) == 2
    assert all(f"<{NEWS}>" in str(m.message["From"]) for m in gmail_fake.sent_by(NEWS))

    # Each account has its own rolling day: `quota --from` shows the shared one's.
    own = run(tmp_path, "quota", "--from", "news", env=env)
    assert own.returncode == 0, own.stderr
    assert NEWS in own.stdout and "2 of" in own.stdout
    default = run(tmp_path, "quota", env=env)
    assert default.returncode == 0 and "2 of" not in default.stdout
    unknown = run(tmp_path, "quota", "--from", "nobody@acme.example", env=env)
    assert unknown.returncode == 2 and "There is no sender account" in unknown.stderr


def test_sending_from_an_unknown_account_is_refused(linked, gmail_fake, tmp_path):
    recipients = write(tmp_path, "r.txt", "ann@example.com\n")
    result = run(
        tmp_path,
        "send",
        "--from",
        "nobody@acme.example",
        "--template",
        "welcome",
        "--recipients",
        str(recipients),
        env=env_of(linked, gmail_fake),
    )
    assert result.returncode == 2
    assert "There is no sender account 'nobody@acme.example'" in result.stderr
    assert NEWS in result.stderr and gmail_fake.sent == []


def test_allow_then_remove_revokes_at_google(linked, gmail_fake, tmp_path):
    env = env_of(linked, gmail_fake)
    allowed = run(tmp_path, "accounts", "allow", "news", "--group", "S0DESIGN", env=env)
    assert allowed.returncode == 0 and "U0ALICE, S0DESIGN" in allowed.stdout
    bad = run(tmp_path, "accounts", "allow", "news", "--user", "alice", env=env)
    assert bad.returncode == 2 and "not a Slack user id" in bad.stderr
    removed = run(tmp_path, "accounts", "remove", "news", env=env)
    assert removed.returncode == 0, removed.stderr
    assert "Google revoked mailbolt's access" in removed.stdout
    assert len(gmail_fake.revoked_by_request) == 1
    audit = run(tmp_path, "audit", env={**env, "COLUMNS": "250"})  # no wrapped cells
    assert audit.returncode == 0, audit.stderr
    said = " ".join(audit.stdout.split())
    for words in (
        f"linked the shared sender account {NEWS}",
        f"changed who may send from {NEWS}: U0ALICE, S0DESIGN",
        f"removed the sender account {NEWS}",
    ):
        assert words in said, words
    assert NEWS not in run(tmp_path, "accounts", "list", env=env).stdout


def test_the_auth_account_becomes_the_first_shared_one(cli_settings, gmail_fake, tmp_path):
    write_token_file(cli_settings, gmail_fake)
    env = env_of(cli_settings, gmail_fake)
    listed = run(tmp_path, "accounts", "list", env=env)
    row = next(line for line in listed.stdout.splitlines() if "team@mailbolt.example" in line)
    assert "default" in row and "shared" in row and "everyone who may send" in row
    assert "token.json" in row
    refused = run(tmp_path, "accounts", "remove", "default", env=env)
    assert refused.returncode == 2 and "python -m bot auth" in refused.stderr
