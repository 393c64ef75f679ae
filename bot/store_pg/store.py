"""``PgStore``: the store's parts on PostgreSQL (``bot.ports.StoreParts``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.store import SqlStore
from bot.store_pg.db import PgDatabase


class PgStore(SqlStore):
    """A PostgreSQL database and its parts; ``url`` is a libpq URL or conninfo string."""

    database: PgDatabase

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        busy_seconds: float = 30.0,
    ):
        super().__init__(PgDatabase(url, clock=clock, busy_seconds=busy_seconds))

    @property
    def name(self) -> str:
        """The database's URL without its password (for messages)."""
        return self.database.name
