"""The PostgreSQL connection every part of a ``PgStore`` shares.

Why it looks like this (the same guarantees as ``bot.store.db``, on a server):
- Autocommit, so each read stands alone, and ``tx()`` wraps each state change in
  its own transaction, committed before the caller's next step runs. The session
  insists on ``synchronous_commit = on``: a commit is on the server's disk.
- One connection guarded by a re-entrant lock, shared by the process's threads
  (a part may read inside another part's transaction; a nested ``tx()`` is a
  savepoint). Many processes scale out by each holding their own.
- The parts' SQL is written with ``?`` placeholders (``bot.store.sql``); here they
  become psycopg's ``%s``. The parts' writes through ``table(name)`` get the few
  ``sqlite_utils`` calls they use (``insert``, ``insert_all``, ``update``).
- Faults of the machine (server gone, refused login, full disk, read-only,
  a lock held too long) become one ``StorageError`` naming the database, never
  its password; a lost connection is opened again on the next call. Bugs (a
  wrong query, a broken constraint) stay ordinary exceptions.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlite_utils.db import NotFoundError

from bot.errors import StorageError
from bot.store.sql import FaultMemory
from bot.store.sql import among as among_emails
from bot.store_pg import schema
from bot.store_pg.url import HIDDEN, password_of, redact_url

DATABASE_REMEDY = (
    "Check that the PostgreSQL server is running and reachable and that DATABASE_URL "
    "names the right host, user, password and database, then run the command again; "
    "`python -m bot send --resume` continues any campaign from where it stopped."
)

# SQLSTATE codes and classes that mean "the server or the machine", not "the program".
_FAULT_CODES = {
    "3D000": "the database does not exist",
    "42501": "permission denied",
    "25006": "it is read-only (a standby server, or default_transaction_read_only)",
    "55P03": "it is locked by another program (a long transaction, or a database tool)",
    "57014": "a statement was cancelled (statement_timeout, or an administrator)",
    "53100": "the server's disk is full",
    "53300": "the server has too many connections",
    "40P01": "a deadlock with another program; this change was not made",
    "40001": "a conflict with another program; this change was not made",
}
_FAULT_CLASSES = {
    "08": "the connection to the server failed or was lost",
    "28": "the server refused the user name or password",
    "53": "the server is out of resources (disk, memory or connections)",
    "57": "the server is shutting down or restarting, or ended this session",
    "58": "the server's disk refused a read or write",
    "XX": "the server found damaged data (a corrupt table or index)",
}


def connect(url: str, *, application_name: str, busy_seconds: float) -> psycopg.Connection:
    """A new autocommit session with mailbolt's settings.

    ``synchronous_commit = on`` whatever the server's default: a commit is on disk.
    ``lock_timeout`` is ``DATABASE_BUSY_SECONDS``: how long a write waits for a row
    or table another program holds before it gives up with an error.
    """
    conn = psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=max(1, round(busy_seconds)),
        application_name=application_name,
    )
    conn.execute("select set_config('synchronous_commit', 'on', false)")
    conn.execute(
        "select set_config('lock_timeout', %s, false)", [f"{max(1, round(busy_seconds * 1000))}ms"]
    )
    return conn


@contextmanager
def faults(url: str, remember: Callable[[StorageError], None] | None = None) -> Iterator[None]:
    """Turn the server's and the network's faults into one readable ``StorageError``.

    Bugs (a wrong query, a broken constraint) stay ordinary exceptions.
    """
    try:
        yield
    except psycopg.Error as exc:
        fault = storage_fault(exc, url)
        if fault is None:
            raise
        if remember is not None:
            remember(fault)
        raise fault from exc


def fault_reason(exc: psycopg.Error) -> str | None:
    """Why the database cannot be used, in words; None if ``exc`` is a bug."""
    state = exc.sqlstate
    if state is None:
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return _connect_reason(str(exc))
        return None
    return _FAULT_CODES.get(state) or _FAULT_CLASSES.get(state[:2])


# What libpq says when a connection is refused, and what it means (no SQLSTATE then).
_CONNECT_FAULTS = (
    (re.compile(r'database ".*" does not exist'), "the database does not exist"),
    (re.compile(r"authentication failed|password"), _FAULT_CLASSES["28"]),
    (re.compile(r"no pg_hba\.conf entry"), "the server does not accept this user from here"),
)


def _connect_reason(message: str) -> str:
    for pattern, reason in _CONNECT_FAULTS:
        if pattern.search(message):
            return reason
    return "the server cannot be reached, or the connection was lost"


def storage_fault(exc: psycopg.Error, url: str) -> StorageError | None:
    """A one-line ``StorageError`` naming the database (never its password), or None."""
    reason = fault_reason(exc)
    if reason is None:
        return None
    detail = " ".join(str(exc).split())
    password = password_of(url)
    if password:
        detail = detail.replace(password, HIDDEN)
    name = redact_url(url)
    return StorageError(
        f"Cannot use the database {name}: {reason} ({detail}). {DATABASE_REMEDY}", path=name
    )


@lru_cache(maxsize=1024)
def to_pg(sql: str) -> str:
    """The parts' ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled).

    The parts' SQL has no ``?`` inside a string literal; keep it that way.
    """
    return sql.replace("%", "%%").replace("?", "%s")


def _quoted(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"not a plain SQL name: {name!r}")
    return f'"{name}"'


class Inserted:
    """What ``table(name).insert`` returns: the new row's key, as in sqlite_utils."""

    def __init__(self, last_pk: Any):
        self.last_pk = last_pk


class PgTable:
    """The ``sqlite_utils.Table`` calls the parts make, in SQL PostgreSQL runs."""

    def __init__(self, tx: PgTx, name: str):
        self._tx = tx
        self._name = _quoted(name)

    def insert(self, record: dict[str, Any]) -> Inserted:
        """Insert one row; ``last_pk`` is its first column (every table's key)."""
        columns = ", ".join(_quoted(c) for c in record)
        marks = ", ".join("?" * len(record))
        row = self._tx.execute(
            f"insert into {self._name} ({columns}) values ({marks}) returning *",  # noqa: S608
            list(record.values()),
        ).fetchone()
        return Inserted(row[0] if row else None)

    def insert_all(self, records: Iterable[dict[str, Any]], *, batch_size: int = 500) -> None:
        """Insert many rows of the same columns (psycopg pipelines them)."""
        rows = list(records)
        if not rows:
            return
        names = list(rows[0])
        columns = ", ".join(_quoted(c) for c in names)
        sql = to_pg(
            f"insert into {self._name} ({columns}) values ({', '.join('?' * len(names))})"  # noqa: S608
        )
        with self._tx.conn.cursor() as cur:
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                cur.executemany(sql, [[r[n] for n in names] for r in batch])

    def update(self, pk_values: Any, updates: dict[str, Any] | None = None) -> PgTable:
        """Change columns of the row with id ``pk_values``; ``NotFoundError`` if none."""
        changes = updates or {}
        if changes:
            sets = ", ".join(f"{_quoted(c)} = ?" for c in changes)
            found = self._tx.execute(
                f"update {self._name} set {sets} where id = ?",  # noqa: S608
                [*changes.values(), pk_values],
            ).rowcount
        else:
            found = self._tx.execute(
                f"select 1 from {self._name} where id = ?",  # noqa: S608
                [pk_values],
            ).rowcount
        if not found:
            raise NotFoundError
        return self


class PgTx:
    """One open transaction (``bot.store.sql.Tx``)."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def execute(self, sql: str, parameters: Any = ()) -> psycopg.Cursor:
        return self.conn.execute(to_pg(sql), list(parameters))

    def table(self, table_name: str) -> PgTable:
        return PgTable(self, table_name)


class PgDatabase:
    """The connection, its lock, the clock, and the transaction helpers
    (``bot.store.sql.SqlDatabase`` on PostgreSQL)."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        busy_seconds: float = 30.0,
        application_name: str = "mailbolt",
    ):
        self.url = url
        self.name = redact_url(url)
        self.clock = clock
        self.lock = threading.RLock()
        self._busy_seconds = busy_seconds
        self._application_name = application_name
        self._conn: psycopg.Connection | None = None
        self._faulted = FaultMemory()
        with self._faults(), self.lock:
            schema.migrate(self._connection())

    def _connection(self) -> psycopg.Connection:
        """The shared session; a new one if the last was lost (server restart, network)."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = connect(
                self.url, application_name=self._application_name, busy_seconds=self._busy_seconds
            )
        return self._conn

    # -- faults of the machine -------------------------------------------------

    def _faults(self) -> AbstractContextManager[None]:
        return faults(self.url, self._faulted.remember)

    @contextmanager
    def tx(self) -> Iterator[PgTx]:
        """One committed transaction, under the lock (rolled back on error)."""
        started = time.monotonic()
        with self._faults(), self.lock:
            self._faulted.fail_if_faulted_since(started)
            conn = self._connection()
            with conn.transaction():
                yield PgTx(conn)

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        started = time.monotonic()
        with self._faults(), self.lock:
            self._faulted.fail_if_faulted_since(started)
            with self._connection().cursor(row_factory=dict_row) as cur:
                cur.execute(to_pg(sql), list(params))
                return cur.fetchall()

    def update(self, sql: str, params: Iterable[Any]) -> int:
        """Run one write in its own transaction; return how many rows it changed."""
        with self.tx() as tx:
            return tx.execute(sql, params).rowcount

    def among(
        self, table: str, condition: str, emails: Iterable[str], params: Iterable[Any] = ()
    ) -> set[str]:
        """Lower-cased ``emails`` present in ``table``."""
        return among_emails(self.query, table, condition, emails, params)

    def skip_locked(self, alias: str) -> str:
        """Lock the claimed rows of ``alias`` only, passing over rows others hold."""
        return f" for update of {alias} skip locked"

    def json_text(self, column: str, key: str) -> str:
        """SQL for ``column``'s JSON member ``key``, as text (the column holds JSON text)."""
        return f"(nullif({column}, '')::jsonb ->> '{key}')"

    @property
    def schema_version(self) -> int:
        with self._faults(), self.lock:
            return schema.version(self._connection())

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
