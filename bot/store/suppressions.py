"""Who must not get mail: unsubscribes (marketing only) and bounce reports.

Suppression is per Slack workspace (``team``): a row of team ``''`` (added on the
CLI, or from before workspaces were told apart) holds for every workspace, a row
of team ``T1`` for ``T1`` only. ``team=None`` in a read means "any workspace" (the
operator's view, and the safe answer when the asker does not know its team).
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.records import Unsubscribe
from bot.store import audit
from bot.store.sql import SqlDatabase


def of_team(team: str | None) -> tuple[str, list[str]]:
    """The condition (`` and …``) selecting the rows that hold for ``team``: its own
    and the every-workspace ones; nothing to add for ``None`` (any workspace)."""
    if team is None:
        return "", []
    return " and team in (?, ?)", [team, ""]


class SqliteSuppressions:
    """``bot.ports.Suppressions`` on SQL (tables ``unsubscribes`` and ``bounces``)."""

    def __init__(self, database: SqlDatabase):
        self._db = database

    # -- unsubscribes ------------------------------------------------------

    def add_unsubscribe(
        self, email: str, source: str, campaign_id: int | None = None, *, team: str = ""
    ) -> bool:
        """Record an unsubscribe for ``team`` (``''``: every workspace); False if the
        address was already unsubscribed there (by its own or an every-workspace row)."""
        key = email.strip().lower()
        condition, params = of_team(team or None)
        with self._db.tx() as db:
            if db.execute(
                f"select 1 from unsubscribes where email = ?{condition}",  # noqa: S608
                [key, *params],
            ).fetchone():
                return False
            db.table("unsubscribes").insert(
                {
                    "team": team,
                    "email": key,
                    "source": source,
                    "campaign_id": campaign_id,
                    "created_at": self._db.clock(),
                }
            )
            audit.write(db, self._db.clock, source, "unsubscribe.added", {"email": key}, team=team)
        return True

    def remove_unsubscribe(self, email: str, actor: str, *, team: str = "") -> bool:
        """Forget ``team``'s unsubscribe of ``email`` (a person opted in again); False
        if there was none. Only that row: a workspace cannot lift the operator's
        every-workspace unsubscribe, nor another workspace's."""
        key = email.strip().lower()
        with self._db.tx() as db:
            removed = db.execute(
                "delete from unsubscribes where email = ? and team = ?", [key, team]
            ).rowcount
            if removed:
                audit.write(
                    db, self._db.clock, actor, "unsubscribe.removed", {"email": key}, team=team
                )
        return bool(removed)

    def unsubscribes(self, team: str | None = None) -> list[Unsubscribe]:
        """The unsubscribes that hold for ``team`` (its own and every workspace's;
        all of them for ``None``), oldest first."""
        condition, params = of_team(team)
        rows = self._db.query(
            f"select * from unsubscribes where 1 = 1{condition} order by created_at, email",  # noqa: S608
            params,
        )
        return [
            Unsubscribe(
                email=r["email"],
                source=r["source"],
                campaign_id=r["campaign_id"],
                created_at=r["created_at"],
                team=r["team"],
            )
            for r in rows
        ]

    def unsubscribed_among(self, emails: Iterable[str], team: str | None = None) -> set[str]:
        """The subset of ``emails`` (compared case-insensitively, returned lower-cased)
        that unsubscribed from ``team`` (or from every workspace; from any for ``None``)."""
        condition, params = of_team(team)
        return self._db.among("unsubscribes", condition, emails, params)

    # -- bounces -----------------------------------------------------------

    def hard_bounced_among(self, emails: Iterable[str], team: str | None = None) -> set[str]:
        """The subset of ``emails`` (lower-cased) with a hard bounce on record for
        ``team`` (or for every workspace; any for ``None``)."""
        condition, params = of_team(team)
        return self._db.among("bounces", " and kind = 'hard'" + condition, emails, params)

    def record_bounce(
        self,
        provider_id: str,
        *,
        kind: str,
        message_row_id: int | None = None,
        email: str = "",
        status: str = "",
        diagnostic: str = "",
        team: str = "",
    ) -> bool:
        """Record one bounce report under the provider's id; False if seen before.

        ``team``: the workspace of the account whose mailbox reported it; the bounce
        suppresses the address there (``''``: everywhere).

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
                    "team": team,
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
                    team=team,
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
