"""The SQL store: the only package that touches SQLite, and the parts that the
PostgreSQL store (``bot.store_pg``) shares.

One module per thing it keeps, each implementing one interface of
``bot/ports.py`` and returning the typed records of ``bot/records.py``:

- ``sql``          the seam: what a part needs from a database, either one
- ``db``           the shared SQLite connection, lock, clock and transactions (the "why")
- ``schema``       every SQLite migration, in order, in one place
- ``campaigns``    campaigns (created atomically with their messages)
- ``outbox``       messages and their state moves (``records.TRANSITIONS``)
- ``quota``        API units spent
- ``suppressions`` unsubscribes and bounce reports
- ``audit``        who did what
- ``drafts``       Slack drafts
- ``testsends``    test sends (one message to the person previewing)
- ``senders``      sender accounts (sealed grants), who may use them, OAuth flows
- ``approvals``    approval requests and decisions (a second person)
- ``installations`` Slack workspaces installed through OAuth (sealed bot tokens)

``Store`` opens the SQLite database and hands out the parts; ``bot.store_pg.PgStore``
is the same ``SqlStore`` on PostgreSQL, passing the same contract tests
(``tests/store_contract/``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bot.store.approvals import SqlApprovals
from bot.store.audit import SqliteAudit
from bot.store.campaigns import SqliteCampaigns
from bot.store.db import Database
from bot.store.drafts import SqliteDrafts
from bot.store.installations import SqlInstallations
from bot.store.outbox import SqliteOutbox
from bot.store.quota import SqliteQuotaLog
from bot.store.schema import MIGRATIONS
from bot.store.senders import SqliteSenderAccounts
from bot.store.sql import SqlDatabase
from bot.store.suppressions import SqliteSuppressions
from bot.store.testsends import SqliteTestSends


class SqlStore:
    """A database and its parts (``bot.ports.StoreParts``), whichever SQL it speaks."""

    def __init__(self, database: SqlDatabase):
        self.database = database
        self.campaigns = SqliteCampaigns(database)
        self.outbox = SqliteOutbox(database)
        self.quota = SqliteQuotaLog(database)
        self.suppressions = SqliteSuppressions(database)
        self.audit = SqliteAudit(database)
        self.drafts = SqliteDrafts(database)
        self.test_sends = SqliteTestSends(database)
        self.senders = SqliteSenderAccounts(database)
        self.approvals = SqlApprovals(database)
        self.installations = SqlInstallations(database)

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


class Store(SqlStore):
    """The SQLite database and its parts (``bot.ports.StoreParts``)."""

    database: Database

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        busy_seconds: float = 30.0,
    ):
        super().__init__(Database(path, clock=clock, busy_seconds=busy_seconds))

    @property
    def path(self) -> Path:
        return self.database.path


__all__ = ["MIGRATIONS", "SqlStore", "Store"]
