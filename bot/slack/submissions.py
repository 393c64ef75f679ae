"""The compose and preview modals' submissions, and the buttons on them and on
status messages.

Why it looks like this:
- Slack waits 3 s for the answer to a submission and shows errors on a field
  only in that answer (``response_action: errors``). So everything that is quick
  and local (the template, the pasted list, the variables, the file's name and
  size) is checked before answering, and its problems appear on the right field.
- Work that needs Slack or the network (the CSV download, people's addresses,
  DNS checks) or that grows with the list (rendering every message) runs after
  the answer, which shows "Checking…" at once; the result then replaces it: the
  preview, or the form again with the problems noted under the fields.
- A preview's recipients can be thousands of rows, far more than a view's
  3,000-character metadata, so they are kept in the store as a draft and the
  view carries only the draft's key. The key also makes sending idempotent: a
  double click or a resubmitted view finds the campaign already recorded.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import TemplateError, UserInputError
from bot.handlers import campaign
from bot.handlers.campaign import CampaignRequest, Plan
from bot.handlers.recipients import (
    MAX_CSV_BYTES,
    enforce_limit,
    from_slack_users,
    parse_csv,
    parse_text,
    summarize,
)
from bot.handlers.templates import SYSTEM_VARIABLES
from bot.mail.pacing import estimate_duration
from bot.models import Recipient, RecipientList, Rejected, TemplateInfo
from bot.slack import Services, report, views

log = logging.getLogger(__name__)

#: Lists up to this size (and needing nothing from Slack) are fully checked before
#: answering; rendering costs about 1.3 ms per message on a small machine.
SYNC_MAX_RECIPIENTS = 50
ERROR_CHARS = 1500
CSV_TYPES = frozenset({"csv", "text", "txt"})


# -- compose: the quick checks ----------------------------------------------------


def parse_variables(text: str) -> dict[str, str]:
    """``name=value`` lines into a dict; blank lines are ignored."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            shown = views.clip(line.strip(), 60)
            raise UserInputError(
                f"line {number}: {shown!r} should look like name=value, e.g. team=Mailbolt.",
                field="variables",
                line=number,
            )
        values[name] = value.strip()
    return values


@dataclass
class Compose:
    """A submitted compose form and what the quick checks made of it."""

    form: views.ComposeForm
    user: str
    team: str
    channel: str
    correlation_id: str
    check_dns: bool = False
    common_vars: dict[str, str] = field(default_factory=dict)
    pasted: RecipientList = field(default_factory=RecipientList)
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def slow(self) -> bool:
        """Whether the full check needs Slack, the network, or a lot of rendering."""
        return (
            bool(self.form.people or self.form.files)
            or self.check_dns
            or len(self.pasted.recipients) > SYNC_MAX_RECIPIENTS
        )


def _block_for(error: UserInputError, form: views.ComposeForm) -> str:
    """The compose field an error belongs on."""
    by_field = {
        "template": views.B_TEMPLATE,
        "subject": views.B_SUBJECT,
        "variables": views.B_VARIABLES,
        "csv": views.B_CSV,
        "people": views.B_PEOPLE,
    }
    if error.field in by_field:
        return by_field[error.field]
    if isinstance(error, TemplateError):  # a variable some recipient lacks
        return views.B_CSV if form.files else views.B_VARIABLES
    if form.files and not form.paste.strip():
        return views.B_CSV
    return views.B_RECIPIENTS


def _words(error: UserInputError) -> str:
    text = str(error)
    extra = [d for d in error.details[:3] if d not in text]
    if extra:
        text += " " + "; ".join(extra)
    return views.clip(text, ERROR_CHARS)


def _invalid_lines(items: list[Rejected], where: str) -> str:
    return (
        f"{len(items):,} {where} not usable: {summarize(items, 5)}. Fix them, or tick "
        "'Skip invalid addresses'."
    )


def quick_check(compose: Compose, services: Services) -> Compose:
    """Every check that is local and fast; problems go into ``compose.problems``."""
    form, settings = compose.form, services.settings
    problems = compose.problems
    try:
        compose.common_vars = parse_variables(form.variables)
    except UserInputError as exc:
        problems[views.B_VARIABLES] = _words(exc)
    try:
        compose.pasted = parse_text(
            form.paste,
            check_deliverability=False,
            max_recipients=settings.max_recipients_per_campaign,
        )
    except UserInputError as exc:
        problems[views.B_RECIPIENTS] = _words(exc)
    if compose.pasted.rejected and not form.skip_invalid:
        problems[views.B_RECIPIENTS] = _invalid_lines(compose.pasted.rejected, "line(s) are")
    _check_files(form, problems)
    if not (compose.pasted.recipients or compose.pasted.rejected or form.people or form.files):
        problems.setdefault(
            views.B_RECIPIENTS,
            "Add recipients: paste addresses, pick Slack people, or upload a CSV.",
        )
    info = _template_info(compose, services)
    if info is not None and not form.files:
        have = set(compose.common_vars) | SYSTEM_VARIABLES
        missing = [v for v in info.required if v not in have]
        if missing:
            lines = ", ".join(f"{m}=…" for m in missing)
            problems.setdefault(
                views.B_VARIABLES,
                f"The template '{form.template}' needs a value for "
                f"{', '.join(repr(m) for m in missing)}: add a line for each ({lines}), "
                "or upload a CSV with those columns.",
            )
    return compose


def _template_info(compose: Compose, services: Services) -> TemplateInfo | None:
    """The chosen template, with its files and the subject compiled when the full
    check comes later; when it follows at once, its preflight compiles them anyway
    (about 15 ms each time) and reports the same problems on the same fields."""
    form, catalogue = compose.form, services.deps.catalogue
    if not form.template:
        compose.problems[views.B_TEMPLATE] = "Choose a template."
        return None
    try:
        if compose.slow:
            return catalogue.renderer(form.template, subject_override=form.subject or None).info
        return catalogue.get(form.template)
    except TemplateError as exc:
        compose.problems[_block_for(exc, form)] = _words(exc)
        return None


def _check_files(form: views.ComposeForm, problems: dict[str, str]) -> None:
    if len(form.files) > 1:
        problems[views.B_CSV] = "Upload one CSV file (merge the lists first)."
        return
    for file in form.files:
        name = file.get("name") or "the file"
        kind = (file.get("filetype") or "").lower()
        suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if kind not in CSV_TYPES and suffix not in CSV_TYPES:
            problems[views.B_CSV] = (
                f"{name} is not a CSV file. In Excel or Google Sheets, save or download "
                "the sheet as 'CSV UTF-8' and upload that."
            )
        elif (file.get("size") or 0) > MAX_CSV_BYTES:
            problems[views.B_CSV] = (
                f"{name} is larger than 10 MB; split the list into smaller files."
            )


# -- compose: the full check --------------------------------------------------------


@dataclass
class Outcome:
    """The full check's answer: a preview to show, or problems by field."""

    preview: dict[str, Any] | None = None
    problems: dict[str, str] = field(default_factory=dict)


def full_check(compose: Compose, services: Services) -> Outcome:
    """Fetch, merge, validate and render everything; store a draft for the preview."""
    form, settings, deps = compose.form, services.settings, services.deps
    limit = settings.max_recipients_per_campaign
    try:
        pasted = compose.pasted
        if compose.check_dns and form.paste.strip():
            pasted = parse_text(form.paste, check_deliverability=True, max_recipients=limit)
        invalid = list(pasted.rejected)
        merged = RecipientList(list(pasted.recipients), [], list(pasted.duplicates))
        if form.files:
            name, data = services.lookups.download(form.files[0])
            from_csv = parse_csv(
                data,
                filename=name,
                check_deliverability=settings.check_deliverability,
                max_recipients=limit,
            )
            if from_csv.rejected and not form.skip_invalid:
                return Outcome(
                    problems={views.B_CSV: _invalid_lines(from_csv.rejected, "rows are")}
                )
            invalid += from_csv.rejected
            merged = merged.extend(from_csv)
        no_email: list[Rejected] = []
        if form.people:
            people = from_slack_users(services.lookups.users(form.people))
            no_email = people.rejected
            merged = merged.extend(RecipientList(people.recipients, [], people.duplicates))
        enforce_limit(merged, limit, what="The campaign", field="recipients")
        if not merged.recipients:
            reason = ": none of the people picked has a visible email address" if no_email else ""
            raise UserInputError(
                f"There are no valid recipients{reason}.",
                field="people" if no_email and not form.paste.strip() else "recipients",
            )
        request = CampaignRequest(
            template=form.template,
            recipients=merged,
            requested_by=compose.user,
            common_vars=compose.common_vars,
            subject=form.subject or None,
            skip_invalid=True,
            team=compose.team,
            status_channel=compose.channel,
            correlation_id=compose.correlation_id,
        )
        plan = campaign.preflight(request, deps)
        if not plan.to_send:
            raise UserInputError(
                f"Nobody would get this: {summarize(plan.suppressed, 5)}.", field="recipients"
            )
    except UserInputError as exc:
        return Outcome(problems={_block_for(exc, form): _words(exc)})
    preview = _preview_data(plan, merged, invalid, no_email, services)
    preview.status_where = status_destination(services, compose.channel)
    key = uuid.uuid4().hex
    deps.store.drafts.save(
        key,
        compose.user,
        {
            "form": form.to_dict(),
            "had_csv": bool(form.files),
            "request": _pack_request(request),
            "preview": asdict(preview),
        },
    )
    return Outcome(preview=views.preview_view(preview, metadata={"draft": key}))


def _preview_data(
    plan: Plan,
    merged: RecipientList,
    invalid: list[Rejected],
    no_email: list[Rejected],
    services: Services,
) -> views.PreviewData:
    settings, deps = services.settings, services.deps
    valid = len(plan.to_send)
    deferred = 0
    left = campaign.daily_left(deps)
    if left is not None:
        deferred = max(0, valid - left)
    if settings.mail_transport == "sandbox":
        duration = "a few seconds (sandbox)"
    else:
        duration = _duration(
            estimate_duration(valid - deferred, settings.gmail_quota_units_per_minute)
        )
    first = plan.to_send[0]
    dropped = [*invalid, *merged.duplicates, *plan.suppressed]
    mentions = [r.text for r in no_email]
    return views.PreviewData(
        template=plan.renderer.info.name,
        category=plan.category,
        valid=valid,
        invalid=len(invalid),
        duplicates=len(merged.duplicates),
        suppressed=len(plan.suppressed),
        deferred=deferred,
        duration=duration,
        subject=plan.first.subject if plan.first else "",
        opening=views.clip(plan.first.text.strip(), 600) if plan.first else "",
        first_to=f"{first.name} <{first.email}>" if first.name else first.email,
        transport=settings.mail_transport,
        dropped=summarize(dropped, 5) if dropped else "",
        no_email=(
            f"{', '.join(mentions[:10])}{' and more' if len(mentions) > 10 else ''}: "
            "no email address visible to this app (guests may hide theirs)."
            if mentions
            else ""
        ),
        sandbox_outbox=str(settings.sandbox_outbox),
    )


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


def _duration(seconds: float) -> str:
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    return f"about {minutes} min" if minutes < 90 else f"about {minutes / 60:.1f} h"


def _pack_request(request: CampaignRequest) -> dict[str, Any]:
    return {
        "template": request.template,
        "subject": request.subject,
        "common_vars": request.common_vars,
        "team": request.team,
        "status_channel": request.status_channel,
        "correlation_id": request.correlation_id,
        "columns": request.recipients.columns,
        "recipients": [
            [r.email, r.name, r.variables, r.line, r.source] for r in request.recipients.recipients
        ],
    }


def _unpack_request(packed: Mapping[str, Any], **changes: Any) -> CampaignRequest:
    recipients = [Recipient(e, n, v, line, s) for e, n, v, line, s in packed["recipients"]]
    values: dict[str, Any] = {
        "template": packed["template"],
        "recipients": RecipientList(recipients, [], [], list(packed["columns"])),
        "requested_by": "",
        "common_vars": dict(packed["common_vars"]),
        "subject": packed["subject"],
        "skip_invalid": True,
        "team": packed["team"],
        "status_channel": packed["status_channel"],
        "correlation_id": packed["correlation_id"],
    }
    values.update(changes)
    return CampaignRequest(**values)


# -- listeners ----------------------------------------------------------------------


def _compose_from(body: Mapping[str, Any], services: Services, correlation_id: str) -> Compose:
    view = body["view"]
    form = views.read_compose(view["state"]["values"])
    meta = views.metadata_of(view)
    channel = form.channel or services.settings.status_channel or meta.get("channel", "")
    return Compose(
        form=form,
        user=body["user"]["id"],
        team=(body.get("team") or {}).get("id") or body["user"].get("team_id", ""),
        channel=channel,
        correlation_id=correlation_id,
        check_dns=services.settings.check_deliverability,
    )


def compose_metadata(channel: str) -> dict[str, str]:
    """What the compose view remembers: the channel the command was typed in."""
    return {"channel": channel}


def register(app: App, services: Services) -> None:
    """Compose and preview submissions; preview and status-message buttons."""

    def compose_ack(ack: Ack, body: dict, context: BoltContext) -> None:
        correlation_id = context.get("correlation_id", "")
        try:
            compose = _compose_from(body, services, correlation_id)
            quick_check(compose, services)
            if compose.problems:
                ack(response_action="errors", errors=compose.problems)
            elif compose.slow:
                ack(response_action="update", view=views.checking_view(_checking_what(compose)))
            else:
                outcome = full_check(compose, services)
                if outcome.preview is not None:
                    ack(response_action="update", view=outcome.preview)
                else:
                    ack(response_action="errors", errors=outcome.problems)
        except Exception as exc:  # the person reads words, never a stack trace
            text = report(exc, correlation_id, "compose submission")
            ack(response_action="errors", errors={views.B_TEMPLATE: text})

    def compose_slow(body: dict, client: WebClient, context: BoltContext) -> None:
        correlation_id = context.get("correlation_id", "")
        started = time.monotonic()
        view = body["view"]
        tell: tuple[str, str] | None = None
        try:
            compose = _compose_from(body, services, correlation_id)
            quick_check(compose, services)
            if compose.problems or not compose.slow:
                return  # the answer already said everything
            outcome = full_check(compose, services)
            if outcome.preview is not None:
                shown = outcome.preview
            else:
                notes = {}
                if compose.form.files and views.B_CSV not in outcome.problems:
                    notes[views.B_CSV] = "Attach the CSV file again: Slack cannot keep it."
                shown = views.compose_view(
                    services.deps.catalogue.list(),
                    form=compose.form,
                    metadata=views.metadata_of(view),
                    problems=outcome.problems,
                    notes=notes,
                )
        except Exception as exc:
            text = report(exc, correlation_id, "compose check")
            shown = views.notice_view("Send email", text)
            tell = (body["user"]["id"], text)
        time.sleep(max(0.0, services.checking_min_seconds - (time.monotonic() - started)))
        _update_view(client, view["id"], shown, correlation_id, tell=tell)

    app.view(views.CB_COMPOSE)(ack=compose_ack, lazy=[compose_slow])

    def preview_ack(ack: Ack, body: dict, context: BoltContext) -> None:
        correlation_id = context.get("correlation_id", "")
        view = body["view"]
        draft = services.deps.store.drafts.get(views.metadata_of(view).get("draft", ""))
        if draft is None:
            ack(
                response_action="update",
                view=views.notice_view(
                    "Not sent", "This preview has expired. Run /sendmail again to start over."
                ),
            )
        elif views.PreviewData(**draft.data["preview"]).needs_confirmation and not views.confirmed(
            view["state"]["values"]
        ):
            ack(
                response_action="errors",
                errors={views.B_CONFIRM: "Tick the box to confirm this large send."},
            )
        else:
            channel = draft.data["request"]["status_channel"]
            where = draft.data["preview"].get("status_where") or (
                f"<#{channel}>" if channel else "your direct messages"
            )
            ack(
                response_action="update",
                view=views.notice_view(
                    "Sending",
                    f":rocket: Starting. Progress is posted in {where}. (ref {correlation_id})",
                ),
            )

    def preview_start(body: dict, client: WebClient, context: BoltContext) -> None:
        correlation_id = context.get("correlation_id", "")
        view, user = body["view"], body["user"]["id"]
        key = views.metadata_of(view).get("draft", "")
        draft = services.deps.store.drafts.get(key)
        if draft is None:
            return
        preview = views.PreviewData(**draft.data["preview"])
        if preview.needs_confirmation and not views.confirmed(view["state"]["values"]):
            return
        try:
            request = _unpack_request(
                draft.data["request"], requested_by=user, idempotency_key=f"slack:{key}"
            )
            plan = campaign.preflight(request, services.deps)
            campaign_id, created = campaign.record(plan, services.deps)
        except Exception as exc:
            text = report(exc, correlation_id, "starting a campaign")
            _update_view(
                client,
                view["id"],
                views.notice_view("Not sent", text),
                correlation_id,
                tell=(user, f"Your email was not sent: {text}"),
            )
            return
        if not created:
            log.info(
                "[%s] preview %s submitted again: campaign %s", correlation_id, key, campaign_id
            )
            return
        try:
            services.board.post(campaign_id)
        except SlackApiError as exc:
            report(exc, correlation_id, f"posting the status of campaign {campaign_id}")
        services.runner.start(campaign_id)

    app.view(views.CB_PREVIEW)(ack=preview_ack, lazy=[preview_start])

    def just_ack(ack: Ack) -> None:
        ack()

    def send_test(body: dict, client: WebClient, context: BoltContext) -> None:
        correlation_id = context.get("correlation_id", "")
        view, user = body["view"], body["user"]["id"]
        key = views.metadata_of(view).get("draft", "")
        draft = services.deps.store.drafts.get(key)
        if draft is None:
            return
        preview = views.PreviewData(**draft.data["preview"])
        try:
            preview.test_note = _send_test(draft.data, key, user, services)
        except Exception as exc:
            preview.test_note = "Test not sent: " + report(exc, correlation_id, "test send")
        services.deps.store.drafts.save(key, draft.user, {**draft.data, "preview": asdict(preview)})
        _update_view(
            client,
            view["id"],
            views.preview_view(preview, metadata={"draft": key}),
            correlation_id,
            tell=(user, preview.test_note),
        )

    app.action(views.A_SEND_TEST)(ack=just_ack, lazy=[send_test])

    def edit(body: dict, client: WebClient, context: BoltContext) -> None:
        view = body["view"]
        draft = services.deps.store.drafts.get(views.metadata_of(view).get("draft", ""))
        if draft is None:
            return
        form = views.ComposeForm(**draft.data["form"])
        notes = {views.B_CSV: "Attach the CSV file again: Slack cannot keep it."}
        _update_view(
            client,
            view["id"],
            views.compose_view(
                services.deps.catalogue.list(),
                form=form,
                metadata=compose_metadata(form.channel),
                notes=notes if draft.data.get("had_csv") else None,
            ),
            context.get("correlation_id", ""),
        )

    app.action(views.A_EDIT)(ack=just_ack, lazy=[edit])

    for action_id in (
        views.A_CANCEL,
        views.A_RETRY_FAILED,
        views.A_RESEND_UNCERTAIN,
        views.A_SKIP_UNCERTAIN,
    ):
        app.action(action_id)(ack=just_ack, lazy=[_campaign_button(services)])


def _checking_what(compose: Compose) -> str:
    parts = []
    if compose.form.files:
        parts.append(f"reading {compose.form.files[0].get('name') or 'the CSV file'}")
    if compose.form.people:
        parts.append(f"looking up {len(compose.form.people)} Slack people")
    parts.append("rendering every message")
    return ", ".join(parts) + "."


def _send_test(data: dict[str, Any], key: str, user: str, services: Services) -> str:
    """Exactly the previewed first message, marked [TEST], to the requester's own
    address: recorded as a test send, not as a campaign."""
    profile = services.lookups.users([user])[0]
    me = from_slack_users([profile])
    if not me.recipients:
        return (
            "Test not sent: your Slack profile shows no email address to this app "
            "(it needs the users:read.email scope)."
        )
    request = _unpack_request(data["request"], requested_by=user, status_channel="")
    plan = campaign.preflight(request, services.deps)
    trial = campaign.send_test(
        plan, services.deps, to=me.recipients[0], requested_by=user, reference=f"slack-test:{key}"
    )
    shown = f"the message to {plan.to_send[0].email}" if plan.to_send else "the message"
    if trial.state == "sent":
        return f"Test sent to {trial.to}: {shown}, with [TEST] in the subject."
    if trial.state == "uncertain":
        return f"The test to {trial.to} may or may not have been sent: {trial.detail}"
    return f"Test to {trial.to} not sent: {trial.detail}."


def _campaign_button(services: Services) -> Callable[..., None]:
    deps = services.deps

    def campaign_button(body: dict, client: WebClient, context: BoltContext) -> None:
        correlation_id = context.get("correlation_id", "")
        user = body["user"]["id"]
        team = (body.get("team") or {}).get("id", "")
        action = body["actions"][0]
        channel = (body.get("channel") or {}).get("id", "")

        def tell(text: str) -> None:
            try:
                client.chat_postEphemeral(channel=channel, user=user, text=text)
            except SlackApiError as exc:
                log.warning("[%s] could not answer %s privately: %s", correlation_id, user, exc)

        try:
            campaign_id = int(action["value"])
            row = deps.store.campaigns.get(campaign_id)
            if row is None:
                tell(f"Campaign #{campaign_id} does not exist any more.")
                return
            kind = action["action_id"]
            if kind == views.A_CANCEL:
                deps.store.audit.record(user, "slack.cancel", campaign_id=campaign_id, team=team)
                if services.runner.cancel(campaign_id):
                    services.board.reply(campaign_id, f"<@{user}> cancelled the campaign.")
                else:
                    tell(f"Campaign #{campaign_id} has nothing left to cancel.")
                return
            if services.runner.is_active(campaign_id):
                tell(f"Campaign #{campaign_id} is still sending; try again when it has stopped.")
                return
            if kind == views.A_RETRY_FAILED:
                count = campaign.retry_failed(campaign_id, deps, user)
                what = f"queued {count} failed message(s) again"
            else:
                resend = kind == views.A_RESEND_UNCERTAIN
                count = campaign.resolve_uncertain(campaign_id, deps, user, resend=resend)
                what = f"{'queued' if resend else 'skipped'} {count} uncertain message(s)"
            services.board.reply(campaign_id, f"<@{user}> {what}.")
            if deps.store.outbox.ready_messages(campaign_id):
                services.runner.start(campaign_id)
            else:
                services.board.refresh(campaign_id)
        except Exception as exc:
            tell(report(exc, correlation_id, f"button {action.get('action_id')}"))

    return campaign_button


def _update_view(
    client: WebClient,
    view_id: str,
    view: dict[str, Any],
    correlation_id: str,
    *,
    tell: tuple[str, str] | None = None,
) -> None:
    """Replace an open view. If the person closed it meanwhile and ``tell`` is given
    as (user, text) — something they must know, such as why nothing was sent —
    message them directly instead."""
    try:
        client.views_update(view_id=view_id, view=view)
    except SlackApiError as exc:
        log.warning("[%s] views.update failed: %s", correlation_id, exc.response.get("error"))
        if tell is None:
            return
        try:
            client.chat_postMessage(channel=tell[0], text=tell[1])
        except SlackApiError:
            log.warning("[%s] could not message %s either", correlation_id, tell[0])
