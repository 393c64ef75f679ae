"""Many workspaces: "Add to Slack" through the real server, and each workspace
answered with its own bot token (issue 12, part I)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from bot.slack import views
from tests.fakes.slack_fake import SlackFake, compose_values, wait_for
from tests.fakes.workspaces import (
    TEAM_A,
    TEAM_B,
    USER_A,
    USER_B,
    Browser,
    two_workspaces,
)

STATUS = "C0STATUS"
VARS = "team=Acme\nstart_url=https://acme.example/start"


@pytest.fixture
def fake():
    with SlackFake() as slack:
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


@pytest.fixture
def allowed(settings):
    return settings.replace(allowed_slack_users=f"{USER_A},{USER_B}")


@pytest.fixture
def mailbolt(allowed, fake):
    with two_workspaces(allowed, fake) as running:
        yield running


def test_two_workspaces_are_installed_through_the_browser(fake, mailbolt):
    installs = mailbolt.deps.store.installations.all()
    assert [i.team for i in installs] == [TEAM_A, TEAM_B]
    assert [i.installer for i in installs] == [USER_A, USER_B]
    authorize = fake.calls_to("oauth.authorize")
    assert {c.args["redirect_uri"] for c in authorize} == {
        f"{mailbolt.server.url}/slack/oauth_redirect"
    }
    assert "chat:write" in authorize[0].args["scope"].split(",")


def test_the_installed_page_says_so_and_the_token_is_not_in_the_database(fake, allowed):
    with two_workspaces(allowed, fake) as mailbolt:
        fake.consent_as(team="T0CCC", user="U0C1", name="Cyan Co")
        page = Browser().install(mailbolt)
        assert page.status == 200
        assert "mailbolt is installed in Cyan Co" in page.text
        tokens = [fake.token_of(t) for t in (TEAM_A, TEAM_B, "T0CCC")]
        assert all(tokens)
    raw = mailbolt.settings.database_path.read_bytes()
    wal = mailbolt.settings.database_path.with_name("sendmail.db-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    for token in tokens:
        assert token.encode() not in raw
    with sqlite3.connect(mailbolt.settings.database_path) as db:
        kept = [r[0] for r in db.execute("select sealed_bot_token from slack_installations")]
    assert len(kept) == 3 and not any(t in k for t in tokens for k in kept)


def _compose(fake: SlackFake, user: str, team: str) -> dict[str, Any]:
    reply, _ = fake.command("", user=user, team=team)
    assert reply.status == 200 and reply.body == b"", reply
    return wait_for(lambda: fake.top_view(user), f"the compose modal of {user}")


def test_each_workspace_is_answered_with_its_own_token(fake, mailbolt):
    view_a = _compose(fake, USER_A, TEAM_A)
    view_b = _compose(fake, USER_B, TEAM_B)
    assert (view_a["team_id"], view_b["team_id"]) == (TEAM_A, TEAM_B)
    opened = fake.calls_to("views.open")
    assert sorted(c.team for c in opened) == [TEAM_A, TEAM_B]
    assert all(c.status == 200 and not c.error for c in opened)


def test_a_campaign_of_workspace_b_reports_in_b_with_bs_token(fake, mailbolt):
    compose = _compose(fake, USER_B, TEAM_B)
    values = compose_values(paste="ann@example.com", variables=VARS, channel=STATUS)
    reply = fake.submit_view(compose["id"], values, user=USER_B)
    assert reply.json.get("response_action") == "update", reply.json
    preview = wait_for(
        lambda: (v := fake.top_view(USER_B)) and v["callback_id"] == views.CB_PREVIEW and v,
        "the preview",
    )
    fake.submit_view(preview["id"], {}, user=USER_B)
    done = wait_for(
        lambda: next(
            (m for m in fake.messages_in(STATUS) if "finished" in m["text"]),
            None,
        ),
        "the finished status message",
    )
    assert done["team"] == TEAM_B
    assert fake.messages_in(STATUS, team=TEAM_A) == []
    posted = fake.calls_to("chat.postMessage") + fake.calls_to("chat.update")
    assert posted and {c.team for c in posted} == {TEAM_B}
    (campaign,) = mailbolt.deps.store.campaigns.recent()
    assert campaign.team == TEAM_B


def test_a_workspace_that_is_not_installed_is_refused(fake, mailbolt):
    fake.add_user("U0Z1", "z@z.example", "Zed", team="T0ZZZ")
    reply, _ = fake.command("", user="U0Z1", team="T0ZZZ")
    mailbolt.settle()
    assert reply.status == 200 and reply.body == b""
    assert fake.calls_to("views.open") == []
    (told,) = fake.responses
    assert told["path"] == "/commands/T0ZZZ/response"
    assert "not installed in this workspace" in told["text"]


def test_uninstalling_forgets_the_token(fake, mailbolt):
    reply = fake.uninstall(TEAM_A)
    assert reply.status == 200
    assert [i.team for i in mailbolt.deps.store.installations.all()] == [TEAM_B]
    fake.command("", user=USER_A, team=TEAM_A)
    mailbolt.settle()
    assert fake.calls_to("views.open") == []
    assert "not installed in this workspace" in fake.responses[0]["text"]
    _compose(fake, USER_B, TEAM_B)  # the other workspace goes on


def test_a_workspaces_token_is_checked_once_not_on_every_request(fake, mailbolt):
    """Bolt would call auth.test before every request of a workspace: a Slack round
    trip inside each 3-second answer. The answer is kept per token."""
    _compose(fake, USER_A, TEAM_A)
    checks = [c for c in fake.calls_to("auth.test") if c.team == TEAM_A]
    assert checks  # the first request of the workspace checked its token
    for _ in range(3):
        reply = fake.command("help", user=USER_A, team=TEAM_A)[0]
        assert reply.status == 200 and "/sendmail status" in reply.json["text"]
    assert [c for c in fake.calls_to("auth.test") if c.team == TEAM_A] == checks
