"""The pacing shared through the database (``SharedPacer``): pacers of one account
in different processes keep to one quota together; another account is not held
up (issue 12). Simulated time: sleeping moves the store's clock."""

from __future__ import annotations

import pytest

from bot.handlers.quota import LIST_UNITS, SEND_UNITS
from bot.store.pacing import SharedPacer
from bot.store_pg.store import PgStore

CEILING = 1000  # ten sends a minute


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stores(pg_url, clock):
    """Two stores on one database: as two worker processes see it."""
    opened = [PgStore(pg_url, clock=clock), PgStore(pg_url, clock=clock)]
    yield opened
    for store in opened:
        store.close()


def most_units_in_a_minute(calls: list[tuple[float, int]]) -> int:
    return max(sum(units for at, units in calls if start <= at <= start + 60) for start, _ in calls)


def test_two_processes_pacing_one_account_stay_within_its_quota(stores, clock):
    pacers = [
        SharedPacer(s.database, "ann@acme.example", CEILING, sleep=clock.sleep) for s in stores
    ]
    calls: list[tuple[float, int]] = []
    for i in range(60):
        units = LIST_UNITS if i % 7 == 3 else SEND_UNITS  # a mix of call sizes
        pacers[i % 2].acquire(units)
        calls.append((clock.now, units))
    assert most_units_in_a_minute(calls) <= CEILING
    # Evenly spaced, not a burst and then a wait: the sixtieth call is minutes later.
    assert calls[-1][0] - calls[0][0] > 5 * 60


def test_another_account_is_not_held_up(stores, clock):
    ann = SharedPacer(stores[0].database, "ann@acme.example", CEILING, sleep=clock.sleep)
    ben = SharedPacer(stores[1].database, "ben@acme.example", CEILING, sleep=clock.sleep)
    for _ in range(10):
        ann.acquire(SEND_UNITS)
    before = clock.now
    ben.acquire(SEND_UNITS)
    assert clock.now == before  # Ben's first send waits for nothing of Ann's


def test_a_call_larger_than_the_quota_is_refused(stores, clock):
    pacer = SharedPacer(stores[0].database, "ann@acme.example", CEILING, sleep=clock.sleep)
    with pytest.raises(ValueError, match="can never fit"):
        pacer.acquire(CEILING + 1)
