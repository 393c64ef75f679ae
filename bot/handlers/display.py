"""What state a campaign is really in, and what a person should do next.

The stored campaign status says what the send loop last decided ("running",
"completed"); it cannot say that the process sending it has died, that the
rest waits for tomorrow's quota, or that three messages nobody can prove were
sent need a decision. This derives that once, from the status, the message
counts and whether a sender is alive, so the CLI and Slack say the same thing.
The next step is a value, not a sentence: each edge names it in its own terms
(a CLI command, a Slack button).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from bot.records import CampaignStatus, MessageState
from bot.timefmt import local_moment

CANCELLED, PAUSED, SCHEDULED = (
    CampaignStatus.CANCELLED,
    CampaignStatus.PAUSED,
    CampaignStatus.SCHEDULED,
)
DEFERRED, FAILED, QUEUED, SENDING, SENT, UNCERTAIN = (
    MessageState.DEFERRED,
    MessageState.FAILED,
    MessageState.QUEUED,
    MessageState.SENDING,
    MessageState.SENT,
    MessageState.UNCERTAIN,
)


#: How the reason of a scheduled campaign refused when its time came begins.
NOT_STARTED = "not started at its time"


class NextStep(enum.Enum):
    """What a person can do about a campaign; each edge phrases it."""

    RESUME = "resume"  # CLI: send --resume; it continues where it stopped
    RESOLVE_UNCERTAIN = "resolve_uncertain"  # re-send or skip the messages in doubt
    RETRY_FAILED = "retry_failed"  # queue the failed messages again
    WAIT = "wait"  # deferred: it resumes by itself (or resume after the time)


@dataclass(frozen=True)
class Display:
    """A campaign's state in words, and the next step if there is one."""

    state: str  # short: "sending", "interrupted", "deferred", "paused", …
    detail: str  # the rest of the sentence, e.g. "3 uncertain" or the pause reason
    next_step: NextStep | None = None
    resume_at: float | None = None  # "deferred": when sending may go on; "scheduled": its time

    @property
    def label(self) -> str:
        return f"{self.state}: {self.detail}" if self.detail else self.state


def display_state(
    status: str,
    paused_reason: str | None,
    counts: Mapping[str, int],
    *,
    sender_active: bool,
    deferred_until: float | None = None,
    scheduled_at: float | None = None,
    schedule_zone: str = "",
) -> Display:
    """The true state of one campaign with stored ``status`` and ``paused_reason``.

    ``sender_active`` says whether a process holds the database's sender lock:
    without one, "running" with messages left means interrupted, not sending.
    A scheduled campaign names its time in the zone it was given in.
    """
    left = counts.get(QUEUED, 0) + counts.get(SENDING, 0)
    if status == CampaignStatus.AWAITING_APPROVAL:
        return Display("awaiting approval", paused_reason or f"{left} not sent yet")
    if status == SCHEDULED:
        words = local_moment(scheduled_at, schedule_zone) if scheduled_at else "a time"
        return Display("scheduled", f"for {words}", None, scheduled_at)
    if status == CANCELLED:
        if paused_reason and paused_reason.startswith(NOT_STARTED):
            return Display("cancelled", paused_reason)
        return Display("cancelled", f"{counts.get(SENT, 0)} sent before it was cancelled")
    if counts.get(UNCERTAIN, 0) and not (sender_active and left):
        return Display(
            "needs a decision",
            f"{counts[UNCERTAIN]} uncertain (may or may not have been sent)",
            NextStep.RESOLVE_UNCERTAIN,
        )
    if status == PAUSED:
        return Display("paused", paused_reason or "", NextStep.RESUME)
    if left:
        if sender_active:
            return Display("sending", f"{left} left")
        return Display("interrupted", f"{left} not sent yet", NextStep.RESUME)
    if counts.get(DEFERRED, 0):
        return Display(
            "deferred",
            f"{counts[DEFERRED]} wait for the daily sending limit",
            NextStep.WAIT,
            deferred_until,
        )
    if counts.get(FAILED, 0):
        return Display("completed", f"{counts[FAILED]} failed", NextStep.RETRY_FAILED)
    return Display("completed", "")
