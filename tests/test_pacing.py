"""QuotaPacer on simulated time: the minute window is never exceeded, bursts are
small, and steady throughput reaches the ceiling. No real sleeping."""

from __future__ import annotations

import bisect
import itertools
import random
import threading

import pytest

from bot.handlers.quota import GET_UNITS, LIST_UNITS, SEND_UNITS, estimate_duration
from bot.mail.pacing import QuotaPacer, workers_needed


class SimClock:
    """Shared simulated time. Each thread also keeps its own "now": the moment it
    woke from its last ``sleep`` (or last read the clock), which is when the pacer
    let its call start."""

    def __init__(self, start: float = 10_000.0):
        self.now = start
        self._lock = threading.Lock()
        self._local = threading.local()

    def __call__(self) -> float:
        with self._lock:
            self._local.t = self.now
            return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        with self._lock:
            wake = self._local.t + seconds
            self.now = max(self.now, wake)
            self._local.t = wake

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def thread_now(self) -> float:
        return self._local.t


def max_units_in_any_window(events: list[tuple[float, int]], window: float = 60.0) -> int:
    """Largest sum of units over any closed window [t, t + window]."""
    events = sorted(events)
    times = [t for t, _ in events]
    prefix = [0]
    for _, units in events:
        prefix.append(prefix[-1] + units)
    best = 0
    for i, (start, _) in enumerate(events):
        j = bisect.bisect_right(times, start + window)
        best = max(best, prefix[j] - prefix[i])
    return best


def run_threads(pacer: QuotaPacer, clock: SimClock, threads: int, calls: int, units) -> list:
    events: list[tuple[float, int]] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(calls):
            cost = units(rng)
            pacer.acquire(cost)
            with lock:
                events.append((clock.thread_now(), cost))

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return events


@pytest.mark.parametrize("ceiling", [200, 6000, 15000])
def test_window_never_exceeded_with_many_threads(ceiling: int) -> None:
    clock = SimClock()
    pacer = QuotaPacer(ceiling, clock=clock, sleep=clock.sleep)
    events = run_threads(pacer, clock, threads=12, calls=40, units=lambda _rng: SEND_UNITS)
    assert len(events) == 480
    assert max_units_in_any_window(events) <= ceiling


def test_window_never_exceeded_with_mixed_call_sizes() -> None:
    clock = SimClock()
    pacer = QuotaPacer(6000, clock=clock, sleep=clock.sleep)
    sizes = [SEND_UNITS, LIST_UNITS, GET_UNITS, 1]
    events = run_threads(pacer, clock, threads=8, calls=150, units=lambda rng: rng.choice(sizes))
    assert max_units_in_any_window(events) <= 6000


@pytest.mark.parametrize("ceiling", [200, 6000, 15000])
def test_steady_state_reaches_the_ceiling(ceiling: int) -> None:
    clock = SimClock()
    pacer = QuotaPacer(ceiling, clock=clock, sleep=clock.sleep)
    start = clock()
    sends = 0
    while clock() - start < 10 * 60:  # ten simulated minutes
        pacer.acquire(SEND_UNITS)
        sends += 1
    elapsed_minutes = (clock() - start) / 60
    rate = sends * SEND_UNITS / elapsed_minutes
    assert rate >= 0.95 * ceiling


def test_steady_state_with_threads_reaches_the_ceiling() -> None:
    clock = SimClock()
    pacer = QuotaPacer(6000, clock=clock, sleep=clock.sleep)
    events = run_threads(pacer, clock, threads=8, calls=75, units=lambda _rng: SEND_UNITS)
    times = sorted(t for t, _ in events)
    minutes = (times[-1] - times[0]) / 60
    assert (len(times) - 1) * SEND_UNITS / minutes >= 0.95 * 6000


def test_after_idle_the_burst_is_one_call_not_a_minute() -> None:
    clock = SimClock()
    pacer = QuotaPacer(6000, clock=clock, sleep=clock.sleep)
    clock.advance(3600)  # a long quiet spell must not bank a minute's worth of calls
    starts = []
    for _ in range(5):
        pacer.acquire(SEND_UNITS)
        starts.append(clock.thread_now())
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 1.0 for gap in gaps)  # 100 units at 6,000/min = one per second


def test_first_call_does_not_wait() -> None:
    sleeps: list[float] = []
    clock = SimClock()
    pacer = QuotaPacer(6000, clock=clock, sleep=sleeps.append)
    pacer.acquire(SEND_UNITS)
    assert sleeps == []


def test_a_call_larger_than_the_ceiling_is_refused() -> None:
    with pytest.raises(ValueError, match="can never fit"):
        QuotaPacer(50).acquire(SEND_UNITS)


def test_workers_needed() -> None:
    assert workers_needed(6000, latency_s=0.1) == 1
    assert workers_needed(6000, latency_s=1.5) == 3  # 1 send/s x 1.5 s x headroom
    assert workers_needed(15000, latency_s=1.5) == 6
    assert workers_needed(1_200_000, latency_s=5) == 256  # capped


def test_estimate_duration() -> None:
    assert estimate_duration(0, 6000) == 0
    assert estimate_duration(1, 6000) == 0
    assert estimate_duration(61, 6000) == pytest.approx(60.0)
    assert estimate_duration(151, 15000) == pytest.approx(60.0)
