"""The outbox: every message of every campaign and the moves between its states.

Each move is a conditional update (``… WHERE id = ? AND state IN (…)``) committed
before the caller's next step, with the allowed starting states taken from the
one table ``bot.records.TRANSITIONS``. A move that finds the message elsewhere
changes nothing and reports the state it found: that is what keeps two resumers
from sending one message twice and ``sent`` final.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import Any

from bot.records import (
    LEGACY_ACCOUNT,
    MAYBE_SENT_STATES,
    MESSAGE_STATES,
    TRANSITIONS,
    CampaignDelivery,
    CampaignStatus,
    DeliveryCounts,
    Message,
    MessageState,
    Transition,
)
from bot.store.sql import SqlDatabase, of_account

_Q, _SG, _ST, _F, _SK, _D, _U = (
    MessageState.QUEUED,
    MessageState.SENDING,
    MessageState.SENT,
    MessageState.FAILED,
    MessageState.SKIPPED,
    MessageState.DEFERRED,
    MessageState.UNCERTAIN,
)

# When a message counts against its account's rolling daily limit: its send
# time, or for one that may have gone out (in flight, uncertain), the time it
# was claimed. An uncertain attempt a person chose to re-send counts as well
# (``prior_claimed_at``), and so does every test send that may have gone out.
_MAYBE = ", ".join(f"'{s.value}'" for s in sorted(MAYBE_SENT_STATES))
_SENT_TIME = (
    f"(case when state = '{_ST.value}' then sent_at when state in ({_MAYBE}) "
    "then coalesce(claimed_at, updated_at) end)"
)
# The same without claims in flight: what has certainly or possibly gone out already.
_SETTLED_TIME = (
    f"(case when state = '{_ST.value}' then sent_at when state in ({_MAYBE}) "
    f"and state <> '{_SG.value}' then coalesce(claimed_at, updated_at) end)"
)
_PRIOR_TIME = "prior_claimed_at"
_TEST_STATES = ", ".join(f"'{s.value}'" for s in sorted({_ST, *MAYBE_SENT_STATES}))
# How many of the rows bounced hard or soft (a sum of cases: PostgreSQL sums no booleans).
_HARD, _SOFT = (
    f"coalesce(sum(case when bounce = '{kind}' then 1 else 0 end), 0)" for kind in ("hard", "soft")
)


# What the ``messages_ready`` index covers, written out literally so the planner
# can use that partial index whatever the parameters (bot/store/schema.py).
_READY = f"m.state in ('{_Q.value}', '{_D.value}')"


def message_from_row(row: dict[str, Any]) -> Message:
    return Message(
        id=row["id"],
        campaign_id=row["campaign_id"],
        position=row["position"] or 0,
        email=row["email"],
        name=row["name"] or "",
        variables=json.loads(row["variables"] or "{}"),
        state=MessageState(row["state"]),
        message_id=row["message_id"],
        attempts=row["attempts"] or 0,
        last_error=row["last_error"],
        provider_id=row["provider_id"],
        not_before=row["not_before"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        sent_at=row["sent_at"],
        claimed_at=row["claimed_at"],
        bounce=row["bounce"],
        account=row["account"] or LEGACY_ACCOUNT,
        prior_claimed_at=row["prior_claimed_at"],
    )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _delivery(row: dict[str, Any]) -> DeliveryCounts:
    return DeliveryCounts(sent=int(row["sent"]), hard=int(row["hard"]), soft=int(row["soft"]))


class SqliteOutbox:
    """``bot.ports.Outbox`` on SQL (table ``messages``; the daily limit reads
    ``test_sends`` too, since a test send spends the same day)."""

    def __init__(self, database: SqlDatabase):
        self._db = database

    # -- reading -----------------------------------------------------------

    def messages(
        self,
        campaign_id: int,
        states: Iterable[MessageState] | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """A campaign's messages in list order, optionally only those in ``states``."""
        sql = "select * from messages where campaign_id = ?"
        params: list[Any] = [campaign_id]
        if states is not None:
            wanted = [MessageState(s).value for s in states]
            if not wanted:
                return []  # ``in ()``: SQLite finds nothing, PostgreSQL calls it an error
            sql += f" and state in ({','.join('?' * len(wanted))})"
            params += wanted
        sql += " order by position"
        if limit is not None:
            sql += " limit ?"
            params.append(limit)
        return [message_from_row(r) for r in self._db.query(sql, params)]

    def ready_messages(self, campaign_id: int, now: float | None = None) -> list[Message]:
        """Queued messages, and deferred ones whose time has come, in order."""
        now = self._db.clock() if now is None else now
        rows = self._db.query(
            "select * from messages where campaign_id = ? and (state = ? or "
            "(state = ? and coalesce(not_before, 0) <= ?)) order by position",
            [campaign_id, _Q.value, _D.value, now],
        )
        return [message_from_row(r) for r in rows]

    def state_of(self, row_id: int) -> MessageState | None:
        """One message's state now (None if there is no such message)."""
        rows = self._db.query("select state from messages where id = ?", [row_id])
        return MessageState(rows[0]["state"]) if rows else None

    def find_by_message_id(self, message_id: str) -> Message | None:
        """The message with this Message-ID header (how a bounce report finds its message)."""
        rows = self._db.query("select * from messages where message_id = ?", [message_id])
        return message_from_row(rows[0]) if rows else None

    def counts(self, campaign_id: int) -> dict[str, int]:
        """Messages per state (keys are ``MessageState``; every state present, zero if none)."""
        counts: dict[str, int] = dict.fromkeys(MESSAGE_STATES, 0)
        for row in self._db.query(
            "select state, count(*) n from messages where campaign_id = ? group by state",
            [campaign_id],
        ):
            counts[MessageState(row["state"])] = row["n"]
        return counts

    def deferred_until(self, campaign_id: int) -> float | None:
        """When the earliest deferred message of a campaign falls due, if any."""
        rows = self._db.query(
            "select min(not_before) t from messages where campaign_id = ? and state = ?",
            [campaign_id, _D.value],
        )
        return _optional_float(rows[0]["t"])

    # -- the daily limit ---------------------------------------------------

    def sent_since(self, since: float, account: str, *, in_flight: bool = True) -> int:
        """Messages ``account`` sent (or possibly sent) since ``since``, every campaign
        and test send included.

        Uncertain and in-flight messages count: if they went out, Gmail counts them.
        ``in_flight=False`` leaves out the campaign messages claimed and not yet
        settled, to tell whether a verdict depends on sends under way.
        """
        mine, params = of_account(account)
        when = _SENT_TIME if in_flight else _SETTLED_TIME
        sql = (
            f"select coalesce(sum(case when {when} >= ? then 1 else 0 end), 0) "  # noqa: S608
            f"+ coalesce(sum(case when {_PRIOR_TIME} >= ? then 1 else 0 end), 0) n "
            f"from messages where {mine}"
        )
        messages = self._db.query(sql, [since, since, *params])[0]["n"]
        tests = self._db.query(
            f"select count(*) n from test_sends where {mine} and at >= ? "  # noqa: S608
            f"and state in ({_TEST_STATES})",
            [*params, since],
        )[0]["n"]
        return int(messages) + int(tests)

    def oldest_sent_since(self, since: float, account: str) -> float | None:
        """Time of ``account``'s oldest send inside the window: when the next slot frees up."""
        mine, params = of_account(account)
        times = [
            self._db.query(
                f"select min({expr}) t from messages where {mine} and {expr} >= ?",  # noqa: S608
                [*params, since],
            )[0]["t"]
            for expr in (_SENT_TIME, _PRIOR_TIME)
        ]
        times.append(
            self._db.query(
                f"select min(at) t from test_sends where {mine} and at >= ? "  # noqa: S608
                f"and state in ({_TEST_STATES})",
                [*params, since],
            )[0]["t"]
        )
        found = [float(t) for t in times if t is not None]
        return min(found) if found else None

    # -- delivery statistics -------------------------------------------------

    def delivery_counts(
        self,
        *,
        campaign_id: int | None = None,
        since: float | None = None,
        team: str | None = None,
    ) -> DeliveryCounts:
        """``sent`` messages and how many of them bounced (``hard``, ``soft``); of
        workspace ``team``'s campaigns only, if given."""
        sql = (
            f"select count(*) sent, {_HARD} hard, {_SOFT} soft "  # noqa: S608
            "from messages where state = ?"
        )
        params: list[Any] = [_ST.value]
        if campaign_id is not None:
            sql += " and campaign_id = ?"
            params.append(campaign_id)
        if since is not None:
            sql += " and sent_at >= ?"
            params.append(since)
        if team is not None:
            sql += (
                " and campaign_id in (select id from campaigns where coalesce(team, '') in (?, ''))"
            )
            params.append(team)
        return _delivery(self._db.query(sql, params)[0])

    def delivery_by_campaign(
        self, since: float, *, team: str | None = None
    ) -> list[CampaignDelivery]:
        """Per campaign with mail sent since ``since``, newest first: counts as above
        (of workspace ``team``'s campaigns only, if given)."""
        extra, params = (
            ("", []) if team is None else (" and coalesce(c.team, '') in (?, '')", [team])
        )
        rows = self._db.query(
            "select m.campaign_id, c.template, c.created_at, count(*) sent, "  # noqa: S608
            f"{_HARD} hard, {_SOFT} soft "
            "from messages m join campaigns c on c.id = m.campaign_id "
            f"where m.state = ? and m.sent_at >= ?{extra} "
            "group by m.campaign_id, c.template, c.created_at order by m.campaign_id desc",
            [_ST.value, since, *params],
        )
        return [
            CampaignDelivery(
                campaign_id=r["campaign_id"],
                template=r["template"],
                created_at=r["created_at"],
                sent=r["sent"],
                hard=r["hard"],
                soft=r["soft"],
            )
            for r in rows
        ]

    # -- moves ---------------------------------------------------------------

    def _move(
        self,
        row_id: int,
        to: MessageState,
        fields: dict[str, Any],
        allowed_from: Collection[MessageState] | None = None,
    ) -> Transition:
        """Move one message to ``to`` if it is in an allowed state; commit.

        ``allowed_from`` may narrow ``TRANSITIONS[to]`` (e.g. a requeue after a
        transient error is only from ``sending``), never widen it.
        """
        permitted = TRANSITIONS[to]
        allowed = permitted if allowed_from is None else frozenset(map(MessageState, allowed_from))
        if not allowed <= permitted:
            wrong = ", ".join(sorted(allowed - permitted))
            raise ValueError(f"a message may not move from {wrong} to {to}")
        now = self._db.clock()
        sets: dict[str, Any] = {"state": to.value, "updated_at": now, **fields}
        if to == _ST:
            sets.setdefault("sent_at", now)
        if to == _SG:
            sets.setdefault("claimed_at", now)
        assignments = ", ".join(f"{k} = ?" for k in sets)
        extra = ", attempts = attempts + 1" if to == _SG else ""
        starts = sorted(s.value for s in allowed)
        with self._db.tx() as db:
            changed = db.execute(
                f"update messages set {assignments}{extra} where id = ? "  # noqa: S608
                f"and state in ({','.join('?' * len(starts))})",
                [*sets.values(), row_id, *starts],
            ).rowcount
            if changed:
                return Transition(True, to)
            row = db.execute("select state from messages where id = ?", [row_id]).fetchone()
            return Transition(False, MessageState(row[0]) if row else None)

    def claim(self, row_id: int, account: str) -> bool:
        """queued/deferred → sending (attempts + 1) by ``account``. False if someone
        else has it. From here on the message counts against that account's day."""
        return self._move(row_id, _SG, {"account": account}).changed

    def mark_sent(self, row_id: int, provider_id: str) -> Transition:
        return self._move(row_id, _ST, {"provider_id": provider_id, "last_error": None})

    def mark_failed(self, row_id: int, reason: str) -> Transition:
        return self._move(row_id, _F, {"last_error": reason})

    def mark_deferred(
        self,
        row_id: int,
        not_before: float | None,
        reason: str,
        from_states: Collection[MessageState] | None = None,
    ) -> Transition:
        """To ``deferred``. ``from_states`` narrows where from: deferring the rest of a
        campaign must not take a message another worker has just claimed."""
        return self._move(
            row_id, _D, {"not_before": not_before, "last_error": reason}, allowed_from=from_states
        )

    def mark_uncertain(self, row_id: int, reason: str) -> Transition:
        return self._move(row_id, _U, {"last_error": reason})

    def mark_skipped(self, row_id: int, reason: str) -> Transition:
        return self._move(row_id, _SK, {"last_error": reason})

    def requeue(
        self,
        row_id: int,
        reason: str | None = None,
        from_states: Collection[MessageState] = (_SG,),
    ) -> Transition:
        """Back to queued: the attempt certainly did not send (or a person chose re-send).

        ``from_states`` says which doubt is being settled (``sending`` after a
        transient error, ``failed`` by a person's choice). A person re-sending an
        ``uncertain`` message uses ``resend_uncertain``, which keeps it counted.
        """
        return self._move(row_id, _Q, {"last_error": reason}, allowed_from=from_states)

    def resend_uncertain(self, row_id: int) -> Transition:
        """uncertain → queued because a person chose to send again.

        The uncertain attempt may have gone out, so it keeps counting against the
        daily limit (``prior_claimed_at``) next to the new one.
        """
        with self._db.tx() as db:
            db.execute(
                "update messages set prior_claimed_at = coalesce(claimed_at, updated_at) "
                "where id = ? and state = ?",
                [row_id, _U.value],
            )
            return self._move(row_id, _Q, {"last_error": None}, allowed_from=(_U,))

    def recover_in_flight(self, campaign_id: int | None = None) -> int:
        """After a crash: every ``sending`` message becomes ``uncertain``.

        Only call this when no other process is sending (the CLI and server take
        a lock file first).
        """
        # TRANSITIONS[uncertain] is exactly {sending}: this is that move, in bulk.
        sql = "update messages set state = ?, updated_at = ?, last_error = ? where state = ?"
        params: list[Any] = [
            _U.value,
            self._db.clock(),
            "the process stopped while this message was being sent",
            _SG.value,
        ]
        if campaign_id is not None:
            sql += " and campaign_id = ?"
            params.append(campaign_id)
        return self._db.update(sql, params)

    # -- many workers --------------------------------------------------------

    def claim_ready(
        self, account: str, limit: int, campaign_id: int | None = None
    ) -> list[Message]:
        """Claim up to ``limit`` ready messages of ``account`` at once (→ ``sending``).

        Ready: queued, or deferred and due, in a running campaign; oldest campaign
        and list position first. One statement picks and moves them, so each
        message goes to one claimer only: PostgreSQL's ``skip locked`` lets
        concurrent claimers pass over rows another is taking, and the outer
        ``state in`` check re-reads each row after any wait. A claim counts the
        attempt and stamps ``claimed_at``, as ``claim`` does.
        """
        now = self._db.clock()
        starts = sorted(s.value for s in TRANSITIONS[_SG])
        marks = ",".join("?" * len(starts))
        only = " and m.campaign_id = ?" if campaign_id is not None else ""
        pick = (
            "select m.id from messages m join campaigns c on c.id = m.campaign_id "  # noqa: S608
            f"where c.status = ? and m.account = ?{only} and {_READY} and (m.state = ? or "
            "(m.state = ? and coalesce(m.not_before, 0) <= ?)) "
            f"order by m.campaign_id, m.position limit ?{self._db.skip_locked('m')}"
        )
        picked: list[Any] = [CampaignStatus.RUNNING.value, account]
        picked += [campaign_id] if campaign_id is not None else []
        picked += [_Q.value, _D.value, now, limit]
        with self._db.tx() as db:
            cursor = db.execute(
                "update messages set state = ?, updated_at = ?, claimed_at = ?, "  # noqa: S608
                f"attempts = attempts + 1 where id in ({pick}) and state in ({marks}) "
                "returning *",
                [_SG.value, now, now, *picked, *starts],
            )
            names = [d[0] for d in cursor.description]
            rows = [message_from_row(dict(zip(names, r, strict=True))) for r in cursor.fetchall()]
        return sorted(rows, key=lambda m: (m.campaign_id, m.position))

    def ready_accounts(self, now: float | None = None) -> list[str]:
        """Accounts with messages ``claim_ready`` would hand out now: queued, or
        deferred and due, in running campaigns (what the workers serve)."""
        now = self._db.clock() if now is None else now
        rows = self._db.query(
            "select distinct m.account from messages m join campaigns c on c.id = m.campaign_id "
            "where c.status = ? and (m.state = ? or "
            "(m.state = ? and coalesce(m.not_before, 0) <= ?)) order by m.account",
            [CampaignStatus.RUNNING.value, _Q.value, _D.value, now],
        )
        return [r["account"] for r in rows]

    def recover_expired(self, lease_seconds: float) -> int:
        """``sending`` messages claimed over ``lease_seconds`` ago become ``uncertain``.

        A claim is a lease: the worker that took it settles it (sent, failed,
        deferred, uncertain) well within the lease, or it died (SIGKILL, a lost
        machine). Its messages then go the way of a crash, through ``uncertain``
        and reconciliation, while the other workers keep sending; fresher claims
        are left alone. The lease must outlast one send with its retries.
        """
        now = self._db.clock()
        return self._db.update(
            "update messages set state = ?, updated_at = ?, last_error = ? "
            "where state = ? and coalesce(claimed_at, updated_at) < ?",
            [
                _U.value,
                now,
                "the worker sending this message stopped (its claim expired)",
                _SG.value,
                now - lease_seconds,
            ],
        )
