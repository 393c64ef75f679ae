"""Campaigns: one row per request, created atomically with all its messages."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Unpack

from bot.records import (
    LEGACY_ACCOUNT,
    UNFINISHED_STATES,
    Campaign,
    CampaignChanges,
    CampaignStatus,
    MessageState,
    NewMessage,
)
from bot.store import audit
from bot.store.sql import SqlDatabase


def campaign_from_row(row: dict[str, Any]) -> Campaign:
    return Campaign(
        id=row["id"],
        created_at=row["created_at"],
        requested_by=row["requested_by"],
        template=row["template"],
        category=row["category"] or "",
        subject=row["subject"] or "",
        common_vars=json.loads(row["common_vars"] or "{}"),
        status=CampaignStatus(row["status"]),
        total=row["total"] or 0,
        team=row["team"] or "",
        paused_reason=row["paused_reason"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        idempotency_key=row["idempotency_key"],
        status_channel=row["status_channel"] or "",
        status_ts=row["status_ts"],
        correlation_id=row["correlation_id"] or "",
        account=row["account"] or LEGACY_ACCOUNT,
        scheduled_at=row.get("scheduled_at"),
        schedule_zone=row.get("schedule_zone") or "",
    )


def _initial_status(status: CampaignStatus, scheduled_at: float | None) -> CampaignStatus:
    """What a new campaign starts as: awaiting approval if it must, else scheduled
    when it has a time, else running."""
    status = CampaignStatus(status)
    if status == CampaignStatus.RUNNING and scheduled_at is not None:
        return CampaignStatus.SCHEDULED
    return status


def _of_team(team: str | None) -> tuple[str, list[Any]]:
    """`` where …`` selecting what workspace ``team`` sees: its campaigns and the
    operator's (team ``''``, from the command line); nothing for ``None``: all."""
    if team is None:
        return "", []
    return " where coalesce(team, '') in (?, '')", [team]


class SqliteCampaigns:
    """``bot.ports.Campaigns`` on SQL (SQLite or PostgreSQL)."""

    def __init__(self, database: SqlDatabase):
        self._db = database

    def create(
        self,
        *,
        requested_by: str,
        template: str,
        category: str,
        subject: str,
        common_vars: dict[str, str],
        messages: Iterable[NewMessage],
        team: str = "",
        idempotency_key: str | None = None,
        status_channel: str = "",
        correlation_id: str = "",
        account: str = LEGACY_ACCOUNT,
        status: CampaignStatus = CampaignStatus.RUNNING,
        scheduled_at: float | None = None,
        schedule_zone: str = "",
    ) -> tuple[int, bool]:
        """Record a campaign and all its messages atomically.

        ``account`` is the account meant to send it; ``status`` is ``running``, or
        ``awaiting_approval`` for one nothing may send until it is approved. A
        running one with ``scheduled_at`` is recorded ``scheduled`` (nothing sends it
        until it is released). Returns ``(campaign_id, created)``; with an
        ``idempotency_key`` seen before, the existing campaign is returned and
        ``created`` is False (a Slack retry or a double click).
        """
        now = self._db.clock()
        with self._db.tx() as db:
            if idempotency_key:
                existing = db.execute(
                    "select id from campaigns where idempotency_key = ?", [idempotency_key]
                ).fetchone()
                if existing:
                    return int(existing[0]), False
            inserted = (
                db.table("campaigns")
                .insert(
                    {
                        "created_at": now,
                        "requested_by": requested_by,
                        "team": team,
                        "template": template,
                        "category": category,
                        "subject": subject,
                        "common_vars": json.dumps(common_vars, ensure_ascii=False),
                        "status": _initial_status(status, scheduled_at).value,
                        "scheduled_at": scheduled_at,
                        "schedule_zone": schedule_zone,
                        "total": 0,
                        "idempotency_key": idempotency_key,
                        "status_channel": status_channel,
                        "correlation_id": correlation_id,
                        "account": account,
                    }
                )
                .last_pk
            )
            assert inserted is not None  # an insert into a table with an integer key
            campaign_id = int(inserted)
            rows = (
                {
                    "campaign_id": campaign_id,
                    "position": i,
                    "email": m.email,
                    "name": m.name,
                    "variables": json.dumps(m.variables, ensure_ascii=False),
                    "state": MessageState(m.state).value,
                    "last_error": m.last_error,
                    "message_id": m.message_id,
                    "created_at": now,
                    "updated_at": now,
                    "attempts": 0,
                    "account": account,
                }
                for i, m in enumerate(messages)
            )
            db.table("messages").insert_all(rows, batch_size=500)
            total = db.execute(
                "select count(*) from messages where campaign_id = ?", [campaign_id]
            ).fetchone()[0]
            db.execute("update campaigns set total = ? where id = ?", [total, campaign_id])
            audit.write(
                db,
                self._db.clock,
                requested_by,
                "campaign.created",
                {
                    "campaign_id": campaign_id,
                    "template": template,
                    "total": total,
                    "team": team,
                    "account": account,
                    **({"scheduled_at": scheduled_at} if scheduled_at is not None else {}),
                },
            )
        return campaign_id, True

    def get(self, campaign_id: int) -> Campaign | None:
        rows = self._db.query("select * from campaigns where id = ?", [campaign_id])
        return campaign_from_row(rows[0]) if rows else None

    def recent(self, limit: int = 10, *, team: str | None = None) -> list[Campaign]:
        """The newest ``limit`` campaigns, newest first (those workspace ``team``
        sees, if given: its own and the command line's, team ``''``)."""
        where, params = _of_team(team)
        rows = self._db.query(
            f"select * from campaigns{where} order by id desc limit ?",  # noqa: S608
            [*params, limit],
        )
        return [campaign_from_row(r) for r in rows]

    def update(self, campaign_id: int, **changes: Unpack[CampaignChanges]) -> None:
        """Change the given columns (status, paused_reason, status_ts, …) of a campaign.

        Raises ``sqlite_utils.db.NotFoundError`` for an unknown campaign.
        """
        values = {k: (v.value if isinstance(v, CampaignStatus) else v) for k, v in changes.items()}
        with self._db.tx() as db:
            db.table("campaigns").update(campaign_id, values)

    def update_if(
        self, campaign_id: int, expected: CampaignStatus, **changes: Unpack[CampaignChanges]
    ) -> bool:
        """Change the given columns only while the campaign is in ``expected``.

        True when it changed. Two processes releasing (or a person cancelling)
        one scheduled campaign at once: exactly one of them wins.
        """
        values = {k: (v.value if isinstance(v, CampaignStatus) else v) for k, v in changes.items()}
        names = list(values)
        sets = ", ".join(f"{name} = ?" for name in names)
        with self._db.tx() as db:
            changed = db.execute(
                f"update campaigns set {sets} where id = ? and status = ?",  # noqa: S608
                [*(values[n] for n in names), campaign_id, CampaignStatus(expected).value],
            ).rowcount
        return bool(changed)

    def scheduled(
        self, requested_by: str | None = None, *, team: str | None = None
    ) -> list[Campaign]:
        """Scheduled campaigns (of one person, or everyone's; of one workspace, or
        all), soonest first."""
        sql = "select * from campaigns where status = ?"
        params: list[Any] = [CampaignStatus.SCHEDULED.value]
        if requested_by is not None:
            sql += " and requested_by = ?"
            params.append(requested_by)
        if team is not None:
            sql += " and coalesce(team, '') in (?, '')"
            params.append(team)
        rows = self._db.query(sql + " order by scheduled_at, id", params)
        return [campaign_from_row(r) for r in rows]

    def scheduled_due(self, now: float) -> list[int]:
        """Ids of scheduled campaigns whose time is ``now`` or earlier, oldest first."""
        rows = self._db.query(
            "select id from campaigns where status = ? and scheduled_at <= ? "
            "order by scheduled_at, id",
            [CampaignStatus.SCHEDULED.value, now],
        )
        return [r["id"] for r in rows]

    def unfinished(self) -> list[int]:
        """Campaigns with work left: messages to send, or in doubt to settle.

        A completed campaign counts again when a person re-queues its failed or
        uncertain messages, or when it still holds uncertain ones to reconcile.
        Neither do scheduled ones (they wait for their time) nor one awaiting
        approval (nothing may send it yet).
        """
        states = sorted(UNFINISHED_STATES)
        marks = ",".join("?" * len(states))
        rows = self._db.query(
            "select distinct c.id from campaigns c join messages m on m.campaign_id = c.id "  # noqa: S608
            f"where c.status not in (?, ?, ?) and m.state in ({marks}) order by c.id",
            [
                CampaignStatus.CANCELLED.value,
                CampaignStatus.AWAITING_APPROVAL.value,
                CampaignStatus.SCHEDULED.value,
                *(s.value for s in states),
            ],
        )
        return [r["id"] for r in rows]

    def due(self, now: float) -> list[int]:
        """Campaigns with queued messages, or deferred ones due by ``now``.

        Running ones, and completed ones a person re-queued messages of (``resolve``
        from the CLI while the server runs); not cancelled or paused ones.
        """
        rows = self._db.query(
            "select distinct c.id from campaigns c join messages m on m.campaign_id = c.id "
            "where c.status in (?, ?) and (m.state = ? or (m.state = ? and "
            "coalesce(m.not_before, 0) <= ?)) order by c.id",
            [
                CampaignStatus.RUNNING.value,
                CampaignStatus.COMPLETED.value,
                MessageState.QUEUED.value,
                MessageState.DEFERRED.value,
                now,
            ],
        )
        return [r["id"] for r in rows]

    def drained(self) -> list[int]:
        """Running campaigns with nothing queued, deferred or in flight: each worker
        asks, and the first to notice marks it completed."""
        busy = sorted(
            s.value for s in (MessageState.QUEUED, MessageState.DEFERRED, MessageState.SENDING)
        )
        marks = ",".join("?" * len(busy))
        rows = self._db.query(
            "select c.id from campaigns c where c.status = ? and not exists "  # noqa: S608
            f"(select 1 from messages m where m.campaign_id = c.id and m.state in ({marks})) "
            "order by c.id",
            [CampaignStatus.RUNNING.value, *busy],
        )
        return [r["id"] for r in rows]

    def adopt_unowned(self, team: str, *, actor: str) -> int:
        """Give every campaign of no workspace (team ``''``: the command line's, from
        when mailbolt served one workspace) to ``team``; how many. Audited."""
        with self._db.tx() as db:
            moved = db.execute("update campaigns set team = ? where team = ''", [team]).rowcount
            if moved:
                audit.write(
                    db, self._db.clock, actor, "workspace.adopted", {"campaigns": moved}, team=team
                )
        return int(moved)

    def newest_id(self) -> int:
        """The newest campaign's id (0 if none): a cheap way to notice new campaigns."""
        return int(self._db.query("select coalesce(max(id), 0) n from campaigns")[0]["n"])
