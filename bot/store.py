"""The only module that touches SQLite.

Why it looks like this:
- Every state change is its own committed transaction *before* the next step
  runs (``synchronous=FULL`` in WAL mode), so a crash at any instant leaves a
  record of exactly how far each message got.
- One connection guarded by a lock is shared by the worker threads: writes are
  serialized by SQLite anyway, and sqlite3 objects may not hop threads unguarded.
- State transitions are conditional updates (``WHERE state IN …``); a transition
  that finds the row in another state does nothing and says so, which is what
  keeps two resumers from sending one message twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from bot.errors import StorageError, describe_os_error

# Message states. ``sending`` is the only state in which a message may be at the
# provider without us knowing; on restart it becomes ``uncertain``.
QUEUED, SENDING, SENT, FAILED, SKIPPED, DEFERRED, UNCERTAIN = (
    "queued",
    "sending",
    "sent",
    "failed",
    "skipped",
    "deferred",
    "uncertain",
)
MESSAGE_STATES = (QUEUED, SENDING, SENT, FAILED, SKIPPED, DEFERRED, UNCERTAIN)
FINAL_STATES = (SENT, FAILED, SKIPPED)

# Campaign states.
RUNNING, PAUSED, COMPLETED, CANCELLED = (
    "running",
    "paused",
    "completed",
    "cancelled",
)

SCHEMA_VERSION_KEY = "schema_version"

#: The account that sends through the sandbox transport. Quota use and daily counts
#: belong to the account that sent: a sandbox run never counts against Gmail.
SANDBOX_ACCOUNT = "sandbox"
#: Rows written before accounts were recorded that could not be told apart from
#: Gmail sends: they count against every Gmail account (conservative), never the sandbox.
LEGACY_ACCOUNT = ""


def account_key(address: str) -> str:
    """The account a Gmail sender address sends as: one spelling per address."""
    return address.strip().lower()


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


def _migration_1(db: sqlite_utils.Database) -> None:
    db["campaigns"].create(
        {
            "id": int,
            "created_at": float,
            "requested_by": str,
            "team": str,
            "template": str,
            "category": str,
            "subject": str,
            "common_vars": str,
            "status": str,
            "total": int,
            "paused_reason": str,
            "started_at": float,
            "finished_at": float,
            "idempotency_key": str,
            "status_channel": str,
            "status_ts": str,
            "correlation_id": str,
        },
        pk="id",
        not_null={"created_at", "requested_by", "template", "status"},
    )
    db["campaigns"].create_index(["idempotency_key"], unique=True)
    db["campaigns"].create_index(["status"])
    db["messages"].create(
        {
            "id": int,
            "campaign_id": int,
            "position": int,
            "email": str,
            "name": str,
            "variables": str,
            "state": str,
            "attempts": int,
            "last_error": str,
            "provider_id": str,
            "message_id": str,
            "not_before": float,
            "created_at": float,
            "updated_at": float,
            "sent_at": float,
            "bounce": str,
        },
        pk="id",
        foreign_keys=[("campaign_id", "campaigns", "id")],
        not_null={"campaign_id", "email", "state", "message_id"},
        defaults={"attempts": 0},
    )
    db["messages"].create_index(["campaign_id", "state"])
    db["messages"].create_index(["message_id"], unique=True)
    db["messages"].create_index(["sent_at"])
    db["messages"].create_index(["email"])
    db["unsubscribes"].create(
        {"email": str, "source": str, "campaign_id": int, "created_at": float},
        pk="email",
    )
    db["bounces"].create(
        {
            "id": int,
            "message_row_id": int,
            "email": str,
            "kind": str,
            "status": str,
            "diagnostic": str,
            "provider_id": str,
            "created_at": float,
        },
        pk="id",
    )
    db["bounces"].create_index(["provider_id"], unique=True)
    db["bounces"].create_index(["email"])
    db["quota_log"].create({"at": float, "units": int, "method": str})
    db["quota_log"].create_index(["at"])
    db["audit"].create(
        {"id": int, "at": float, "actor": str, "action": str, "detail": str}, pk="id"
    )


def _migration_2(db: sqlite_utils.Database) -> None:
    """When a message was claimed for sending: crash recovery must know how recent
    an in-flight send is, and ``updated_at`` is overwritten by later transitions."""
    db["messages"].add_column("claimed_at", float)


def _migration_3(db: sqlite_utils.Database) -> None:
    """The sending account on campaigns, messages and quota use; test sends.

    Quota and the daily limit belong to the account that sent (the sandbox, or a
    Gmail address), so every count filters by it. Existing rows: a message the
    sandbox sent says so in its provider id (``sandbox:…``), and a campaign with
    one such message was a sandbox campaign, so its other messages were too. The
    rest cannot be told apart and stay ``LEGACY_ACCOUNT``, which counts against
    any Gmail account. Old quota-log rows are legacy as well; only the last
    minute of them is ever read.

    ``prior_claimed_at``: a message re-sent after an uncertain attempt may have
    gone out twice, and both attempts count against the day.
    """
    db["campaigns"].add_column("account", str, not_null_default=LEGACY_ACCOUNT)
    db["messages"].add_column("account", str, not_null_default=LEGACY_ACCOUNT)
    db["messages"].add_column("prior_claimed_at", float)
    db["quota_log"].add_column("account", str, not_null_default=LEGACY_ACCOUNT)
    db.execute(
        "update campaigns set account = ? where id in "
        "(select campaign_id from messages where provider_id like 'sandbox:%')",
        [SANDBOX_ACCOUNT],
    )
    db.execute(
        "update messages set account = ? where provider_id like 'sandbox:%' or "
        "campaign_id in (select id from campaigns where account = ?)",
        [SANDBOX_ACCOUNT, SANDBOX_ACCOUNT],
    )
    db["messages"].create_index(["account", "sent_at"])
    db["quota_log"].create_index(["account", "at"])
    db["test_sends"].create(
        {
            "id": int,
            "at": float,
            "account": str,
            "requested_by": str,
            "email": str,
            "template": str,
            "subject": str,
            "message_id": str,
            "state": str,
            "provider_id": str,
            "last_error": str,
            "reference": str,
        },
        pk="id",
        not_null={"at", "account", "email", "state", "message_id"},
    )
    db["test_sends"].create_index(["account", "at"])


# Append new migrations; never edit one that has shipped.
MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migration_1,
    _migration_2,
    _migration_3,
)


@dataclass(frozen=True)
class Transition:
    """Outcome of a conditional state change."""

    changed: bool
    state: str | None


class Store:
    """Campaigns, messages, unsubscribes, bounces, quota use and the audit log."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.RLock()
        self._last_fault: tuple[float, StorageError] | None = None
        with self._faults():
            if str(path) != ":memory:":
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StorageError(
                        f"Cannot create the folder for the database {self.path}: "
                        f"{describe_os_error(exc)}. {DATABASE_REMEDY}",
                        path=str(self.path),
                    ) from exc
            conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
            self.db = sqlite_utils.Database(conn)
            if str(path) != ":memory:":
                self.db.enable_wal()
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()

    # -- plumbing ----------------------------------------------------------

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
            self._last_fault = (time.monotonic(), fault)
            raise fault from exc

    def _fail_if_faulted_since(self, started: float) -> None:
        """Fail at once if the call this thread queued behind failed for the machine.

        Worker threads share one connection, so each would otherwise sit out its
        own 30-second busy wait on a locked database, one after another.
        """
        if self._last_fault is not None and self._last_fault[0] >= started:
            fault = self._last_fault[1]
            raise StorageError(str(fault), path=fault.path)

    @contextmanager
    def _tx(self) -> Iterator[sqlite_utils.Database]:
        started = time.monotonic()
        with self._faults(), self._lock:
            self._fail_if_faulted_since(started)
            with self.db.atomic():
                yield self.db

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        started = time.monotonic()
        with self._faults(), self._lock:
            self._fail_if_faulted_since(started)
            return list(self.db.query(sql, list(params)))

    def _update(self, sql: str, params: Iterable[Any]) -> int:
        with self._tx():
            return self.db.execute(sql, list(params)).rowcount

    def _migrate(self) -> None:
        with self._lock:
            if "meta" not in self.db.table_names():
                self.db["meta"].create({"key": str, "value": str}, pk="key")
            row = self._query("select value from meta where key = ?", [SCHEMA_VERSION_KEY])
            version = int(row[0]["value"]) if row else 0
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                with self.db.atomic():
                    migration(self.db)
                    self.db["meta"].upsert(
                        {"key": SCHEMA_VERSION_KEY, "value": str(number)}, pk="key"
                    )

    @property
    def schema_version(self) -> int:
        return int(
            self._query("select value from meta where key = ?", [SCHEMA_VERSION_KEY])[0]["value"]
        )

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # -- campaigns ---------------------------------------------------------

    def create_campaign(
        self,
        *,
        requested_by: str,
        template: str,
        category: str,
        subject: str,
        common_vars: dict[str, str],
        messages: Iterable[dict[str, Any]],
        team: str = "",
        idempotency_key: str | None = None,
        status_channel: str = "",
        correlation_id: str = "",
        account: str = LEGACY_ACCOUNT,
    ) -> tuple[int, bool]:
        """Record a campaign and all its messages atomically.

        ``messages`` are dicts with ``email``, ``name``, ``variables`` (dict) and
        ``message_id``; ``account`` is the account meant to send it. Returns
        ``(campaign_id, created)``; with an
        ``idempotency_key`` seen before, the existing campaign is returned and
        ``created`` is False (a Slack retry or a double click).
        """
        now = self.clock()
        with self._tx() as db:
            if idempotency_key:
                existing = self._query(
                    "select id from campaigns where idempotency_key = ?", [idempotency_key]
                )
                if existing:
                    return existing[0]["id"], False
            campaign_id = (
                db["campaigns"]
                .insert(
                    {
                        "created_at": now,
                        "requested_by": requested_by,
                        "team": team,
                        "template": template,
                        "category": category,
                        "subject": subject,
                        "common_vars": json.dumps(common_vars, ensure_ascii=False),
                        "status": RUNNING,
                        "total": 0,
                        "idempotency_key": idempotency_key,
                        "status_channel": status_channel,
                        "correlation_id": correlation_id,
                        "account": account,
                    }
                )
                .last_pk
            )
            rows = (
                {
                    "campaign_id": campaign_id,
                    "position": i,
                    "email": m["email"],
                    "name": m.get("name", ""),
                    "variables": json.dumps(m.get("variables", {}), ensure_ascii=False),
                    "state": m.get("state", QUEUED),
                    "last_error": m.get("last_error"),
                    "message_id": m["message_id"],
                    "created_at": now,
                    "updated_at": now,
                    "attempts": 0,
                    "account": account,
                }
                for i, m in enumerate(messages)
            )
            db["messages"].insert_all(rows, batch_size=500)
            total = db.execute(
                "select count(*) from messages where campaign_id = ?", [campaign_id]
            ).fetchone()[0]
            db.execute("update campaigns set total = ? where id = ?", [total, campaign_id])
            self._audit(
                db,
                requested_by,
                "campaign.created",
                {
                    "campaign_id": campaign_id,
                    "template": template,
                    "total": total,
                    "team": team,
                },
            )
        return campaign_id, True

    def campaign(self, campaign_id: int) -> dict[str, Any] | None:
        rows = self._query("select * from campaigns where id = ?", [campaign_id])
        if not rows:
            return None
        row = rows[0]
        row["common_vars"] = json.loads(row["common_vars"] or "{}")
        return row

    def campaigns(self, limit: int = 10) -> list[dict[str, Any]]:
        return self._query("select * from campaigns order by id desc limit ?", [limit])

    def set_campaign(self, campaign_id: int, **changes: Any) -> None:
        """Update campaign columns (status, paused_reason, status_ts, …)."""
        with self._tx() as db:
            db["campaigns"].update(campaign_id, changes)

    def unfinished_campaigns(self) -> list[int]:
        """Campaigns with work left: messages to send, or in doubt to settle.

        A completed campaign counts again when a person re-queues its failed or
        uncertain messages, or when it still holds uncertain ones to reconcile.
        """
        rows = self._query(
            "select distinct c.id from campaigns c join messages m on m.campaign_id = c.id "
            "where c.status != ? and m.state in (?, ?, ?, ?) order by c.id",
            [CANCELLED, QUEUED, DEFERRED, SENDING, UNCERTAIN],
        )
        return [r["id"] for r in rows]

    def counts(self, campaign_id: int) -> dict[str, int]:
        """Messages per state (every state present, zero if none)."""
        counts = dict.fromkeys(MESSAGE_STATES, 0)
        for row in self._query(
            "select state, count(*) n from messages where campaign_id = ? group by state",
            [campaign_id],
        ):
            counts[row["state"]] = row["n"]
        return counts

    # -- messages ----------------------------------------------------------

    def messages(
        self, campaign_id: int, states: Iterable[str] | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        sql = "select * from messages where campaign_id = ?"
        params: list[Any] = [campaign_id]
        if states is not None:
            states = list(states)
            sql += f" and state in ({','.join('?' * len(states))})"
            params += states
        sql += " order by position"
        if limit is not None:
            sql += " limit ?"
            params.append(limit)
        rows = self._query(sql, params)
        for row in rows:
            row["variables"] = json.loads(row["variables"] or "{}")
        return rows

    def ready_messages(self, campaign_id: int, now: float | None = None) -> list[dict[str, Any]]:
        """Queued messages, and deferred ones whose time has come, in order."""
        now = self.clock() if now is None else now
        rows = self._query(
            "select * from messages where campaign_id = ? and (state = ? or "
            "(state = ? and coalesce(not_before, 0) <= ?)) order by position",
            [campaign_id, QUEUED, DEFERRED, now],
        )
        for row in rows:
            row["variables"] = json.loads(row["variables"] or "{}")
        return rows

    def state_of(self, row_id: int) -> str | None:
        """One message's state now (None if there is no such message)."""
        rows = self._query("select state from messages where id = ?", [row_id])
        return rows[0]["state"] if rows else None

    def transition(
        self, row_id: int, to: str, *, allowed_from: Iterable[str], **fields: Any
    ) -> Transition:
        """Move one message to ``to`` if it is in one of ``allowed_from``; commit."""
        allowed = list(allowed_from)
        now = self.clock()
        sets = {"state": to, "updated_at": now, **fields}
        if to == SENT:
            sets.setdefault("sent_at", now)
        assignments = ", ".join(f"{k} = ?" for k in sets)
        extra = ", attempts = attempts + 1" if to == SENDING else ""
        with self._tx() as db:
            changed = db.execute(
                f"update messages set {assignments}{extra} where id = ? "  # noqa: S608
                f"and state in ({','.join('?' * len(allowed))})",
                [*sets.values(), row_id, *allowed],
            ).rowcount
            if changed:
                return Transition(True, to)
            row = db.execute("select state from messages where id = ?", [row_id]).fetchone()
            return Transition(False, row[0] if row else None)

    def claim(self, row_id: int, account: str) -> bool:
        """queued/deferred → sending (attempts + 1) by ``account``. False if someone
        else has it. From here on the message counts against that account's day."""
        return self.transition(
            row_id,
            SENDING,
            allowed_from=(QUEUED, DEFERRED),
            claimed_at=self.clock(),
            account=account,
        ).changed

    def mark_sent(self, row_id: int, provider_id: str) -> Transition:
        return self.transition(
            row_id,
            SENT,
            allowed_from=(SENDING, UNCERTAIN),
            provider_id=provider_id,
            last_error=None,
        )

    def mark_failed(self, row_id: int, reason: str) -> Transition:
        return self.transition(
            row_id, FAILED, allowed_from=(SENDING, UNCERTAIN, QUEUED), last_error=reason
        )

    def mark_deferred(self, row_id: int, not_before: float | None, reason: str) -> Transition:
        return self.transition(
            row_id,
            DEFERRED,
            allowed_from=(SENDING, QUEUED, DEFERRED),
            not_before=not_before,
            last_error=reason,
        )

    def mark_uncertain(self, row_id: int, reason: str) -> Transition:
        return self.transition(row_id, UNCERTAIN, allowed_from=(SENDING,), last_error=reason)

    def mark_skipped(self, row_id: int, reason: str) -> Transition:
        return self.transition(
            row_id, SKIPPED, allowed_from=(QUEUED, DEFERRED, UNCERTAIN, FAILED), last_error=reason
        )

    def requeue(
        self, row_id: int, reason: str | None = None, from_states: Iterable[str] = (SENDING,)
    ) -> Transition:
        """Back to queued: the attempt certainly did not send."""
        return self.transition(row_id, QUEUED, allowed_from=from_states, last_error=reason)

    def resend_uncertain(self, row_id: int) -> Transition:
        """uncertain → queued because a person chose to send again.

        The uncertain attempt may have gone out, so it keeps counting against the
        daily limit (``prior_claimed_at``) next to the new one.
        """
        with self._tx() as db:
            db.execute(
                "update messages set prior_claimed_at = coalesce(claimed_at, updated_at) "
                "where id = ? and state = ?",
                [row_id, UNCERTAIN],
            )
            return self.transition(row_id, QUEUED, allowed_from=(UNCERTAIN,), last_error=None)

    def recover_in_flight(self, campaign_id: int | None = None) -> int:
        """After a crash: every ``sending`` message becomes ``uncertain``.

        Only call this when no other process is sending (the CLI and server take
        a lock file first).
        """
        sql = "update messages set state = ?, updated_at = ?, last_error = ? where state = ?"
        params: list[Any] = [
            UNCERTAIN,
            self.clock(),
            "the process stopped while this message was being sent",
            SENDING,
        ]
        if campaign_id is not None:
            sql += " and campaign_id = ?"
            params.append(campaign_id)
        return self._update(sql, params)

    # When a message counts against its account's rolling daily limit: its send
    # time, or for one that may have gone out (in flight, uncertain), the time it
    # was claimed. An uncertain attempt a person chose to re-send counts as well.
    _SENT_TIME = (
        f"(case when state = '{SENT}' then sent_at when state in ('{SENDING}', "
        f"'{UNCERTAIN}') then coalesce(claimed_at, updated_at) end)"
    )
    _PRIOR_TIME = "prior_claimed_at"
    _TEST_STATES = f"('{SENT}', '{SENDING}', '{UNCERTAIN}')"

    @staticmethod
    def _of_account(account: str, column: str = "account") -> tuple[str, list[Any]]:
        """The condition selecting ``account``'s rows (legacy rows count for Gmail)."""
        if account == SANDBOX_ACCOUNT:
            return f"{column} = ?", [account]
        return f"{column} in (?, ?)", [account, LEGACY_ACCOUNT]

    def sent_since(self, since: float, account: str) -> int:
        """Messages ``account`` sent (or possibly sent) since ``since``, every campaign
        and test send included.

        Uncertain and in-flight messages count: if they went out, Gmail counts them.
        """
        mine, params = self._of_account(account)
        sql = (
            f"select coalesce(sum({self._SENT_TIME} >= ?), 0) "  # noqa: S608
            f"+ coalesce(sum({self._PRIOR_TIME} >= ?), 0) n "
            f"from messages where {mine}"
        )
        messages = self._query(sql, [since, since, *params])[0]["n"]
        tests = self._query(
            f"select count(*) n from test_sends where {mine} and at >= ? "  # noqa: S608
            f"and state in {self._TEST_STATES}",
            [*params, since],
        )[0]["n"]
        return messages + tests

    def oldest_sent_since(self, since: float, account: str) -> float | None:
        """Time of ``account``'s oldest send inside the window: when the next slot frees up."""
        mine, params = self._of_account(account)
        times = [
            self._query(
                f"select min({expr}) t from messages where {mine} and {expr} >= ?",  # noqa: S608
                [*params, since],
            )[0]["t"]
            for expr in (self._SENT_TIME, self._PRIOR_TIME)
        ]
        times.append(
            self._query(
                f"select min(at) t from test_sends where {mine} and at >= ? "  # noqa: S608
                f"and state in {self._TEST_STATES}",
                [*params, since],
            )[0]["t"]
        )
        found = [t for t in times if t is not None]
        return min(found) if found else None

    def find_by_message_id(self, message_id: str) -> dict[str, Any] | None:
        rows = self._query("select * from messages where message_id = ?", [message_id])
        return rows[0] if rows else None

    # -- quota -------------------------------------------------------------

    def record_units(
        self, units: int, method: str, *, account: str, at: float | None = None
    ) -> None:
        """``account`` spent ``units`` quota units on one ``method`` call."""
        with self._tx() as db:
            db["quota_log"].insert(
                {
                    "at": self.clock() if at is None else at,
                    "units": units,
                    "method": method,
                    "account": account,
                }
            )

    def units_since(self, since: float, account: str) -> int:
        """Quota units ``account`` spent since ``since``."""
        mine, params = self._of_account(account)
        return self._query(
            f"select coalesce(sum(units), 0) n from quota_log where {mine} and at >= ?",  # noqa: S608
            [*params, since],
        )[0]["n"]

    # -- test sends --------------------------------------------------------
    # One message to the person previewing, marked as a test: auditable, counted
    # against its account's quota and day, but not a campaign and not in stats.

    def start_test_send(
        self,
        *,
        account: str,
        requested_by: str,
        email: str,
        template: str,
        subject: str,
        message_id: str,
        reference: str = "",
    ) -> int:
        """Record a test send as in flight before it is handed to the transport."""
        with self._tx() as db:
            row_id = (
                db["test_sends"]
                .insert(
                    {
                        "at": self.clock(),
                        "account": account,
                        "requested_by": requested_by,
                        "email": email,
                        "template": template,
                        "subject": subject,
                        "message_id": message_id,
                        "state": SENDING,
                        "reference": reference,
                    }
                )
                .last_pk
            )
            self._audit(
                db,
                requested_by,
                "test.started",
                {"test_send": row_id, "email": email, "template": template},
            )
        return int(row_id)

    def finish_test_send(
        self, row_id: int, state: str, *, provider_id: str = "", error: str = ""
    ) -> None:
        """What became of a test send: ``sent``, ``failed`` or ``uncertain``."""
        with self._tx() as db:
            db.execute(
                "update test_sends set state = ?, provider_id = ?, last_error = ? where id = ?",
                [state, provider_id or None, error or None, row_id],
            )
            self._audit(
                db,
                "mailbolt",
                "test.finished",
                {"test_send": row_id, "state": state, "error": error},
            )

    def test_send_by_reference(self, reference: str) -> dict[str, Any] | None:
        """The latest test send made under ``reference`` (e.g. one preview), if any."""
        rows = self._query(
            "select * from test_sends where reference = ? order by id desc limit 1", [reference]
        )
        return rows[0] if rows else None

    def test_sends(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._query("select * from test_sends order by id desc limit ?", [limit])

    def max_campaign_id(self) -> int:
        """The newest campaign's id (0 if none): a cheap way to notice new campaigns."""
        return self._query("select coalesce(max(id), 0) n from campaigns")[0]["n"]

    # -- unsubscribes ------------------------------------------------------

    def add_unsubscribe(self, email: str, source: str, campaign_id: int | None = None) -> bool:
        """Record an unsubscribe; False if the address was already unsubscribed."""
        key = email.strip().lower()
        with self._tx() as db:
            if db.execute("select 1 from unsubscribes where email = ?", [key]).fetchone():
                return False
            db["unsubscribes"].insert(
                {
                    "email": key,
                    "source": source,
                    "campaign_id": campaign_id,
                    "created_at": self.clock(),
                }
            )
            self._audit(db, source, "unsubscribe.added", {"email": key})
        return True

    def remove_unsubscribe(self, email: str, actor: str) -> bool:
        key = email.strip().lower()
        with self._tx() as db:
            removed = db.execute("delete from unsubscribes where email = ?", [key]).rowcount
            if removed:
                self._audit(db, actor, "unsubscribe.removed", {"email": key})
        return bool(removed)

    def unsubscribes(self) -> list[dict[str, Any]]:
        return self._query("select * from unsubscribes order by created_at")

    def unsubscribed_among(self, emails: Iterable[str]) -> set[str]:
        """The subset of ``emails`` (compared case-insensitively) that unsubscribed."""
        return self._among("unsubscribes", "", emails)

    def _among(self, table: str, condition: str, emails: Iterable[str]) -> set[str]:
        """Lower-cased ``emails`` present in ``table`` (chunked under SQLite's 999 vars)."""
        wanted = sorted({e.lower() for e in emails})
        found: set[str] = set()
        for i in range(0, len(wanted), 900):
            chunk = wanted[i : i + 900]
            rows = self._query(
                f"select distinct email from {table} where email in "  # noqa: S608
                f"({','.join('?' * len(chunk))}){condition}",
                chunk,
            )
            found.update(r["email"] for r in rows)
        return found

    # -- bounces -----------------------------------------------------------

    def hard_bounced_among(self, emails: Iterable[str]) -> set[str]:
        return self._among("bounces", " and kind = 'hard'", emails)

    # -- audit -------------------------------------------------------------

    def audit(self, actor: str, action: str, **detail: Any) -> None:
        with self._tx() as db:
            self._audit(db, actor, action, detail)

    def _audit(
        self, db: sqlite_utils.Database, actor: str, action: str, detail: dict[str, Any]
    ) -> None:
        db["audit"].insert(
            {
                "at": self.clock(),
                "actor": actor,
                "action": action,
                "detail": json.dumps(detail, ensure_ascii=False, default=str),
            }
        )

    def audit_log(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._query("select * from audit order by id desc limit ?", [limit])

    # -- slack -------------------------------------------------------------
    # What the Slack front-end and the background runner need. The drafts table
    # is created on first use instead of by a migration, so this section merges
    # without renumbering anyone's migrations; it can move into MIGRATIONS later.

    DRAFT_TTL_SECONDS = 7 * 24 * 3600

    def due_campaigns(self, now: float) -> list[int]:
        """Campaigns with queued messages, or deferred ones due by ``now``.

        Running ones, and completed ones a person re-queued messages of (``resolve``
        from the CLI while the server runs); not cancelled or paused ones.
        """
        rows = self._query(
            "select distinct c.id from campaigns c join messages m on m.campaign_id = c.id "
            "where c.status in (?, ?) and (m.state = ? or (m.state = ? and "
            "coalesce(m.not_before, 0) <= ?)) order by c.id",
            [RUNNING, COMPLETED, QUEUED, DEFERRED, now],
        )
        return [r["id"] for r in rows]

    def _ensure_drafts(self, db: sqlite_utils.Database) -> None:
        db.execute(
            "create table if not exists slack_drafts "
            "(key text primary key, user text not null, created_at float not null, "
            "data text not null)"
        )

    def save_draft(self, key: str, user: str, data: dict[str, Any]) -> None:
        """Keep what a Slack preview needs to start its campaign.

        A 2,000-row list does not fit in a view's 3,000-character metadata, so
        the view carries only ``key``. Drafts older than a week are dropped.
        """
        now = self.clock()
        with self._tx() as db:
            self._ensure_drafts(db)
            db.execute(
                "delete from slack_drafts where created_at < ?", [now - self.DRAFT_TTL_SECONDS]
            )
            db.execute(
                "insert into slack_drafts (key, user, created_at, data) values (?, ?, ?, ?) "
                "on conflict(key) do update set data = excluded.data",
                [key, user, now, json.dumps(data, ensure_ascii=False)],
            )

    def draft(self, key: str) -> dict[str, Any] | None:
        """The draft saved under ``key``, with ``user`` added; None if unknown or expired."""
        with self._tx() as db:
            self._ensure_drafts(db)
            row = db.execute(
                "select user, data from slack_drafts where key = ? and created_at >= ?",
                [key, self.clock() - self.DRAFT_TTL_SECONDS],
            ).fetchone()
        if row is None:
            return None
        return {**json.loads(row[1]), "user": row[0]}

    def deferred_until(self, campaign_id: int) -> float | None:
        """When the earliest deferred message of a campaign falls due, if any."""
        rows = self._query(
            "select min(not_before) t from messages where campaign_id = ? and state = ?",
            [campaign_id, DEFERRED],
        )
        return rows[0]["t"]

    # -- compliance --------------------------------------------------------
    # Bounce reports and delivery statistics (bot/handlers/bounce_parse.py, stats.py).

    def record_bounce(
        self,
        provider_id: str,
        *,
        kind: str,
        message_row_id: int | None = None,
        email: str = "",
        status: str = "",
        diagnostic: str = "",
    ) -> bool:
        """Record one bounce report under the provider's id; False if seen before.

        ``kind`` is ``hard``, ``soft`` or ``unmatched`` (read, but not about one of
        our messages: kept only so it is not fetched again). A matched report also
        marks its message; a later soft report never downgrades a hard bounce.
        """
        with self._tx() as db:
            seen = db.execute("select 1 from bounces where provider_id = ?", [provider_id])
            if seen.fetchone():
                return False
            db["bounces"].insert(
                {
                    "message_row_id": message_row_id,
                    "email": email.strip().lower(),
                    "kind": kind,
                    "status": status,
                    "diagnostic": diagnostic,
                    "provider_id": provider_id,
                    "created_at": self.clock(),
                }
            )
            if message_row_id is not None:
                db.execute(
                    "update messages set bounce = ? "
                    "where id = ? and coalesce(bounce, '') != 'hard'",
                    [kind, message_row_id],
                )
                self._audit(
                    db,
                    "bounce-scan",
                    "bounce.recorded",
                    {"message": message_row_id, "email": email, "kind": kind, "status": status},
                )
        return True

    def known_bounce_reports(self, provider_ids: Iterable[str]) -> set[str]:
        """The subset of ``provider_ids`` already recorded (so they are not fetched again)."""
        ids = list(provider_ids)
        known: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._query(
                f"select provider_id from bounces where provider_id in ({marks})",  # noqa: S608
                chunk,
            )
            known |= {r["provider_id"] for r in rows}
        return known

    def delivery_counts(
        self, *, campaign_id: int | None = None, since: float | None = None
    ) -> dict[str, int]:
        """``sent`` messages and how many of them bounced (``hard``, ``soft``)."""
        sql = (
            "select count(*) sent, coalesce(sum(bounce = 'hard'), 0) hard, "
            "coalesce(sum(bounce = 'soft'), 0) soft from messages where state = ?"
        )
        params: list[Any] = [SENT]
        if campaign_id is not None:
            sql += " and campaign_id = ?"
            params.append(campaign_id)
        if since is not None:
            sql += " and sent_at >= ?"
            params.append(since)
        return self._query(sql, params)[0]

    def delivery_by_campaign(self, since: float) -> list[dict[str, Any]]:
        """Per campaign with mail sent since ``since``, newest first: counts as above."""
        return self._query(
            "select m.campaign_id, c.template, c.created_at, count(*) sent, "
            "coalesce(sum(m.bounce = 'hard'), 0) hard, coalesce(sum(m.bounce = 'soft'), 0) soft "
            "from messages m join campaigns c on c.id = m.campaign_id "
            "where m.state = ? and m.sent_at >= ? "
            "group by m.campaign_id order by m.campaign_id desc",
            [SENT, since],
        )
