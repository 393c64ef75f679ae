"""The sender lock in PostgreSQL: a session-level advisory lock.

Keyed by a constant and the schema's name, so two mailbolt installations in one
database (or two test schemas) never block each other. Held by its own session,
apart from the store's: the store may reconnect, the lock must not move. The
server drops it when that session ends, so a dead process never leaves it behind.
"""

from __future__ import annotations

import psycopg

from bot.store_pg.db import connect, faults
from bot.store_pg.url import redact_url

#: First key of the sender lock ("mblt"); the second is the schema's hash.
SENDER_LOCK = 0x6D626C74

_KEY = "%s, hashtext(current_schema())"
_HOLDER = """
select coalesce(a.application_name, '') from pg_locks l join pg_stat_activity a on a.pid = l.pid
where l.locktype = 'advisory' and l.granted and l.objsubid = 2
  and l.database = (select oid from pg_database where datname = current_database())
  and l.classid = %s::bigint::oid
  and l.objid = (hashtext(current_schema())::bigint & 4294967295)::oid
  and l.pid <> pg_backend_pid()
limit 1
"""


class AdvisoryLock:
    """Take, test and release the sender lock of the database at ``url``."""

    def __init__(self, url: str, *, application_name: str, busy_seconds: float = 30.0):
        self.url = url
        self.name = redact_url(url)
        self.held = False
        self.shared = False
        self._application_name = application_name
        self._busy_seconds = busy_seconds
        self._conn: psycopg.Connection | None = None

    def _session(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(
                self.url,
                application_name=self._application_name,
                busy_seconds=self._busy_seconds,
            )
            # A lost machine's lock is freed when the server gives up on its session.
            for name, value in (("idle", "30"), ("interval", "10"), ("count", "3")):
                self._conn.execute(
                    "select set_config(%s, %s, false)", [f"tcp_keepalives_{name}", value]
                )
        return self._conn

    def try_acquire(self, *, shared: bool = False) -> bool:
        """Take the lock if nobody has it; True if this session now holds it.

        ``shared``: many sessions may hold it shared at once (workers), while an
        exclusive holder (one sending process) keeps every other out.
        """
        self.shared = shared
        take = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        with faults(self.url):
            row = self._session().execute(f"select {take}({_KEY})", [SENDER_LOCK])
            self.held = bool(row.fetchone()[0])  # type: ignore[index]
        return self.held

    def holder(self) -> str | None:
        """The ``application_name`` of the other session holding the lock, or None."""
        with faults(self.url):
            row = self._session().execute(_HOLDER, [SENDER_LOCK]).fetchone()
        return None if row is None else str(row[0])

    def release(self) -> None:
        """Let go (if held) and close the session."""
        if self._conn is None:
            return
        with faults(self.url):
            if self.held and not self._conn.closed and not self._conn.broken:
                unlock = "pg_advisory_unlock_shared" if self.shared else "pg_advisory_unlock"
                self._conn.execute(f"select {unlock}({_KEY})", [SENDER_LOCK])
            self._conn.close()
        self._conn = None
        self.held = False
