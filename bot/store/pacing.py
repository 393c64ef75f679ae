"""``SharedPacer``: one sender account's quota pacing kept in the database.

Why it exists: ``bot.mail.pacing.QuotaPacer`` keeps its schedule in memory, which
is right for one sending process. Workers on many machines send for the same
account at once, and each in-memory schedule would hand out the whole quota:
three workers, three times the ceiling, 429s. Here the schedule is a row per
account (``pacing.next_at``) and the calls booked in the last window
(``pacing_log``), and a booking is one transaction that locks the account's row
first (``update … set next_at = next_at``: a row lock in PostgreSQL, the write
lock in SQLite), so concurrent bookers of one account queue behind each other
for a few milliseconds while other accounts book in parallel.

The arithmetic is the in-memory pacer's, unchanged (``bot.mail.pacing``): each
call books ``units × 62 / ceiling`` seconds of the schedule and is checked against
the calls of the last 62 seconds, so no window of Gmail's minute ever holds more
than the ceiling, whoever booked the calls.

Slots are times on the machines' clocks (``time.time``): machines that share an
account must keep their clocks within a second or so of each other (NTP); the
two seconds of arrival slack in the window absorb that.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.mail.pacing import PACED_WINDOW, first_fit, wait_for_slot
from bot.store.sql import SqlDatabase

__all__ = ["SharedPacer"]


class SharedPacer:
    """``bot.ports.Pacer`` for one account, shared through the database by every
    process that sends for it."""

    def __init__(
        self,
        database: SqlDatabase,
        account: str,
        units_per_minute: int,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if units_per_minute <= 0:
            raise ValueError("units_per_minute must be positive")
        self._db = database
        self.account = account
        self.units_per_minute = units_per_minute
        self._seconds_per_unit = PACED_WINDOW / units_per_minute
        self._sleep = sleep

    def acquire(self, units: int) -> None:
        """Wait until ``units`` may be spent, then return (the call may start now)."""
        wait_for_slot(self._book, self._db.clock, self._sleep, units, self.units_per_minute)

    def _book(self, units: int) -> float:
        account = self.account
        with self._db.tx() as db:
            db.execute(
                "insert into pacing (account, next_at) values (?, 0) "
                "on conflict (account) do nothing",
                [account],
            )
            # Lock the account's row before reading anything else: the next booker
            # of this account waits here and then reads what this one wrote.
            row = db.execute(
                "update pacing set next_at = next_at where account = ? returning next_at",
                [account],
            ).fetchone()
            slot = max(self._db.clock(), float(row[0]))
            db.execute(
                "delete from pacing_log where account = ? and slot < ?",
                [account, slot - PACED_WINDOW],
            )
            booked = db.execute(
                "select slot, units from pacing_log where account = ? order by slot", [account]
            ).fetchall()
            slot = first_fit(
                slot,
                [(float(at), int(spent)) for at, spent in booked],
                units,
                self.units_per_minute,
            )
            db.execute(
                "insert into pacing_log (account, slot, units) values (?, ?, ?)",
                [account, slot, units],
            )
            db.execute(
                "update pacing set next_at = ? where account = ?",
                [slot + units * self._seconds_per_unit, account],
            )
        return slot
