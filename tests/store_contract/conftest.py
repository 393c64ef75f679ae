"""The store contract: every implementation of the ``bot.ports`` store parts runs
the tests in this folder, written against the Protocols only.

Each back-end is one entry in ``BACKENDS``: a ``Backend`` that opens a fresh,
empty store and says which exception a broken constraint raises. Nothing in the
tests names a table, a column or SQLite. PostgreSQL runs on a real server
(``tests/pg_server.py``), each test in a new schema.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from bot.ports import StoreParts
from bot.records import MessageState, NewMessage
from bot.store import Store
from bot.store_pg.store import PgStore

START = 1_700_000_000.0
#: The Gmail account the contract tests send as (any address would do).
GMAIL = "me@example.com"


class Clock:
    """A clock the test moves by hand; the store stamps every row with it."""

    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Backend:
    name: str
    #: Open a new, empty store (files in ``folder``) that reads time from ``clock``;
    #: the request gives access to fixtures (the PostgreSQL server).
    open: Callable[[pytest.FixtureRequest, Path, Clock], StoreParts]
    #: What a broken uniqueness constraint raises (a duplicate Message-ID).
    integrity_error: type[Exception]
    #: Open the same database again: another process or worker, its own connection.
    reopen: Callable[[StoreParts, Clock], StoreParts]


def _sqlite(request: pytest.FixtureRequest, folder: Path, clock: Clock) -> StoreParts:
    return Store(folder / "contract.db", clock=clock)


def _postgres(request: pytest.FixtureRequest, folder: Path, clock: Clock) -> StoreParts:
    return PgStore(request.getfixturevalue("pg_url"), clock=clock)


def _sqlite_again(store: StoreParts, clock: Clock) -> StoreParts:
    assert isinstance(store, Store)
    return Store(store.path, clock=clock)


def _postgres_again(store: StoreParts, clock: Clock) -> StoreParts:
    assert isinstance(store, PgStore)
    return PgStore(store.database.url, clock=clock)


BACKENDS = [
    Backend("sqlite", _sqlite, sqlite3.IntegrityError, _sqlite_again),
    Backend("postgres", _postgres, psycopg.IntegrityError, _postgres_again),
]


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(
    request: pytest.FixtureRequest, backend: Backend, clock: Clock, tmp_path: Path
) -> Iterator[StoreParts]:
    opened = backend.open(request, tmp_path, clock)
    yield opened
    opened.close()


def new_campaign(
    store: StoreParts,
    *states: MessageState,
    key: str | None = None,
    prefix: str = "p",
    requested_by: str = "U1",
    account: str = GMAIL,
) -> int:
    """A campaign with one message per state given (default: two queued)."""
    states = states or (MessageState.QUEUED, MessageState.QUEUED)
    tag = key or prefix
    campaign_id, _ = store.campaigns.create(
        requested_by=requested_by,
        template="welcome",
        category="transactional",
        subject="",
        common_vars={"team": "Acme"},
        idempotency_key=key,
        account=account,
        messages=[
            NewMessage(
                email=f"{prefix}{i}@example.com",
                message_id=f"<{tag}{i}@mailbolt.example>",
                state=state,
            )
            for i, state in enumerate(states)
        ],
    )
    return campaign_id
