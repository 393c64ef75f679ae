"""Sender accounts end to end (issue 10): two Slack users each connect their own
Gmail through the Gmail fake's OAuth endpoints and send at the same time.

Everything real: signed Slack requests into Bolt in waitress, the web-server OAuth
flow with PKCE through a browser-like session (cookies, redirects), the Gmail
API through googleapiclient/httplib2 against the TLS fake, which keeps a quota
and a day per Google account.
"""

from __future__ import annotations

import json

from bot.records import SenderStatus
from bot.slack import views
from tests.fakes.slack_fake import wait_for
from tests.sender_accounts.conftest import (
    ALICE,
    ALICE_MAIL,
    BOB,
    BOB_MAIL,
    STATUS,
    addresses,
    connect,
    from_of,
    preview_as,
)


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
    by_sender = {c.requested_by: c for c in store.campaigns.recent()}
    alice, bob = by_sender[ALICE], by_sender[BOB]
    alice_id, bob_id = alice.id, bob.id
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
