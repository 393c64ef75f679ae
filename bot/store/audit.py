"""The audit log: who did what, appended in the same transaction as the change."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bot.records import AuditEntry
from bot.store.sql import SqlDatabase, Tx


def write(
    db: Tx,
    clock: Callable[[], float],
    actor: str,
    action: str,
    detail: dict[str, Any],
    *,
    team: str | None = None,
) -> None:
    """Append one entry inside the caller's transaction (so both commit or neither).

    ``team``: the workspace it happened in. Left out, an entry about a campaign
    (``detail["campaign_id"]``) belongs to the campaign's workspace, one about a
    sender account (``detail["address"]``) to the account's, any other to ``''``
    (the CLI, the system): so every caller files its entries correctly without
    passing the team along.
    """
    if team is None:
        team = _team_of(db, detail.get("campaign_id")) or _account_team(db, detail.get("address"))
    db.table("audit").insert(
        {
            "at": clock(),
            "actor": actor,
            "action": action,
            "detail": json.dumps(detail, ensure_ascii=False, default=str),
            "team": team,
        }
    )


def _account_team(db: Tx, address: Any) -> str:
    if not isinstance(address, str) or not address:
        return ""
    row = db.execute("select team from sender_accounts where address = ?", [address]).fetchone()
    return (row[0] or "") if row else ""


def _team_of(db: Tx, campaign_id: Any) -> str:
    if not isinstance(campaign_id, int) or isinstance(campaign_id, bool):
        return ""
    row = db.execute("select team from campaigns where id = ?", [campaign_id]).fetchone()
    return (row[0] or "") if row else ""


class SqliteAudit:
    """``bot.ports.Audit`` on SQL (SQLite or PostgreSQL)."""

    def __init__(self, database: SqlDatabase):
        self._db = database

    def record(self, actor: str, action: str, *, team: str | None = None, **detail: Any) -> None:
        """Append one entry in its own transaction (``team`` as in ``write``)."""
        with self._db.tx() as db:
            write(db, self._db.clock, actor, action, detail, team=team)

    def recent(
        self,
        limit: int = 50,
        *,
        campaign_id: int | None = None,
        since: float | None = None,
        team: str | None = None,
    ) -> list[AuditEntry]:
        """The newest ``limit`` entries, newest first, optionally of one campaign
        (its id in the entry's detail), from ``since`` on, and of one workspace
        (``team``; ``None``: all)."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if team is not None:
            where.append("team = ?")
            params.append(team)
        if campaign_id is not None:
            where.append(f"{self._db.json_text('detail', 'campaign_id')} = ?")
            params.append(str(campaign_id))
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        rows = self._db.query(
            f"select * from audit where {' and '.join(where)} order by id desc limit ?",  # noqa: S608 (fixed clauses)
            [*params, limit],
        )
        return [
            AuditEntry(
                id=r["id"],
                at=r["at"],
                actor=r["actor"],
                action=r["action"],
                detail=json.loads(r["detail"] or "{}"),
                team=r["team"],
            )
            for r in rows
        ]
