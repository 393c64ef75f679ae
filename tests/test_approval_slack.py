"""Approval by a second person, end to end: signed Slack requests into the real
Bolt app, the real WebClient against the Slack fake, the sandbox outbox."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from bot.records import ApprovalDecision, CampaignStatus
from bot.slack import views
from bot.slack.views import approval as approval_views
from tests.fakes.slack_fake import Mailbolt, SlackFake, compose_values, running_mailbolt, wait_for

OWNER, APPROVER, SECOND, STRANGER = "U0OWNER", "U0APPROVER", "U0SECOND", "U0STRANGER"
STATUS, APPROVALS = "C0STATUS", "C0APPROVALS"
VARS = "team=Acme\nstart_url=https://acme.example/start"
PEOPLE = "ann@example.com, bob@example.com, cy@example.com"


@pytest.fixture
def fake():
    with SlackFake() as slack:
        slack.add_user(OWNER, "owner@acme.example", "Olive Owner")
        slack.add_user(APPROVER, "approver@acme.example", "Alma Approver")
        slack.add_user(SECOND, "second@acme.example", "Sid Second")
        slack.add_user(STRANGER, "stranger@acme.example", "Sam Stranger")
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


@pytest.fixture
def approving(settings):
    """Every campaign needs approval; the requester is an approver too (who must
    still not approve their own)."""
    return settings.replace(
        allowed_slack_users=f"{OWNER},{APPROVER},{SECOND},{STRANGER}",
        approval_required="always",
        approvers=f"{OWNER},{APPROVER},{SECOND}",
        approval_channel=APPROVALS,
    )


@pytest.fixture
def mailbolt(approving, fake):
    with running_mailbolt(approving, fake) as running:
        yield running


def text_of(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def request_for_approval(
    fake: SlackFake, mailbolt: Mailbolt, user: str = OWNER, paste: str = PEOPLE
) -> dict:
    """Compose, preview ("Request approval"), submit; the request message posted."""
    before = len(_requests(fake))
    fake.command("", user=user)
    compose = wait_for(lambda: fake.top_view(user), "the compose modal")
    values = compose_values(paste=paste, variables=VARS, channel=STATUS)
    fake.submit_view(compose["id"], values, user=user)
    preview = wait_for(
        lambda: (v := fake.top_view(user)) and v["callback_id"] == views.CB_PREVIEW and v,
        "the preview",
    )
    assert preview["submit"]["text"] == "Request approval"
    assert "Needs approval:" in text_of(preview["blocks"])
    assert "APPROVAL_REQUIRED=always" in text_of(preview["blocks"])
    reply = fake.submit_view(preview["id"], {}, user=user)
    assert "Sent for approval" in reply.body.decode()
    request = wait_for(
        lambda: len(found := _requests(fake)) > before and found[-1], "the approval request"
    )
    # The message appears in Slack a moment before its place is recorded; a click in
    # between is told to press again (see test_a_click_before_the_request_is_recorded).
    store = mailbolt.deps.store
    wait_for(
        lambda: any(a.ts == request["ts"] for a in store.approvals.pending()),
        "the request's place recorded",
    )
    return request


def _requests(fake: SlackFake) -> list[dict]:
    return [m for m in fake.messages_in(APPROVALS) if not m["thread_ts"]]


def where(message: dict) -> tuple[str, str]:
    return message["channel"], message["ts"]


def dms_to(fake: SlackFake, user: str) -> list[str]:
    return [m["text"] for m in fake.messages_in(f"D{user[1:]}")]


def test_approved_by_a_second_person_then_sent(fake, mailbolt):
    request = request_for_approval(fake, mailbolt)
    store = mailbolt.deps.store
    campaign = store.campaigns.recent()[0]
    assert campaign.status == CampaignStatus.AWAITING_APPROVAL
    shown = text_of(request["blocks"])
    for expected in (
        f"<@{OWNER}>",
        "*From:*",
        "3 recipient(s)",
        "*Subject:* Welcome to Acme",
        "Get started",
    ):
        assert expected in shown, shown
    status = wait_for(
        lambda: next((m for m in fake.messages_in(STATUS) if not m["thread_ts"]), None),
        "the status message",
    )
    assert "waiting for approval" in text_of(status["blocks"])
    mailbolt.settle()
    assert mailbolt.eml_files() == []

    fake.click(approval_views.A_APPROVE, user=APPROVER, message=where(request))
    wait_for(lambda: len(mailbolt.eml_files()) == 3, "the three messages")
    mailbolt.runner.wait_idle(30)
    assert store.campaigns.get(campaign.id).status == CampaignStatus.COMPLETED
    decided = store.approvals.get(campaign.id)
    assert (decided.decision, decided.decided_by) == (ApprovalDecision.APPROVED, APPROVER)
    # Said everywhere: the request, the requester, the status message, the audit log.
    wait_for(
        lambda: f"Approved by <@{APPROVER}>" in text_of(fake.messages[where(request)]["blocks"]),
        "the request to say who approved",
    )
    assert approval_views.A_APPROVE not in text_of(fake.messages[where(request)]["blocks"])
    wait_for(lambda: any("approved by" in t for t in dms_to(fake, OWNER)), "the requester's DM")
    wait_for(
        lambda: f"Approved by <@{APPROVER}>" in text_of(fake.messages[where(status)]["blocks"]),
        "the status message to say who approved",
    )
    actions = [e.action for e in store.audit.recent(100, campaign_id=campaign.id)]
    for step in ("approval.requested", "approval.approved", "approval.released"):
        assert step in actions


def test_rejected_with_a_reason_and_nothing_is_sent(fake, mailbolt):
    request = request_for_approval(fake, mailbolt)
    store = mailbolt.deps.store
    campaign_id = store.campaigns.recent()[0].id
    fake.click(approval_views.A_REJECT, user=APPROVER, message=where(request))
    modal = wait_for(
        lambda: (
            (v := fake.top_view(APPROVER)) and v["callback_id"] == approval_views.CB_REJECT and v
        ),
        "the reason form",
    )
    empty = {approval_views.B_REASON: {views.ACTION: {"type": "plain_text_input", "value": None}}}
    refused = fake.submit_view(modal["id"], empty, user=APPROVER)
    assert refused.json["response_action"] == "errors"
    reason = {
        approval_views.B_REASON: {
            views.ACTION: {"type": "plain_text_input", "value": "wrong start link"}
        }
    }
    fake.submit_view(modal["id"], reason, user=APPROVER)
    wait_for(
        lambda: "Rejected by" in text_of(fake.messages[where(request)]["blocks"]),
        "the request to say it was rejected",
    )
    assert "wrong start link" in text_of(fake.messages[where(request)]["blocks"])
    wait_for(lambda: any("wrong start link" in t for t in dms_to(fake, OWNER)), "the DM")
    mailbolt.settle()
    mailbolt.runner.wait_idle(10)
    assert store.campaigns.get(campaign_id).status == CampaignStatus.CANCELLED
    assert store.outbox.counts(campaign_id)["skipped"] == 3
    assert mailbolt.eml_files() == []
    assert approval_views.A_APPROVE not in text_of(fake.messages[where(request)]["blocks"])
    actions = [e.action for e in store.audit.recent(100, campaign_id=campaign_id)]
    assert "approval.rejected" in actions and "approval.released" not in actions


def test_the_requester_cannot_approve_even_with_an_edited_payload(fake, mailbolt):
    store = mailbolt.deps.store
    other = request_for_approval(fake, mailbolt, user=SECOND, paste="zed@example.com")
    other_id = store.campaigns.recent()[0].id
    own = request_for_approval(fake, mailbolt, user=OWNER)
    own_id = store.campaigns.recent()[0].id
    assert own_id != other_id

    # The requester presses Approve on their own request: a signed, real request.
    fake.click(approval_views.A_APPROVE, user=OWNER, message=where(own))
    wait_for(lambda: fake.ephemerals, "the refusal")
    assert "Nobody approves their own" in fake.ephemerals[-1]["text"]
    # Pressing Approve on someone else's request, with the value edited to name
    # their own campaign.
    fake.click(approval_views.A_APPROVE, user=OWNER, message=where(other), value=str(own_id))
    wait_for(lambda: len(fake.ephemerals) >= 2, "the second refusal")
    assert "does not belong to campaign" in fake.ephemerals[-1]["text"]
    # Reject and a stranger (not an approver) are refused the same way.
    fake.click(approval_views.A_REJECT, user=OWNER, message=where(own))
    wait_for(lambda: len(fake.ephemerals) >= 3, "the third refusal")
    assert "Nobody approves their own" in fake.ephemerals[-1]["text"]
    fake.click(approval_views.A_APPROVE, user=STRANGER, message=where(own))
    wait_for(lambda: len(fake.ephemerals) >= 4, "the fourth refusal")
    assert "Only the approvers" in fake.ephemerals[-1]["text"]
    mailbolt.settle()
    for campaign_id in (own_id, other_id):
        assert store.campaigns.get(campaign_id).status == CampaignStatus.AWAITING_APPROVAL
        assert store.approvals.get(campaign_id).decision == ApprovalDecision.PENDING
    assert mailbolt.eml_files() == []
    assert fake.top_view(OWNER) is None or fake.top_view(OWNER)["callback_id"] != (
        approval_views.CB_REJECT
    )


def test_a_click_before_the_request_is_recorded_is_asked_again(fake, mailbolt):
    """Slack shows the request before chat.postMessage has answered with its place;
    a click in that moment is told to press again, and the next press counts."""
    answered = threading.Event()
    fake.hold_answers("chat.postMessage", answered)
    fake.command("", user=OWNER)
    compose = wait_for(lambda: fake.top_view(OWNER), "the compose modal")
    fake.submit_view(
        compose["id"], compose_values(paste=PEOPLE, variables=VARS, channel=STATUS), user=OWNER
    )
    preview = wait_for(
        lambda: (v := fake.top_view(OWNER)) and v["callback_id"] == views.CB_PREVIEW and v,
        "the preview",
    )
    fake.submit_view(preview["id"], {}, user=OWNER)
    request = wait_for(lambda: _requests(fake) and _requests(fake)[-1], "the request shown")
    fake.click(approval_views.A_APPROVE, user=APPROVER, message=where(request))
    wait_for(lambda: fake.ephemerals, "the answer to the early click")
    assert "still being posted; press again" in fake.ephemerals[-1]["text"]
    answered.set()
    store = mailbolt.deps.store
    wait_for(lambda: store.approvals.pending() and store.approvals.pending()[0].ts, "recorded")
    fake.click(approval_views.A_APPROVE, user=APPROVER, message=where(request))
    wait_for(lambda: len(mailbolt.eml_files()) == 3, "the three messages")


def test_two_approvers_at_once_approve_once(fake, mailbolt):
    request = request_for_approval(fake, mailbolt)
    fake.click(approval_views.A_APPROVE, user=APPROVER, message=where(request))
    fake.click(approval_views.A_APPROVE, user=SECOND, message=where(request))
    wait_for(lambda: len(mailbolt.eml_files()) == 3, "the three messages")
    mailbolt.settle()
    mailbolt.runner.wait_idle(30)
    store = mailbolt.deps.store
    campaign_id = store.campaigns.recent()[0].id
    actions = [e.action for e in store.audit.recent(100, campaign_id=campaign_id)]
    assert actions.count("approval.approved") == 1
    assert len(mailbolt.eml_files()) == 3
    assert "already approved" in fake.ephemerals[-1]["text"]


def test_preview_and_a_test_to_the_approver(fake, mailbolt):
    request = request_for_approval(fake, mailbolt)
    fake.click(approval_views.A_PREVIEW, user=APPROVER, message=where(request))
    shown = wait_for(
        lambda: (v := fake.top_view(APPROVER)) and "ann@example.com" in text_of(v["blocks"]) and v,
        "the preview modal, rendered",
    )
    assert "See you soon" in text_of(shown["blocks"])
    fake.click(approval_views.A_TEST, user=APPROVER, message=where(request))
    wait_for(lambda: fake.ephemerals, "the test's note")
    assert "sent to approver@acme.example" in fake.ephemerals[-1]["text"]
    files = mailbolt.eml_files()
    assert len(files) == 1 and b"[TEST]" in files[0].read_bytes()
    store = mailbolt.deps.store
    assert store.campaigns.recent()[0].status == CampaignStatus.AWAITING_APPROVAL


def test_a_restart_does_not_send_a_campaign_awaiting_approval(fake, approving):
    with running_mailbolt(approving, fake) as first:
        request_for_approval(fake, first)
        first.settle()
        campaign_id = first.deps.store.campaigns.recent()[0].id
    with running_mailbolt(approving, fake) as again:
        assert again.runner.start_due() == []
        handle = again.runner.start(campaign_id, resume=True)  # even if asked directly
        handle.wait(30)
        assert again.deps.store.campaigns.get(campaign_id).status == (
            CampaignStatus.AWAITING_APPROVAL
        )
        assert again.eml_files() == []


def test_a_user_group_of_approvers(fake, settings):
    fake.add_group("S0APPROVERS", "approvers", [APPROVER, OWNER])
    group = settings.replace(
        allowed_slack_users=f"{OWNER},{APPROVER},{STRANGER}",
        approval_required="always",
        approvers="S0APPROVERS",
        approval_channel=APPROVALS,
    )
    with running_mailbolt(group, fake) as mailbolt:
        request = request_for_approval(fake, mailbolt)
        fake.click(approval_views.A_APPROVE, user=STRANGER, message=where(request))
        wait_for(lambda: fake.ephemerals, "the stranger's refusal")
        assert "Only the approvers (<!subteam^S0APPROVERS>)" in fake.ephemerals[-1]["text"]
        fake.click(approval_views.A_APPROVE, user=OWNER, message=where(request))
        wait_for(lambda: len(fake.ephemerals) == 2, "the requester's refusal")
        assert "Nobody approves their own" in fake.ephemerals[-1]["text"]
        fake.click(approval_views.A_APPROVE, user=APPROVER, message=where(request))
        wait_for(lambda: len(mailbolt.eml_files()) == 3, "the three messages")


def test_a_request_slack_refuses_to_post_is_said_on_the_status_message(fake, mailbolt):
    fake.non_member.add(APPROVALS)
    fake.command("", user=OWNER)
    compose = wait_for(lambda: fake.top_view(OWNER), "the compose modal")
    fake.submit_view(compose["id"], compose_values(paste=PEOPLE, variables=VARS, channel=STATUS),
                     user=OWNER)  # fmt: skip
    preview = wait_for(
        lambda: (v := fake.top_view(OWNER)) and v["callback_id"] == views.CB_PREVIEW and v,
        "the preview",
    )
    fake.submit_view(preview["id"], {}, user=OWNER)
    note = wait_for(
        lambda: [m for m in fake.messages_in(STATUS) if m["thread_ts"]], "the thread's warning"
    )
    assert "could not be posted" in note[0]["text"] and "not_in_channel" in note[0]["text"]
    mailbolt.settle()
    assert mailbolt.eml_files() == []
    campaign = mailbolt.deps.store.campaigns.recent()[0]
    assert campaign.status == CampaignStatus.AWAITING_APPROVAL


def test_the_requester_withdraws_a_request_and_nothing_is_sent(fake, mailbolt):
    request = request_for_approval(fake, mailbolt)
    store = mailbolt.deps.store
    campaign_id = store.campaigns.recent()[0].id
    status = wait_for(
        lambda: next(
            (
                m
                for m in fake.messages_in(STATUS)
                if not m["thread_ts"] and "Withdraw request" in text_of(m["blocks"])
            ),
            None,
        ),
        "the status message with Withdraw request",
    )
    # Someone else may not take it back, even by pressing the button.
    fake.click(views.A_CANCEL, user=STRANGER, message=where(status))
    wait_for(lambda: fake.ephemerals, "the refusal")
    assert "Only the person who asked" in fake.ephemerals[-1]["text"]
    assert store.campaigns.get(campaign_id).status == CampaignStatus.AWAITING_APPROVAL

    fake.click(views.A_CANCEL, user=OWNER, message=where(status))
    wait_for(
        lambda: store.campaigns.get(campaign_id).status == CampaignStatus.CANCELLED,
        "the campaign to be cancelled",
    )
    wait_for(
        lambda: (
            f"Request withdrawn by <@{OWNER}>" in text_of(fake.messages[where(request)]["blocks"])
        ),
        "the request to say it was withdrawn",
    )
    assert approval_views.A_APPROVE not in text_of(fake.messages[where(request)]["blocks"])
    assert store.approvals.get(campaign_id).decision == ApprovalDecision.WITHDRAWN
    mailbolt.settle()
    assert mailbolt.eml_files() == []
    actions = [e.action for e in store.audit.recent(100, campaign_id=campaign_id)]
    assert "approval.withdrawn" in actions
