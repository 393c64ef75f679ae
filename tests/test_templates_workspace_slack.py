"""Templates per workspace in Slack: two workspaces installed through "Add to Slack"
against the Slack fake, signed requests of each into the real server, the
templates folder holding ``T0AAA/`` (A's own ``welcome``, ``a_offer`` and layout)
and ``T0BBB/`` (``b_offer``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.records import CampaignStatus
from bot.slack import views
from tests.fakes.slack_fake import SlackFake, compose_values, wait_for
from tests.fakes.workspaces import USER_A, USER_B, two_workspaces
from tests.templates_workspace_folders import (
    A_LAYOUT,
    A_WELCOME,
    TEAM_A,
    TEAM_B,
    templates_with_workspaces,
)
from tests.test_workspaces_apart import STATUS, _messages_of

SHARED = {"welcome", "newsletter", "event_invitation"}


@pytest.fixture
def fake():
    with SlackFake() as slack:
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


@pytest.fixture
def mailbolt(settings, fake, tmp_path):
    allowed = settings.replace(
        allowed_slack_users=f"{USER_A},{USER_B}",
        templates_dir=templates_with_workspaces(tmp_path),
    )
    with two_workspaces(allowed, fake) as running:
        yield running


def _compose(fake: SlackFake, user: str, team: str, text: str = "") -> dict[str, Any]:
    shown = fake.top_view(user)
    old = shown["id"] if shown else None
    fake.command(text, user=user, team=team)
    return wait_for(
        lambda: (v := fake.top_view(user)) and v["id"] != old and v, f"{user}'s compose form"
    )


def _template_block(view: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id") == views.B_TEMPLATE)


def _menu(view: dict[str, Any]) -> set[str]:
    """The template menu's choices."""
    element = _template_block(view)["element"]
    return {o["value"] for o in element["options"]}


def _hint(view: dict[str, Any]) -> str:
    return _template_block(view)["hint"]["text"]


def _answer(fake: SlackFake, text: str, user: str, team: str) -> str:
    reply, _ = fake.command(text, user=user, team=team)
    assert reply.status == 200
    return reply.json.get("text", "") + json.dumps(reply.json.get("blocks", []))


def test_each_workspaces_form_menu_lists_the_shared_templates_and_its_own(fake, mailbolt):
    form_a, form_b = _compose(fake, USER_A, TEAM_A), _compose(fake, USER_B, TEAM_B)
    assert _menu(form_a) == SHARED | {"a_offer"}
    assert _menu(form_b) == SHARED | {"b_offer"}
    # The hint says what each needs: A's own welcome needs a headline, the shared one not.
    assert _hint(form_a).endswith("; welcome: headline") and "a_offer: headline" in _hint(form_a)
    assert "welcome: team, start_url" in _hint(form_b) and "a_offer" not in _hint(form_b)
    # /sendmail templates answers the same; /sendmail a_offer opens A's form only.
    assert "a_offer" in _answer(fake, "templates", USER_A, TEAM_A)
    listed_b = _answer(fake, "templates", USER_B, TEAM_B)
    assert "a_offer" not in listed_b and "b_offer" in listed_b
    assert "I don't know" in _answer(fake, "a_offer", USER_B, TEAM_B)
    assert _compose(fake, USER_A, TEAM_A, "a_offer")["callback_id"] == views.CB_COMPOSE
    # App Home's list of templates is the workspace's too.
    fake.event({"type": "app_home_opened", "user": USER_B, "tab": "home"}, team=TEAM_B)
    home = json.dumps(wait_for(lambda: fake.home.get(USER_B), "B's Home tab"))
    assert "b_offer" in home and "a_offer" not in home


def test_another_workspaces_template_by_an_edited_payload_is_unknown(fake, mailbolt):
    store = mailbolt.deps.store
    values = compose_values(
        template="a_offer", paste="ann@example.com", variables="headline=Hi", channel=STATUS
    )
    # In A, its own template is accepted (the preview follows, nothing recorded yet).
    form = _compose(fake, USER_A, TEAM_A)
    fake.submit_view(form["id"], values, user=USER_A)
    wait_for(lambda: fake.top_view(USER_A)["callback_id"] == views.CB_PREVIEW, "A's preview")
    # The same payload from B: as unknown as a template that does not exist.
    form = _compose(fake, USER_B, TEAM_B)
    answer = fake.submit_view(form["id"], values, user=USER_B).json
    assert answer["response_action"] == "errors"
    error = answer["errors"][views.B_TEMPLATE]
    assert error.startswith("There is no template called 'a_offer'. Available templates:")
    assert "a_offer" not in error.split("Available templates:")[1]
    mailbolt.settle()
    assert store.campaigns.recent(50) == []
    assert [e for e in store.audit.recent(100, team=TEAM_B) if e.detail.get("campaign_id")] == []
    assert mailbolt.eml_files() == []


def _send(fake: SlackFake, user: str, team: str, template: str, variables: str) -> None:
    form = _compose(fake, user, team)
    values = compose_values(
        template=template, paste="ann@example.com", variables=variables, channel=STATUS
    )
    fake.submit_view(form["id"], values, user=user)
    preview = wait_for(
        lambda: (v := fake.top_view(user)) and v["callback_id"] == views.CB_PREVIEW and v,
        f"{user}'s preview",
    )
    fake.submit_view(preview["id"], {}, user=user)


def test_a_campaign_of_a_renders_with_as_own_version_and_bs_with_the_shared(fake, mailbolt):
    store = mailbolt.deps.store
    _send(fake, USER_A, TEAM_A, "welcome", "headline=Hello A")
    _send(fake, USER_B, TEAM_B, "welcome", "team=Acme\nstart_url=https://acme.example/go")
    campaigns = wait_for(lambda: len(c := store.campaigns.recent(50)) == 2 and c, "two campaigns")
    by_team = {c.team: c.id for c in campaigns}
    for campaign_id in by_team.values():
        wait_for(
            lambda cid=campaign_id: store.campaigns.get(cid).status == CampaignStatus.COMPLETED,
            f"campaign {campaign_id} to finish",
        )
    a = _messages_of(mailbolt, by_team[TEAM_A])["ann@example.com"]
    b = _messages_of(mailbolt, by_team[TEAM_B])["ann@example.com"]
    a_html = a.get_body(("html",)).get_content()
    b_html = b.get_body(("html",)).get_content()
    assert a["Subject"] == "A welcome: Hello A"
    assert A_WELCOME in a_html and A_LAYOUT in a_html
    assert b["Subject"].startswith("Welcome to Acme")
    assert A_WELCOME not in b_html and A_LAYOUT not in b_html
