"""Issue 12, done when: two workspaces installed through the OAuth flow against the
Slack fake run campaigns at the same time, and their data stays apart.

Everything is real but Slack and the mail provider: "Add to Slack" through the
server's pages, signed requests of each workspace into the Bolt app, each answered
with its own bot token; the one-click unsubscribe link of a real sandbox message;
the store on SQLite.
"""

from __future__ import annotations

import email
import json
import re
import threading
from email import policy as email_policy
from typing import Any
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

import pytest

from bot.records import CampaignStatus
from bot.slack import views
from tests.fakes.slack_fake import Mailbolt, SlackFake, compose_values, wait_for
from tests.fakes.workspaces import TEAM_A, TEAM_B, USER_A, USER_B, two_workspaces

STATUS = "C0STATUS"  # a channel of that name in each workspace: two different channels
NEWS = "headline=Spring news\nbody=We shipped it."
BOTH = "ann@example.com, bob@example.com"


@pytest.fixture
def fake():
    with SlackFake() as slack:
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


@pytest.fixture
def mailbolt(settings, fake):
    allowed = settings.replace(allowed_slack_users=f"{USER_A},{USER_B}")
    with two_workspaces(allowed, fake) as running:
        yield running


def _preview(fake: SlackFake, user: str, team: str, paste: str) -> dict[str, Any]:
    """/sendmail, the newsletter to ``paste``, up to the preview."""
    shown = fake.top_view(user)
    old = shown["id"] if shown else None
    fake.command("", user=user, team=team)
    compose = wait_for(
        lambda: (v := fake.top_view(user)) and v["id"] != old and v, f"{user}'s compose form"
    )
    values = compose_values(template="newsletter", paste=paste, variables=NEWS, channel=STATUS)
    fake.submit_view(compose["id"], values, user=user)
    return wait_for(
        lambda: (v := fake.top_view(user)) and v["callback_id"] == views.CB_PREVIEW and v,
        f"{user}'s preview",
    )


def _send_both_at_once(fake: SlackFake, mailbolt: Mailbolt, paste_a: str, paste_b: str):
    """Both people press Send in the same moment; returns (A's campaign, B's)."""
    store = mailbolt.deps.store
    before = {c.id for c in store.campaigns.recent(50)}
    previews = {USER_A: _preview(fake, USER_A, TEAM_A, paste_a)}
    previews[USER_B] = _preview(fake, USER_B, TEAM_B, paste_b)
    go = threading.Barrier(2)

    def press(user: str) -> None:
        go.wait(10)
        fake.submit_view(previews[user]["id"], {}, user=user)

    pressing = [threading.Thread(target=press, args=(u,)) for u in previews]
    for thread in pressing:
        thread.start()
    for thread in pressing:
        thread.join(30)
    new = wait_for(
        lambda: len(n := [c for c in store.campaigns.recent(50) if c.id not in before]) == 2 and n,
        "both campaigns recorded",
    )
    by_team = {c.team: c.id for c in new}
    assert set(by_team) == {TEAM_A, TEAM_B}
    for campaign_id in by_team.values():
        wait_for(
            lambda cid=campaign_id: store.campaigns.get(cid).status == CampaignStatus.COMPLETED,
            f"campaign {campaign_id} to finish",
        )
    return by_team[TEAM_A], by_team[TEAM_B]


def _messages_of(mailbolt: Mailbolt, campaign_id: int) -> dict[str, email.message.Message]:
    """The sandbox's messages of one campaign, by recipient."""
    ids = {m.message_id: m.email for m in mailbolt.deps.store.outbox.messages(campaign_id)}
    found = {}
    for path in mailbolt.eml_files():
        msg = email.message_from_bytes(path.read_bytes(), policy=email_policy.default)
        if msg["Message-ID"] in ids:
            found[ids[msg["Message-ID"]]] = msg
    return found


def _one_click(mailbolt: Mailbolt, msg: email.message.Message) -> int:
    """What Gmail does when the reader presses Unsubscribe (RFC 8058)."""
    link = re.search(r"<(https?://[^>]+)>", str(msg["List-Unsubscribe"])).group(1)
    request = Request(
        mailbolt.server.url + urlsplit(link).path,
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    with urlopen(request, timeout=10) as response:
        return response.status


def _ask(fake: SlackFake, text: str, user: str, team: str) -> str:
    reply, _ = fake.command(text, user=user, team=team)
    assert reply.status == 200
    return reply.json["text"] + json.dumps(reply.json.get("blocks", []))


def test_two_workspaces_send_at_once_and_their_data_stays_apart(fake, mailbolt):
    store = mailbolt.deps.store
    # Ann and Bob are on both workspaces' lists; each workspace sends at once.
    a1, b1 = _send_both_at_once(fake, mailbolt, BOTH, BOTH)
    assert (
        set(_messages_of(mailbolt, a1))
        == set(_messages_of(mailbolt, b1))
        == {
            "ann@example.com",
            "bob@example.com",
        }
    )
    # Each status message is in its own workspace's channel, posted with its token.
    for team, campaign_id in ((TEAM_A, a1), (TEAM_B, b1)):
        mine = [m for m in fake.messages_in(STATUS, team=team) if not m["thread_ts"]]
        assert [f"#{campaign_id}" in m["text"] for m in mine] == [True], mine
    posted = fake.calls_to("chat.postMessage") + fake.calls_to("chat.update")
    assert posted and all(c.team in (TEAM_A, TEAM_B) and not c.error for c in posted)

    # Ann unsubscribes from A's newsletter: A's suppression, not B's.
    assert _one_click(mailbolt, _messages_of(mailbolt, a1)["ann@example.com"]) == 200
    s = store.suppressions
    assert s.unsubscribed_among(["ann@example.com"], TEAM_A) == {"ann@example.com"}
    assert s.unsubscribed_among(["ann@example.com"], TEAM_B) == set()
    a2, b2 = _send_both_at_once(fake, mailbolt, BOTH, BOTH)
    assert set(_messages_of(mailbolt, a2)) == {"bob@example.com"}
    assert set(_messages_of(mailbolt, b2)) == {"ann@example.com", "bob@example.com"}

    # A person of A cannot see or touch B's campaigns, whatever number they type.
    for command in (f"status {b1}", f"export {b1}", f"stats {b1}"):
        answer = _ask(fake, command, USER_A, TEAM_A)
        assert f"There is no campaign #{b1}." in answer, (command, answer)
        assert "Spring news" not in answer
    assert f"#{a1}" in _ask(fake, f"status {a1}", USER_A, TEAM_A)
    mine = _ask(fake, "status", USER_A, TEAM_A)
    assert f"#{a1}" in mine and f"#{a2}" in mine and f"#{b1}" not in mine and f"#{b2}" not in mine
    # A's Home tab lists A's campaigns only.
    fake.event({"type": "app_home_opened", "user": USER_A, "tab": "home"}, team=TEAM_A)
    home = json.dumps(wait_for(lambda: fake.home.get(USER_A), "A's Home tab"))
    assert f"#{a1}" in home and f"#{b1}" not in home and f"#{b2}" not in home

    # The records say whose they are.
    teams = {c.id: c.team for c in store.campaigns.recent(50)}
    assert teams == {a1: TEAM_A, a2: TEAM_A, b1: TEAM_B, b2: TEAM_B}
    audit_a = store.audit.recent(200, team=TEAM_A)
    assert audit_a and {e.team for e in audit_a} == {TEAM_A}
    assert {e.detail.get("campaign_id") for e in audit_a} - {None} == {a1, a2}
    audit_b = store.audit.recent(200, team=TEAM_B)
    assert {e.detail.get("campaign_id") for e in audit_b} - {None} == {b1, b2}
