"""Who may choose which From (issue 10): the menu offers only the accounts a person
may use, and the server checks the choice again on submission and at Send, so an
edited payload gets nowhere. Signed requests into the real server."""

from __future__ import annotations

import json

import pytest

from bot.slack import views
from tests.fakes.slack_fake import compose_values, running_mailbolt, wait_for
from tests.sender_accounts.conftest import (
    ALICE,
    ALICE_MAIL,
    BOB,
    BOB_MAIL,
    STATUS,
    VARS,
    connect,
    preview_as,
    run_cli,
    write_token_file,
)

TEAM_MAIL = "team@mailbolt.example"  # the account of `python -m bot auth` (the fake's)


@pytest.fixture
def shared(gmail_settings, slack, gmail_fake):
    """Today's token-file account, migrated as a shared one, then closed to all but Alice."""
    settings, port = gmail_settings
    write_token_file(settings, gmail_fake)
    assert (
        run_cli(
            ["accounts", "allow", "default", "--only", "--not-everyone", "--user", ALICE], settings
        )
        == 0
    )
    with running_mailbolt(settings, slack, port=port) as running:
        yield running


def menu_of(slack, user: str) -> list[str]:
    slack.command("", user=user)
    form = wait_for(lambda: slack.top_view(user), "the compose form")
    block = next((b for b in form["blocks"] if b.get("block_id") == views.B_FROM), None)
    return [o["value"] for o in block["element"]["options"]] if block else []


def test_the_menu_offers_ones_own_account_first_and_the_shared_ones_allowed(
    slack, gmail_fake, shared
):
    assert menu_of(slack, ALICE) == [TEAM_MAIL]
    connect(slack, gmail_fake, BOB, BOB_MAIL)
    assert menu_of(slack, BOB) == [BOB_MAIL]  # the team address is Alice's only


def test_an_edited_payload_cannot_choose_an_account_one_may_not_use(slack, gmail_fake, shared):
    connect(slack, gmail_fake, BOB, BOB_MAIL)
    connect(slack, gmail_fake, ALICE, ALICE_MAIL)
    for forbidden in (TEAM_MAIL, ALICE_MAIL, "nobody@acme.example"):
        slack.command("", user=BOB)
        form = wait_for(lambda: slack.top_view(BOB), "Bob's form")
        values = compose_values(
            paste="ann@example.com", variables=VARS, channel=STATUS, sender=forbidden
        )
        reply = slack.submit_view(form["id"], values, user=BOB)
        assert reply.json["response_action"] == "errors", reply.json
        problem = reply.json["errors"][views.B_FROM]
        assert f"You may not send from {forbidden}" in problem
    shared.settle()
    assert shared.deps.store.campaigns.recent() == []
    assert gmail_fake.sent == []


def test_access_taken_away_after_the_preview_stops_the_send(slack, gmail_fake, shared):
    preview = preview_as(slack, ALICE, TEAM_MAIL, "ann@example.com")
    assert f"*From:* {TEAM_MAIL}" in json.dumps(preview["blocks"])
    assert run_cli(["accounts", "allow", "default", "--only", "--user", BOB], shared.settings) == 0
    slack.submit_view(preview["id"], {}, user=ALICE)
    shared.settle()
    shown = json.dumps(slack.calls_to("views.update")[-1].args["view"])
    assert "Not sent" in shown and f"You may not send from {TEAM_MAIL}" in shown
    assert shared.deps.store.campaigns.recent() == []
    assert gmail_fake.sent == []


def test_the_default_account_still_sends_for_everyone_allowed(gmail_settings, slack, gmail_fake):
    """Migrated without a new consent: open to everyone who may send, as before."""
    settings, port = gmail_settings
    write_token_file(settings, gmail_fake)
    with running_mailbolt(settings, slack, port=port) as running:
        preview = preview_as(slack, BOB, TEAM_MAIL, "ann@example.com")
        slack.submit_view(preview["id"], {}, user=BOB)
        running.settle()
        wait_for(lambda: len(gmail_fake.sent) == 1, "the message")
        account = running.deps.store.senders.get(TEAM_MAIL)
        assert (account.kind, account.everyone, account.sealed_grant) == ("shared", True, "")


def test_sendmail_accounts_lists_what_one_may_use_and_admins_see_all(
    gmail_settings, slack, gmail_fake
):
    settings, port = gmail_settings
    write_token_file(settings, gmail_fake)
    settings = settings.replace(admin_slack_users=BOB)
    assert (
        run_cli(
            ["accounts", "allow", "default", "--only", "--not-everyone", "--user", ALICE], settings
        )
        == 0
    )
    with running_mailbolt(settings, slack, port=port):
        alice, _ = slack.command("accounts", user=ALICE)
        text = alice.json["text"]
        assert "You may send from" in text and TEAM_MAIL in text and "500 left today" in text
        assert "Every account" not in text
        bob, _ = slack.command("accounts", user=BOB)
        text = bob.json["text"]
        assert "You have no account to send from yet" in text
        assert f"default <{TEAM_MAIL}>: shared, active, used by U0ALICE" in text.replace(
            "&lt;", "<"
        ).replace("&gt;", ">")
