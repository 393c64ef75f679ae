"""Sender accounts are per workspace (issue 12): "Connect your Gmail" records the
workspace it was started in (carried by the OAuth state), and an account of
another workspace is never offered, accepted from an edited payload, listed, or
disconnected. Signed requests into the real server, Gmail through its fake."""

from __future__ import annotations

import dataclasses
import json

from bot.slack import views
from tests.fakes.slack_fake import TEAM, compose_values, wait_for
from tests.sender_accounts.conftest import (  # noqa: F401 (fixtures)
    BOB,
    BOB_MAIL,
    STATUS,
    VARS,
    connect,
    gmail_settings,
    mailbolt,
    slack,
)

OTHER_TEAM = "T0OTHER"


def test_an_account_of_another_workspace_is_out_of_reach(slack, gmail_fake, mailbolt):  # noqa: F811
    connect(slack, gmail_fake, BOB, BOB_MAIL)
    store = mailbolt.deps.store
    account = store.senders.get(BOB_MAIL)
    assert account is not None and account.team == TEAM  # from the OAuth state
    slack.home.pop(BOB, None)
    slack.event({"type": "app_home_opened", "user": BOB, "channel": f"D{BOB}", "tab": "home"})
    assert BOB_MAIL in json.dumps(wait_for(lambda: slack.home.get(BOB), "Bob's Home tab"))
    # Now it is another workspace's (as if connected there by the same person id).
    store.senders.save(
        dataclasses.replace(account, team=OTHER_TEAM), actor=BOB, action="account.reconnected"
    )

    slack.command("", user=BOB)
    form = wait_for(lambda: slack.top_view(BOB), "Bob's form")
    assert BOB_MAIL not in json.dumps(form)
    values = compose_values(
        paste="ann@example.com", variables=VARS, channel=STATUS, sender=BOB_MAIL
    )
    reply = slack.submit_view(form["id"], values, user=BOB)
    assert reply.json["response_action"] == "errors", reply.json
    assert f"You may not send from {BOB_MAIL}: it is not connected" in json.dumps(reply.json)

    listed, _ = slack.command("accounts", user=BOB)
    assert BOB_MAIL not in json.dumps(listed.json)

    slack.click(views.A_DISCONNECT_GMAIL, user=BOB, home=True, value=BOB_MAIL)
    home = wait_for(
        lambda: (h := slack.home.get(BOB)) and "no connected account" in json.dumps(h) and h,
        "the refusal on the Home tab",
    )
    assert BOB_MAIL in json.dumps(home)  # named in the refusal only
    mailbolt.settle()
    assert store.senders.get(BOB_MAIL) is not None
    assert store.campaigns.recent() == [] and gmail_fake.sent == []
