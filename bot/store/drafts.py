"""Slack drafts: what a preview needs to start its campaign.

A 2,000-row list does not fit in a view's 3,000-character metadata, so the view
carries only a key and the rest is kept here for a week.
"""

from __future__ import annotations

import json
from typing import Any

from bot.records import Draft
from bot.store.sql import SqlDatabase

DRAFT_TTL_SECONDS = 7 * 24 * 3600


class SqliteDrafts:
    """``bot.ports.Drafts`` on SQL (table ``slack_drafts``, migration 3; ``"user"`` is
    quoted, a reserved word in PostgreSQL)."""

    ttl_seconds = DRAFT_TTL_SECONDS

    def __init__(self, database: SqlDatabase):
        self._db = database

    def save(self, key: str, user: str, data: dict[str, Any], *, team: str = "") -> None:
        """Keep ``data`` under ``key`` (replacing it) for ``user`` of workspace
        ``team``; drafts older than a week are dropped.

        Saving again under a key replaces the data but keeps the owner, the
        workspace and the age.
        """
        now = self._db.clock()
        with self._db.tx() as db:
            db.execute("delete from slack_drafts where created_at < ?", [now - self.ttl_seconds])
            db.execute(
                'insert into slack_drafts (key, "user", created_at, data, team) '
                "values (?, ?, ?, ?, ?) on conflict(key) do update set data = excluded.data",
                [key, user, now, json.dumps(data, ensure_ascii=False), team],
            )

    def get(self, key: str) -> Draft | None:
        """The draft saved under ``key``; None if unknown or expired."""
        rows = self._db.query(
            'select "user", data, team from slack_drafts where key = ? and created_at >= ?',
            [key, self._db.clock() - self.ttl_seconds],
        )
        if not rows:
            return None
        row = rows[0]
        return Draft(key=key, user=row["user"], data=json.loads(row["data"]), team=row["team"])
