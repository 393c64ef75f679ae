"""The approval request in APPROVAL_CHANNEL, its Reject and Preview modals, and
what the requester is told.

Pure builders like every view: the buttons carry only the campaign id, and
``bot.slack.approval`` checks everything about a click against the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.records import Approval, ApprovalDecision
from bot.slack.views.blocks import (
    MAX_MESSAGE_TEXT,
    MAX_SECTION_CHARS,
    button,
    clip,
    context,
    escape,
    header,
    input_block,
    modal,
    mrkdwn,
    plain,
    section,
    text_input,
    who,
)
from bot.slack.views.status import approval_line

A_APPROVE = "approval_approve"
A_REJECT = "approval_reject"
A_PREVIEW = "approval_preview"
A_TEST = "approval_test"
BUTTONS = (A_APPROVE, A_REJECT, A_PREVIEW, A_TEST)
CB_REJECT = "approval_reject_reason"
B_REASON = "reason"
ACTIONS_BLOCK = "approval_actions"
#: How much of the first message the request shows (Preview shows it all).
OPENING_CHARS = 600
MAX_REASON_CHARS = 1000


@dataclass(frozen=True)
class RequestData:
    """What an approval request shows."""

    campaign_id: int
    requested_by: str
    template: str
    category: str
    sender: str
    counts: str
    subject: str
    opening: str
    approval: Approval
    approvers: str = ""


def request_message(data: RequestData) -> tuple[str, list[dict[str, Any]]]:
    """The request: who asks, From, the counts, the subject, the opening, and the
    four buttons; after a decision, who decided instead of the buttons."""
    value = str(data.campaign_id)
    blocks: list[dict[str, Any]] = [
        header(f"Approval needed: campaign #{data.campaign_id}"),
        section(
            f"{who(data.requested_by)} asks to send *{escape(data.template)}* "
            f"({escape(data.category)})."
        ),
        {
            "type": "section",
            "fields": [
                mrkdwn(f"*From:* {escape(data.sender)}", 2000),
                mrkdwn(f"*To:* {escape(data.counts)}", 2000),
                mrkdwn(f"*Subject:* {escape(data.subject)}", 2000),
                mrkdwn(f"*Why:* {escape(data.approval.reason)}", 2000),
            ],
        },
        section(f">>> {escape(clip(data.opening, OPENING_CHARS))}" if data.opening else "(empty)"),
    ]
    decided = data.approval.decision != ApprovalDecision.PENDING
    if decided:
        blocks.append(section(approval_line(data.approval)))
    else:
        blocks.append(
            {
                "type": "actions",
                "block_id": ACTIONS_BLOCK,
                "elements": [
                    button("Approve", A_APPROVE, value, "primary"),
                    button("Reject", A_REJECT, value, "danger"),
                    button("Preview", A_PREVIEW, value),
                    button("Send me a test", A_TEST, value),
                ],
            }
        )
        if data.approvers:
            blocks.append(context(f"Approvers: {data.approvers}. Nobody approves their own."))
    state = data.approval.decision.value if decided else "waiting for approval"
    text = f"Campaign #{data.campaign_id} ({data.template}) by {data.requested_by}: {state}"
    return clip(text, MAX_MESSAGE_TEXT), blocks


#: Said where a campaign changed after its request: the decision is asked again.
CHANGED = (
    ":warning: The campaign changed after it was submitted for approval, so the "
    "approval does not count: a new request is posted."
)


def superseded_message(campaign_id: int) -> tuple[str, list[dict[str, Any]]]:
    """An old request, after the campaign changed: no buttons, and why."""
    return (
        f"Campaign #{campaign_id}: changed, a new request follows",
        [header(f"Approval needed: campaign #{campaign_id}"), section(CHANGED)],
    )


def reject_modal(campaign_id: int) -> dict[str, Any]:
    """Asks the approver why; the requester reads it."""
    return modal(
        "Reject campaign",
        [
            section(f"Reject campaign #{campaign_id}? Nothing of it is sent."),
            input_block(
                B_REASON,
                "Why (the requester reads this)",
                text_input(
                    "",
                    "e.g. the link in the second paragraph is wrong",
                    multiline=True,
                    max_length=MAX_REASON_CHARS,
                ),
                optional=False,
            ),
        ],
        callback_id=CB_REJECT,
        submit="Reject",
        metadata={"campaign": campaign_id},
    )


def preview_modal(campaign_id: int, to: str, subject: str, text: str) -> dict[str, Any]:
    """The whole first message, as its first recipient gets it (text part)."""
    chunks = [text[i : i + 2900] for i in range(0, len(text), 2900)] or [""]
    blocks = [
        section(f"*To:* {escape(to)}\n*Subject:* {escape(subject)}"),
        {"type": "divider"},
        *(
            {"type": "section", "text": plain(chunk or "(empty message)", MAX_SECTION_CHARS)}
            for chunk in chunks[:90]
        ),
    ]
    return modal(f"Campaign #{campaign_id}", blocks)


def decided_text(approval: Approval, template: str) -> str:
    """What the requester is told (a direct message)."""
    by = f"<@{approval.decided_by}>"
    what = f"Your campaign #{approval.campaign_id} ({escape(template)})"
    if approval.decision == ApprovalDecision.APPROVED:
        return f":white_check_mark: {what} was approved by {by}; it is being sent."
    if approval.decision == ApprovalDecision.WITHDRAWN:
        return f":leftwards_arrow_with_hook: {what}: {by} withdrew the request. Nothing was sent."
    return f":no_entry: {what} was rejected by {by}: {escape(approval.note)}. Nothing was sent."
