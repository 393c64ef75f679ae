"""The seam between the store's parts and the database they run on.

The parts (``campaigns``, ``outbox``, ``quota``, …) are written once, against
the small surface below, and run on SQLite (``bot.store.db``) and PostgreSQL
(``bot.store_pg.db``) alike. What that asks of a part:

- SQL with ``?`` placeholders, in the common dialect of both: ``case when`` rather
  than summing booleans, every selected column grouped, ``"user"`` quoted, no
  ``insert or replace`` (``on conflict … do update`` works in both);
- writes only inside ``Database.tx()``, through the transaction object's
  ``execute`` and ``table(name).insert / insert_all / update`` (the part of the
  ``sqlite_utils`` API that SQLite hands out; PostgreSQL provides the same);
- results read by column name (``query``) or position (``execute(...).fetchone()``).

A part that needs more than this adds it to both databases and to the
protocols here, and the store contract tests (``tests/store_contract``) prove
it on both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from bot.errors import StorageError
from bot.records import LEGACY_ACCOUNT, SANDBOX_ACCOUNT


class Cursor(Protocol):
    """What a statement reports back: rows changed, and the rows it selected or
    returned (tuples, named by ``description``)."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Inserted(Protocol):
    """The result of ``table(name).insert(row)``: the new row's key."""

    @property
    def last_pk(self) -> Any: ...


class Table(Protocol):
    """The writes a part makes through a table."""

    def insert(self, record: dict[str, Any]) -> Any: ...

    def insert_all(self, records: Iterable[dict[str, Any]], *, batch_size: int = ...) -> Any: ...

    def update(self, pk_values: Any, updates: dict[str, Any] | None = ...) -> Any: ...


class Tx(Protocol):
    """One open transaction: ``execute`` SQL with ``?`` placeholders, or write a row."""

    def execute(self, sql: str, parameters: Any = ...) -> Cursor: ...

    def table(self, table_name: str) -> Any: ...


class SqlDatabase(Protocol):
    """What every part needs from its database."""

    clock: Callable[[], float]

    def tx(self) -> AbstractContextManager[Any]:
        """One committed transaction (rolled back on error); yields a ``Tx``."""
        ...

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]: ...

    def update(self, sql: str, params: Iterable[Any]) -> int: ...

    def among(
        self, table: str, condition: str, emails: Iterable[str], params: Iterable[Any] = ()
    ) -> set[str]:
        """Lower-cased ``emails`` present in ``table`` where ``condition`` (SQL
        appended after the address test, with ``?`` for ``params``) holds."""
        ...

    def skip_locked(self, alias: str) -> str:
        """What a ``select`` appends so concurrent claimers pass over each other's
        rows (PostgreSQL's ``for update of … skip locked``; nothing in SQLite,
        where one writer at a time makes the claim atomic anyway)."""
        ...

    def json_text(self, column: str, key: str) -> str:
        """SQL for the member ``key`` of the JSON object in ``column``, as text
        (``key`` and ``column`` are fixed names, never input)."""
        ...

    @property
    def schema_version(self) -> int:
        """How many of its numbered migrations the database has run."""
        ...

    def close(self) -> None: ...


def of_account(account: str, column: str = "account") -> tuple[str, list[Any]]:
    """The condition selecting ``account``'s rows, and its parameters.

    Legacy rows (written before accounts were recorded) count against every Gmail
    account, to be safe, but never against the sandbox.
    """
    if account == SANDBOX_ACCOUNT:
        return f"{column} = ?", [account]
    return f"{column} in (?, ?)", [account, LEGACY_ACCOUNT]


def among(
    query: Callable[[str, list[Any]], list[dict[str, Any]]],
    table: str,
    condition: str,
    emails: Iterable[str],
    params: Iterable[Any] = (),
) -> set[str]:
    """Lower-cased ``emails`` present in ``table``, asked in chunks of 900.

    SQLite takes at most 999 parameters a statement, PostgreSQL 65,535: one
    chunk size serves both.
    """
    wanted = sorted({e.lower() for e in emails})
    extra = list(params)
    found: set[str] = set()
    for i in range(0, len(wanted), 900):
        chunk = wanted[i : i + 900]
        rows = query(
            f"select distinct email from {table} where email in "  # noqa: S608
            f"({','.join('?' * len(chunk))}){condition}",
            [*chunk, *extra],
        )
        found.update(r["email"] for r in rows)
    return found


class FaultMemory:
    """Remember the last fault of the machine, so callers queued behind it fail fast.

    Worker threads share one connection, so each would otherwise sit out its own
    wait (a busy timeout, a connect timeout) on a database that is gone.
    """

    def __init__(self) -> None:
        self._last_fault: tuple[float, StorageError] | None = None

    def remember(self, fault: StorageError) -> None:
        self._last_fault = (time.monotonic(), fault)

    def fail_if_faulted_since(self, started: float) -> None:
        """Fail at once if the call this thread queued behind failed for the machine."""
        if self._last_fault is not None and self._last_fault[0] >= started:
            fault = self._last_fault[1]
            raise StorageError(str(fault), path=fault.path)
