"""Connect your Gmail (issue 10): Google's web-server flow with PKCE, a single-use
state bound to the Slack user, workspace and browser; every way it can go wrong
stores nothing; grants are kept encrypted; Disconnect revokes at Google."""

from __future__ import annotations

import html
import json
import stat
from pathlib import Path

import pytest
import requests

from bot.errors import UserInputError
from bot.handlers import senders
from bot.mail.google_web_flow import GoogleWebFlow
from bot.slack import views
from tests.fakes.slack_fake import wait_for
from tests.sender_accounts.conftest import (
    ALICE,
    ALICE_MAIL,
    browser,
    connect,
    connect_url,
    preview_as,
    sign_in,
)


def nothing_connected(mailbolt) -> None:
    store = mailbolt.deps.store
    assert store.senders.all() == []
    assert not any(e.action.startswith("account.") for e in store.audit.recent())


def test_a_replayed_callback_is_refused(slack, gmail_fake, mailbolt):
    session = browser(gmail_fake)
    page, callback = sign_in(session, connect_url(slack, ALICE), ALICE_MAIL)
    assert page.status_code == 200
    again = session.get(callback, allow_redirects=False)
    assert again.status_code == 400 and "already used" in again.text
    assert [a.address for a in mailbolt.deps.store.senders.all()] == [ALICE_MAIL]


def test_a_forged_state_stores_nothing(slack, gmail_fake, mailbolt):
    base = mailbolt.settings.public_base_url
    page = requests.get(f"{base}/oauth/google/callback?state=forged&code=4/abc", timeout=10)
    assert page.status_code == 400 and "did not start in mailbolt" in page.text
    assert "forged" not in page.text and "4/abc" not in page.text
    assert page.headers["Cache-Control"] == "no-store"
    nothing_connected(mailbolt)


def test_a_link_works_in_one_browser_only(slack, gmail_fake, mailbolt):
    link = connect_url(slack, ALICE)
    mine, other = browser(gmail_fake), browser(gmail_fake)
    start = mine.get(link, allow_redirects=False)
    assert start.status_code == 302 and "mailbolt_oauth" in start.headers["Set-Cookie"]
    assert "code_challenge=" in start.headers["Location"]
    assert "code_challenge_method=S256" in start.headers["Location"]
    second = other.get(link, allow_redirects=False)
    assert second.status_code == 400 and "already opened" in second.text
    consent = mine.get(start.headers["Location"], allow_redirects=False)
    stolen = other.get(consent.headers["Location"], allow_redirects=False)
    assert stolen.status_code == 400 and "different browser" in stolen.text
    nothing_connected(mailbolt)


def test_declining_on_googles_page_stores_nothing(slack, gmail_fake, mailbolt):
    gmail_fake.deny_consent = True
    page, _ = sign_in(browser(gmail_fake), connect_url(slack, ALICE), ALICE_MAIL)
    assert page.status_code == 400 and "did not grant access (access_denied)" in page.text
    nothing_connected(mailbolt)


def test_unticking_send_stores_nothing(slack, gmail_fake, mailbolt):
    gmail_fake.consent_scopes = {
        "openid",
        "https://www.googleapis.com/auth/userinfo.email",
    }
    page, _ = sign_in(browser(gmail_fake), connect_url(slack, ALICE), ALICE_MAIL)
    assert page.status_code == 400 and "gmail.send was not allowed" in page.text
    nothing_connected(mailbolt)


def test_an_expired_link_is_refused(mailbolt):
    wiring, started = mailbolt.wiring, 1_000_000.0
    state = senders.begin_connect(wiring.senders, wiring.seal, ALICE, "T0FAKE", started)
    flow = GoogleWebFlow(mailbolt.settings)
    late = started + senders.STATE_TTL_SECONDS + 1
    with pytest.raises(UserInputError, match="expired"):
        senders.open_link(wiring.senders, flow, wiring.seal, state, "cookie", late)
    nothing_connected(mailbolt)


def test_the_database_alone_holds_no_grant(slack, gmail_fake, mailbolt):
    connect(slack, gmail_fake, ALICE, ALICE_MAIL)
    preview = preview_as(slack, ALICE, ALICE_MAIL, "ann@example.com, bob@example.com")
    slack.submit_view(preview["id"], {}, user=ALICE)
    wait_for(lambda: len(gmail_fake.sent_by(ALICE_MAIL)) == 2, "the two messages")
    mailbolt.runner.wait_idle(30)
    database = Path(mailbolt.settings.database_path)
    stored = b"".join(
        p.read_bytes() for p in database.parent.glob(database.name + "*") if p.is_file()
    )
    secrets_given = [t for t in gmail_fake.issued_tokens() if t != gmail_fake.client_secret]
    assert any(t.startswith("1//") for t in secrets_given)  # a refresh token was issued
    assert any(t.startswith("ya29.") for t in secrets_given)  # and access tokens
    for secret in secrets_given:
        assert secret.encode() not in stored
    key = database.parent / "grant.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().strip() not in stored


def test_disconnect_on_app_home_revokes_at_google(slack, gmail_fake, mailbolt):
    connect(slack, gmail_fake, ALICE, ALICE_MAIL)
    connect_url(slack, ALICE)  # the Home tab, now listing the account
    reply = slack.click(views.A_DISCONNECT_GMAIL, user=ALICE, home=True)
    assert reply.status == 200
    mailbolt.settle()
    assert mailbolt.deps.store.senders.all() == []
    assert len(gmail_fake.revoked_by_request) == 1
    home = json.dumps(slack.home[ALICE])
    assert f"Disconnected {ALICE_MAIL}" in home and "revoked" in home
    actions = [e.action for e in mailbolt.deps.store.audit.recent()]
    assert actions[:2] == ["account.disconnected", "account.connected"]


def test_without_a_web_client_app_home_says_what_the_admin_sets_up(slack, mailbolt):
    Path(mailbolt.settings.google_web_client_secrets_file).unlink()
    slack.event({"type": "app_home_opened", "user": ALICE, "channel": "DU0ALICE", "tab": "home"})
    home = json.dumps(wait_for(lambda: slack.home.get(ALICE), "the Home tab"))
    assert views.A_CONNECT_GMAIL not in home
    assert "Web application" in home and "/oauth/google/callback" in home


def test_an_address_connected_by_someone_else_is_not_taken_over(slack, gmail_fake, mailbolt):
    connect(slack, gmail_fake, ALICE, ALICE_MAIL)
    page, _ = sign_in(browser(gmail_fake), connect_url(slack, "U0BOB"), ALICE_MAIL)
    assert page.status_code == 400 and "another person's account" in html.unescape(page.text)
    (account,) = mailbolt.deps.store.senders.all()
    assert account.owner == ALICE
    assert gmail_fake.revoked_by_request == []  # Alice's grant keeps working
