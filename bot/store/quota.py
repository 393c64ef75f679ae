"""The quota log: API units spent, for the per-minute pacer and `python -m bot quota`."""

from __future__ import annotations

from bot.store.db import Database


class SqliteQuotaLog:
    """``bot.ports.QuotaLog`` on SQLite."""

    # Issue 8 (sender accounts) records and filters by ``account`` here.

    def __init__(self, database: Database):
        self._db = database

    def record_units(self, units: int, method: str, at: float | None = None) -> None:
        with self._db.tx() as db:
            db.table("quota_log").insert(
                {"at": self._db.clock() if at is None else at, "units": units, "method": method}
            )

    def units_since(self, since: float) -> int:
        rows = self._db.query(
            "select coalesce(sum(units), 0) n from quota_log where at >= ?", [since]
        )
        return int(rows[0]["n"])
