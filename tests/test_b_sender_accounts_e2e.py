"""Sender accounts end to end (issue 10): two Slack users each connect their own
Gmail through the Gmail fake's OAuth endpoints and send at the same time.

Everything real: signed Slack requests into Bolt in waitress, the web-server OAuth
flow with PKCE through a browser-like session (cookies, redirects), the Gmail
API through googleapiclient/httplib2 against the TLS fake, which keeps a quota
and a day per Google account.
"""

from __future__ import annotations

import email
import json
import socket
from email import policy
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from bot.records import SenderStatus
from bot.slack import views
from tests.fakes.gmail_fake import FakeGmail
from tests.fakes.slack_fake import SlackFake, compose_values, running_mailbolt, wait_for

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
ALICE_MAIL, BOB_MAIL = "alice@acme.example", "bob@acme.example"
STATUS = "C0STATUS"
VARS = "team=Acme\nstart_url=https://acme.example/start"
#: Ten sends a second per account: quick, and well above what one pacer would
#: allow two accounts together if they shared it.
UNITS_PER_MINUTE = 60_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def slack():
    with SlackFake() as fake:
        fake.add_user(ALICE, ALICE_MAIL, "Alice Able")
        fake.add_user(BOB, BOB_MAIL, "Bob Baker")
        fake.add_user(CAROL, "carol@acme.example", "Carol Cole")
        yield fake
        assert fake.problems == [], "Slack would have refused something we sent"


@pytest.fixture
def gmail_settings(settings, gmail_fake: FakeGmail, tmp_path: Path):
    """Gmail through the fake, a web OAuth client, and a public URL for the callback."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web_client = tmp_path / "web_client.json"
    web_client.write_text(json.dumps({"web": gmail_fake.client_secrets()["installed"]}))
    gmail_fake.web_redirect_uris.add(f"{base}/oauth/google/callback")
    gmail_fake.units_per_minute = UNITS_PER_MINUTE
    return (
        settings.replace(
            mail_transport="gmail",
            gmail_api_url=gmail_fake.api_url,
            google_token_uri=gmail_fake.token_uri,
            google_web_client_secrets_file=web_client,
            gmail_token_file=tmp_path / "no-token.json",
            gmail_quota_units_per_minute=UNITS_PER_MINUTE,
            public_base_url=base,
            allowed_slack_users=f"{ALICE},{BOB},{CAROL}",
        ),
        port,
    )


@pytest.fixture
def mailbolt(gmail_settings, slack):
    settings, port = gmail_settings
    with running_mailbolt(settings, slack, port=port) as running:
        yield running


def connect_url(slack: SlackFake, user: str) -> str:
    """Open App Home as ``user`` and read the "Connect your Gmail" link."""
    slack.home.pop(user, None)
    slack.event({"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home"})
    home = wait_for(lambda: slack.home.get(user), "the Home tab")
    for block in home["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == views.A_CONNECT_GMAIL:
                return element["url"]
    raise AssertionError(f"no Connect button in {json.dumps(home)}")


def browser(gmail: FakeGmail) -> requests.Session:
    session = requests.Session()
    session.verify = str(gmail.ca_file)
    return session


def sign_in(
    session: requests.Session, link: str, google_user: str
) -> tuple[requests.Response, str]:
    """Follow the link to Google's (fake) consent screen, sign in as ``google_user``,
    and come back; returns the final page and the callback URL used."""
    start = session.get(link, allow_redirects=False)
    assert start.status_code == 302, start.text
    consent = session.get(
        start.headers["Location"] + "&" + urlencode({"login_hint": google_user}),
        allow_redirects=False,
    )
    assert consent.status_code == 302, consent.text
    callback = consent.headers["Location"]
    return session.get(callback, allow_redirects=False), callback


def connect(slack: SlackFake, gmail: FakeGmail, user: str, google_user: str) -> None:
    page, _ = sign_in(browser(gmail), connect_url(slack, user), google_user)
    assert page.status_code == 200, page.text
    assert "Gmail connected" in page.text and google_user in page.text


def preview_as(slack: SlackFake, user: str, sender: str, paste: str) -> dict[str, Any]:
    slack.command("", user=user)
    compose = wait_for(lambda: slack.top_view(user), "the compose modal")
    reply = slack.submit_view(
        compose["id"],
        compose_values(paste=paste, variables=VARS, channel=STATUS, sender=sender),
        user=user,
    )
    assert reply.json.get("response_action") == "update", reply.json
    return wait_for(
        lambda: (v := slack.top_view(user)) and v["callback_id"] == views.CB_PREVIEW and v,
        "the preview",
    )


def addresses(n: int, who: str) -> str:
    return ", ".join(f"{who}{i}@example.com" for i in range(n))


def from_of(message) -> str:
    parsed = email.message_from_bytes(message.raw, policy=policy.default)
    return parsed["From"].addresses[0].addr_spec


def test_two_people_send_from_their_own_gmail_at_once(slack, gmail_fake, mailbolt):
    connect(slack, gmail_fake, ALICE, ALICE_MAIL)
    connect(slack, gmail_fake, BOB, BOB_MAIL)
    store = mailbolt.deps.store
    assert {a.address for a in store.senders.all()} == {ALICE_MAIL, BOB_MAIL}

    # Each sees only their own account in the From menu, and it is the default.
    slack.command("", user=ALICE)
    form = wait_for(lambda: slack.top_view(ALICE), "Alice's form")
    menu = next(b for b in form["blocks"] if b.get("block_id") == views.B_FROM)
    assert [o["value"] for o in menu["element"]["options"]] == [ALICE_MAIL]

    alice_preview = preview_as(slack, ALICE, ALICE_MAIL, addresses(20, "a"))
    text = json.dumps(alice_preview["blocks"])
    assert f"*From:* {ALICE_MAIL}" in text and "500 left today" in text
    bob_preview = preview_as(slack, BOB, BOB_MAIL, addresses(40, "b"))
    slack.submit_view(alice_preview["id"], {}, user=ALICE)
    slack.submit_view(bob_preview["id"], {}, user=BOB)

    # Bob's grant is revoked at Google while his campaign is under way.
    wait_for(lambda: len(gmail_fake.sent_by(BOB_MAIL)) >= 3, "Bob's first sends")
    gmail_fake.revoke(email=BOB_MAIL)

    mailbolt.runner.wait_idle(60)
    alice_id, bob_id = (c.id for c in sorted(store.campaigns.recent(), key=lambda c: c.id))
    alice, bob = store.campaigns.get(alice_id), store.campaigns.get(bob_id)
    assert (alice.account, bob.account) == (ALICE_MAIL, BOB_MAIL)
    assert alice.status == "completed" and store.outbox.counts(alice_id)["sent"] == 20
    assert bob.status == "paused" and "App Home" in (bob.paused_reason or "")
    bob_sent = store.outbox.counts(bob_id)["sent"]
    assert 3 <= bob_sent < 40 and store.outbox.counts(bob_id)["failed"] == 0

    # Every message left from its own account, each paced to its own quota.
    assert len(gmail_fake.sent_by(ALICE_MAIL)) == 20
    assert len(gmail_fake.sent_by(BOB_MAIL)) == bob_sent
    assert {from_of(m) for m in gmail_fake.sent_by(ALICE_MAIL)} == {ALICE_MAIL}
    assert {from_of(m) for m in gmail_fake.sent_by(BOB_MAIL)} == {BOB_MAIL}
    assert gmail_fake.too_many_requests == 0
    # Side by side, not one after the other.
    order = [m.account for m in gmail_fake.sent]
    assert order.index(BOB_MAIL) < len(order) - 1 - order[::-1].index(ALICE_MAIL)

    # Bob is told, where his campaign's status is, how to reconnect; only his account
    # is marked.
    paused = wait_for(
        lambda: next(
            (m for m in slack.messages_in(STATUS) if not m["thread_ts"] and "paused" in m["text"]),
            None,
        ),
        "Bob's paused status",
    )
    assert "Connect your Gmail" in json.dumps(paused["blocks"])
    assert store.senders.get(BOB_MAIL).status == SenderStatus.REVOKED
    assert store.senders.get(ALICE_MAIL).status == SenderStatus.ACTIVE

    # Reconnecting resumes his campaign where it stopped.
    connect(slack, gmail_fake, BOB, BOB_MAIL)
    wait_for(lambda: store.campaigns.get(bob_id).status == "completed", "Bob's campaign to end")
    assert len(gmail_fake.sent_by(BOB_MAIL)) == 40
    assert gmail_fake.too_many_requests == 0
    actions = [e.action for e in store.audit.recent(200)]
    assert actions.count("account.connected") == 2 and "account.reconnected" in actions
    assert "account.revoked" in actions
