"""The compose form's submission: the quick checks before answering, the full
check after, and the two listeners that run them.

Owns: which checks run before Slack's 3-second answer and which after, and on
which field of the form each problem is shown. The recipients themselves are
gathered by ``bot.handlers.drafts``; the preview is built by ``preview``.

Why it looks like this:
- Slack waits 3 s for the answer to a submission and shows errors on a field
  only in that answer (``response_action: errors``). So everything that is quick
  and local (the template, the pasted list, the variables, the file's name and
  size) is checked before answering, and its problems appear on the right field.
- Work that needs Slack or the network (the CSV download, people's addresses,
  DNS checks) or that grows with the list (rendering every message) runs after
  the answer, which shows "Checking…" at once; the result then replaces it: the
  preview, or the form again with the problems noted under the fields.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.errors import Remedy, TemplateError, UserInputError
from bot.handlers import attachment_types, attachments, drafts
from bot.handlers.campaign import Deps
from bot.handlers.recipient_csv import MAX_CSV_BYTES
from bot.handlers.recipient_paste import parse_text
from bot.handlers.templates import SYSTEM_VARIABLES
from bot.handlers.values import ATTACHMENTS_COLUMN, parse_name_values
from bot.models import RecipientList, TemplateInfo
from bot.slack import Services, accounts, preview, views
from bot.slack.answers import answering, update_view

#: Lists up to this size (and needing nothing from Slack) are fully checked before
#: answering; rendering costs about 1.3 ms per message on a small machine.
SYNC_MAX_RECIPIENTS = 50
ERROR_CHARS = 1500
CSV_TYPES = frozenset({"csv", "text", "txt"})
ATTACH_AGAIN = "Attach the CSV file again: Slack cannot keep it."
#: Slack's limit for a file uploaded through a form's ``file_input``.
MAX_UPLOAD_BYTES = 10_000_000


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
    #: Whether the form had a From menu (its problems are shown there).
    has_from: bool = False
    #: The Deps of the account to send from, once the server checked the choice.
    deps: Deps | None = None

    @property
    def slow(self) -> bool:
        """Whether the full check needs Slack, the network, or a lot of rendering."""
        return (
            bool(self.form.people or self.form.files or self.form.attachments)
            or bool(self.form.groups or self.form.channels)
            or self.check_dns
            or len(self.pasted.recipients) > SYNC_MAX_RECIPIENTS
        )


def compose_from(body: Mapping[str, Any], services: Services, correlation_id: str) -> Compose:
    """The submitted form, with who sent it and where its status will go."""
    view = body["view"]
    form = views.read_compose(view["state"]["values"])
    meta = views.metadata_of(view)
    team = (body.get("team") or {}).get("id") or body["user"].get("team_id", "")
    default = services.settings.status_channels.for_team(team)
    channel = form.channel or default or meta.get("channel", "")
    return Compose(
        form=form,
        user=body["user"]["id"],
        team=team,
        channel=channel,
        correlation_id=correlation_id,
        check_dns=services.settings.check_deliverability,
        has_from=any(b.get("block_id") == views.B_FROM for b in view.get("blocks", [])),
    )


# -- problems on fields ----------------------------------------------------------------


def block_for(error: UserInputError, form: views.ComposeForm) -> str:
    """The compose field an error belongs on."""
    by_field = {
        "template": views.B_TEMPLATE,
        "subject": views.B_SUBJECT,
        "variables": views.B_VARIABLES,
        "csv": views.B_CSV,
        "people": views.B_PEOPLE,
        "groups": views.B_GROUPS,
        "channels": views.B_CHANNELS,
        "attachments": views.B_ATTACHMENTS,
    }
    if error.field in by_field:
        return by_field[error.field]
    if isinstance(error, TemplateError):  # a variable some recipient lacks
        return views.B_CSV if form.files else views.B_VARIABLES
    if form.files and not form.paste.strip():
        return views.B_CSV
    return views.B_RECIPIENTS


def words(error: UserInputError) -> str:
    """An input error as the form shows it, with Slack's words for its way out."""
    text = str(error)
    if error.remedy is Remedy.SKIP_INVALID:
        text += " Fix them, or tick 'Skip invalid addresses'."
    extra = [d for d in error.details[:3] if d not in text]
    if extra:
        text += " " + "; ".join(extra)
    return views.clip(text, ERROR_CHARS)


# -- the quick checks ------------------------------------------------------------------


def quick_check(compose: Compose, services: Services) -> Compose:
    """Every check that is local and fast; problems go into ``compose.problems``."""
    form, problems = compose.form, compose.problems
    limit = services.settings.max_recipients_per_campaign
    try:
        compose.common_vars = parse_name_values(form.variables.splitlines(), field="variables")
    except UserInputError as exc:
        problems[views.B_VARIABLES] = words(exc)
    try:
        compose.pasted = parse_text(form.paste, check_deliverability=False, max_recipients=limit)
        if not form.skip_invalid:
            drafts.refuse_invalid(compose.pasted.rejected, "line(s) are", field="recipients")
    except UserInputError as exc:
        problems[views.B_RECIPIENTS] = words(exc)
    _check_files(form, problems)
    _check_sender(compose, services)
    _check_attachment_names(form, problems)
    picked = form.people or form.files or form.groups or form.channels
    if not (compose.pasted.recipients or compose.pasted.rejected or picked):
        problems.setdefault(
            views.B_RECIPIENTS,
            "Add recipients: paste addresses, pick Slack people, user groups or "
            "channels, or upload a CSV.",
        )
    _check_variables(compose, _template_info(compose, services))
    return compose


def _check_sender(compose: Compose, services: Services) -> None:
    """The From choice, checked on the server: an account this person may not use
    is refused even when the payload was edited to name it."""
    try:
        compose.deps = accounts.deps_for_choice(
            services, compose.user, compose.form.sender, compose.team
        )
    except UserInputError as exc:
        where = views.B_FROM if compose.has_from else views.B_TEMPLATE
        compose.problems[where] = words(exc)


def _check_variables(compose: Compose, info: TemplateInfo | None) -> None:
    """Without a CSV, every variable the template needs must be given on the form."""
    form = compose.form
    if info is None or form.files:
        return
    have = set(compose.common_vars) | SYSTEM_VARIABLES
    missing = [v for v in info.required if v not in have]
    if missing:
        lines = ", ".join(f"{m}=…" for m in missing)
        compose.problems.setdefault(
            views.B_VARIABLES,
            f"The template '{form.template}' needs a value for "
            f"{', '.join(repr(m) for m in missing)}: add a line for each ({lines}), "
            "or upload a CSV with those columns.",
        )


def _template_info(compose: Compose, services: Services) -> TemplateInfo | None:
    """The chosen template, with its files and the subject compiled when the full
    check comes later; when it follows at once, its preflight compiles them anyway
    (about 15 ms each time) and reports the same problems on the same fields."""
    form, catalogue = compose.form, services.deps.catalogue.for_team(compose.team)
    if not form.template:
        compose.problems[views.B_TEMPLATE] = "Choose a template."
        return None
    try:
        if compose.slow:
            return catalogue.renderer(form.template, subject_override=form.subject or None).info
        return catalogue.get(form.template)
    except TemplateError as exc:
        compose.problems[block_for(exc, form)] = words(exc)
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


def _check_attachment_names(form: views.ComposeForm, problems: dict[str, str]) -> None:
    """What the names and sizes alone tell, before anything is downloaded."""
    for file in form.attachments:
        name = file.get("name") or "a file"
        try:
            attachment_types.check_name(name)
        except UserInputError as exc:
            problems[views.B_ATTACHMENTS] = words(exc)
            return
        if (file.get("size") or 0) > MAX_UPLOAD_BYTES:
            problems[views.B_ATTACHMENTS] = f"{name} is larger than Slack's 10 MB for a form."
            return


def _download_attachments(
    form: views.ComposeForm, gathered: drafts.Gathered, services: Services
) -> attachments.AttachmentSet | None:
    """Fetch the uploaded files, check them, and store them until the campaign is done,
    so "Send" (a later request) finds exactly what this check saw."""
    uses_column = any(
        r.variables.get(ATTACHMENTS_COLUMN, "").strip() for r in gathered.recipients.recipients
    )
    if not form.attachments and not uses_column:
        return None
    uploads = [
        services.lookups.download(f, field="attachments", max_bytes=MAX_UPLOAD_BYTES)
        for f in form.attachments
    ]
    files = attachments.from_uploads(uploads, gathered.recipients.recipients)
    if files and services.deps.attachment_files is not None:
        attachments.manifest(files, services.deps.attachment_files)
    return files


# -- the full check --------------------------------------------------------------------


@dataclass
class Outcome:
    """The full check's answer: a preview to show, or problems by field."""

    preview: dict[str, Any] | None = None
    problems: dict[str, str] = field(default_factory=dict)


def full_check(compose: Compose, services: Services) -> Outcome:
    """Fetch what Slack holds, gather and check everything, and keep a draft for
    the preview; a problem comes back on its field."""
    form, settings = compose.form, services.settings
    try:
        upload = None
        if form.files:
            upload = drafts.CsvUpload(*services.lookups.download(form.files[0]))
        gathered = drafts.gather_recipients(
            paste=form.paste,
            csv=upload,
            audience=drafts.Audience(
                people=tuple(form.people),
                groups=form.group_ids,
                channels=tuple(form.channels),
                include_guests=form.include_guests,
            ),
            directory=services.lookups,
            max_recipients=settings.max_recipients_per_campaign,
            check_deliverability=compose.check_dns,
            pasted=compose.pasted,
        )
        if not form.skip_invalid:
            drafts.refuse_invalid(gathered.csv_rejected, "rows are", field="csv")
        drafts.require_recipients(gathered, pasted_any=bool(form.paste.strip()))
        files = _download_attachments(form, gathered, services)
        request = drafts.build_request(
            gathered,
            template=form.template,
            requested_by=compose.user,
            common_vars=compose.common_vars,
            subject=form.subject or None,
            skip_invalid=True,
            team=compose.team,
            status_channel=compose.channel,
            correlation_id=compose.correlation_id,
            attachments=files,
        )
        shown = preview.draft_preview(request, gathered, form, services, deps=compose.deps)
    except UserInputError as exc:
        return Outcome(problems={block_for(exc, form): words(exc)})
    return Outcome(preview=shown)


def first_answer(
    body: Mapping[str, Any], services: Services, correlation_id: str
) -> dict[str, Any]:
    """The acknowledgement: problems on fields, "Checking…", or the preview."""
    compose = quick_check(compose_from(body, services, correlation_id), services)
    if compose.problems:
        return {"response_action": "errors", "errors": compose.problems}
    if compose.slow:
        return {"response_action": "update", "view": views.checking_view(_checking_what(compose))}
    outcome = full_check(compose, services)
    if outcome.preview is not None:
        return {"response_action": "update", "view": outcome.preview}
    return {"response_action": "errors", "errors": outcome.problems}


def later_answer(body: Mapping[str, Any], services: Services, correlation_id: str) -> Any:
    """After "Checking…": the view replacing it, or None when the first answer
    already said everything."""
    compose = quick_check(compose_from(body, services, correlation_id), services)
    if compose.problems or not compose.slow:
        return None
    outcome = full_check(compose, services)
    if outcome.preview is not None:
        return outcome.preview
    notes = {}
    if compose.form.files and views.B_CSV not in outcome.problems:
        notes[views.B_CSV] = ATTACH_AGAIN
    if compose.form.attachments and views.B_ATTACHMENTS not in outcome.problems:
        notes[views.B_ATTACHMENTS] = preview.ATTACH_FILES_AGAIN
    return views.compose_view(
        services.deps.catalogue.for_team(compose.team).list(),
        form=compose.form,
        metadata=views.metadata_of(body["view"]),
        problems=outcome.problems,
        notes=notes,
        senders=accounts.menu(services, compose.user, compose.team),
    )


def _checking_what(compose: Compose) -> str:
    parts = []
    if compose.form.files:
        parts.append(f"reading {compose.form.files[0].get('name') or 'the CSV file'}")
    if compose.form.attachments:
        parts.append(f"reading {len(compose.form.attachments)} attachment(s)")
    if compose.form.people:
        parts.append(f"looking up {len(compose.form.people)} Slack people")
    audiences = len(compose.form.groups) + len(compose.form.channels)
    if audiences:
        parts.append(f"reading the members of {audiences} group(s) and channel(s)")
    parts.append("rendering every message")
    return ", ".join(parts) + "."


# -- listeners -------------------------------------------------------------------------


def register(app: App, services: Services) -> None:
    """The compose form's submission: a quick answer, then the full check."""

    def compose_ack(ack: Ack, body: dict, context: BoltContext) -> None:
        correlation_id = context.get("correlation_id", "")
        answer = answering(
            correlation_id,
            "compose submission",
            lambda: first_answer(body, services, correlation_id),
            lambda text: {"response_action": "errors", "errors": {views.B_TEMPLATE: text}},
        )
        ack(**answer)

    def compose_slow(body: dict, client: WebClient, context: BoltContext) -> None:
        correlation_id = context.get("correlation_id", "")
        started = time.monotonic()
        shown, tell = answering(
            correlation_id,
            "compose check",
            lambda: (later_answer(body, services, correlation_id), None),
            lambda text: (views.notice_view("Send email", text), (body["user"]["id"], text)),
        )
        if shown is None:
            return
        time.sleep(max(0.0, services.checking_min_seconds - (time.monotonic() - started)))
        update_view(client, body["view"]["id"], shown, correlation_id, tell=tell)

    app.view(views.CB_COMPOSE)(ack=compose_ack, lazy=[compose_slow])
