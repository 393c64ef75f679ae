"""Who must not get mail: unsubscribes (marketing only) and bounce reports."""

from __future__ import annotations

from collections.abc import Iterable

from bot.records import Unsubscribe
from bot.store import audit
from bot.store.sql import SqlDatabase


class SqliteSuppressions:
    """``bot.ports.Suppressions`` on SQL (tables ``unsubscribes`` and ``bounces``)."""

    def __init__(self, database: SqlDatabase):
        self._db = database

    # -- unsubscribes ------------------------------------------------------

    def add_unsubscribe(self, email: str, source: str, campaign_id: int | None = None) -> bool:
        """Record an unsubscribe; False if the address was already unsubscribed."""
        key = email.strip().lower()
        with self._db.tx() as db:
            if db.execute("select 1 from unsubscribes where email = ?", [key]).fetchone():
                return False
            db.table("unsubscribes").insert(
                {
                    "email": key,
                    "source": source,
                    "campaign_id": campaign_id,
                    "created_at": self._db.clock(),
                }
            )
            audit.write(db, self._db.clock, source, "unsubscribe.added", {"email": key})
        return True

    def remove_unsubscribe(self, email: str, actor: str) -> bool:
        """Forget an unsubscribe (a person opted in again); False if there was none."""
        key = email.strip().lower()
        with self._db.tx() as db:
            removed = db.execute("delete from unsubscribes where email = ?", [key]).rowcount
            if removed:
                audit.write(db, self._db.clock, actor, "unsubscribe.removed", {"email": key})
        return bool(removed)

    def unsubscribes(self) -> list[Unsubscribe]:
        """Every unsubscribe, oldest first."""
        rows = self._db.query("select * from unsubscribes order by created_at")
        return [
            Unsubscribe(
                email=r["email"],
                source=r["source"],
                campaign_id=r["campaign_id"],
                created_at=r["created_at"],
            )
            for r in rows
        ]

    def unsubscribed_among(self, emails: Iterable[str]) -> set[str]:
        """The subset of ``emails`` (compared case-insensitively, returned lower-cased)
        that unsubscribed."""
        return self._db.among("unsubscribes", "", emails)

    # -- bounces -----------------------------------------------------------

    def hard_bounced_among(self, emails: Iterable[str]) -> set[str]:
        """The subset of ``emails`` (lower-cased) with a hard bounce on record."""
        return self._db.among("bounces", " and kind = 'hard'", emails)

    def record_bounce(
        self,
        provider_id: str,
        *,
        kind: str,
        message_row_id: int | None = None,
        email: str = "",
        status: str = "",
        diagnostic: str = "",
    ) -> bool:
        """Record one bounce report under the provider's id; False if seen before.

        ``kind`` is ``hard``, ``soft`` or ``unmatched`` (read, but not about one of
        our messages: kept only so it is not fetched again). A matched report also
        marks its message; a later soft report never downgrades a hard bounce.
        """
        with self._db.tx() as db:
            seen = db.execute("select 1 from bounces where provider_id = ?", [provider_id])
            if seen.fetchone():
                return False
            db.table("bounces").insert(
                {
                    "message_row_id": message_row_id,
                    "email": email.strip().lower(),
                    "kind": kind,
                    "status": status,
                    "diagnostic": diagnostic,
                    "provider_id": provider_id,
                    "created_at": self._db.clock(),
                }
            )
            if message_row_id is not None:
                db.execute(
                    "update messages set bounce = ? "
                    "where id = ? and coalesce(bounce, '') != 'hard'",
                    [kind, message_row_id],
                )
                audit.write(
                    db,
                    self._db.clock,
                    "bounce-scan",
                    "bounce.recorded",
                    {"message": message_row_id, "email": email, "kind": kind, "status": status},
                )
        return True

    def known_bounce_reports(self, provider_ids: Iterable[str]) -> set[str]:
        """The subset of ``provider_ids`` already recorded (so they are not fetched again)."""
        ids = list(provider_ids)
        known: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.query(
                f"select provider_id from bounces where provider_id in ({marks})",  # noqa: S608
                chunk,
            )
            known |= {r["provider_id"] for r in rows}
        return known
