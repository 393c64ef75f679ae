"""A campaign handed to the workers, followed from ``python -m bot serve --no-send``.

The server that answers Slack beside workers sends nothing itself, but people
still press Send, Resume and Cancel, and the campaign's status message should
still move. So the runner, instead of running the send loop, hands the campaign
over here: a paused or finished campaign is set running again (the workers claim
only running campaigns' messages), and its counts are read every poll and passed
to ``progress`` until the workers are done with it (completed, paused, or only
deferred messages left). Cancelling skips what no worker has claimed; a message a
worker already holds is settled by that worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from bot.errors import UserInputError
from bot.handlers import resolution
from bot.handlers.campaign import (
    CANCELLED,
    CANCELLED_REASON,
    DEFERRED,
    QUEUED,
    RUNNING,
    SENDING,
    Deps,
    Result,
)
from bot.records import CampaignStatus

POLL_SECONDS = 1.0


def follow(
    campaign_id: int,
    deps: Deps,
    *,
    cancel: threading.Event,
    halt: threading.Event,
    progress: Callable[[dict[str, int]], None] | None = None,
    poll_seconds: float = POLL_SECONDS,
) -> Result:
    """Hand ``campaign_id`` to the workers and report its counts until they are done
    with it (or ``halt``: the server stops; the workers go on)."""
    store = deps.store
    campaign = store.campaigns.get(campaign_id)
    if campaign is None:
        raise UserInputError(f"There is no campaign {campaign_id}.", field="campaign")
    if cancel.is_set():
        return cancel_campaign(campaign_id, deps)
    if campaign.status in (CampaignStatus.PAUSED, CampaignStatus.COMPLETED):
        store.campaigns.update(campaign_id, status=RUNNING, paused_reason=None, finished_at=None)
    elif campaign.status == CampaignStatus.CANCELLED:
        return resolution.counts_result(campaign_id, deps)
    shown: dict[str, int] | None = None
    while not halt.is_set():
        if cancel.is_set():
            return cancel_campaign(campaign_id, deps)
        row = store.campaigns.get(campaign_id)
        counts = store.outbox.counts(campaign_id)
        if progress is not None and counts != shown:
            progress(counts)
            shown = counts
        if row is None or row.status != RUNNING:
            break
        if counts[DEFERRED] and not (counts[QUEUED] or counts[SENDING]):
            break  # waiting for the day to free up; a due check hands it over again
        halt.wait(poll_seconds)
    return resolution.counts_result(campaign_id, deps)


def cancel_campaign(campaign_id: int, deps: Deps) -> Result:
    """Skip every message no worker has claimed, and mark the campaign cancelled."""
    store = deps.store
    for row in store.outbox.messages(campaign_id, [QUEUED, DEFERRED]):
        store.outbox.mark_skipped(row.id, CANCELLED_REASON)
    store.campaigns.update(
        campaign_id,
        status=CampaignStatus(CANCELLED),
        paused_reason="cancelled",
        finished_at=deps.clock(),
    )
    return resolution.counts_result(campaign_id, deps)
