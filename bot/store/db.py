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

from bot.errors import StorageError, describe_os_error
from bot.store import schema
from bot.store.sql import (
    FaultMemory,
    of_account,  # noqa: F401 - where the parts used to find it
)
from bot.store.sql import among as among_emails

DATABASE_REMEDY = (
    "Fix that (free space, permissions, or stop the other program), then run the command "
    "again; `python -m bot send --resume` continues any campaign from where it stopped."
)

# SQLite primary result codes that mean "the machine", not "the program".
_FAULTS = {
    3: "permission denied",  # SQLITE_PERM
    5: "it is locked by another program (a long transaction, or a database tool)",  # BUSY
    6: "it is locked by another program",  # SQLITE_LOCKED
    8: "it is read-only (file or folder permissions, an immutable file, a read-only disk)",
    10: "the disk refused a read or write (disk full, a file size limit, or a failing disk)",
    11: "the file is damaged",  # SQLITE_CORRUPT
    13: "the disk is full",  # SQLITE_FULL
    14: "the file cannot be opened (missing folder, permissions, or a file in the way)",
    26: "the file is not a mailbolt database",  # SQLITE_NOTADB
}


def storage_fault(exc: sqlite3.Error, path: Path) -> StorageError | None:
    """A ``StorageError`` naming the database and the fix, or None for a bug."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None or (code & 0xFF) not in _FAULTS:
        return None
    return StorageError(
        f"Cannot use the database {path}: {_FAULTS[code & 0xFF]} ({exc}). {DATABASE_REMEDY}",
        path=str(path),
    )


class Database:
    """The connection, its lock, the clock, and the transaction helpers
    (``bot.store.sql.SqlDatabase`` on SQLite)."""

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        busy_seconds: float = 30.0,
    ):
        self.path = Path(path)
        self.clock = clock
        self.lock = threading.RLock()
        self._faulted = FaultMemory()
        # Opening: everything that can fail because of the file (read-only, locked,
        # disk full, not a database) happens here, so it all becomes one readable
        # ``StorageError``; so does every fault of the machine in ``tx``/``query``.
        with self._faults():
            memory = str(path) == ":memory:"
            if not memory:
                self._make_folder()
            conn = sqlite3.connect(str(path), check_same_thread=False, timeout=busy_seconds)
            self.db = sqlite_utils.Database(conn)
            if not memory:
                self.db.enable_wal()
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            with self.lock:
                schema.migrate(self.db)

    def _make_folder(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot create the folder for the database {self.path}: "
                f"{describe_os_error(exc)}. {DATABASE_REMEDY}",
                path=str(self.path),
            ) from exc

    # -- faults of the machine -------------------------------------------------

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """Turn SQLite's faults of the machine into one ``StorageError`` a person can act on.

        Bugs (a wrong query, a constraint) stay ordinary exceptions.
        """
        try:
            yield
        except sqlite3.Error as exc:
            fault = storage_fault(exc, self.path)
            if fault is None:
                raise
            self._faulted.remember(fault)
            raise fault from exc

    def _fail_if_faulted_since(self, started: float) -> None:
        """Fail at once if the call this thread queued behind failed for the machine.

        Worker threads share one connection, so each would otherwise sit out its
        own 30-second busy wait on a locked database, one after another.
        """
        self._faulted.fail_if_faulted_since(started)

    @contextmanager
    def tx(self) -> Iterator[sqlite_utils.Database]:
        """One committed transaction, under the lock (rolled back on error)."""
        started = time.monotonic()
        with self._faults(), self.lock:
            self._fail_if_faulted_since(started)
            with self.db.atomic():
                yield self.db

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        started = time.monotonic()
        with self._faults(), self.lock:
            self._fail_if_faulted_since(started)
            return list(self.db.query(sql, list(params)))

    def update(self, sql: str, params: Iterable[Any]) -> int:
        """Run one write in its own transaction; return how many rows it changed."""
        with self.tx():
            return self.db.execute(sql, list(params)).rowcount

    def among(
        self, table: str, condition: str, emails: Iterable[str], params: Iterable[Any] = ()
    ) -> set[str]:
        """Lower-cased ``emails`` present in ``table`` (chunked under SQLite's 999 vars)."""
        return among_emails(self.query, table, condition, emails, params)

    def skip_locked(self, alias: str) -> str:
        """Nothing: SQLite runs one write transaction at a time."""
        return ""

    def json_text(self, column: str, key: str) -> str:
        """SQL for ``column``'s JSON member ``key``, as text (SQLite's JSON1)."""
        return f"cast(json_extract({column}, '$.{key}') as text)"

    @property
    def schema_version(self) -> int:
        with self._faults(), self.lock:
            return schema.version(self.db)

    def close(self) -> None:
        with self.lock:
            self.db.close()
