"""Resolution: settling messages whose fate is unknown or that failed.

This module owns reconciling ``uncertain`` messages after a restart (looking their
Message-ID up in sent mail), a person's choices (retry failed, re-send or skip
uncertain), and the current picture of a campaign read from the store.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.errors import (
    TransientSendError,
)
from bot.handlers import scope
from bot.handlers.campaign import (
    CANCELLED_REASON,
    DEFERRED,
    FAILED,
    SKIPPED,
    UNCERTAIN,
    Deps,
    Result,
)
from bot.handlers.quota import LIST_UNITS
from bot.ports import StoreParts, Transport
from bot.records import Campaign

#: How often a resume looks again for a message that may still be on its way.
RECONCILE_POLL_SECONDS = 2.0


def reconcile_uncertain(
    campaign_id: int,
    deps: Deps,
    transport: Transport,
    notice: Callable[[str], None] | None = None,
) -> int:
    """Settle ``uncertain`` messages by looking for their Message-ID among sent mail.

    Found → ``sent``; certainly absent → ``queued`` again; when the transport
    cannot tell (no read scope, or the lookup itself failed), the message stays
    ``uncertain`` for a person or a later resume to decide. ``AuthError`` is left
    to the caller, which pauses the campaign. Returns how many were settled.
    """
    settled = 0
    rows = deps.store.outbox.messages(campaign_id, [UNCERTAIN])
    if not rows:
        return 0
    say = notice or (lambda _text: None)
    if not getattr(transport, "can_read", True):
        # No lookup is possible, so waiting for a send to become searchable is pointless.
        say(
            f"{len(rows)} uncertain message(s) cannot be looked up: the mail account's "
            "authorization cannot read sent mail. They stay uncertain until a person decides."
        )
        return 0
    rows.sort(key=lambda r: r.claimed_at or 0)
    told = False
    for row in rows:
        try:
            found = _look_up(deps, transport, row.message_id)
            # A request the dead process handed over may still be processed, or not
            # yet searchable: "not found" only means "not sent" after the grace, so
            # look again until the message shows up or the grace is over.
            while not found and (left := _grace_left(deps, row.claimed_at)) > 0:
                if not told:
                    told = True
                    say(
                        f"Waiting up to {left:.0f} s for {len(rows)} uncertain message(s) "
                        "to show up in sent mail: a send from the stopped process may still "
                        "be in progress (GMAIL_RECONCILE_GRACE_SECONDS)."
                    )
                deps.sleep(min(left, RECONCILE_POLL_SECONDS))
                found = _look_up(deps, transport, row.message_id)
        except (NotImplementedError, TransientSendError):
            return settled
        if found:
            deps.store.outbox.mark_sent(row.id, found)
        else:
            deps.store.outbox.requeue(row.id, None, from_states=(UNCERTAIN,))
        settled += 1
    return settled


def _grace_left(deps: Deps, claimed_at: float | None) -> float:
    return (claimed_at or 0) + deps.policy.reconcile_grace - deps.clock()


def _look_up(deps: Deps, transport: Transport, message_id: str) -> str | None:
    """One paced, logged search of sent mail for a Message-ID."""
    deps.pacer.acquire(LIST_UNITS)
    found = transport.find_sent(message_id)
    deps.store.quota.record_units(LIST_UNITS, "messages.list", account=deps.account)
    return found


def cancelled_count(campaign_id: int, deps: Deps) -> int:
    """Messages a cancel left unsent (skipped for that reason, not suppressed)."""
    return sum(
        1
        for row in deps.store.outbox.messages(campaign_id, [SKIPPED])
        if row.last_error == CANCELLED_REASON
    )


def _existing(campaign_id: int, deps: Deps, team: str | None = None) -> Campaign:
    """The campaign's row as workspace ``team`` sees it (None: the operator); a
    campaign that does not exist (for them) is the person's mistake."""
    return scope.campaign_of(deps.store, campaign_id, team)


def _campaign_row(store: StoreParts, campaign_id: int) -> Campaign:
    return scope.campaign_of(store, campaign_id, scope.EVERYONE)


def counts_result(campaign_id: int, deps: Deps) -> Result:
    """The current picture of a campaign without sending anything."""
    return stored_result(deps.store, campaign_id)


def stored_result(store: StoreParts, campaign_id: int) -> Result:
    """``counts_result`` from the store alone: needs no templates and no mail account."""
    campaign = _campaign_row(store, campaign_id)
    failures = [
        (r.email, r.last_error or "") for r in store.outbox.messages(campaign_id, [FAILED], limit=5)
    ]
    counts = store.outbox.counts(campaign_id)
    return Result(
        campaign_id,
        campaign.status,
        counts,
        campaign.paused_reason or "",
        store.outbox.deferred_until(campaign_id) if counts[DEFERRED] else None,
        failures,
    )


def retry_failed(campaign_id: int, deps: Deps, actor: str, *, team: str | None = None) -> int:
    """Put failed messages back in the queue (a person of workspace ``team``, or the
    operator for None, decided to try again)."""
    _existing(campaign_id, deps, team)
    rows = deps.store.outbox.messages(campaign_id, [FAILED])
    for row in rows:
        deps.store.outbox.requeue(row.id, None, from_states=(FAILED,))
    deps.store.audit.record(
        actor, "campaign.retry_failed", campaign_id=campaign_id, count=len(rows)
    )
    return len(rows)


def resolve_uncertain(
    campaign_id: int, deps: Deps, actor: str, *, resend: bool, team: str | None = None
) -> int:
    """A person's choice for messages nobody can prove were sent: re-send or skip.

    Re-sent messages go back in the queue and through the same daily budget and
    deferral as any send; their uncertain attempt keeps counting against the day.
    ``team``: the asker's workspace (None: the operator).
    """
    _existing(campaign_id, deps, team)
    rows = deps.store.outbox.messages(campaign_id, [UNCERTAIN])
    for row in rows:
        if resend:
            deps.store.outbox.resend_uncertain(row.id)
        else:
            deps.store.outbox.mark_skipped(row.id, f"skipped by {actor}: delivery unknown")
    deps.store.audit.record(
        actor, "campaign.resolve_uncertain", campaign_id=campaign_id, resend=resend, count=len(rows)
    )
    return len(rows)
