"""Sender accounts, who may use each, and started "Connect your Gmail" flows.

Written against ``bot.store.sql``, so the same statements run on SQLite and
PostgreSQL (``bot.ports.SenderAccounts``). The grants it keeps are
sealed by the caller; nothing here can read one.
"""

from __future__ import annotations

from typing import Any

from bot.records import (
    GrantClient,
    OAuthState,
    SenderAccount,
    SenderKind,
    SenderStatus,
)
from bot.store.audit import write as audit
from bot.store.sql import SqlDatabase

_USER, _GROUP = "user", "group"
_STATE_SQL = (
    'select state, "user", team, sealed_verifier, browser, created_at '
    "from oauth_states where state = ?"
)


def _state(row: Any) -> OAuthState:
    return OAuthState(
        state=row[0],
        user=row[1],
        team=row[2],
        sealed_verifier=row[3],
        browser=row[4],
        created_at=row[5],
    )


class SqliteSenderAccounts:
    """``bot.ports.SenderAccounts`` on either SQL database."""

    def __init__(self, database: SqlDatabase):
        self._db = database

    # -- accounts ----------------------------------------------------------------

    def save(self, account: SenderAccount, *, actor: str, action: str) -> None:
        now = self._db.clock()
        with self._db.tx() as db:
            old = db.execute(
                "select created_at from sender_accounts where address = ?", [account.address]
            ).fetchone()
            created = old[0] if old else (account.created_at or now)
            db.execute("delete from sender_access where address = ?", [account.address])
            db.execute(
                "insert into sender_accounts (address, kind, client, name, owner, "
                "team, scopes, status, status_reason, everyone, sealed_grant, created_at, "
                "updated_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "on conflict (address) do update set kind = excluded.kind, "
                "client = excluded.client, name = excluded.name, owner = excluded.owner, "
                "team = excluded.team, scopes = excluded.scopes, status = excluded.status, "
                "status_reason = excluded.status_reason, everyone = excluded.everyone, "
                "sealed_grant = excluded.sealed_grant, updated_at = excluded.updated_at",
                [
                    account.address,
                    str(account.kind),
                    str(account.client),
                    account.name,
                    account.owner,
                    account.team,
                    " ".join(sorted(account.scopes)),
                    str(account.status),
                    account.status_reason,
                    int(account.everyone),
                    account.sealed_grant,
                    created,
                    now,
                ],
            )
            self._write_access(db, account.address, account.users, account.groups)
            audit(db, self._db.clock, actor, action, _detail(account))

    def get(self, address: str) -> SenderAccount | None:
        rows = self._db.query("select * from sender_accounts where address = ?", [address])
        return self._record(rows[0]) if rows else None

    def find(self, name_or_address: str) -> SenderAccount | None:
        wanted = name_or_address.strip().lower()
        rows = self._db.query(
            "select * from sender_accounts where address = ? or lower(name) = ? "
            "order by address = ? desc, created_at limit 1",
            [wanted, wanted, wanted],
        )
        return self._record(rows[0]) if rows else None

    def all(self, *, team: str | None = None) -> list[SenderAccount]:
        """Every account, oldest first; with ``team``, those of that workspace and the
        operator's (team ``''``, added on the CLI), which serve every workspace."""
        where, params = ("", []) if team is None else (" where team in (?, ?)", [team, ""])
        rows = self._db.query(
            f"select * from sender_accounts{where} order by created_at, address",  # noqa: S608
            params,
        )
        return [self._record(r) for r in rows]

    def adopt_unowned(self, team: str, *, actor: str) -> int:
        """Give every account of no workspace (team ``''``: linked on the command line
        while mailbolt served one workspace) to ``team``; how many. Audited."""
        with self._db.tx() as db:
            moved = db.execute(
                "update sender_accounts set team = ? where team = ''", [team]
            ).rowcount
            if moved:
                audit(
                    db, self._db.clock, actor, "workspace.adopted", {"accounts": moved}, team=team
                )
        return int(moved)

    def set_status(
        self, address: str, status: SenderStatus, reason: str = "", *, actor: str
    ) -> bool:
        with self._db.tx() as db:
            changed = db.execute(
                "update sender_accounts set status = ?, status_reason = ?, updated_at = ? "
                "where address = ? and status != ?",
                [str(status), reason, self._db.clock(), address, str(status)],
            ).rowcount
            if changed:
                audit(db, self._db.clock, actor, f"account.{status}", {"address": address})
        return bool(changed)

    def set_access(
        self,
        address: str,
        *,
        everyone: bool,
        users: frozenset[str],
        groups: frozenset[str],
        actor: str,
    ) -> bool:
        with self._db.tx() as db:
            changed = db.execute(
                "update sender_accounts set everyone = ?, updated_at = ? where address = ?",
                [int(everyone), self._db.clock(), address],
            ).rowcount
            if not changed:
                return False
            db.execute("delete from sender_access where address = ?", [address])
            self._write_access(db, address, users, groups)
            detail = {
                "address": address,
                "everyone": everyone,
                "users": sorted(users),
                "groups": sorted(groups),
            }
            audit(db, self._db.clock, actor, "account.access", detail)
        return True

    def remove(self, address: str, *, actor: str, action: str) -> bool:
        with self._db.tx() as db:
            found = db.execute(
                "select team from sender_accounts where address = ?", [address]
            ).fetchone()
            db.execute("delete from sender_access where address = ?", [address])
            gone = db.execute("delete from sender_accounts where address = ?", [address]).rowcount
            if gone:
                team = (found[0] or "") if found else ""
                audit(db, self._db.clock, actor, action, {"address": address}, team=team)
        return bool(gone)

    # -- OAuth states ------------------------------------------------------------

    def add_state(self, state: OAuthState) -> None:
        self._db.update(
            'insert into oauth_states (state, "user", team, sealed_verifier, browser, created_at) '
            "values (?, ?, ?, ?, ?, ?)",
            [
                state.state,
                state.user,
                state.team,
                state.sealed_verifier,
                state.browser,
                state.created_at,
            ],
        )

    def bind_state(self, state: str, browser: str) -> OAuthState | None:
        with self._db.tx() as db:
            bound = db.execute(
                "update oauth_states set browser = ? where state = ? and browser = ''",
                [browser, state],
            ).rowcount
            row = db.execute(_STATE_SQL, [state]).fetchone() if bound else None
        return _state(row) if row else None

    def take_state(self, state: str) -> OAuthState | None:
        with self._db.tx() as db:
            row = db.execute(_STATE_SQL, [state]).fetchone()
            if row is None:
                return None
            db.execute("delete from oauth_states where state = ?", [state])
        return _state(row)

    def drop_states_before(self, when: float) -> int:
        return self._db.update("delete from oauth_states where created_at < ?", [when])

    # -- helpers -----------------------------------------------------------------

    @staticmethod
    def _write_access(db: Any, address: str, users: frozenset[str], groups: frozenset[str]) -> None:
        for kind, ids in ((_USER, users), (_GROUP, groups)):
            for slack_id in sorted(ids):
                db.execute(
                    "insert into sender_access (address, kind, slack_id) values (?, ?, ?)",
                    [address, kind, slack_id],
                )

    def _record(self, row: dict[str, Any]) -> SenderAccount:
        access = self._db.query(
            "select kind, slack_id from sender_access where address = ?", [row["address"]]
        )
        return SenderAccount(
            address=row["address"],
            kind=SenderKind(row["kind"]),
            client=GrantClient(row["client"]),
            name=row["name"],
            owner=row["owner"],
            team=row["team"],
            scopes=frozenset(row["scopes"].split()),
            status=SenderStatus(row["status"]),
            status_reason=row["status_reason"],
            everyone=bool(row["everyone"]),
            users=frozenset(a["slack_id"] for a in access if a["kind"] == _USER),
            groups=frozenset(a["slack_id"] for a in access if a["kind"] == _GROUP),
            sealed_grant=row["sealed_grant"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


def _detail(account: SenderAccount) -> dict[str, Any]:
    """What the audit log keeps of a saved account: never the grant."""
    return {
        "address": account.address,
        "kind": str(account.kind),
        "name": account.name,
        "owner": account.owner,
        "everyone": account.everyone,
        "users": sorted(account.users),
        "groups": sorted(account.groups),
    }
