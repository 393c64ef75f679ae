"""The status message's buttons: cancel, retry the failed messages, and resend or
skip the uncertain ones.

Owns: what each button does to a campaign and what the channel and the person who
clicked are told. The decisions themselves are ``bot.handlers.campaign``'s; the
status message is the ``StatusBoard``'s.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.handlers import resolution, scope
from bot.records import CampaignStatus
from bot.slack import Services, views
from bot.slack import schedule as sending_later
from bot.slack.answers import answering, tell_privately

log = logging.getLogger(__name__)

BUTTONS = (
    views.A_CANCEL,
    views.A_RETRY_FAILED,
    views.A_RESEND_UNCERTAIN,
    views.A_SKIP_UNCERTAIN,
)


def act(kind: str, campaign_id: int, user: str, team: str, services: Services) -> str | None:
    """Do what button ``kind`` asks; what to tell the person privately, if anything.

    What was done is said in the status message's thread, for everyone to see.
    """
    deps = services.deps
    row = scope.campaign_of(deps.store, campaign_id, team)  # another workspace's: no such
    if kind == views.A_CANCEL and row.status == CampaignStatus.SCHEDULED:
        return sending_later.cancel(campaign_id, user, services, team)
    if kind == views.A_CANCEL and row.status == CampaignStatus.AWAITING_APPROVAL:
        from bot.slack import approval as approval_desk  # its listeners import this module

        approval_desk.withdraw(campaign_id, user, services, "", team)
        return None
    if kind == views.A_CANCEL:
        return _cancel(campaign_id, user, team, services)
    if services.runner.is_active(campaign_id):
        return f"Campaign #{campaign_id} is still sending; try again when it has stopped."
    if kind == views.A_RETRY_FAILED:
        count = resolution.retry_failed(campaign_id, deps, user, team=team)
        what = f"queued {count} failed message(s) again"
    else:
        resend = kind == views.A_RESEND_UNCERTAIN
        count = resolution.resolve_uncertain(campaign_id, deps, user, resend=resend, team=team)
        what = f"{'queued' if resend else 'skipped'} {count} uncertain message(s)"
    services.board.reply(campaign_id, f"<@{user}> {what}.")
    if deps.store.outbox.ready_messages(campaign_id):
        services.runner.start(campaign_id)
    else:
        services.board.refresh(campaign_id)
    return None


def _cancel(campaign_id: int, user: str, team: str, services: Services) -> str | None:
    services.deps.store.audit.record(user, "slack.cancel", campaign_id=campaign_id, team=team)
    if services.runner.cancel(campaign_id):
        services.board.reply(campaign_id, f"<@{user}> cancelled the campaign.")
        return None
    return f"Campaign #{campaign_id} has nothing left to cancel."


def _clicked(body: dict[str, Any], context: BoltContext) -> tuple[str, str, str, dict[str, Any]]:
    """(user, team, channel, action) of a button click; the team is the workspace
    the request came from (the middleware checked the payload names no other)."""
    return (
        body["user"]["id"],
        context.team_id or "",
        (body.get("channel") or {}).get("id", ""),
        body["actions"][0],
    )


def register(app: App, services: Services) -> None:
    """One lazy listener for every status-message button."""

    def just_ack(ack: Ack) -> None:
        ack()

    def campaign_button(body: dict, client: WebClient, context: BoltContext) -> None:
        correlation_id = context.get("correlation_id", "")
        user, team, channel, action = _clicked(body, context)
        text = answering(
            correlation_id,
            f"button {action.get('action_id')}",
            lambda: act(action["action_id"], int(action["value"]), user, team, services),
            lambda words: words,
        )
        if text:
            tell_privately(client, channel, user, text, correlation_id)

    for action_id in BUTTONS:
        app.action(action_id)(ack=just_ack, lazy=[campaign_button])
