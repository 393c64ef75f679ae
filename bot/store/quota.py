"""The quota log: API units spent, for the per-minute pacer and `python -m bot quota`.

Units belong to the account that spent them (the sandbox, or a Gmail address),
so one account's use never paces another.
"""

from __future__ import annotations

from bot.store.sql import SqlDatabase, of_account


class SqliteQuotaLog:
    """``bot.ports.QuotaLog`` on SQL (SQLite or PostgreSQL)."""

    def __init__(self, database: SqlDatabase):
        self._db = database

    def record_units(
        self, units: int, method: str, *, account: str, at: float | None = None
    ) -> None:
        """``account`` spent ``units`` quota units on one ``method`` call."""
        with self._db.tx() as db:
            db.table("quota_log").insert(
                {
                    "at": self._db.clock() if at is None else at,
                    "units": units,
                    "method": method,
                    "account": account,
                }
            )

    def units_since(self, since: float, account: str) -> int:
        """Quota units ``account`` spent since ``since`` (legacy rows count for Gmail)."""
        mine, params = of_account(account)
        rows = self._db.query(
            f"select coalesce(sum(units), 0) n from quota_log where {mine} and at >= ?",  # noqa: S608
            [*params, since],
        )
        return int(rows[0]["n"])
