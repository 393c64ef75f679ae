"""Approvals: one request per campaign that needs a second person, and its decision.

Every move is a conditional update inside one transaction with its audit line,
so two approvers clicking at once (or one clicking twice) decide once, and a
decision can never land on a campaign that is no longer waiting for one.
"""

from __future__ import annotations

from typing import Any

from bot.records import (
    Approval,
    ApprovalDecision,
    CampaignStatus,
    MessageState,
)
from bot.store import audit
from bot.store.sql import SqlDatabase

_PENDING, _APPROVED, _REJECTED = (
    ApprovalDecision.PENDING.value,
    ApprovalDecision.APPROVED.value,
    ApprovalDecision.REJECTED.value,
)
_AWAITING = CampaignStatus.AWAITING_APPROVAL.value


def approval_from_row(row: dict[str, Any]) -> Approval:
    return Approval(
        campaign_id=row["campaign_id"],
        requested_by=row["requested_by"],
        requested_at=row["requested_at"],
        digest=row["digest"],
        reason=row["reason"] or "",
        decision=ApprovalDecision(row["decision"]),
        decided_by=row["decided_by"] or "",
        decided_at=row["decided_at"],
        note=row["note"] or "",
        channel=row["channel"] or "",
        ts=row["ts"] or "",
    )


class SqlApprovals:
    """``bot.ports.Approvals`` on SQL (SQLite or PostgreSQL)."""

    def __init__(self, database: SqlDatabase):
        self._db = database

    def request(self, campaign_id: int, requested_by: str, digest: str, reason: str) -> None:
        """Record that ``campaign_id`` (awaiting approval) needs a decision."""
        with self._db.tx() as db:
            db.table("approvals").insert(
                {
                    "campaign_id": campaign_id,
                    "requested_by": requested_by,
                    "requested_at": self._db.clock(),
                    "digest": digest,
                    "reason": reason,
                    "decision": _PENDING,
                    "decided_by": "",
                    "note": "",
                    "channel": "",
                    "ts": "",
                }
            )
            audit.write(
                db,
                self._db.clock,
                requested_by,
                "approval.requested",
                {"campaign_id": campaign_id, "reason": reason},
            )

    def get(self, campaign_id: int) -> Approval | None:
        rows = self._db.query("select * from approvals where campaign_id = ?", [campaign_id])
        return approval_from_row(rows[0]) if rows else None

    def pending(self, *, team: str | None = None) -> list[Approval]:
        """Requests still waiting for a decision, oldest first (of campaigns of
        workspace ``team`` only, if given: a request follows its campaign)."""
        extra, params = (
            ("", []) if team is None else (" and coalesce(c.team, '') in (?, '')", [team])
        )
        rows = self._db.query(
            "select a.* from approvals a join campaigns c on c.id = a.campaign_id "  # noqa: S608
            f"where a.decision = ? and c.status = ?{extra} order by a.campaign_id",
            [_PENDING, _AWAITING, *params],
        )
        return [approval_from_row(r) for r in rows]

    def set_message(self, campaign_id: int, channel: str, ts: str) -> None:
        """Where the request message was posted (its buttons are answered there)."""
        with self._db.tx() as db:
            db.execute(
                "update approvals set channel = ?, ts = ? where campaign_id = ?",
                [channel, ts, campaign_id],
            )

    def decide(
        self,
        campaign_id: int,
        decided_by: str,
        decision: ApprovalDecision,
        note: str = "",
    ) -> bool:
        """Approve or reject a pending request; False if it was not pending any more.

        The condition is in the update itself: the request is pending, the
        campaign is still awaiting approval, and the decider is not the requester.
        A rejection cancels the campaign and skips its messages in the same
        transaction, so nothing can send it afterwards.
        """
        if decision == ApprovalDecision.PENDING:
            raise ValueError("a decision is approved or rejected")
        now = self._db.clock()
        with self._db.tx() as db:
            changed = db.execute(
                "update approvals set decision = ?, decided_by = ?, decided_at = ?, note = ? "
                "where campaign_id = ? and decision = ? and requested_by <> ? and exists "
                "(select 1 from campaigns c where c.id = ? and c.status = ?)",
                [
                    decision.value,
                    decided_by,
                    now,
                    note,
                    campaign_id,
                    _PENDING,
                    decided_by,
                    campaign_id,
                    _AWAITING,
                ],
            ).rowcount
            if changed != 1:
                return False
            if decision == ApprovalDecision.REJECTED:
                reason = f"rejected by {decided_by}" + (f": {note}" if note else "")
                _cancel(db, campaign_id, now, reason, "the campaign was rejected")
            audit.write(
                db,
                self._db.clock,
                decided_by,
                f"approval.{decision.value}",
                {"campaign_id": campaign_id, "note": note},
            )
        return True

    def withdraw(self, campaign_id: int, by: str) -> bool:
        """Take a pending request back: the campaign is cancelled and its messages
        skipped, in one transaction with the request's change; False if it was
        decided (or withdrawn) already. Who may do it is the caller's rule."""
        now = self._db.clock()
        with self._db.tx() as db:
            changed = db.execute(
                "update approvals set decision = ?, decided_by = ?, decided_at = ? "
                "where campaign_id = ? and decision = ? and exists "
                "(select 1 from campaigns c where c.id = ? and c.status = ?)",
                [
                    ApprovalDecision.WITHDRAWN.value,
                    by,
                    now,
                    campaign_id,
                    _PENDING,
                    campaign_id,
                    _AWAITING,
                ],
            ).rowcount
            if changed != 1:
                return False
            why = "the request for approval was withdrawn"
            _cancel(db, campaign_id, now, f"withdrawn by {by}", why)
            audit.write(db, self._db.clock, by, "approval.withdrawn", {"campaign_id": campaign_id})
        return True

    def release(self, campaign_id: int, actor: str) -> bool:
        """Move an approved campaign from awaiting approval on: to ``scheduled`` if it
        has a time (the schedule's due check starts it then, checked again, at once
        if the time passed while it waited), else to ``running``. False if it is not
        approved or not awaiting approval any more (released already)."""
        with self._db.tx() as db:
            changed = db.execute(
                "update campaigns set status = case when scheduled_at is null then ? "
                "else ? end where id = ? and status = ? and exists "
                "(select 1 from approvals a where a.campaign_id = ? and a.decision = ?)",
                [
                    CampaignStatus.RUNNING.value,
                    CampaignStatus.SCHEDULED.value,
                    campaign_id,
                    _AWAITING,
                    campaign_id,
                    _APPROVED,
                ],
            ).rowcount
            if changed == 1:
                audit.write(
                    db, self._db.clock, actor, "approval.released", {"campaign_id": campaign_id}
                )
        return changed == 1

    def reopen(self, campaign_id: int, digest: str, why: str) -> bool:
        """The campaign changed after its approval: it waits for a new decision on
        what it is now (``digest``), and a new request is to be posted."""
        with self._db.tx() as db:
            changed = db.execute(
                "update approvals set decision = ?, decided_by = '', decided_at = null, "
                "note = '', digest = ?, channel = '', ts = '' where campaign_id = ?",
                [_PENDING, digest, campaign_id],
            ).rowcount
            if changed != 1:
                return False
            db.execute(
                "update campaigns set status = ?, paused_reason = ? where id = ? and status <> ?",
                [_AWAITING, why, campaign_id, CampaignStatus.CANCELLED.value],
            )
            audit.write(
                db,
                self._db.clock,
                "mailbolt",
                "approval.invalidated",
                {"campaign_id": campaign_id, "why": why},
            )
        return True

    def approved_waiting(self) -> list[int]:
        """Approved campaigns still awaiting release (a restart between the two)."""
        rows = self._db.query(
            "select a.campaign_id from approvals a join campaigns c on c.id = a.campaign_id "
            "where a.decision = ? and c.status = ? order by a.campaign_id",
            [_APPROVED, _AWAITING],
        )
        return [r["campaign_id"] for r in rows]


def _cancel(db: Any, campaign_id: int, now: float, reason: str, skipped_why: str) -> None:
    """Inside a decision's transaction: the campaign is cancelled and every message
    not sent yet is skipped, so nothing can send it afterwards."""
    db.execute(
        "update campaigns set status = ?, paused_reason = ?, finished_at = ? where id = ?",
        [CampaignStatus.CANCELLED.value, reason, now, campaign_id],
    )
    db.execute(
        "update messages set state = ?, last_error = ?, updated_at = ? "
        "where campaign_id = ? and state in (?, ?)",
        [
            MessageState.SKIPPED.value,
            skipped_why,
            now,
            campaign_id,
            MessageState.QUEUED.value,
            MessageState.DEFERRED.value,
        ],
    )
