"""Slack says what is true (issue 8, item 12).

Each test goes through signed requests from the fake Slack platform into the real
Bolt app (see tests/test_slack_flow.py), down to the sandbox outbox and the store.
"""

from __future__ import annotations

import email
from email import policy
from typing import Any

from bot.errors import UncertainSendError
from bot.slack import views
from tests import test_slack_flow
from tests.fakes.slack_fake import SlackFake, compose_values, running_mailbolt, wait_for
from tests.test_slack_flow import (
    OTHER,
    OWNER,
    STATUS,
    GatedTransport,
    ScriptedTransport,
    block_text,
    final_status,
    status_ref,
    submit_compose,
    to_preview,
)

# The same Slack workspace, users and running app as the Slack flow tests.
fake = test_slack_flow.fake
allowed = test_slack_flow.allowed
mailbolt = test_slack_flow.mailbolt


def posted_texts(slack: SlackFake) -> list[str]:
    """The text of every status message version ever posted or edited."""
    return [
        c.args.get("text", "")
        for c in slack.calls
        if c.method in ("chat.postMessage", "chat.update") and c.status == 200 and not c.error
    ]


def test_a_campaign_with_nothing_ahead_never_says_it_waits_for_another(fake, mailbolt):
    preview = to_preview(fake, paste="ann@example.com, bob@example.com")
    fake.submit_view(preview["id"], {}, user=OWNER)
    final_status(fake)
    texts = posted_texts(fake)
    assert texts, "no status message was posted"
    assert not [t for t in texts if "waiting for" in t], texts


def test_a_card_number_in_the_values_is_reported_on_the_values_field(fake, mailbolt):
    answer = submit_compose(
        fake,
        paste="ann@example.com",
        variables="team=Acme 4111 1111 1111 1111\nstart_url=https://acme.example/start",
    )
    assert answer["response_action"] == "errors", answer
    assert set(answer["errors"]) == {views.B_VARIABLES}, answer["errors"]
    assert "values given for every recipient" in answer["errors"][views.B_VARIABLES]
    assert not mailbolt.deps.store.campaigns.recent()


def test_a_card_number_in_a_csv_row_stays_on_the_list(fake, mailbolt):
    upload = fake.add_file(
        "people.csv",
        b"email,name,team\nann@example.com,Ann,Acme 4111 1111 1111 1111\n",
    )
    compose = wait_for(
        lambda: fake.command("", user=OWNER) and fake.top_view(OWNER), "the compose modal"
    )
    fake.submit_view(
        compose["id"],
        compose_values(files=[upload], variables="start_url=https://acme.example/s"),
        user=OWNER,
    )
    shown = wait_for(
        lambda: "sensitive" in block_text(fake.top_view(OWNER)["blocks"]) and fake.top_view(OWNER),
        "the form again with the problem",
    )
    assert "sensitive data" in block_text(shown["blocks"])
    assert "the recipient list" in block_text(shown["blocks"])


def test_a_cancelled_campaign_shows_how_far_it_got(fake, allowed):
    transport = GatedTransport(allowed.sandbox_outbox)
    with running_mailbolt(allowed, fake, transport=transport) as running:
        preview = to_preview(fake, paste=", ".join(f"p{i}@example.com" for i in range(5)))
        fake.submit_view(preview["id"], {}, user=OWNER)
        transport.gate.release()
        wait_for(lambda: len(running.eml_files()) == 1, "the first message")
        where = status_ref(fake)
        wait_for(lambda: "campaign_cancel" in block_text(fake.messages[where]["blocks"]), "Cancel")
        fake.click(views.A_CANCEL, user=OWNER, message=where)
        wait_for(
            lambda: any("cancelled the campaign" in m["text"] for m in fake.messages_in(STATUS)),
            "the cancel",
        )
        transport.gate.release(10)
        done = final_status(fake, "cancelled")
        sent = running.deps.store.outbox.counts(1)["sent"]
    shown = block_text(done["blocks"])
    assert sent < 5
    assert f"{sent * 100 // 5}%" in shown, shown
    assert "100%" not in shown
    assert f"not sent (cancelled) *{5 - sent}*" in shown


def test_the_preview_says_the_status_goes_to_dms_when_the_app_is_not_in_the_channel(fake, mailbolt):
    fake.non_member.add(STATUS)
    preview = to_preview(fake, paste="ann@example.com")
    text = block_text(preview["blocks"])
    assert "your direct messages, because I am not in <#C0STATUS>" in text
    assert "Progress is posted in <#C0STATUS>." not in text
    reply = fake.submit_view(preview["id"], {}, user=OWNER)
    started = block_text(reply.json["view"]["blocks"])
    assert "your direct messages" in started and "posted in <#C0STATUS>." not in started
    final_status(fake, channel="D0OWNER")


def test_the_preview_names_the_channel_when_the_app_is_in_it(fake, mailbolt):
    preview = to_preview(fake, paste="ann@example.com")
    assert "Progress is posted in <#C0STATUS>." in block_text(preview["blocks"])


def test_membership_is_asked_once_not_on_every_preview(fake, mailbolt):
    """The question is asked inside Slack's 3-second answer: a second preview of the
    same channel must not call Slack again (a rate-limited call would sleep there)."""
    for user in (OWNER, OTHER):
        preview = to_preview(fake, user=user, paste="ann@example.com")
        assert "Progress is posted in <#C0STATUS>." in block_text(preview["blocks"])
    assert len(fake.calls_to("conversations.info")) == 1


def test_resending_uncertain_messages_keeps_to_the_daily_limit(fake, allowed):
    transport = ScriptedTransport(
        allowed.sandbox_outbox, {"bob@example.com": [UncertainSendError("connection reset")]}
    )
    with running_mailbolt(allowed, fake, transport=transport) as running:
        running.deps.policy.daily_limit = 2  # the day holds ann and bob's uncertain attempt
        preview = to_preview(fake, paste="ann@example.com, bob@example.com")
        fake.submit_view(preview["id"], {}, user=OWNER)
        done = final_status(fake, "needs a decision")
        assert "uncertain *1*" in block_text(done["blocks"])
        fake.click(views.A_RESEND_UNCERTAIN, user=OWNER, message=status_ref(fake))
        wait_for(
            lambda: "deferred *1*" in block_text(fake.messages[status_ref(fake)]["blocks"]),
            "bob to wait for the daily limit",
        )
        running.runner.wait_idle(10)
        bob = next(m for m in running.deps.store.outbox.messages(1) if m.email == "bob@example.com")
        assert bob.state == "deferred"
        assert len(running.eml_files()) == 1  # only ann's


def parsed(path) -> Any:
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


def test_a_test_send_is_the_previewed_message_marked_and_outside_campaigns(fake, mailbolt):
    preview = to_preview(fake, paste="Ann Archer <ann@example.com>, Bob Brown <bob@example.com>")
    assert "Ann Archer &lt;ann@example.com&gt;" in block_text(preview["blocks"])
    fake.click(views.A_SEND_TEST, user=OWNER, view_id=preview["id"])
    wait_for(
        lambda: "Test sent to" in block_text(fake.views[preview["id"]]["blocks"]),
        "the test note",
    )
    [sent] = mailbolt.eml_files()
    message = parsed(sent)
    assert message["To"] == "Olive Owner <owner@acme.example>"
    assert message["Subject"] == "[TEST] Welcome to Acme, Ann!"
    body = message.get_body(("plain",)).get_content()
    assert "Welcome to Acme, Ann!" in body  # the previewed recipient's values
    assert "Olive" not in body

    store = mailbolt.deps.store
    assert store.campaigns.recent() == []
    assert store.outbox.delivery_counts().sent == 0
    [test] = store.test_sends.recent()
    assert (test.email, test.state, test.account) == (
        "owner@acme.example",
        "sent",
        "sandbox",
    )
    assert store.quota.units_since(0, "sandbox") == 100
    assert store.outbox.sent_since(0, "sandbox") == 1
    assert "test.finished" in [a.action for a in store.audit.recent()]
