"""A pacer that never exceeds Gmail's per-user minute quota (costs: ``bot.handlers.quota``).

Why it looks like this:
- Gmail counts quota units per user over a sliding minute and answers 429 when
  the sum goes over (``messages.send`` costs 100 units, so 6,000 units/min is one
  send a second). A plain token bucket that starts full lets a whole minute's
  worth through at once; the window then punishes the burst with 429s. Here
  calls are spaced evenly (each call books ``units × 62 / ceiling`` seconds of
  the schedule) *and* checked against a log of the last 62 seconds, so the sum
  over any such window, closed at both ends, stays within the ceiling whatever
  mix of call sizes arrives.
- The two extra seconds are slack for arrival jitter. Gmail counts a call when
  it arrives, and calls arrive some time after their slot, not all by the same
  amount (a new connection's handshake, a busy thread, the quota-log commit; a
  lost packet on a new connection waits TCP's initial 1-second retransmission
  timeout). Paced to exactly 60 seconds, a call booked one minute after an
  earlier, late-arriving one reaches Gmail inside that one's window and gets a
  429: measured against the loopback fake, 4 of 2,000 sends at 25/s. With the
  slack, steady throughput is 60/62 ≈ 96.8 % of the ceiling.
- Slots are booked under a lock and slept outside it, so many worker threads
  share one schedule without holding each other up.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from bot.handlers.quota import SEND_UNITS, WINDOW_SECONDS

__all__ = [
    "ARRIVAL_SLACK_S",
    "PACED_WINDOW",
    "SLOW_SEND_LATENCY_S",
    "QuotaPacer",
    "first_fit",
    "wait_for_slot",
    "workers_needed",
]

#: How much later than its slot a call may reach Gmail, relative to another, and
#: still be counted in the right window: one TCP retransmission and then some.
ARRIVAL_SLACK_S = 2.0
#: The window every booking is checked against: Gmail's minute plus the slack.
PACED_WINDOW = WINDOW_SECONDS + ARRIVAL_SLACK_S
_PACED_WINDOW = PACED_WINDOW

#: The slowest ``messages.send`` round trip the worker pool is sized to keep the
#: quota busy through (a large message, a slow TLS handshake, Gmail under load).
#: Sizing for a typical latency instead left a 16-thread pool at 0.61 of the
#: ceiling when calls took 1 s; an idle worker only waits on the pacer.
SLOW_SEND_LATENCY_S = 2.5

#: More requests in flight than the bare arithmetic says, so latency spikes do not
#: leave the quota unused; the pacer still caps the rate.
_HEADROOM = 1.5
_MAX_WORKERS = 256

# A booked slot must fall strictly after the call it displaces leaves the window.
_EPSILON = 1e-6


def wait_for_slot(
    book: Callable[[int], float],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    units: int,
    units_per_minute: int,
) -> None:
    """Book ``units`` (``book`` returns the slot) and sleep until that slot: the
    waiting half of both pacers, the in-process one and the shared one."""
    if units <= 0:
        return
    if units > units_per_minute:
        raise ValueError(
            f"a call costing {units} units can never fit a quota of "
            f"{units_per_minute} units per minute"
        )
    delay = book(units) - clock()
    if delay > 0:
        sleep(delay)


def first_fit(
    earliest: float, booked: Iterable[tuple[float, int]], units: int, units_per_minute: int
) -> float:
    """The first slot from ``earliest`` on at which ``units`` fit the window.

    ``booked`` are the (slot, units) still inside the window ending at
    ``earliest``, oldest first. Until the new call fits, the oldest bookings are
    waited out: the slot moves just past the moment each leaves the window. The
    in-process pacer and the one shared through the database (``bot.store.pacing``)
    both book with this, so they keep the same promise.
    """
    booked = list(booked)
    in_window = sum(spent for _, spent in booked)
    slot = earliest
    for oldest, spent in booked:
        if in_window + units <= units_per_minute:
            break
        in_window -= spent
        slot = max(slot, oldest + _PACED_WINDOW + _EPSILON)
    return slot


class QuotaPacer:
    """Blocks callers so that a units-per-minute ceiling is never exceeded.

    ``clock`` and ``sleep`` are injectable so tests run on simulated time.
    """

    def __init__(
        self,
        units_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if units_per_minute <= 0:
            raise ValueError("units_per_minute must be positive")
        self.units_per_minute = units_per_minute
        self._seconds_per_unit = _PACED_WINDOW / units_per_minute
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = -math.inf  # earliest time the next call may start
        self._log: deque[tuple[float, int]] = deque()  # (slot, units) inside the window
        self._in_window = 0

    def acquire(self, units: int) -> None:
        """Wait until ``units`` may be spent, then return (the call may start now)."""
        wait_for_slot(self._book, self._clock, self._sleep, units, self.units_per_minute)

    def _book(self, units: int) -> float:
        with self._lock:
            slot = max(self._clock(), self._next)
            while self._log and self._log[0][0] < slot - _PACED_WINDOW:
                self._in_window -= self._log.popleft()[1]
            slot = first_fit(slot, self._log, units, self.units_per_minute)
            while self._log and self._log[0][0] < slot - _PACED_WINDOW:
                self._in_window -= self._log.popleft()[1]
            self._log.append((slot, units))
            self._in_window += units
            self._next = slot + units * self._seconds_per_unit
            return slot


def workers_needed(units_per_minute: int, latency_s: float, units: int = SEND_UNITS) -> int:
    """Concurrent requests needed to reach the ceiling when each call takes ``latency_s``.

    Little's law (in flight = rate × latency) with headroom, at least 1 and at
    most 256 (each worker holds one HTTPS connection). Workers beyond the need
    cost little: they wait on the pacer, and claim a message only after their slot.
    """
    calls_per_second = units_per_minute / units / WINDOW_SECONDS
    needed = math.ceil(calls_per_second * latency_s * _HEADROOM)
    return max(1, min(_MAX_WORKERS, needed))
