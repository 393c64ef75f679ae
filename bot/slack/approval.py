"""Approval in Slack: the request in its workspace's APPROVAL_CHANNEL and its four buttons.

Owns: posting and redrawing requests, and turning each click into one handler
call (``bot.handlers.approval``), which checks everything again on the server.
What a click carries is not trusted: the button must sit on the request message
of the campaign it names, and who may decide is read from the settings and the
store, never from the payload's claims about the campaign.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import MailboltError, PolicyError, UserInputError
from bot.handlers import approval, scope, trial_send
from bot.handlers.approval import ApprovalPolicy
from bot.handlers.recipients import from_slack_users
from bot.records import ApprovalDecision, CampaignStatus, MessageState
from bot.slack import Services, report, views
from bot.slack.answers import answering, tell_privately, update_view
from bot.slack.views import approval as approval_views
from bot.slack.views import blocks

log = logging.getLogger(__name__)

#: How often serve looks for requests to post (from the CLI, or after a failure).
POST_PENDING_SECONDS = 1.0
#: After Slack refused to post a request, how long before the next try.
RETRY_POST_SECONDS = 60.0
#: One poster at a time in this process, so a request is posted once.
_POSTING = threading.Lock()
#: Campaign id → when its request may be tried again (Slack refused it).
_RETRY_AT: dict[int, float] = {}


def _policy(services: Services) -> ApprovalPolicy:
    return services.approval or ApprovalPolicy()


# -- the request message ---------------------------------------------------------------


def request_data(campaign_id: int, services: Services) -> approval_views.RequestData:
    """What the request shows, read from the store now."""
    store = services.deps.store
    campaign = store.campaigns.get(campaign_id)
    request = store.approvals.get(campaign_id)
    assert campaign is not None and request is not None
    deps = services.wiring.deps_for(campaign.account)
    subject, opening = campaign.subject, ""
    try:
        plan = approval.first_message_plan(campaign_id, deps)
        if plan.first is not None:
            subject, opening = plan.first.subject, plan.first.text.strip()
    except MailboltError as exc:  # decided, or its files are gone: show what is known
        opening = f"(the first message cannot be shown: {exc})"
    return approval_views.RequestData(
        campaign_id=campaign_id,
        requested_by=campaign.requested_by,
        template=campaign.template,
        category=campaign.category,
        sender=deps.envelope.from_address,
        counts=approval.counts_line(campaign, deps),
        subject=subject,
        opening=opening,
        approval=request,
        approvers=approval.approvers_text(_policy(services)),
    )


def _team(services: Services, campaign_id: int) -> str:
    """The workspace a campaign belongs to, whose bot token speaks about it."""
    campaign = services.deps.store.campaigns.get(campaign_id)
    return campaign.team if campaign is not None else ""


def post_request(services: Services, campaign_id: int) -> None:
    """Post the request in its workspace's APPROVAL_CHANNEL, once."""
    store = services.deps.store
    team = _team(services, campaign_id)
    channel = approval.channel_for(_policy(services), team)
    with _POSTING:
        request = store.approvals.get(campaign_id)
        if not channel or request is None or request.ts:
            return
        text, shown = approval_views.request_message(request_data(campaign_id, services))
        client = services.client_for(team)
        response = client.chat_postMessage(channel=channel, text=text, blocks=shown)
        store.approvals.set_message(campaign_id, response["channel"], response["ts"])


def redraw(services: Services, campaign_id: int) -> None:
    request = services.deps.store.approvals.get(campaign_id)
    if request is None or not request.ts:
        return
    text, shown = approval_views.request_message(request_data(campaign_id, services))
    services.client_for(_team(services, campaign_id)).chat_update(
        channel=request.channel, ts=request.ts, text=text, blocks=shown
    )


def post_or_say(services: Services, campaign_id: int, correlation_id: str = "") -> bool:
    """``post_request``; when Slack refuses it, say so on the campaign's status
    message (once a minute at most) instead of leaving it waiting in silence.
    A campaign whose workspace has no approval channel (recorded before the
    setting changed) is told so once: no retry can post it."""
    team = _team(services, campaign_id)
    channel = approval.channel_for(_policy(services), team)
    request = services.deps.store.approvals.get(campaign_id)
    if not channel and request is not None and not request.ts:
        with _POSTING:
            _RETRY_AT[campaign_id] = float("inf")
        why = approval.no_channel(_policy(services), team, request.reason)
        log.warning("campaign %s: %s", campaign_id, why)
        services.board.reply(
            campaign_id, f":warning: {why} The request is posted once that is set and I restart."
        )
        return False
    try:
        post_request(services, campaign_id)
    except SlackApiError as exc:
        error = exc.response.get("error", "")
        report(exc, correlation_id, f"posting the approval request of campaign {campaign_id}")
        with _POSTING:
            _RETRY_AT[campaign_id] = time.monotonic() + RETRY_POST_SECONDS
        services.board.reply(
            campaign_id,
            f":warning: The approval request could not be posted in "
            f"<#{channel}> ({error}); it is tried again every minute. "
            "Invite me there with /invite @mailbolt.",
        )
        return False
    with _POSTING:
        _RETRY_AT.pop(campaign_id, None)
    services.board.refresh(campaign_id)
    return True


def post_pending(services: Services) -> None:
    """Post every request not posted yet (a CLI send, a failed post, a campaign
    changed after approval), and start approved campaigns a restart left behind."""
    now = time.monotonic()
    for request in services.deps.store.approvals.pending():
        with _POSTING:
            waiting = _RETRY_AT.get(request.campaign_id, 0.0) > now
        if not request.ts and not waiting:
            post_or_say(services, request.campaign_id)
    for campaign_id in approval.release_approved(services.deps):
        services.runner.start(campaign_id)


def withdraw(
    campaign_id: int, user: str, services: Services, correlation_id: str, team: str
) -> None:
    """The status message's "Withdraw request" (the requester or an admin of
    workspace ``team``): the campaign is cancelled, and the request, the requester
    and the thread say so."""
    approval.withdraw(campaign_id, user, services.deps, services.settings.admin_users, team=team)
    after_decision(services, campaign_id, correlation_id)


def after_decision(
    services: Services,
    campaign_id: int,
    correlation_id: str,
    clicked_on: tuple[str, str] | None = None,
) -> None:
    """Say the decision everywhere: the request, the requester, the status message;
    and start an approved campaign. An approval the campaign no longer matches
    (changed since the request) retires the old request and posts a new one."""
    store = services.deps.store
    request = store.approvals.get(campaign_id)
    campaign = store.campaigns.get(campaign_id)
    if request is None or campaign is None:
        return
    if request.decision == ApprovalDecision.PENDING:
        _retire(services, campaign_id, clicked_on, correlation_id)
        return
    try:
        redraw(services, campaign_id)
    except SlackApiError as exc:
        report(exc, correlation_id, f"updating the approval request of campaign {campaign_id}")
    if blocks.who(campaign.requested_by).startswith("<@"):
        try:
            services.client_for(campaign.team).chat_postMessage(
                channel=campaign.requested_by,
                text=approval_views.decided_text(request, campaign.template),
            )
        except SlackApiError as exc:
            report(exc, correlation_id, f"telling {campaign.requested_by} the decision")
    services.board.reply(campaign_id, approval_views.approval_line(request))
    if campaign.status == CampaignStatus.RUNNING:
        services.runner.start(campaign_id)
    else:
        services.board.refresh(campaign_id)


def _retire(
    services: Services,
    campaign_id: int,
    clicked_on: tuple[str, str] | None,
    correlation_id: str,
) -> None:
    """The campaign changed after it was asked about: the old request says so and
    loses its buttons, and a request for what it is now is posted."""
    if clicked_on:
        text, shown = approval_views.superseded_message(campaign_id)
        try:
            services.client_for(_team(services, campaign_id)).chat_update(
                channel=clicked_on[0], ts=clicked_on[1], text=text, blocks=shown
            )
        except SlackApiError as exc:
            report(exc, correlation_id, f"retiring the old request of campaign {campaign_id}")
    services.board.reply(campaign_id, approval_views.CHANGED)
    post_or_say(services, campaign_id, correlation_id)


# -- clicks ----------------------------------------------------------------------------


def _campaign_of(body: dict[str, Any], services: Services, team: str) -> int:
    """The campaign a click of workspace ``team`` is about, checked against where the
    button is; another workspace's campaign is answered as if there were none."""
    action = body["actions"][0]
    try:
        campaign_id = int(action.get("value", ""))
    except ValueError:
        raise UserInputError("This button names no campaign.") from None
    request = services.deps.store.approvals.get(campaign_id)
    if request is None or scope.find_campaign(services.deps.store, campaign_id, team) is None:
        raise UserInputError(f"There is no campaign #{campaign_id} waiting for approval.")
    container = body.get("container") or {}
    where = (container.get("channel_id"), container.get("message_ts"))
    if not request.ts:
        # Slack shows the message a moment before its place is recorded here.
        raise UserInputError(
            f"Campaign #{campaign_id}'s request is still being posted; press again in a moment."
        )
    if where != (request.channel, request.ts):
        raise PolicyError(f"This button does not belong to campaign #{campaign_id}'s request.")
    return campaign_id


def approve(body: dict[str, Any], services: Services, correlation_id: str, team: str) -> None:
    user = body["user"]["id"]
    campaign_id = _campaign_of(body, services, team)
    request = services.deps.store.approvals.get(campaign_id)
    assert request is not None  # _campaign_of found it
    approval.decide(
        campaign_id,
        user,
        ApprovalDecision.APPROVED,
        _policy(services),
        services.deps,
        services.lookups,
        team=team,
    )
    after_decision(services, campaign_id, correlation_id, (request.channel, request.ts))


def open_reject(body: dict[str, Any], client: WebClient, services: Services, team: str) -> None:
    """Only someone who may decide gets the reason form."""
    user = body["user"]["id"]
    campaign_id = _campaign_of(body, services, team)
    approval.check_decider(
        campaign_id, user, _policy(services), services.deps, services.lookups, team=team
    )
    client.views_open(trigger_id=body["trigger_id"], view=approval_views.reject_modal(campaign_id))


def _may_look(campaign_id: int, user: str, services: Services) -> None:
    """Approvers and the requester may see the message and test it."""
    campaign = services.deps.store.campaigns.get(campaign_id)
    if campaign is not None and user == campaign.requested_by:
        return
    if not approval.is_approver(_policy(services), user, services.lookups):
        raise PolicyError(f"Only the approvers may look at campaign #{campaign_id}.")


def open_preview(
    body: dict[str, Any],
    client: WebClient,
    services: Services,
    correlation_id: str = "",
    team: str = "",
) -> None:
    """The whole first message in a modal. The modal opens first, saying it is
    rendering: ``trigger_id`` lasts 3 seconds, and rendering (a preflight of the
    campaign) may take longer on a busy machine or a large campaign."""
    user = body["user"]["id"]
    campaign_id = _campaign_of(body, services, team)
    _may_look(campaign_id, user, services)
    opened = client.views_open(
        trigger_id=body["trigger_id"],
        view=views.notice_view("Preview", "Rendering the first message…"),
    )
    campaign = services.deps.store.campaigns.get(campaign_id)
    assert campaign is not None
    plan = approval.first_message_plan(campaign_id, services.wiring.deps_for(campaign.account))
    assert plan.first is not None
    first = plan.to_send[0]
    to = f"{first.name} <{first.email}>" if first.name else first.email
    view = approval_views.preview_modal(campaign_id, to, plan.first.subject, plan.first.text)
    update_view(client, opened["view"]["id"], view, correlation_id)
    services.deps.store.audit.record(user, "approval.previewed", campaign_id=campaign_id)


def send_test(body: dict[str, Any], services: Services, team: str = "") -> str:
    """The first message, marked [TEST], to the approver's own address."""
    user = body["user"]["id"]
    campaign_id = _campaign_of(body, services, team)
    _may_look(campaign_id, user, services)
    me = from_slack_users([services.lookups.users([user])[0]])
    if not me.recipients:
        return "Test not sent: your Slack profile shows no email address to this app."
    campaign = services.deps.store.campaigns.get(campaign_id)
    assert campaign is not None
    deps = services.wiring.deps_for(campaign.account)
    plan = approval.first_message_plan(campaign_id, deps)
    trial = trial_send.send_test(
        plan,
        deps,
        to=me.recipients[0],
        requested_by=user,
        reference=f"approval-test:{campaign_id}:{user}",
    )
    if trial.state == MessageState.SENT:
        return f"Test of campaign #{campaign_id} sent to {trial.to}, with [TEST] in the subject."
    if trial.state == MessageState.UNCERTAIN:
        return f"The test to {trial.to} may or may not have been sent: {trial.detail}"
    return f"Test to {trial.to} not sent: {trial.detail}."


def reject_submitted(body: dict[str, Any], services: Services, team: str = "") -> dict[str, Any]:
    """The reason form's answer: decided (closes), or why not (on the field)."""
    view = body["view"]
    campaign_id = int(blocks.metadata_of(view).get("campaign", 0))
    note = (blocks.value_of(view["state"]["values"], approval_views.B_REASON).get("value")) or ""
    try:
        approval.decide(
            campaign_id,
            body["user"]["id"],
            ApprovalDecision.REJECTED,
            _policy(services),
            services.deps,
            services.lookups,
            note=note,
            team=team,
        )
    except MailboltError as exc:
        return {"response_action": "errors", "errors": {approval_views.B_REASON: str(exc)}}
    return {}


def register(app: App, services: Services) -> None:
    """The request's buttons, the reason form, and the poster of pending requests."""
    if _policy(services).channels:
        services.runner.every(
            POST_PENDING_SECONDS, lambda: post_pending(services), "approval requests"
        )

    def just_ack(ack: Ack) -> None:
        ack()

    def clicked(body: dict, client: WebClient, context: BoltContext) -> None:
        correlation_id = context.get("correlation_id", "")
        user, action_id = body["user"]["id"], body["actions"][0]["action_id"]
        channel = (body.get("channel") or {}).get("id", "")
        team = context.team_id or ""

        def work() -> str | None:
            if action_id == approval_views.A_APPROVE:
                approve(body, services, correlation_id, team)
            elif action_id == approval_views.A_REJECT:
                open_reject(body, client, services, team)
            elif action_id == approval_views.A_PREVIEW:
                open_preview(body, client, services, correlation_id, team)
            else:
                return send_test(body, services, team)
            return None

        text = answering(correlation_id, f"approval button {action_id}", work, lambda w: w)
        if text:
            tell_privately(client, channel or user, user, text, correlation_id)

    for action_id in approval_views.BUTTONS:
        app.action(action_id)(ack=just_ack, lazy=[clicked])

    def reject_ack(ack: Ack, body: dict, context: BoltContext) -> None:
        answer = answering(
            context.get("correlation_id", ""),
            "rejecting a campaign",
            lambda: reject_submitted(body, services, context.team_id or ""),
            lambda words: {"response_action": "errors", "errors": {approval_views.B_REASON: words}},
        )
        ack(**answer)

    def reject_done(body: dict, context: BoltContext) -> None:
        campaign_id = int(blocks.metadata_of(body["view"]).get("campaign", 0))
        request = services.deps.store.approvals.get(campaign_id)
        if (
            request is not None
            and request.decision == ApprovalDecision.REJECTED
            and request.decided_by == body["user"]["id"]
        ):
            after_decision(services, campaign_id, context.get("correlation_id", ""))

    app.view(approval_views.CB_REJECT)(ack=reject_ack, lazy=[reject_done])
