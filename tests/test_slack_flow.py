"""End to end through the real libraries: signed requests from the fake Slack
platform to the real Bolt app in waitress, whose real WebClient calls the fake
Web API, down to .eml files in the sandbox outbox.
"""

from __future__ import annotations

import email
import json
import threading
import time
from email import policy
from typing import Any

import pytest

from bot.errors import AuthError, PermanentSendError, UncertainSendError
from bot.mail.sandbox import SandboxTransport
from bot.models import OutgoingMessage
from bot.slack import views
from tests.fakes.slack_fake import (
    SlackFake,
    compose_values,
    confirm_values,
    running_mailbolt,
    wait_for,
)

OWNER, OTHER, STRANGER = "U0OWNER", "U0OTHER", "U0STRANGER"
STATUS = "C0STATUS"
VARS = "team=Acme\nstart_url=https://acme.example/start"


@pytest.fixture
def fake():
    with SlackFake() as slack:
        slack.add_user(OWNER, "owner@acme.example", "Olive Owner")
        slack.add_user(OTHER, "other@acme.example", "Otto Other")
        slack.add_user(STRANGER, "stranger@acme.example", "Sam Stranger")
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


@pytest.fixture
def allowed(settings):
    return settings.replace(allowed_slack_users=f"{OWNER},{OTHER}")


@pytest.fixture
def mailbolt(allowed, fake):
    with running_mailbolt(allowed, fake) as running:
        yield running


def open_compose(fake: SlackFake, user: str = OWNER, text: str = "") -> dict[str, Any]:
    reply, _ = fake.command(text, user=user)
    assert reply.status == 200 and reply.body == b""
    return wait_for(lambda: fake.top_view(user), "the compose modal")


def to_preview(fake: SlackFake, user: str = OWNER, **form: Any) -> dict[str, Any]:
    """Open the form, submit it, and wait for the preview (directly or after checking)."""
    compose = open_compose(fake, user)
    form.setdefault("variables", VARS)
    form.setdefault("channel", STATUS)
    reply = fake.submit_view(compose["id"], compose_values(**form), user=user)
    assert reply.json.get("response_action") == "update", reply.json
    return wait_for(
        lambda: (v := fake.top_view(user)) and v["callback_id"] == views.CB_PREVIEW and v,
        "the preview",
    )


def final_status(fake: SlackFake, word: str = "finished", channel: str = STATUS) -> dict:
    """The status message (not a thread reply) once its text says ``word``."""
    return wait_for(
        lambda: next(
            (m for m in fake.messages_in(channel) if not m["thread_ts"] and word in m["text"]),
            None,
        ),
        f"a status message that says {word!r}",
    )


def block_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def recipients_of(files) -> list[str]:
    return sorted(
        email.message_from_bytes(f.read_bytes(), policy=policy.default)["To"] for f in files
    )


# -- the whole flow ---------------------------------------------------------------------


def test_paste_to_delivered_messages_with_live_status(fake, mailbolt):
    preview = to_preview(fake, paste="ann@example.com, Bob Brown <bob@example.com>")
    text = block_text(preview["blocks"])
    assert "*Will send:* 2" in text
    assert "Welcome to Acme" in text  # the rendered subject
    assert "Sandbox mode" in text

    reply = fake.submit_view(preview["id"], {}, user=OWNER)
    assert reply.json["response_action"] == "update"
    assert "Starting" in block_text(reply.json["view"]["blocks"])

    done = final_status(fake)
    assert recipients_of(
        wait_for(lambda: len(mailbolt.eml_files()) == 2 and mailbolt.eml_files(), "2 .eml")
    ) == [
        "Bob Brown <bob@example.com>",
        "ann@example.com",
    ]
    shown = block_text(done["blocks"])
    assert "sent *2*" in shown and "failed *0*" in shown
    assert f"<@{OWNER}>" in shown and "welcome" in shown
    assert "campaign_cancel" not in shown  # no buttons on a clean finish
    row = mailbolt.deps.store.campaigns.recent()[0]
    assert (row.requested_by, row.team, row.status_channel) == (OWNER, "T0FAKE", STATUS)
    audit = mailbolt.deps.store.audit.recent()
    created = next(a for a in audit if a.action == "campaign.created")
    assert created.actor == OWNER and created.detail["team"] == "T0FAKE"


def test_csv_upload_is_downloaded_with_the_bot_token(fake, mailbolt):
    csv = b"email,name,team\nann@example.com,Ann,Red\nbob@example.com,Bob,Blue\n"
    upload = fake.add_file("people.csv", csv)
    compose = open_compose(fake)
    values = compose_values(
        files=[upload], variables="start_url=https://acme.example/s", channel=STATUS
    )
    reply = fake.submit_view(compose["id"], values, user=OWNER)
    assert reply.json["response_action"] == "update"
    assert "Checking" in block_text(reply.json["view"]["blocks"])  # answered at once

    preview = wait_for(
        lambda: fake.top_view(OWNER)["callback_id"] == views.CB_PREVIEW and fake.top_view(OWNER),
        "the preview after checking",
    )
    assert "*Will send:* 2" in block_text(preview["blocks"])
    assert "Welcome to Red, Ann" in block_text(preview["blocks"])
    assert fake.calls_to("file.download"), "the file was fetched"
    fake.submit_view(preview["id"], {}, user=OWNER)
    final_status(fake)
    subjects = sorted(
        email.message_from_bytes(f.read_bytes(), policy=policy.default)["Subject"]
        for f in mailbolt.eml_files()
    )
    assert subjects == ["Welcome to Blue, Bob!", "Welcome to Red, Ann!"]


def test_slack_people_without_an_email_are_reported(fake, mailbolt):
    fake.add_user("U0NOMAIL", None, "Nora Nomail")
    fake.add_user("U0WITH", "with@acme.example", "Wanda With")
    preview = to_preview(fake, people=["U0NOMAIL", "U0WITH"])
    text = block_text(preview["blocks"])
    assert "*Will send:* 1" in text
    assert "<@U0NOMAIL>" in text and "no email address visible" in text
    fake.submit_view(preview["id"], {}, user=OWNER)
    final_status(fake)
    assert recipients_of(mailbolt.eml_files()) == ["Wanda With <with@acme.example>"]


# -- inline errors -------------------------------------------------------------------------


def submit_compose(fake: SlackFake, **form: Any) -> dict[str, Any]:
    compose = open_compose(fake)
    form.setdefault("variables", VARS)
    reply = fake.submit_view(compose["id"], compose_values(**form), user=OWNER)
    return reply.json


def test_bad_line_in_paste_is_shown_on_the_recipients_field(fake, mailbolt):
    answer = submit_compose(fake, paste="ann@example.com\nbob@\ncarl@example.com")
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {views.B_RECIPIENTS}
    assert "line 2: 'bob@'" in answer["errors"][views.B_RECIPIENTS]
    assert not mailbolt.deps.store.campaigns.recent()


def test_many_bad_lines_are_summarized(fake, mailbolt):
    paste = "\n".join(f"broken{i}@" for i in range(40))
    message = submit_compose(fake, paste=paste)["errors"][views.B_RECIPIENTS]
    assert message.startswith("40 line(s) are not usable")
    assert "and 35 more" in message
    assert len(message) < 1000


def test_skip_invalid_sends_to_the_rest(fake, mailbolt):
    preview = to_preview(fake, paste="ann@example.com\nbob@", skip_invalid=True)
    text = block_text(preview["blocks"])
    assert "*Will send:* 1" in text and "*Invalid, left out:* 1" in text


def test_unknown_template_is_shown_on_the_template_field(fake, mailbolt):
    answer = submit_compose(fake, template="nope", paste="ann@example.com")
    assert "There is no template called 'nope'" in answer["errors"][views.B_TEMPLATE]


def test_missing_variable_is_shown_on_the_variables_field(fake, mailbolt):
    answer = submit_compose(fake, paste="ann@example.com", variables="team=Acme")
    assert set(answer["errors"]) == {views.B_VARIABLES}
    assert "'start_url'" in answer["errors"][views.B_VARIABLES]


def test_malformed_variable_line(fake, mailbolt):
    answer = submit_compose(fake, paste="ann@example.com", variables="team Acme")
    assert "line 1: 'team Acme' should look like name=value" in answer["errors"][views.B_VARIABLES]


@pytest.mark.parametrize("people", [[], [OTHER]], ids=["checked-at-once", "checked-later"])
def test_broken_subject_is_shown_on_the_subject_field(fake, mailbolt, people):
    answer = submit_compose(fake, paste="ann@example.com", people=people, subject="Hi {{ name")
    assert set(answer["errors"]) == {views.B_SUBJECT}
    assert "syntax error" in answer["errors"][views.B_SUBJECT]


def test_a_blocking_rule_is_shown_on_the_template_field(fake, allowed):
    with running_mailbolt(allowed.replace(postal_address=""), fake):
        answer = submit_compose(
            fake, template="newsletter", paste="ann@example.com", variables="headline=H\nbody=B"
        )
    assert "set POSTAL_ADDRESS" in answer["errors"][views.B_TEMPLATE]


def test_no_recipients_at_all(fake, mailbolt):
    answer = submit_compose(fake)
    assert "Add recipients" in answer["errors"][views.B_RECIPIENTS]


def test_a_spreadsheet_is_refused_on_the_csv_field_before_any_download(fake, mailbolt):
    upload = fake.add_file("people.xlsx", b"PK\x03\x04...", filetype="xlsx")
    answer = submit_compose(fake, files=[upload])
    assert "is not a CSV file" in answer["errors"][views.B_CSV]
    assert not fake.calls_to("file.download")


def test_bad_csv_content_sends_the_person_back_to_the_form(fake, mailbolt):
    upload = fake.add_file("people.csv", b"address,name\nann@example.com,Ann\n")
    answer = submit_compose(fake, files=[upload], paste="keep@example.com")
    assert answer["response_action"] == "update"  # "Checking…"
    form = wait_for(
        lambda: (v := fake.top_view(OWNER))["callback_id"] == views.CB_COMPOSE and v,
        "the form again",
    )
    blocks = form["blocks"]
    csv_at = next(i for i, b in enumerate(blocks) if b.get("block_id") == views.B_CSV)
    assert "has no email column" in blocks[csv_at + 1]["elements"][0]["text"]
    recipients = next(b for b in blocks if b.get("block_id") == views.B_RECIPIENTS)
    assert recipients["element"]["initial_value"] == "keep@example.com"  # nothing retyped


# -- who may send ---------------------------------------------------------------------------


def test_someone_not_allowed_gets_a_private_answer_and_no_form(fake, mailbolt):
    reply, _ = fake.command("", user=STRANGER)
    assert reply.json["response_type"] == "ephemeral"
    assert "ALLOWED_SLACK_USERS" in reply.json["text"] and STRANGER in reply.json["text"]
    mailbolt.settle()  # any listener the command started has finished
    assert not fake.calls_to("views.open")


def test_nobody_may_send_until_the_setting_is_made(fake, settings):
    with running_mailbolt(settings.replace(allowed_slack_users=""), fake) as running:
        reply, _ = fake.command("", user=OWNER)
        assert "Nobody may send email from Slack yet" in reply.json["text"]
        assert "ALLOWED_SLACK_USERS" in reply.json["text"]
        running.settle()
        assert not fake.calls_to("views.open")


# -- signatures and retries --------------------------------------------------------------------


def test_bad_and_stale_signatures_are_refused(fake, mailbolt):
    wrong, _ = fake.command("", user=OWNER, secret="not-the-secret")
    stale, _ = fake.command("", user=OWNER, timestamp=int(time.time()) - 301)
    assert (wrong.status, stale.status) == (401, 401)
    fresh, _ = fake.command("help", user=OWNER, timestamp=int(time.time()) - 200)
    assert fresh.status == 200
    mailbolt.settle()
    assert not fake.calls_to("views.open")


def test_a_retried_command_does_nothing_twice(fake, mailbolt):
    fake.command("", user=OWNER)
    wait_for(lambda: fake.calls_to("views.open"), "the first delivery's modal")
    retry, _ = fake.command("", user=OWNER, retry_num=1)
    assert retry.status == 200
    assert retry.headers.get("x-slack-no-retry") == "1"
    mailbolt.settle()
    assert len(fake.calls_to("views.open")) == 1


def test_double_submit_of_the_preview_starts_one_campaign(fake, mailbolt):
    preview = to_preview(fake, paste="ann@example.com, bob@example.com")
    first = fake.submit_view(preview["id"], {}, user=OWNER, apply=False)
    second = fake.submit_view(preview["id"], {}, user=OWNER)
    assert first.status == second.status == 200
    final_status(fake)
    mailbolt.runner.wait_idle(10)
    assert len(mailbolt.deps.store.campaigns.recent()) == 1
    assert len(mailbolt.eml_files()) == 2
    assert len(fake.messages_in(STATUS)) == 1


# -- buttons on the status message --------------------------------------------------------------


class GatedTransport(SandboxTransport):
    """The sandbox, but each send waits until the test lets it through."""

    max_in_flight = 1

    def __init__(self, outbox):
        super().__init__(outbox)
        self.gate = threading.Semaphore(0)

    def send(self, message: OutgoingMessage) -> str:
        assert self.gate.acquire(timeout=30), "the test never let this send through"
        return super().send(message)


class ScriptedTransport(SandboxTransport):
    """The sandbox, except that listed recipients first raise the given errors."""

    max_in_flight = 1

    def __init__(self, outbox, script: dict[str, list[Exception]]):
        super().__init__(outbox)
        self.script = script

    def send(self, message: OutgoingMessage) -> str:
        steps = self.script.get(message.recipient) or []
        if steps:
            raise steps.pop(0)
        return super().send(message)


def status_ref(fake: SlackFake) -> tuple[str, str]:
    message = wait_for(lambda: fake.messages_in(STATUS), "the status message")[0]
    return STATUS, message["ts"]


def test_cancel_button_stops_a_running_campaign(fake, allowed):
    transport = GatedTransport(allowed.sandbox_outbox)
    with running_mailbolt(allowed, fake, transport=transport) as running:
        preview = to_preview(fake, paste=", ".join(f"p{i}@example.com" for i in range(5)))
        fake.submit_view(preview["id"], {}, user=OWNER)
        transport.gate.release()
        wait_for(lambda: len(running.eml_files()) == 1, "the first message")
        where = status_ref(fake)
        wait_for(lambda: "campaign_cancel" in block_text(fake.messages[where]["blocks"]), "Cancel")

        denied = fake.click(views.A_CANCEL, user=STRANGER, message=where)
        assert denied.status == 200
        wait_for(lambda: fake.ephemerals, "the private refusal")
        assert "may not send email with mailbolt" in fake.ephemerals[0]["text"]
        assert STRANGER in fake.ephemerals[0]["text"]
        assert running.runner.is_active(running.deps.store.campaigns.recent()[0].id)

        fake.click(views.A_CANCEL, user=OWNER, message=where)
        wait_for(
            lambda: any("cancelled the campaign" in m["text"] for m in fake.messages_in(STATUS)),
            "the cancel to be confirmed in the thread",
        )
        transport.gate.release(10)  # the send already under way finishes; no other starts
        done = final_status(fake, "cancelled")
        counts = running.deps.store.outbox.counts(1)
        assert (counts["sent"], counts["skipped"]) == (2, 3)
        assert "campaign_cancel" not in block_text(done["blocks"])
        assert len(running.eml_files()) == counts["sent"]


def test_retry_failed_button(fake, allowed):
    transport = ScriptedTransport(
        allowed.sandbox_outbox, {"bob@example.com": [PermanentSendError("mailbox full")]}
    )
    with running_mailbolt(allowed, fake, transport=transport) as running:
        preview = to_preview(fake, paste="ann@example.com, bob@example.com")
        fake.submit_view(preview["id"], {}, user=OWNER)
        done = final_status(fake)
        assert "bob@example.com: mailbox full" in block_text(done["blocks"])
        fake.click(views.A_RETRY_FAILED, user=OTHER, message=status_ref(fake))
        wait_for(lambda: running.deps.store.outbox.counts(1)["sent"] == 2, "the retried message")
        wait_for(
            lambda: "failed *0*" in block_text(fake.messages[status_ref(fake)]["blocks"]),
            "the status to show no failures",
        )
        thread = [m for m in fake.messages_in(STATUS) if m["thread_ts"]]
        assert f"<@{OTHER}> queued 1 failed message(s) again." in thread[0]["text"]


def test_skip_uncertain_button(fake, allowed):
    transport = ScriptedTransport(
        allowed.sandbox_outbox, {"bob@example.com": [UncertainSendError("connection reset")]}
    )
    with running_mailbolt(allowed, fake, transport=transport) as running:
        preview = to_preview(fake, paste="ann@example.com, bob@example.com")
        fake.submit_view(preview["id"], {}, user=OWNER)
        done = final_status(fake, "needs a decision")  # not "finished": one is in doubt
        assert "1 uncertain" in block_text(done["blocks"])
        assert "uncertain *1*" in block_text(done["blocks"])
        fake.click(views.A_SKIP_UNCERTAIN, user=OWNER, message=status_ref(fake))
        wait_for(
            lambda: "skipped *1*" in block_text(fake.messages[status_ref(fake)]["blocks"]),
            "the status to show the skip",
        )
        final_status(fake)  # decided: now it is finished
        assert running.deps.store.outbox.counts(1)["uncertain"] == 0


def test_revoked_gmail_grant_says_who_must_do_what(fake, allowed):
    transport = ScriptedTransport(
        allowed.sandbox_outbox, {"ann@example.com": [AuthError("The grant was revoked.")]}
    )
    with running_mailbolt(allowed, fake, transport=transport):
        preview = to_preview(fake, paste="ann@example.com")
        fake.submit_view(preview["id"], {}, user=OWNER)
        done = final_status(fake, "paused")
        assert "python -m bot auth" in block_text(done["blocks"])


def test_rate_limited_status_update_is_retried(fake, mailbolt):
    fake.fail_next("chat.update", retry_after=1)
    preview = to_preview(fake, paste="ann@example.com")
    fake.submit_view(preview["id"], {}, user=OWNER)
    final_status(fake)
    statuses = [c.status for c in fake.calls_to("chat.update")]
    assert statuses[0] == 429 and 200 in statuses[1:]


def test_status_goes_to_the_requester_when_the_app_is_not_in_the_channel(fake, mailbolt):
    fake.non_member.add(STATUS)
    preview = to_preview(fake, paste="ann@example.com")
    fake.submit_view(preview["id"], {}, user=OWNER)
    done = final_status(fake, channel="D0OWNER")
    assert "/invite @mailbolt" in block_text(done["blocks"])


# -- the preview's own buttons and checks ----------------------------------------------


def test_send_a_test_to_me_goes_to_my_own_address_once(fake, mailbolt):
    preview = to_preview(fake, paste="ann@example.com, bob@example.com")
    fake.click(views.A_SEND_TEST, user=OWNER, view_id=preview["id"])
    updated = wait_for(
        lambda: (
            "Test sent to" in block_text(fake.views[preview["id"]]["blocks"])
            and fake.views[preview["id"]]
        ),
        "the test note",
    )
    assert "owner@acme.example" in block_text(updated["blocks"])
    assert recipients_of(mailbolt.eml_files()) == ["Olive Owner <owner@acme.example>"]
    assert mailbolt.deps.store.campaigns.recent() == []  # a test send, not a campaign

    fake.click(views.A_SEND_TEST, user=OWNER, view_id=preview["id"])
    wait_for(
        lambda: "already sent" in block_text(fake.views[preview["id"]]["blocks"]),
        "the second test to be refused",
    )
    assert len(mailbolt.eml_files()) == 1


def test_large_send_needs_the_confirmation_box(fake, mailbolt):
    paste = "\n".join(f"person{i}@example.com" for i in range(views.CONFIRM_AT))
    preview = to_preview(fake, paste=paste)
    refused = fake.submit_view(preview["id"], {}, user=OWNER)
    assert refused.json["response_action"] == "errors"
    assert views.B_CONFIRM in refused.json["errors"]
    assert not mailbolt.deps.store.campaigns.recent()
    fake.submit_view(preview["id"], confirm_values(), user=OWNER)
    final_status(fake)
    assert len(mailbolt.eml_files()) == views.CONFIRM_AT


def test_edit_goes_back_to_the_filled_in_form(fake, mailbolt):
    preview = to_preview(fake, paste="ann@example.com")
    fake.click(views.A_EDIT, user=OWNER, view_id=preview["id"])
    form = wait_for(
        lambda: (
            fake.views[preview["id"]]["callback_id"] == views.CB_COMPOSE
            and fake.views[preview["id"]]
        ),
        "the form",
    )
    paste = next(b for b in form["blocks"] if b.get("block_id") == views.B_RECIPIENTS)
    assert paste["element"]["initial_value"] == "ann@example.com"


def test_unsubscribed_addresses_are_counted_and_left_out_of_marketing(fake, mailbolt):
    mailbolt.deps.store.suppressions.add_unsubscribe("bob@example.com", "test")
    preview = to_preview(
        fake,
        template="newsletter",
        paste="ann@example.com, bob@example.com",
        variables="headline=News\nbody=Hello",
    )
    text = block_text(preview["blocks"])
    assert "*Will send:* 1" in text and "*Unsubscribed or bounced:* 1" in text


def test_nobody_left_after_unsubscribes_is_an_error_not_a_preview(fake, mailbolt):
    mailbolt.deps.store.suppressions.add_unsubscribe("ann@example.com", "test")
    answer = submit_compose(
        fake, template="newsletter", paste="ann@example.com", variables="headline=H\nbody=B"
    )
    assert "Nobody would get this" in answer["errors"][views.B_RECIPIENTS]
    assert "has unsubscribed" in answer["errors"][views.B_RECIPIENTS]


# -- a restart -------------------------------------------------------------------------------


def test_a_restart_resumes_the_campaign_in_its_existing_status_message(fake, allowed):
    first = GatedTransport(allowed.sandbox_outbox)
    with running_mailbolt(allowed, fake, transport=first) as running:
        preview = to_preview(fake, paste=", ".join(f"p{i}@example.com" for i in range(4)))
        fake.submit_view(preview["id"], {}, user=OWNER)
        first.gate.release()
        counts = running.deps.store.outbox.counts
        wait_for(lambda: counts(1)["sent"] == 1 and counts(1)["sending"] == 1, "a send under way")
        where = status_ref(fake)
        assert not running.runner.close(timeout=0.1)  # stopping, the send still under way
        first.gate.release()  # it finishes; nothing else starts
        halted = wait_for(
            lambda: "stopped" in fake.messages[where]["text"] and fake.messages[where],
            "the status message of the halted run",
        )
    assert "stopped, 2 of 4 sent" in halted["text"]
    assert "sending resumes when it starts again" in block_text(halted["blocks"])

    second = GatedTransport(allowed.sandbox_outbox)
    with running_mailbolt(allowed, fake, transport=second):
        wait_for(lambda: "sending, 2 of 4" in fake.messages[where]["text"], "the resumed run")
        second.gate.release(2)
        wait_for(lambda: "finished, 4 of 4 sent" in fake.messages[where]["text"], "the end")
    assert [m["ts"] for m in fake.messages_in(STATUS) if not m["thread_ts"]] == [where[1]]
