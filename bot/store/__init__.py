"""The SQLite store: the only package that touches SQLite.

One module per thing it keeps, each implementing one interface of
``bot/ports.py`` and returning the typed records of ``bot/records.py``:

- ``db``           the shared connection, lock, clock and transactions (the "why")
- ``schema``       every migration, in order, in one place
- ``campaigns``    campaigns (created atomically with their messages)
- ``outbox``       messages and their state moves (``records.TRANSITIONS``)
- ``quota``        API units spent
- ``suppressions`` unsubscribes and bounce reports
- ``audit``        who did what
- ``drafts``       Slack drafts
- ``testsends``    test sends (one message to the person previewing)
- ``senders``      sender accounts (sealed grants), who may use them, OAuth flows

``Store`` opens the database and hands out the parts; a PostgreSQL store will be
a second class with the same attributes, passing the same contract tests
(``tests/store_contract/``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bot.store.audit import SqliteAudit
from bot.store.campaigns import SqliteCampaigns
from bot.store.db import Database
from bot.store.drafts import SqliteDrafts
from bot.store.outbox import SqliteOutbox
from bot.store.quota import SqliteQuotaLog
from bot.store.schema import MIGRATIONS
from bot.store.senders import SqliteSenderAccounts
from bot.store.suppressions import SqliteSuppressions
from bot.store.testsends import SqliteTestSends


class Store:
    """The SQLite database and its parts (``bot.ports.StoreParts``)."""

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        busy_seconds: float = 30.0,
    ):
        self.database = Database(path, clock=clock, busy_seconds=busy_seconds)
        self.campaigns = SqliteCampaigns(self.database)
        self.outbox = SqliteOutbox(self.database)
        self.quota = SqliteQuotaLog(self.database)
        self.suppressions = SqliteSuppressions(self.database)
        self.audit = SqliteAudit(self.database)
        self.drafts = SqliteDrafts(self.database)
        self.test_sends = SqliteTestSends(self.database)
        self.senders = SqliteSenderAccounts(self.database)

    @property
    def path(self) -> Path:
        return self.database.path

    @property
    def clock(self) -> Callable[[], float]:
        """The time source every part stamps rows with."""
        return self.database.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        """Tests move time by replacing the clock; every part sees the new one."""
        self.database.clock = clock

    @property
    def schema_version(self) -> int:
        return self.database.schema_version

    def close(self) -> None:
        self.database.close()


__all__ = ["MIGRATIONS", "Store"]
