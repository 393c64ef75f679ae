"""The preview: what it shows, and its three ways out — "Send" (the submission),
"Send me a test" and "Edit".

Owns: the numbers and words of a preview (``PreviewData``), where the status
message will really go, and starting a campaign from a draft. A preview's
recipients can be thousands of rows, far more than a view's 3,000-character
metadata, so they are kept as a draft (``bot.handlers.drafts``) and the view
carries only its key. The key also makes sending idempotent: a double click or a
resubmitted view finds the campaign already recorded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import UserInputError
from bot.handlers import approval, attachments, drafts, preflight, schedule, send_loop, trial_send
from bot.handlers.campaign import CampaignRequest, Deps, Plan
from bot.handlers.quota import estimate_duration
from bot.handlers.recipients import from_slack_users, summarize
from bot.records import CampaignStatus, Draft, MessageState
from bot.slack import Services, accounts, report, views
from bot.slack import schedule as sending_later
from bot.slack.answers import answering, update_view
from bot.timefmt import rough_duration

log = logging.getLogger(__name__)

EXPIRED = "This preview has expired. Run /sendmail again to start over."
CONFIRM = "Tick the box to confirm this large send."
ATTACH_FILES_AGAIN = "Attach the files again: Slack cannot keep them in the form."


# -- building the preview --------------------------------------------------------------


def draft_preview(
    request: CampaignRequest,
    gathered: drafts.Gathered,
    form: views.ComposeForm,
    services: Services,
    deps: Deps | None = None,
) -> dict[str, Any]:
    """Preflight ``request`` as the chosen account (``deps``), keep it as a draft,
    and return the preview view.

    Raises ``UserInputError`` when nobody would get the message, or when it needs
    approval and its workspace has no approval channel to ask in.
    """
    deps = deps or services.deps
    plan = preflight.preflight(request, deps)
    if not plan.to_send:
        raise UserInputError(
            f"Nobody would get this: {summarize(plan.suppressed, 5)}.", field="recipients"
        )
    data = preview_data(plan, gathered, services, deps)
    data.status_where = status_destination(services, request.status_channel)
    data.approval = approval_reason(plan, services)
    if services.approval is not None:
        unaskable = approval.no_channel(services.approval, request.team, data.approval)
        if unaskable:  # no Send button that leads to a request nobody can see
            raise UserInputError(unaskable, field="template")
    data.zone = sending_later.user_zone(services, request.requested_by)
    key = drafts.save_draft(
        services.deps.store.drafts,
        request.requested_by,
        request,
        {
            "form": form.to_dict(),
            "had_csv": bool(form.files),
            "had_attachments": bool(form.attachments),
            "preview": asdict(data),
        },
    )
    return views.preview_view(data, metadata={"draft": key})


def preview_data(
    plan: Plan, gathered: drafts.Gathered, services: Services, deps: Deps | None = None
) -> views.PreviewData:
    """The preview's numbers and first message, from a plan; From and its daily
    budget are those of the account sending (``deps``)."""
    settings = services.settings
    deps = deps or services.deps
    valid = len(plan.to_send)
    left = send_loop.daily_left(deps)
    deferred = max(0, valid - left) if left is not None else 0
    first = plan.to_send[0]
    invalid, duplicates = gathered.invalid, gathered.recipients.duplicates
    dropped = [*invalid, *duplicates, *plan.suppressed]
    return views.PreviewData(
        template=plan.renderer.info.name,
        category=plan.category,
        valid=valid,
        invalid=len(invalid),
        duplicates=len(duplicates),
        suppressed=len(plan.suppressed),
        deferred=deferred,
        duration=_duration(settings.mail_transport, valid - deferred, services),
        subject=plan.first.subject if plan.first else "",
        opening=views.clip(plan.first.text.strip(), 600) if plan.first else "",
        first_to=f"{first.name} <{first.email}>" if first.name else first.email,
        transport=settings.mail_transport,
        dropped=summarize(dropped, 5) if dropped else "",
        no_email=_no_email([r.text for r in gathered.no_email]),
        left_out=drafts.describe_left_out(gathered.left_out),
        sandbox_outbox=str(settings.sandbox_outbox),
        sender=deps.envelope.from_address,
        sender_budget=accounts.budget_words(deps),
        attachments=attachments.summary(plan.request.attachments, plan.to_send),
    )


def _no_email(mentions: list[str]) -> str:
    if not mentions:
        return ""
    more = " and more" if len(mentions) > 10 else ""
    return (
        f"{', '.join(mentions[:10])}{more}: "
        "no email address visible to this app (guests may hide theirs)."
    )


def _duration(transport: str, count: int, services: Services) -> str:
    if transport == "sandbox":
        return "a few seconds (sandbox)"
    return rough_duration(estimate_duration(count, services.settings.gmail_quota_units_per_minute))


def approval_reason(plan: Plan, services: Services) -> str:
    """Why this campaign needs a second person's approval ("" if it does not)."""
    if services.approval is None:
        return ""
    return approval.needs_approval(services.approval, plan.category, len(plan.to_send))


def status_destination(services: Services, channel: str) -> str:
    """Where the status message will really go, in words: the StatusBoard posts in
    ``channel`` and, when the app is not in it, in the requester's DMs instead."""
    if not channel:
        return "your direct messages"
    if channel.startswith(("D", "U")):
        return "your direct messages"
    member = services.lookups.is_member(channel)
    if member:
        return f"<#{channel}>"
    if member is False:
        return (
            f"your direct messages, because I am not in <#{channel}> "
            "(invite me there with /invite @mailbolt)"
        )
    return f"<#{channel}> if I am a member there, otherwise your direct messages"


# -- "Send" ----------------------------------------------------------------------------


def _draft_of(view: dict[str, Any], services: Services, team: str) -> Draft | None:
    """The view's draft, if it is one of workspace ``team``'s (else as if expired)."""
    return drafts.draft_of(
        services.deps.store.drafts, str(views.metadata_of(view).get("draft", "")), team
    )


def _unconfirmed(draft: Draft, view: dict[str, Any]) -> bool:
    """A large send whose confirmation box is not ticked."""
    data = views.PreviewData(**draft.data["preview"])
    return data.needs_confirmation and not views.confirmed(view["state"]["values"])


def chosen_time(draft: Draft, view: dict[str, Any]) -> schedule.When | None:
    """When the preview is to be sent (None: now), in the person's Slack time zone;
    ``UserInputError`` naming the block when the time is missing or refused."""
    zone_name = draft.data["preview"].get("zone") or "UTC"
    return sending_later.when_of(view["state"]["values"], zone_name, time.time())


def _estimate_deps(draft: Draft, services: Services) -> Deps:
    """The draft's account, for an estimate only: no Slack call within the 3-second
    acknowledgement (who may use it is checked again when it is recorded)."""
    return services.wiring.deps_for(draft.data["form"].get("sender", ""))


def send_answer(
    draft: Draft | None, view: dict[str, Any], correlation_id: str, services: Services
) -> dict[str, Any]:
    """The acknowledgement of "Send": expired, unconfirmed, a refused time,
    scheduled, or starting."""
    if draft is None:
        return {"response_action": "update", "view": views.notice_view("Not sent", EXPIRED)}
    if _unconfirmed(draft, view):
        return {"response_action": "errors", "errors": {views.B_CONFIRM: CONFIRM}}
    try:
        when = chosen_time(draft, view)
    except UserInputError as exc:
        return {"response_action": "errors", "errors": {exc.field or views.B_DATE: str(exc)}}
    channel = draft.data["request"]["status_channel"]
    where = draft.data["preview"].get("status_where") or (
        f"<#{channel}>" if channel else "your direct messages"
    )
    if draft.data["preview"].get("approval"):
        later = f" Once approved it starts at {when.words()}." if when is not None else ""
        text = (
            ":lock: Sent for approval. Nothing goes out until another approver approves "
            f"it; you are told when they decide, and its status is in {where}.{later} "
            f"(ref {correlation_id})"
        )
        return {"response_action": "update", "view": views.notice_view("Approval requested", text)}
    if when is not None:
        finish = sending_later.finish_words(
            services, _estimate_deps(draft, services), draft.data["preview"]["valid"], when
        )
        text = sending_later.scheduled_text(when, where, correlation_id, finish)
        return {"response_action": "update", "view": views.notice_view("Scheduled", text)}
    text = f":rocket: Starting. Progress is posted in {where}. (ref {correlation_id})"
    return {"response_action": "update", "view": views.notice_view("Sending", text)}


def _sender_deps(draft: Draft, user: str, services: Services) -> Deps:
    """The draft's account, checked again for ``user`` (access may have changed)."""
    return accounts.deps_for_choice(
        services, user, draft.data["form"].get("sender", ""), draft.team
    )


def start(
    draft: Draft, user: str, services: Services, when: schedule.When | None = None
) -> tuple[int, bool, Deps]:
    """Record the draft's campaign once (its key is the idempotency key), to go at
    once or at ``when``; awaiting approval first when the policy says so, decided
    again now on what is recorded. With the Deps of the account it is sent from."""
    deps = _sender_deps(draft, user, services)
    request = drafts.load_request(
        draft,
        deps.attachment_files,
        requested_by=user,
        idempotency_key=f"slack:{draft.key}",
    )
    plan = preflight.preflight(request, deps)
    reason = approval_reason(plan, services)
    if reason:
        assert services.approval is not None  # approval_reason found a reason
        approval.require_channel(services.approval, request.team, reason)
        if when is not None:
            schedule.check_when(when, deps.clock())
        at = (when.at, when.zone) if when is not None else None
        campaign_id, created = approval.record(plan, deps, reason, at)
    else:
        campaign_id, created = schedule.schedule(plan, deps, when)
    return campaign_id, created, deps


def _run(campaign_id: int, services: Services, correlation_id: str, deps: Deps) -> None:
    """Post the status message, then send now, leave it for its time, or ask for
    approval first."""
    try:
        services.board.post(campaign_id)
    except SlackApiError as exc:
        report(exc, correlation_id, f"posting the status of campaign {campaign_id}")
    row = services.deps.store.campaigns.get(campaign_id)
    if row is not None and row.status == CampaignStatus.AWAITING_APPROVAL:
        from bot.slack import approval as approval_desk  # its listeners import this module

        approval_desk.post_or_say(services, campaign_id, correlation_id)
        return
    if schedule.release(campaign_id, deps, services.runner.start) is schedule.Released.WAITING:
        sending_later.tell_finish(services, campaign_id, deps)


# -- "Send me a test" ------------------------------------------------------------------


def send_test(draft: Draft, user: str, services: Services) -> str:
    """Exactly the previewed first message, marked [TEST], to the requester's own
    address: recorded as a test send, not as a campaign. The note to show."""
    me = from_slack_users([services.lookups.users([user])[0]])
    if not me.recipients:
        return (
            "Test not sent: your Slack profile shows no email address to this app "
            "(it needs the users:read.email scope)."
        )
    deps = _sender_deps(draft, user, services)
    request = drafts.load_request(
        draft, deps.attachment_files, requested_by=user, status_channel=""
    )
    plan = preflight.preflight(request, deps)
    trial = trial_send.send_test(
        plan,
        deps,
        to=me.recipients[0],
        requested_by=user,
        reference=f"slack-test:{draft.key}",
    )
    shown = f"the message to {plan.to_send[0].email}" if plan.to_send else "the message"
    if trial.state == MessageState.SENT:
        return f"Test sent to {trial.to}: {shown}, with [TEST] in the subject."
    if trial.state == MessageState.UNCERTAIN:
        return f"The test to {trial.to} may or may not have been sent: {trial.detail}"
    return f"Test to {trial.to} not sent: {trial.detail}."


# -- "Edit" ----------------------------------------------------------------------------


def edit_view(draft: Draft, services: Services) -> dict[str, Any]:
    """The compose form again, as the draft was written."""
    form = views.ComposeForm(**draft.data["form"])
    notes = {}
    if draft.data.get("had_csv"):
        notes[views.B_CSV] = "Attach the CSV file again: Slack cannot keep it."
    if draft.data.get("had_attachments"):
        notes[views.B_ATTACHMENTS] = ATTACH_FILES_AGAIN
    return views.compose_view(
        services.deps.catalogue.for_team(draft.team).list(),
        form=form,
        metadata=views.compose_metadata(form.channel),
        notes=notes or None,
        senders=accounts.menu(services, draft.user, draft.team),
    )


# -- listeners -------------------------------------------------------------------------


def register(app: App, services: Services) -> None:
    """The preview's submission ("Send") and its "Send me a test" and "Edit" buttons."""

    def preview_ack(ack: Ack, body: dict, context: BoltContext) -> None:
        view = body["view"]
        correlation_id = context.get("correlation_id", "")
        draft = _draft_of(view, services, context.team_id or "")
        ack(**send_answer(draft, view, correlation_id, services))

    def preview_start(body: dict, client: WebClient, context: BoltContext) -> None:
        correlation_id = context.get("correlation_id", "")
        view, user = body["view"], body["user"]["id"]
        draft = _draft_of(view, services, context.team_id or "")
        if draft is None or _unconfirmed(draft, view):
            return
        try:
            chosen_time(draft, view)
        except UserInputError:
            return  # the acknowledgement marked the time on the form

        def not_sent(text: str) -> None:
            tell = (user, f"Your email was not sent: {text}")
            update_view(
                client, view["id"], views.notice_view("Not sent", text), correlation_id, tell=tell
            )

        def record() -> tuple[int, bool, Deps]:
            return start(draft, user, services, chosen_time(draft, view))

        started = answering(correlation_id, "starting a campaign", record, not_sent)
        if started is None:
            return
        campaign_id, created, deps = started
        if created:
            _run(campaign_id, services, correlation_id, deps)
        else:
            log.info(
                "[%s] preview %s submitted again: campaign %s",
                correlation_id,
                draft.key,
                campaign_id,
            )

    app.view(views.CB_PREVIEW)(ack=preview_ack, lazy=[preview_start])

    def just_ack(ack: Ack) -> None:
        ack()

    def test_button(body: dict, client: WebClient, context: BoltContext) -> None:
        correlation_id = context.get("correlation_id", "")
        view, user = body["view"], body["user"]["id"]
        draft = _draft_of(view, services, context.team_id or "")
        if draft is None:
            return
        data = views.PreviewData(**draft.data["preview"])
        data.test_note = answering(
            correlation_id,
            "test send",
            lambda: send_test(draft, user, services),
            lambda text: "Test not sent: " + text,
        )
        drafts.update_draft(services.deps.store.drafts, draft, preview=asdict(data))
        shown = views.preview_view(data, metadata={"draft": draft.key})
        update_view(client, view["id"], shown, correlation_id, tell=(user, data.test_note))

    app.action(views.A_SEND_TEST)(ack=just_ack, lazy=[test_button])

    def edit_button(body: dict, client: WebClient, context: BoltContext) -> None:
        draft = _draft_of(body["view"], services, context.team_id or "")
        if draft is not None:
            shown = edit_view(draft, services)
            update_view(client, body["view"]["id"], shown, context.get("correlation_id", ""))

    app.action(views.A_EDIT)(ack=just_ack, lazy=[edit_button])
