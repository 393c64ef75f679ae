"""Many workspaces: what one workspace's people see of Slack is that workspace's
own — its Home tab, its directory — and revoking the bot's token forgets it."""

from __future__ import annotations

import json

import pytest

from bot.slack import views
from tests.fakes.slack_fake import SlackFake, compose_values, wait_for
from tests.fakes.workspaces import TEAM_A, TEAM_B, USER_A, USER_B, two_workspaces

VARS = "team=Acme\nstart_url=https://acme.example/start"


@pytest.fixture
def fake():
    with SlackFake() as slack:
        yield slack


@pytest.fixture
def mailbolt(settings, fake):
    allowed = settings.replace(allowed_slack_users=f"{USER_A},{USER_B}")
    with two_workspaces(allowed, fake) as running:
        yield running


def _submit_people(fake: SlackFake, user: str, team: str, people: list[str]) -> dict:
    """Submit the compose form naming ``people``; the view once checking is done."""
    reply, _ = fake.command("", user=user, team=team)
    assert reply.status == 200
    compose = wait_for(lambda: fake.top_view(user), f"the compose modal of {user}")
    values = compose_values(people=people, variables=VARS)
    answer = fake.submit_view(compose["id"], values, user=user).json
    assert answer.get("response_action") == "update", answer
    return wait_for(
        lambda: (v := fake.top_view(user)) and "Checking" not in json.dumps(v) and v,
        "the checked form",
    )


def test_the_home_tab_is_published_in_each_workspace_with_its_token(fake, mailbolt):
    fake.event({"type": "app_home_opened", "user": USER_B, "tab": "home"}, team=TEAM_B)
    wait_for(lambda: USER_B in fake.home, "B's Home tab")
    (published,) = fake.calls_to("views.publish")
    assert published.team == TEAM_B


def test_one_workspaces_people_are_not_looked_up_in_another(fake, mailbolt):
    seen_in_a = _submit_people(fake, USER_A, TEAM_A, [USER_A])
    assert seen_in_a["callback_id"] == views.CB_PREVIEW  # A knows its own person
    # the same user ID given in B is asked of B's Slack, not answered from A's cache
    in_b = _submit_people(fake, USER_B, TEAM_B, [USER_A])
    assert in_b["callback_id"] != views.CB_PREVIEW
    assert "none of the people picked has a visible email address" in json.dumps(in_b)
    asked = [c for c in fake.calls_to("users.info") if c.args.get("user") == USER_A]
    assert [(c.team, c.error) for c in asked] == [(TEAM_A, ""), (TEAM_B, "user_not_found")]


def test_a_revoked_bot_token_forgets_the_workspace(fake, mailbolt):
    reply = fake.event({"type": "tokens_revoked", "tokens": {"bot": ["U0BOTBBB"]}}, team=TEAM_B)
    assert reply.status == 200
    assert [i.team for i in mailbolt.deps.store.installations.all()] == [TEAM_A]


def test_a_revoked_user_token_keeps_the_installation(fake, mailbolt):
    reply = fake.event({"type": "tokens_revoked", "tokens": {"oauth": ["U0B1"]}}, team=TEAM_B)
    assert reply.status == 200
    assert [i.team for i in mailbolt.deps.store.installations.all()] == [TEAM_A, TEAM_B]
