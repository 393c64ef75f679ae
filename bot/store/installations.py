"""Slack installations (one per workspace) and the states of "Add to Slack".

Tables ``slack_installations`` and ``slack_oauth_states`` (migration 9). The bot
token is stored sealed: the caller encrypts it, so this module never sees it in
the clear. A state row is deleted when it is used: the ``delete`` that finds it
is the one acceptance, so two servers sharing the database cannot both accept it.
"""

from __future__ import annotations

from typing import Any

from bot.records import Installation
from bot.store.sql import SqlDatabase

_COLUMNS = (
    "team, enterprise, sealed_bot_token, bot_user, bot_id, scopes, installer, app_id, "
    "team_name, installed_at, updated_at"
)


class SqlInstallations:
    """``bot.ports.Installations`` on SQL, written once for SQLite and PostgreSQL."""

    def __init__(self, database: SqlDatabase):
        self._db = database

    def save(self, installation: Installation) -> None:
        now = self._db.clock()
        i = installation
        with self._db.tx() as db:
            db.execute(
                f"insert into slack_installations ({_COLUMNS}) "  # noqa: S608 - fixed names
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "on conflict(team) do update set enterprise = excluded.enterprise, "
                "sealed_bot_token = excluded.sealed_bot_token, bot_user = excluded.bot_user, "
                "bot_id = excluded.bot_id, scopes = excluded.scopes, "
                "installer = excluded.installer, app_id = excluded.app_id, "
                "team_name = excluded.team_name, updated_at = excluded.updated_at",
                [
                    i.team,
                    i.enterprise,
                    i.sealed_bot_token,
                    i.bot_user,
                    i.bot_id,
                    i.scopes,
                    i.installer,
                    i.app_id,
                    i.team_name,
                    now,
                    now,
                ],
            )

    def get(self, team: str) -> Installation | None:
        rows = self._db.query(
            f"select {_COLUMNS} from slack_installations where team = ?",  # noqa: S608
            [team],
        )
        return _installation(rows[0]) if rows else None

    def all(self) -> list[Installation]:
        rows = self._db.query(
            f"select {_COLUMNS} from slack_installations order by team"  # noqa: S608
        )
        return [_installation(r) for r in rows]

    def delete(self, team: str) -> bool:
        with self._db.tx() as db:
            cursor = db.execute("delete from slack_installations where team = ?", [team])
            return bool(cursor.rowcount)

    def issue_state(self, state: str) -> None:
        with self._db.tx() as db:
            db.execute(
                "insert into slack_oauth_states (state, created_at) values (?, ?)",
                [state, self._db.clock()],
            )

    def consume_state(self, state: str, max_age: float) -> bool:
        now = self._db.clock()
        with self._db.tx() as db:
            cursor = db.execute(
                "delete from slack_oauth_states where state = ? returning created_at", [state]
            )
            row = cursor.fetchone()
            # states nobody came back with are dropped once they cannot be used
            db.execute("delete from slack_oauth_states where created_at < ?", [now - max_age])
        return row is not None and now - float(row[0]) < max_age


def _installation(row: dict[str, Any]) -> Installation:
    return Installation(
        team=row["team"],
        enterprise=row["enterprise"],
        sealed_bot_token=row["sealed_bot_token"],
        bot_user=row["bot_user"],
        bot_id=row["bot_id"],
        scopes=row["scopes"],
        installer=row["installer"],
        app_id=row["app_id"],
        team_name=row["team_name"],
        installed_at=float(row["installed_at"]),
        updated_at=float(row["updated_at"]),
    )
