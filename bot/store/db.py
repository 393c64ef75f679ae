"""The one SQLite connection every part of the store shares.

Why it looks like this:
- Every state change is its own committed transaction *before* the next step
  runs (``synchronous=FULL`` in WAL mode), so a crash at any instant leaves a
  record of exactly how far each message got.
- One connection guarded by a lock is shared by the worker threads: writes are
  serialized by SQLite anyway, and sqlite3 objects may not hop threads unguarded.
  The lock is re-entrant so a part may read inside another part's transaction.
- State transitions are conditional updates (``WHERE state IN …``); a transition
  that finds the row in another state does nothing and says so, which is what
  keeps two resumers from sending one message twice (see ``outbox.py``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from bot.store import schema


class Database:
    """The connection, its lock, the clock, and the transaction helpers."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.clock = clock
        self.lock = threading.RLock()
        # Opening: everything that can fail because of the file (read-only, locked,
        # disk full, not a database) happens from here to the end of ``migrate``.
        # Issue 8 wraps these errors into readable ``bot.errors`` types here.
        memory = str(path) == ":memory:"
        if not memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(conn)
        if not memory:
            self.db.enable_wal()
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        with self.lock:
            schema.migrate(self.db)

    @contextmanager
    def tx(self) -> Iterator[sqlite_utils.Database]:
        """One committed transaction, under the lock (rolled back on error)."""
        with self.lock, self.db.atomic():
            yield self.db

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.db.query(sql, list(params)))

    def update(self, sql: str, params: Iterable[Any]) -> int:
        """Run one write in its own transaction; return how many rows it changed."""
        with self.tx():
            return self.db.execute(sql, list(params)).rowcount

    def among(self, table: str, condition: str, emails: Iterable[str]) -> set[str]:
        """Lower-cased ``emails`` present in ``table`` (chunked under SQLite's 999 vars)."""
        wanted = sorted({e.lower() for e in emails})
        found: set[str] = set()
        for i in range(0, len(wanted), 900):
            chunk = wanted[i : i + 900]
            rows = self.query(
                f"select distinct email from {table} where email in "  # noqa: S608
                f"({','.join('?' * len(chunk))}){condition}",
                chunk,
            )
            found.update(r["email"] for r in rows)
        return found

    @property
    def schema_version(self) -> int:
        with self.lock:
            return schema.version(self.db)

    def close(self) -> None:
        with self.lock:
            self.db.close()
