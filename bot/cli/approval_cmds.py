"""Approval on the CLI: a ``send`` the policy covers, and ``approvals`` (the list).

Approvers decide in Slack, whose clicks reach ``python -m bot serve``. So a CLI
send that needs approval is recorded only while serve runs (serve posts the
request and releases the campaign when approved); the CLI then waits and
follows it like any hand-off. Without Slack, or without serve, it is refused
with the reason, and nothing is recorded: never a silent send.
"""

from __future__ import annotations

import argparse
import time
from typing import Protocol

from rich.table import Table

from bot.cli.args import several_teams, team_label
from bot.cli.console import make_console
from bot.config import Settings
from bot.errors import PolicyError
from bot.handlers import approval
from bot.handlers.campaign import Deps, Plan
from bot.records import ApprovalDecision, CampaignStatus
from bot.timefmt import local_moment, utc_minute
from bot.wiring import (
    ROLE_SERVE,
    ROLE_WORKER,
    AnySenderLock,
    SenderBusy,
    Wiring,
    approval_policy,
    sender_lock,
)

out = make_console()

#: How often a waiting CLI send reads the store.
WAIT_POLL_SECONDS = 0.5


class Follow(Protocol):
    def __call__(
        self,
        campaign_id: int,
        deps: Deps,
        settings: Settings,
        lock: AnySenderLock,
        *,
        handed_to: SenderBusy,
    ) -> int: ...


def reason_for(plan: Plan, settings: Settings) -> str:
    """Why this plan needs approval under the settings ("" if it does not)."""
    return approval.needs_approval(approval_policy(settings), plan.category, len(plan.to_send))


def send_for_approval(
    plan: Plan,
    deps: Deps,
    settings: Settings,
    reason: str,
    follow: Follow,
    *,
    when: tuple[float, str] | None = None,
) -> int:
    """Record the campaign awaiting approval, wait for the decision, then follow
    the sending; or refuse, recording nothing, when nobody could decide. A
    scheduled one (``when``) is not waited for: once approved it keeps its time."""
    nothing = "Nothing was sent or recorded."
    team = plan.request.team
    if not (settings.slack_bot_token or settings.many_workspaces) or not (
        settings.approval_channels
    ):
        raise PolicyError(
            f"This campaign needs approval ({reason}), which approvers give in Slack, and "
            "Slack is not configured: set SLACK_BOT_TOKEN and APPROVAL_CHANNEL and run "
            f"`python -m bot serve`. {nothing}"
        )
    approval.require_channel(approval_policy(settings), team, reason)
    channel = settings.approval_channels.for_team(team)
    lock = sender_lock(settings)
    try:
        lock.acquire()
    except SenderBusy as busy:
        if busy.role not in (ROLE_SERVE, ROLE_WORKER):
            raise
        server = busy  # serve (or, beside workers, `serve --no-send`) posts the request
    else:
        lock.release()
        raise PolicyError(
            f"This campaign needs approval ({reason}). Approvers decide in Slack through "
            f"`python -m bot serve`, which is not running: start it, then send again. {nothing}"
        )
    campaign_id, _ = approval.record(plan, deps, reason, when)
    if when is not None:
        out.print(
            f"Campaign {campaign_id} needs approval ({reason}); the request is posted in "
            f"Slack channel {channel}. Once approved it starts at "
            f"{local_moment(*when)}; `python -m bot status {campaign_id}` shows where it is.",
            markup=False,
        )
        return 0
    code = wait_for_decision(campaign_id, deps, channel, lock)
    if code is not None:
        return code
    return follow(campaign_id, deps, settings, lock, handed_to=server)


def wait_for_decision(
    campaign_id: int, deps: Deps, channel: str, lock: AnySenderLock
) -> int | None:
    """None once approved (sending may be followed); an exit code otherwise.
    ``channel``: where the request is posted, to say so."""
    store = deps.store
    request = store.approvals.get(campaign_id)
    why = request.reason if request else ""
    try:
        out.print(
            f"Campaign {campaign_id} needs approval: {why}.\nWaiting for approval in Slack "
            f"channel {channel}; Ctrl-C stops waiting, the request stays.",
            markup=False,
        )
        while True:
            row = store.campaigns.get(campaign_id)
            request = store.approvals.get(campaign_id)
            assert row is not None and request is not None
            if request.decision == ApprovalDecision.REJECTED:
                out.print(
                    f"Campaign {campaign_id} was rejected by {request.decided_by}: "
                    f"{request.note}. Nothing was sent.",
                    markup=False,
                )
                return 1
            if row.status != CampaignStatus.AWAITING_APPROVAL:
                out.print(f"Campaign {campaign_id} was approved by {request.decided_by}.")
                return None
            if not lock.held_by_other():
                out.print(
                    f"The server stopped while campaign {campaign_id} waited for approval. "
                    "The request stays: once approved, it is sent while the server runs.",
                    markup=False,
                )
                return 1
            time.sleep(WAIT_POLL_SECONDS)
    except KeyboardInterrupt:
        out.print(
            f"Stopped waiting. The request for campaign {campaign_id} stays; once approved it "
            "is sent by the server (`python -m bot approvals` lists those waiting).",
            markup=False,
        )
        return 130


def cmd_approvals(args: argparse.Namespace, settings: Settings) -> int:
    """Campaigns waiting for approval, oldest first."""
    store = Wiring(settings).store
    pending = store.approvals.pending(team=args.team)
    if not pending:
        out.print("No campaign is waiting for approval.")
        return 0
    rows = {r.campaign_id: store.campaigns.get(r.campaign_id) for r in pending}
    teams = several_teams(row.team if row else "" for row in rows.values())
    table = Table(title="Waiting for approval")
    for column in ("id", "template", "by", "asked", "why", "request"):
        table.add_column(column)
    if teams:
        table.add_column("workspace")
    for request in pending:
        row = rows[request.campaign_id]
        table.add_row(
            str(request.campaign_id),
            row.template if row else "?",
            request.requested_by,
            utc_minute(request.requested_at),
            request.reason,
            "posted" if request.ts else "not posted yet",
            *([team_label(row.team if row else "")] if teams else []),
        )
    out.print(table)
    return 0
