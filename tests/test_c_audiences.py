"""Slack audiences in the compose form: user groups and channel members, through the
real server and the real Slack client against the loopback Slack fake (which pages
members and answers 429 past each method's rate tier)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from bot.cli import serve_cmds
from bot.slack import views
from bot.slack.app import build_client
from tests.fakes.slack_fake import (
    DEFAULT_SCOPES,
    SlackFake,
    compose_values,
    confirm_values,
    running_mailbolt,
    wait_for,
)

OWNER = "U0OWNER"
STATUS = "C0STATUS"
BIG = "C0BIG"
DESIGN = "S0DESIGN"
VARS = "team=Acme\nstart_url=https://acme.example/start"
MEMBERS = 2000


def member_id(n: int) -> str:
    return f"U{n:06d}"


def kind_of(n: int) -> str:
    """Who member ``n`` is: most are mailable; some are bots, deactivated, guests or hidden."""
    if n % 100 == 0:
        return "bot"
    if n % 100 == 1:
        return "deactivated"
    if n % 50 == 2:
        return "guest"
    if n % 100 == 3:
        return "hidden"
    return "person"


def add_member(fake: SlackFake, n: int) -> None:
    kind = kind_of(n)
    extra: dict[str, Any] = {
        "is_bot": kind == "bot",
        "deleted": kind == "deactivated",
        "is_restricted": kind == "guest",
    }
    email = None if kind == "hidden" else f"person{n}@acme.example"
    fake.add_user(member_id(n), email, f"Person {n}", **extra)


#: The channel: members 1..2000. The group: 20 of them, and 10 people only in it.
CHANNEL_MEMBERS = range(1, MEMBERS + 1)
GROUP_MEMBERS = [*range(1, 21), *range(5001, 5011)]


def expected(include_guests: bool) -> dict[str, int]:
    everyone = [*CHANNEL_MEMBERS, *range(5001, 5011)]
    counts = {"bot": 0, "deactivated": 0, "guest": 0, "hidden": 0, "person": 0}
    for n in everyone:
        counts[kind_of(n)] += 1
    if include_guests:
        counts["person"] += counts.pop("guest")
    return counts


@pytest.fixture
def fake():
    with SlackFake(rate_tiers=True) as slack:
        slack.add_user(OWNER, "owner@acme.example", "Olive Owner")
        for n in [*CHANNEL_MEMBERS, *range(5001, 5011)]:
            add_member(slack, n)
        for n in range(9001, 9101):  # people in neither audience
            slack.add_user(member_id(n), f"other{n}@acme.example", f"Other {n}")
        slack.add_channel(BIG, [member_id(n) for n in CHANNEL_MEMBERS])
        slack.add_group(DESIGN, "design-team", [member_id(n) for n in GROUP_MEMBERS], "Design")
        slack.add_group("S0OPS", "ops", [member_id(9001)], "Operations")
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


@pytest.fixture
def mailbolt(settings, fake):
    allowed = settings.replace(allowed_slack_users=OWNER, max_recipients_per_campaign=5000)
    with running_mailbolt(allowed, fake) as running:
        yield running


def open_compose(fake: SlackFake) -> dict[str, Any]:
    reply, _ = fake.command("", user=OWNER)
    assert reply.status == 200
    return wait_for(lambda: fake.top_view(OWNER), "the compose modal")


def the_preview(fake: SlackFake) -> dict[str, Any]:
    return wait_for(
        lambda: (v := fake.top_view(OWNER)) and v["callback_id"] == views.CB_PREVIEW and v,
        "the preview",
    )


def text_of(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def test_a_group_and_a_2000_member_channel_preview_with_the_left_out_counted(fake, mailbolt):
    compose = open_compose(fake)
    shown = text_of(compose)
    assert views.B_GROUPS in shown and views.B_CHANNELS in shown

    held = threading.Event()
    fake.gate("conversations.members", held)
    values = compose_values(
        template="welcome",
        variables=VARS,
        channel=STATUS,
        paste="person5@acme.example",  # also in the channel: one recipient
        groups=[(DESIGN, "@design-team")],
        channels=[BIG],
    )
    reply = fake.submit_view(compose["id"], values, user=OWNER)
    # The answer came while Slack's member list was still held back.
    assert not held.is_set()
    assert reply.json["response_action"] == "update"
    assert "Checking" in text_of(reply.json["view"])
    assert "members of 2 group(s) and channel(s)" in text_of(reply.json["view"])
    held.set()

    preview = the_preview(fake)
    counts = expected(include_guests=False)
    text = text_of(preview)
    assert f"*Will send:* {counts['person']:,}" in text
    assert "*Duplicates, left out:* 1" in text
    assert (
        f"{counts['bot']} bot(s), {counts['deactivated']} deactivated account(s), "
        f"{counts['guest']} guest(s), {counts['hidden']} without a visible email address"
    ) in text

    # Within Slack's limits: paged, no 429, and not one users.info per member.
    assert [c for c in fake.calls if c.status == 429] == []
    assert len(fake.calls_to("conversations.members")) >= MEMBERS // 200
    assert len(fake.calls_to("users.list")) <= 12
    assert len(fake.calls_to("users.info")) < 50
    assert len(fake.calls_to("usergroups.users.list")) == 1

    reply = fake.submit_view(preview["id"], confirm_values(), user=OWNER)
    assert reply.json["response_action"] == "update"
    campaign = wait_for(lambda: mailbolt.deps.store.campaigns.recent(), "the campaign")[0]
    assert campaign.total == counts["person"]


def test_guests_are_included_when_the_sender_ticks_the_box(fake, mailbolt):
    compose = open_compose(fake)
    values = compose_values(
        template="welcome",
        variables=VARS,
        channel=STATUS,
        groups=[(DESIGN, "@design-team")],
        channels=[BIG],
        include_guests=True,
    )
    fake.submit_view(compose["id"], values, user=OWNER)
    text = text_of(the_preview(fake))
    counts = expected(include_guests=True)
    assert f"*Will send:* {counts['person']:,}" in text
    assert "guest(s)" not in text


def test_a_private_channel_the_app_is_not_in_is_explained_on_its_field(fake, mailbolt):
    compose = open_compose(fake)
    values = compose_values(
        template="welcome", variables=VARS, channel=STATUS, channels=["G0SECRET"]
    )
    fake.submit_view(compose["id"], values, user=OWNER)
    form = wait_for(
        lambda: (
            (v := fake.top_view(OWNER))
            and v["callback_id"] == views.CB_COMPOSE
            and "channel_not_found" in text_of(v)
            and v
        ),
        "the form with the problem",
    )
    blocks = form["blocks"]
    at = next(i for i, b in enumerate(blocks) if b.get("block_id") == views.B_CHANNELS)
    assert "invite me first" in json.dumps(blocks[at + 1])


def test_the_group_menu_offers_matching_groups(fake, mailbolt):
    compose = open_compose(fake)
    reply = fake.suggest(views.A_GROUPS, "desi", user=OWNER, view_id=compose["id"])
    assert reply.status == 200
    assert [o["value"] for o in reply.json["options"]] == [DESIGN]
    assert reply.json["options"][0]["text"]["text"].startswith("@design-team")
    everything = fake.suggest(views.A_GROUPS, "", user=OWNER, view_id=compose["id"])
    assert {o["value"] for o in everything.json["options"]} == {DESIGN, "S0OPS"}
    assert len(fake.calls_to("usergroups.list")) == 1  # reused, not asked per keystroke


def test_serve_names_the_audience_and_export_scopes_when_missing(settings):
    scopes = ",".join(
        s for s in DEFAULT_SCOPES.split(",") if s not in ("usergroups:read", "files:write")
    )
    with SlackFake(scopes=scopes) as fake:
        client = build_client(
            settings.replace(slack_bot_token=fake.bot_token, slack_api_url=fake.api_url)
        )
        [line] = serve_cmds.check_slack(client)
    assert "usergroups:read, files:write" in line


def test_the_audience_fields_read_back_and_prefill_the_form_again():
    values = compose_values(
        template="welcome",
        groups=[(DESIGN, "@design-team (Design)")],
        channels=[BIG],
        include_guests=True,
    )
    form = views.read_compose(values)
    assert form.groups == [{"value": DESIGN, "text": "@design-team (Design)"}]
    assert (form.channels, form.include_guests) == ([BIG], True)
    again = views.ComposeForm(**form.to_dict())
    view = views.compose_view([], form=again, metadata={})
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert blocks[views.B_GROUPS]["element"]["initial_options"][0]["value"] == DESIGN
    assert blocks[views.B_CHANNELS]["element"]["initial_conversations"] == [BIG]
    assert blocks[views.B_GUESTS]["element"]["initial_options"]
