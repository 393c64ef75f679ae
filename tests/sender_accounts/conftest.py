"""Fixtures and steps shared by the sender-account tests (issue 10, part B):
mailbolt served for real with Gmail through the fake, a web OAuth client, a
public URL for Google's redirect, and a browser-like session that signs in.
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


def run_cli(argv: list[str], settings) -> int:
    """A ``python -m bot`` command in this process (the settings are the test's)."""
    from bot.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    return args.func(args, settings)


def write_token_file(settings, gmail: FakeGmail) -> None:
    """What ``python -m bot auth`` leaves behind: today's single grant."""
    from bot.mail.google_auth import EMAIL_SCOPE, OPENID_SCOPE, SEND_SCOPE

    path = Path(settings.gmail_token_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(gmail.grant([SEND_SCOPE, OPENID_SCOPE, EMAIL_SCOPE])))
    path.chmod(0o600)
