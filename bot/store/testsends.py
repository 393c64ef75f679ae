"""Test sends: one message to the person previewing, marked as a test.

Kept apart from campaigns (not in stats, not resumed), but audited, and counted
against its account's quota and day by the outbox's daily-limit queries.
"""

from __future__ import annotations

from typing import Any

from bot.records import MessageState, TestSend
from bot.store import audit
from bot.store.sql import SqlDatabase


def record_from_row(row: dict[str, Any]) -> TestSend:
    return TestSend(
        id=row["id"],
        at=row["at"],
        account=row["account"],
        requested_by=row["requested_by"] or "",
        email=row["email"],
        template=row["template"] or "",
        subject=row["subject"] or "",
        message_id=row["message_id"],
        state=MessageState(row["state"]),
        provider_id=row["provider_id"],
        last_error=row["last_error"],
        reference=row["reference"] or "",
        team=row["team"] or "",
    )


class SqliteTestSends:
    """``bot.ports.TestSends`` on SQL (table ``test_sends``)."""

    def __init__(self, database: SqlDatabase):
        self._db = database

    def start(
        self,
        *,
        account: str,
        requested_by: str,
        email: str,
        template: str,
        subject: str,
        message_id: str,
        reference: str = "",
        team: str = "",
    ) -> int:
        """Record a test send as in flight (``sending``) before it is handed over;
        ``team``: the workspace it is sent from (``''``: the CLI)."""
        with self._db.tx() as db:
            inserted = (
                db.table("test_sends")
                .insert(
                    {
                        "at": self._db.clock(),
                        "account": account,
                        "requested_by": requested_by,
                        "email": email,
                        "template": template,
                        "subject": subject,
                        "message_id": message_id,
                        "state": MessageState.SENDING.value,
                        "reference": reference,
                        "team": team,
                    }
                )
                .last_pk
            )
            assert inserted is not None  # an insert into a table with an integer key
            row_id = int(inserted)
            audit.write(
                db,
                self._db.clock,
                requested_by,
                "test.started",
                {"test_send": row_id, "email": email, "template": template},
                team=team,
            )
        return row_id

    def finish(
        self, row_id: int, state: MessageState, *, provider_id: str = "", error: str = ""
    ) -> None:
        """What became of a test send: ``sent``, ``failed`` or ``uncertain``."""
        with self._db.tx() as db:
            db.execute(
                "update test_sends set state = ?, provider_id = ?, last_error = ? where id = ?",
                [MessageState(state).value, provider_id or None, error or None, row_id],
            )
            found = db.execute("select team from test_sends where id = ?", [row_id]).fetchone()
            audit.write(
                db,
                self._db.clock,
                "mailbolt",
                "test.finished",
                {"test_send": row_id, "state": MessageState(state).value, "error": error},
                team=(found[0] or "") if found else "",
            )

    def by_reference(self, reference: str) -> TestSend | None:
        """The latest test send made under ``reference`` (e.g. one preview), if any."""
        rows = self._db.query(
            "select * from test_sends where reference = ? order by id desc limit 1", [reference]
        )
        return record_from_row(rows[0]) if rows else None

    def recent(self, limit: int = 50, *, team: str | None = None) -> list[TestSend]:
        """The newest ``limit`` test sends, newest first (of one workspace, if given)."""
        where, params = ("", []) if team is None else (" where team = ?", [team])
        rows = self._db.query(
            f"select * from test_sends{where} order by id desc limit ?",  # noqa: S608
            [*params, limit],
        )
        return [record_from_row(r) for r in rows]
