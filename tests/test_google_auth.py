"""The Gmail grant: consent flow, private token file, refresh, and the CLI commands,
against the loopback OAuth/Gmail fake (real google-auth, oauthlib and httplib2)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import ssl
import stat
import threading
import urllib.request
import webbrowser
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from google.oauth2.credentials import Credentials

from bot.cli import gmail_cmds
from bot.config import Settings
from bot.errors import AuthError
from bot.mail.gmail import build_transport
from bot.mail.google_auth import (
    EMAIL_SCOPE,
    OPENID_SCOPE,
    READONLY_SCOPE,
    SEND_SCOPE,
    authorized_address,
    check_auth,
    load_credentials,
    requested_scopes,
    run_auth_flow,
    save_credentials,
)
from bot.models import OutgoingMessage
from bot.store import Store
from tests.fakes.gmail_fake import FakeGmail


@pytest.fixture
def fake(gmail_fake: FakeGmail) -> FakeGmail:
    return gmail_fake


@pytest.fixture
def gmail_settings(settings: Settings, fake: FakeGmail, tmp_path: Path) -> Settings:
    secrets_file = tmp_path / "credentials.json"
    secrets_file.write_text(json.dumps(fake.client_secrets()))
    return settings.replace(
        mail_transport="gmail",
        sender_address="",
        google_client_secrets_file=secrets_file,
        gmail_token_file=tmp_path / "data" / "token.json",
        gmail_api_url=fake.api_url,
        google_token_uri=fake.token_uri,
    )


class ConsentingBrowser:
    """Stands in for the user's browser: opens the consent URL and follows the
    redirect back to the flow's local server, on its own thread like a real one."""

    def __init__(self, ca_file: Path):
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self.opened: list[str] = []

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self.opened.append(url)
        threading.Thread(target=self._visit, args=(url,), daemon=True).start()
        return True

    def _visit(self, url: str) -> None:
        with urllib.request.urlopen(url, context=self.context, timeout=10) as answer:
            answer.read()


@pytest.fixture
def browser(fake: FakeGmail, monkeypatch: pytest.MonkeyPatch) -> ConsentingBrowser:
    consenting = ConsentingBrowser(fake.ca_file)
    monkeypatch.setattr(webbrowser, "get", lambda using=None: consenting)
    return consenting


def write_grant(path: Path, info: dict, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    path.chmod(mode)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- scopes ----------------------------------------------------------------------


def test_default_scopes_can_send_and_identify_but_not_read(settings: Settings) -> None:
    scopes = requested_scopes(settings)
    assert set(scopes) == {SEND_SCOPE, OPENID_SCOPE, EMAIL_SCOPE}


@pytest.mark.parametrize("setting", ["gmail_reconcile", "bounce_scan"])
def test_a_read_scope_is_asked_only_for_features_that_read(
    settings: Settings, setting: str
) -> None:
    scopes = requested_scopes(settings.replace(**{setting: True}))
    assert setting.upper() + "=on" in scopes[READONLY_SCOPE]


# -- the consent flow ------------------------------------------------------------


def test_auth_flow_stores_a_private_grant_and_the_account(
    fake: FakeGmail, gmail_settings: Settings, browser: ConsentingBrowser
) -> None:
    info = run_auth_flow(gmail_settings, open_browser=True)
    token_file = gmail_settings.gmail_token_file
    assert mode_of(token_file) == 0o600
    assert [p.name for p in token_file.parent.iterdir()] == ["token.json"]  # no temp files
    stored = json.loads(token_file.read_text())
    assert stored["account"] == fake.email_address
    assert set(stored["scopes"]) == {SEND_SCOPE, OPENID_SCOPE, EMAIL_SCOPE}
    assert info["account"] == fake.email_address and info["can_send"] and not info["missing"]
    assert "prompt=consent" in browser.opened[0] and "code_challenge=" in browser.opened[0]
    # the stored grant works: it sends through the fake
    transport = build_transport(gmail_settings)
    assert transport.sender_address() == fake.email_address
    raw = b"From: s@example.com\r\nTo: bob@example.com\r\nMessage-ID: <f1@x>\r\n\r\nHi\r\n"
    transport.send(OutgoingMessage(1, 1, "bob@example.com", "<f1@x>", raw))
    assert fake.accepted_by_message_id["f1@x"] == 1


def test_auth_flow_with_reconcile_asks_for_the_read_scope(
    fake: FakeGmail, gmail_settings: Settings, browser: ConsentingBrowser
) -> None:
    info = run_auth_flow(gmail_settings.replace(gmail_reconcile=True), open_browser=True)
    assert info["can_read"]
    assert build_transport(gmail_settings).find_sent("<nothing@x>") is None


def test_unticking_send_on_the_consent_screen_is_refused(
    fake: FakeGmail, gmail_settings: Settings, browser: ConsentingBrowser
) -> None:
    fake.consent_scopes = {OPENID_SCOPE, EMAIL_SCOPE}
    with pytest.raises(AuthError, match=r"missing: .*gmail\.send.*tick every box"):
        run_auth_flow(gmail_settings, open_browser=True)
    assert not gmail_settings.gmail_token_file.exists()


def test_declining_consent_is_an_auth_error(
    fake: FakeGmail, gmail_settings: Settings, browser: ConsentingBrowser
) -> None:
    fake.deny_consent = True
    with pytest.raises(AuthError, match="access_denied"):
        run_auth_flow(gmail_settings, open_browser=True)


def test_missing_client_secrets_file_says_where_to_get_it(gmail_settings: Settings) -> None:
    settings = gmail_settings.replace(google_client_secrets_file=Path("/nonexistent/c.json"))
    with pytest.raises(AuthError, match="Desktop app"):
        run_auth_flow(settings, open_browser=False)


# -- the token file ------------------------------------------------------------------


def test_save_is_atomic_and_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    path.write_text("old")
    old_umask = os.umask(0)
    try:
        save_credentials(path, Credentials("t", refresh_token="r", scopes=[SEND_SCOPE]))
    finally:
        os.umask(old_umask)
    assert mode_of(path) == 0o600
    assert json.loads(path.read_text())["refresh_token"] == "r"
    assert [p.name for p in tmp_path.iterdir()] == ["token.json"]


def test_a_world_readable_token_file_is_repaired_with_a_warning(
    fake: FakeGmail, gmail_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    write_grant(gmail_settings.gmail_token_file, fake.grant(), mode=0o644)
    with caplog.at_level(logging.WARNING):
        load_credentials(gmail_settings)
    assert mode_of(gmail_settings.gmail_token_file) == 0o600
    assert "readable by other users (mode 0644)" in caplog.text
    assert "myaccount.google.com/permissions" in caplog.text


def test_missing_token_file_says_what_to_run(gmail_settings: Settings) -> None:
    with pytest.raises(AuthError, match="`python -m bot auth`"):
        load_credentials(gmail_settings)
    with pytest.raises(AuthError, match="`python -m bot auth`"):
        authorized_address(gmail_settings)


def test_a_corrupt_token_file_says_what_to_run(gmail_settings: Settings) -> None:
    write_grant(gmail_settings.gmail_token_file, {"token": "only"})
    with pytest.raises(AuthError, match=r"not a usable Gmail token file.*python -m bot auth"):
        load_credentials(gmail_settings)


# -- loading and refreshing -------------------------------------------------------------


def test_a_valid_token_is_used_as_is_even_with_a_token_uri_override(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    write_grant(gmail_settings.gmail_token_file, fake.grant())
    credentials = load_credentials(gmail_settings)
    assert credentials.valid and credentials.expiry is not None  # expiry kept (facts G)
    assert credentials.token_uri == fake.token_uri
    assert fake.requests_by_path["/token"] == 0


def test_an_expired_token_is_refreshed_at_the_override_and_saved(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    info = fake.grant(expires_in=-60)
    info["token_uri"] = "https://oauth2.googleapis.com/token"  # ignored; the setting wins
    write_grant(gmail_settings.gmail_token_file, info)
    credentials = load_credentials(gmail_settings)
    assert credentials.token != info["token"]
    assert fake.requests_by_path["/token"] == 1
    saved = json.loads(gmail_settings.gmail_token_file.read_text())
    assert saved["token"] == credentials.token
    assert saved["account"] == fake.email_address
    assert mode_of(gmail_settings.gmail_token_file) == 0o600


def test_invalid_grant_explains_the_fix(fake: FakeGmail, gmail_settings: Settings) -> None:
    write_grant(gmail_settings.gmail_token_file, fake.grant(expires_in=-60))
    fake.revoke()
    with pytest.raises(AuthError) as caught:
        load_credentials(gmail_settings)
    text = str(caught.value)
    assert "invalid_grant: Token has been expired or revoked." in text
    assert "`python -m bot auth`" in text and "7 days" in text and '"Testing"' in text


def test_check_auth_refreshes_and_summarises(fake: FakeGmail, gmail_settings: Settings) -> None:
    write_grant(gmail_settings.gmail_token_file, fake.grant())
    info = check_auth(gmail_settings)
    assert fake.requests_by_path["/token"] == 1  # proves the refresh token still works
    assert info["account"] == fake.email_address
    assert info["scopes"] == [SEND_SCOPE]
    assert info["can_send"] and not info["can_read"]
    assert set(info["missing"]) == {OPENID_SCOPE, EMAIL_SCOPE}
    assert info["expiry"] is not None


def test_authorized_address_reads_the_token_file_without_network(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    write_grant(gmail_settings.gmail_token_file, fake.grant())
    assert authorized_address(gmail_settings) == fake.email_address
    assert fake.requests_by_path == {}


def test_no_token_ever_reaches_the_logs(
    fake: FakeGmail,
    gmail_settings: Settings,
    browser: ConsentingBrowser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    run_auth_flow(gmail_settings, open_browser=True)
    load_credentials(gmail_settings)
    check_auth(gmail_settings)
    transport = build_transport(gmail_settings)
    fake.expire_access_tokens()  # 401 → refresh → retry, with all its logging
    raw = b"From: s@example.com\r\nTo: bob@example.com\r\nMessage-ID: <l1@x>\r\n\r\nHi\r\n"
    transport.send(OutgoingMessage(1, 1, "bob@example.com", "<l1@x>", raw))
    fake.revoke()
    fake.expire_access_tokens()
    with pytest.raises(AuthError) as caught:
        transport.send(OutgoingMessage(2, 1, "bob@example.com", "<l2@x>", raw))
    assert any(r.name.startswith("bot.mail") for r in caplog.records)
    secrets = fake.issued_tokens()
    assert len(secrets) >= 5
    for secret in secrets:
        for form in (secret, quote(secret, safe=""), quote_plus(secret)):
            assert form not in caplog.text
            assert form not in str(caught.value)


# -- CLI -----------------------------------------------------------------------------------


def run_cli(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser()
    gmail_cmds.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args, settings)


def test_cli_auth_runs_the_flow_and_reports(
    fake: FakeGmail,
    gmail_settings: Settings,
    browser: ConsentingBrowser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_cli(["auth"], gmail_settings) == 0
    out = capsys.readouterr().out
    assert "gmail.send" in out and "non-sensitive" in out
    assert f"send as {fake.email_address}" in out


def test_cli_auth_check(
    fake: FakeGmail, gmail_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    write_grant(
        gmail_settings.gmail_token_file, fake.grant([SEND_SCOPE, OPENID_SCOPE, EMAIL_SCOPE])
    )
    assert run_cli(["auth", "--check"], gmail_settings) == 0
    assert fake.email_address in capsys.readouterr().out
    write_grant(gmail_settings.gmail_token_file, fake.grant([READONLY_SCOPE]))
    assert run_cli(["auth", "--check"], gmail_settings) == 1


def test_cli_quota_reports_use_and_estimates(
    gmail_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = gmail_settings.replace(
        gmail_daily_send_limit=500,
        gmail_quota_units_per_minute=6000,
        sender_address="me@example.com",
    )
    store = Store(settings.database_path)
    store.quota.record_units(100, "messages.send", account="me@example.com")
    store.quota.record_units(100, "messages.send", account="me@example.com")
    store.close()
    assert run_cli(["quota", "--messages", "61"], settings) == 0
    out = capsys.readouterr().out
    assert "200 of 6,000 per minute" in out
    assert "0 of 500" in out
    assert "about 1 min 00 s" in out
    assert run_cli(["quota", "--messages", "700"], settings) == 0
    assert "200 must wait for the daily limit" in capsys.readouterr().out
