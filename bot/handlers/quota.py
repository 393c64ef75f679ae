"""Gmail quota: what each call costs, and how much of an account's quota is left.

Owns the quota facts, in one place: the unit cost of each Gmail call, Gmail's
per-user minute window, the rolling day of the daily sending limit, and one read
model (``read``) of an account's use that the CLI ``quota``, Slack's
``/sendmail quota``, the preview and the send loop's daily budget all use, so
they cannot disagree. The pacer (``bot/mail/pacing.py``) takes its costs from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.ports import StoreParts

#: Quota units per call (Gmail API quota page): the only place these numbers live.
SEND_UNITS = 100
LIST_UNITS = 5
GET_UNITS = 5
PROFILE_UNITS = 1

#: Gmail's per-user quota window.
WINDOW_SECONDS = 60.0
#: The daily sending limit counts sends over a rolling 24 hours.
DAY_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class QuotaUse:
    """One account's quota use at ``now``, as recorded by mailbolt itself."""

    account: str
    now: float
    #: Units spent in the last ``WINDOW_SECONDS``.
    units_in_window: int
    #: Messages sent in the rolling day.
    sent_in_day: int
    #: ``None``: no daily limit (the sandbox).
    daily_limit: int | None
    #: When the oldest send still in the rolling day was made; ``None`` if none.
    oldest_sent: float | None

    @property
    def left(self) -> int | None:
        """Messages the account may still send in the rolling day (``None``: no limit)."""
        if self.daily_limit is None:
            return None
        return max(0, self.daily_limit - self.sent_in_day)

    @property
    def next_free_at(self) -> float:
        """When the next send frees up: the oldest send's day ends (a day from now if none)."""
        return (self.oldest_sent if self.oldest_sent is not None else self.now) + DAY_SECONDS


def read(store: StoreParts, account: str, *, daily_limit: int | None, now: float) -> QuotaUse:
    """The quota use of ``account`` at ``now``, from the store's own records."""
    day_start = now - DAY_SECONDS
    return QuotaUse(
        account=account,
        now=now,
        units_in_window=store.quota.units_since(now - WINDOW_SECONDS, account),
        sent_in_day=store.outbox.sent_since(day_start, account),
        daily_limit=daily_limit,
        oldest_sent=store.outbox.oldest_sent_since(day_start, account),
    )


def estimate_duration(n_messages: int, units_per_minute: int) -> float:
    """Seconds the pacer needs to start ``n_messages`` sends (the first one goes at once).

    Only the per-minute quota is counted; the daily sending limit can defer the
    rest of a campaign by up to a day, which callers report separately.
    """
    if n_messages <= 1:
        return 0.0
    return (n_messages - 1) * SEND_UNITS * WINDOW_SECONDS / units_per_minute
