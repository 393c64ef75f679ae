"""The status message a campaign posts in its channel and keeps up to date.

Owns: how a campaign's state reads (``state_line``), its counts and progress bar,
the notes under them, and which buttons it offers (``campaign_actions`` handles
them). States come from ``bot.records``' enums, never bare strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.handlers.display import display_state
from bot.handlers.senders import RECONNECT
from bot.handlers.stats import DeliveryStats
from bot.records import Approval, ApprovalDecision, CampaignStatus, MessageState
from bot.slack.views.blocks import (
    A_CANCEL,
    A_RESEND_UNCERTAIN,
    A_RETRY_FAILED,
    A_SKIP_UNCERTAIN,
    MAX_MESSAGE_TEXT,
    button,
    clip,
    context,
    escape,
    progress_bar,
    section,
    when,
    who,
)
from bot.slack.views.notices import delivery_line
from bot.slack.views.schedule import schedule_buttons

FINISHED = (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED)


@dataclass
class StatusData:
    """One campaign as the status message shows it."""

    campaign_id: int
    requested_by: str
    template: str
    status: str
    counts: Mapping[str, int]
    total: int
    reason: str = ""
    resume_at: float | None = None
    failures: Sequence[tuple[str, str]] = ()
    active: bool = False
    queued: bool = False
    #: The campaign this one waits for, when it is queued behind another.
    waiting_for: int | None = None
    #: Messages skipped because the campaign was cancelled (not sent, not done).
    cancelled: int = 0
    note: str = ""
    delivery: DeliveryStats | None = None  # only when bounce reports are read
    #: Its request for approval, when it needed one ("approved by …").
    approval: Approval | None = None
    #: A scheduled campaign's time and the zone it is shown in.
    scheduled_at: float | None = None
    schedule_zone: str = ""

    @property
    def scheduled(self) -> bool:
        return self.status == CampaignStatus.SCHEDULED and not self.active

    @property
    def finished(self) -> bool:
        """Nothing more will happen to it: no cancel button, no "to go"."""
        return not self.active and self.status in FINISHED

    def count(self, state: MessageState) -> int:
        return self.counts.get(state, 0)

    @property
    def skipped(self) -> int:
        """Skipped messages, without those a cancel skipped (never worked on)."""
        return self.count(MessageState.SKIPPED) - self.cancelled


def status_message(data: StatusData) -> tuple[str, list[dict[str, Any]]]:
    """The text fallback and blocks of a campaign's status message."""
    state = state_line(data)
    doing = (
        "asks to send"
        if data.status == CampaignStatus.AWAITING_APPROVAL
        else "scheduled"
        if data.scheduled
        else "is sending"
    )
    title = (
        f"{who(data.requested_by)} {doing} *{escape(data.template)}* to "
        f"{data.total:,} recipient(s) — campaign #{data.campaign_id}"
    )
    blocks = [
        section(title),
        section(f"{state}\n{progress_bar(_done(data), data.total)}\n{_counts(data)}"),
        *_notes(data),
    ]
    buttons = _buttons(data)
    if buttons:
        blocks.append({"type": "actions", "block_id": "campaign_actions", "elements": buttons})
    text = (
        f"Campaign #{data.campaign_id} ({data.template}): {state.split(' ', 1)[1]}, "
        f"{data.count(MessageState.SENT)} of {data.total} sent"
    )
    return clip(text, MAX_MESSAGE_TEXT), blocks


#: How each of ``display_state``'s states reads on a status message.
_STATE_WORDS = {
    "cancelled": ":no_entry_sign: cancelled",
    "paused": ":warning: paused",
    "sending": ":arrows_counterclockwise: sending",
    "interrupted": ":pause_button: stopped",
    "deferred": ":hourglass: waiting for the daily limit",
    "completed": ":white_check_mark: finished",
    "awaiting approval": ":lock: waiting for approval",
}


def state_line(data: StatusData) -> str:
    """Where the campaign is, with its emoji: ``:white_check_mark: finished``.

    Queued and running are what the status board knows live; everything else is
    ``display_state``'s, the same words the CLI's ``status`` uses.
    """
    if data.status == CampaignStatus.AWAITING_APPROVAL:
        return _STATE_WORDS["awaiting approval"]  # the board's "queued" is not true yet
    if data.scheduled:
        shown = display_state(
            data.status,
            None,
            data.counts,
            sender_active=False,
            scheduled_at=data.scheduled_at,
            schedule_zone=data.schedule_zone,
        )
        return f":calendar: scheduled {escape(shown.detail)}"
    if data.queued and data.waiting_for is not None:
        return f":double_vertical_bar: waiting for campaign #{data.waiting_for} to finish"
    if data.queued:
        return ":hourglass_flowing_sand: starting"
    if data.active:
        return ":arrows_counterclockwise: sending"
    shown = display_state(
        data.status, data.reason, data.counts, sender_active=False, deferred_until=data.resume_at
    )
    if shown.state == "needs a decision":
        return f":grey_question: needs a decision: {shown.detail}"
    return _STATE_WORDS.get(shown.state, f":pause_button: {shown.state}")


def _done(data: StatusData) -> int:
    """Messages worked on: they fill the progress bar."""
    worked = (MessageState.SENT, MessageState.FAILED, MessageState.UNCERTAIN)
    return sum(data.count(s) for s in worked) + data.skipped


def _counts(data: StatusData) -> str:
    count = data.count
    line = (
        f"sent *{count(MessageState.SENT):,}* · failed *{count(MessageState.FAILED):,}* · "
        f"skipped *{data.skipped:,}* · deferred *{count(MessageState.DEFERRED):,}* · "
        f"uncertain *{count(MessageState.UNCERTAIN):,}*"
    )
    if data.cancelled:
        line += f" · not sent (cancelled) *{data.cancelled:,}*"
    if not data.finished:
        line += f" · to go *{count(MessageState.QUEUED) + count(MessageState.SENDING):,}*"
    return line


def _notes(data: StatusData) -> list[dict[str, Any]]:
    """Why it stopped, when deferred messages go, the first failures, and delivery."""
    notes: list[dict[str, Any]] = []
    if data.reason and data.status != CampaignStatus.COMPLETED:
        notes.append(section(f":information_source: {escape(data.reason)}"))
    # A sender account's refusal already says who reconnects it and how (its reason).
    says_how = RECONNECT in data.reason
    if data.status == CampaignStatus.PAUSED and not data.active and not says_how:
        notes.append(
            section(
                "Sending is paused because Gmail refused our authorization: an admin must run "
                "`python -m bot auth` and restart mailbolt. Nothing is lost; it continues "
                "where it stopped."
            )
        )
    if data.count(MessageState.DEFERRED) and data.resume_at:
        notes.append(context(f"Deferred messages go out from {when(data.resume_at)}."))
    if data.failures:
        lines = "\n".join(
            f"• {escape(email)}: {escape(clip(reason, 200))}" for email, reason in data.failures
        )
        notes.append(section(f"*First failures*\n{lines}"))
    if data.count(MessageState.UNCERTAIN):
        notes.append(
            context(
                "Uncertain: the provider may or may not have sent these. Re-send only if "
                "you are sure they did not arrive."
            )
        )
    if data.delivery and data.delivery.sent and not data.active:
        notes.append(
            context(
                f":mailbox_with_mail: Delivery so far: {delivery_line(data.delivery)}. "
                "Bounce reports can take hours to arrive; `/sendmail stats "
                f"{data.campaign_id}` shows the latest."
            )
        )
    if data.note:
        notes.append(context(escape(data.note)))
    if data.approval is not None:
        notes.append(context(approval_line(data.approval)))
    return notes


def approval_line(approval: Approval) -> str:
    """``:white_check_mark: Approved by @x`` / rejected with the reason / waiting."""
    by = f"<@{approval.decided_by}>"
    if approval.decision == ApprovalDecision.APPROVED:
        return f":white_check_mark: Approved by {by}."
    if approval.decision == ApprovalDecision.REJECTED:
        return f":no_entry: Rejected by {by}: {escape(clip(approval.note, 500))}"
    if approval.decision == ApprovalDecision.WITHDRAWN:
        return f":leftwards_arrow_with_hook: Request withdrawn by {by}; nothing was sent."
    return f":lock: Waiting for approval: {escape(clip(approval.reason, 500))}"


def _buttons(data: StatusData) -> list[dict[str, Any]]:
    """Cancel while it can still stop; retry and resolve once it has stopped."""
    value = str(data.campaign_id)
    buttons: list[dict[str, Any]] = []
    if data.status == CampaignStatus.AWAITING_APPROVAL:  # the requester may take it back
        return [button("Withdraw request", A_CANCEL, value, "danger")]
    if data.scheduled:
        return schedule_buttons(data.campaign_id)
    if not data.finished:
        buttons.append(button("Cancel", A_CANCEL, value, "danger"))
    if data.active:
        return buttons
    if data.count(MessageState.FAILED):
        buttons.append(button("Retry failed", A_RETRY_FAILED, value))
    if data.count(MessageState.UNCERTAIN):
        buttons.append(button("Re-send uncertain", A_RESEND_UNCERTAIN, value))
        buttons.append(button("Skip uncertain", A_SKIP_UNCERTAIN, value))
    return buttons
