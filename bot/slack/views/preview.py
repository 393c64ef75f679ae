"""The preview modal: what would be sent and what would not, before anything is
recorded, and its large-send confirmation.

Owns: ``PreviewData`` (kept with the draft, so the preview can be redrawn after a
test send) and how it is shown.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.slack.views.blocks import (
    A_EDIT,
    A_SEND_TEST,
    B_CONFIRM,
    CB_PREVIEW,
    CONFIRM_AT,
    MAX_SECTION_CHARS,
    OPT_CONFIRMED,
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
    value_of,
)
from bot.slack.views.schedule import when_blocks


def confirmed(values: Mapping[str, Any]) -> bool:
    """Whether the large-send confirmation box of the preview is ticked."""
    options = value_of(values, B_CONFIRM).get("selected_options") or []
    return any(o.get("value") == OPT_CONFIRMED for o in options)


@dataclass
class PreviewData:
    """Everything the preview shows; stored with the draft so it can be redrawn."""

    template: str
    category: str
    valid: int
    invalid: int
    duplicates: int
    suppressed: int
    deferred: int
    duration: str
    subject: str
    opening: str
    first_to: str
    transport: str
    dropped: str = ""
    no_email: str = ""
    sandbox_outbox: str = ""
    test_note: str = ""
    #: Where the status message will really go, in words (a channel the app is in,
    #: or the requester's direct messages and why).
    status_where: str = ""
    #: The account it is sent from, and that account's remaining daily budget.
    sender: str = ""
    sender_budget: str = ""
    #: People from Slack left out, counted by reason ("3 bot(s), 40 guest(s)").
    left_out: str = ""
    #: The attached files and who gets each, in words (empty: none).
    attachments: str = ""
    #: Why a second person must approve it first (empty: it is sent at once).
    approval: str = ""
    #: The person's Slack time zone (IANA), for "Send at …".
    zone: str = ""

    @property
    def needs_confirmation(self) -> bool:
        return self.valid >= CONFIRM_AT


def preview_view(
    data: PreviewData, *, metadata: Mapping[str, Any], now: float | None = None
) -> dict[str, Any]:
    """What would be sent, and what would not, before anything is recorded; and
    when: now, or at a time (``now`` picks the date offered)."""
    blocks = [*_summary(data), *_notices(data), *_first_message(data)]
    if data.test_note:
        blocks.append(context(escape(data.test_note)))
    blocks += when_blocks(data.zone, time.time() if now is None else now)
    if data.needs_confirmation:
        blocks.append(_confirmation(data))
    return modal(
        "Preview",
        blocks,
        callback_id=CB_PREVIEW,
        submit=_submit_label(data),
        close="Cancel",
        metadata=metadata,
    )


def _submit_label(data: PreviewData) -> str:
    """ "Request approval" when a second person must approve it, else "Send N"."""
    if data.approval:
        return "Request approval"
    return f"Send {data.valid:,}" if data.valid > 1 else "Send"


def _summary(data: PreviewData) -> list[dict[str, Any]]:
    """The template and the counts: who gets it, who is left out and why."""
    counts = [
        f"*Will send:* {data.valid:,}",
        f"*Invalid, left out:* {data.invalid:,}",
        f"*Duplicates, left out:* {data.duplicates:,}",
        f"*Unsubscribed or bounced:* {data.suppressed:,}",
        f"*Deferred by the daily limit:* {data.deferred:,}",
        f"*Estimated time:* {data.duration}",
    ]
    if data.sender:
        counts.insert(0, f"*From:* {escape(data.sender)} ({escape(data.sender_budget)})")
    return [
        header(f"{data.template} ({data.category})"),
        {"type": "section", "fields": [mrkdwn(c, 2000) for c in counts]},
    ]


def _notices(data: PreviewData) -> list[dict[str, Any]]:
    """What the sender should know before sending: sandbox, deferrals, where the
    status goes, and who was left out."""
    blocks = []
    if data.approval:
        blocks.append(
            section(
                f":lock: *Needs approval:* {escape(data.approval)}. Nothing is sent until "
                "another approver approves it; you are told when they decide."
            )
        )
    if data.transport == "sandbox":
        blocks.append(
            context(
                ":test_tube: *Sandbox mode:* messages are written as .eml files to "
                f"`{escape(data.sandbox_outbox)}`; nobody receives them."
            )
        )
    if data.deferred:
        blocks.append(
            section(
                f":hourglass: {data.deferred:,} message(s) go over the daily sending limit; "
                "they are sent automatically when the limit allows, within 24 hours."
            )
        )
    if data.status_where:
        blocks.append(context(f":satellite_antenna: Progress is posted in {data.status_where}."))
    if data.left_out:
        blocks.append(
            section(f":busts_in_silhouette: *From Slack, left out:* {escape(data.left_out)}.")
        )
    if data.no_email:
        blocks.append(section(f":bust_in_silhouette: Not included: {data.no_email}"))
    if data.dropped:
        blocks.append(section(f":scissors: Left out: {escape(data.dropped)}"))
    if data.attachments:
        blocks.append(
            section(clip(f":paperclip: Attached: {escape(data.attachments)}", MAX_SECTION_CHARS))
        )
    return blocks


def _first_message(data: PreviewData) -> list[dict[str, Any]]:
    """The first message as it would go out, and the test and edit buttons."""
    return [
        {"type": "divider"},
        section(f"*To:* {escape(data.first_to)}\n*Subject:* {escape(data.subject)}"),
        section(f">>> {escape(data.opening)}" if data.opening else "_(empty message)_"),
        {
            "type": "actions",
            "block_id": "preview_actions",
            "elements": [
                button("Send a test to me", A_SEND_TEST, "test"),
                button("Edit", A_EDIT, "edit"),
            ],
        },
    ]


def _confirmation(data: PreviewData) -> dict[str, Any]:
    """The box a large send needs ticked."""
    return input_block(
        B_CONFIRM,
        "Confirm a large send",
        {
            "type": "checkboxes",
            "options": [
                {"text": plain(f"Yes, send {data.valid:,} emails"), "value": OPT_CONFIRMED}
            ],
        },
        optional=False,
    )
