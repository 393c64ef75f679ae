"""Preflight: render and check every message before anything is recorded or sent.

This module owns the checks a campaign must pass (usable recipients, required and
link values, marketing settings, sensitive data, every message renderable) and
``record``, which stores a checked plan as a campaign with one row per recipient.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.errors import (
    MailboltError,
    Remedy,
    TemplateError,
    UserInputError,
)
from bot.handlers import attachments, policy, sensitive, values
from bot.handlers.campaign import (
    MAX_LISTED_ERRORS,
    SKIPPED,
    CampaignRequest,
    Deps,
    Plan,
    list_unsubscribe_headers,
    message_variables,
)
from bot.handlers.compose import build_message, message_chunks
from bot.handlers.rendering import Renderer
from bot.handlers.row_check import RowChecker
from bot.models import Recipient, RecipientList, RenderedMessage
from bot.ports import MAX_MESSAGE_BYTES
from bot.records import CampaignStatus, NewMessage

# Names whose value differs from one recipient to the next, besides the CSV columns.
_PER_RECIPIENT = values.RECIPIENT_VARIABLES | {"unsubscribe_url"}


def _check_required(
    renderer: Renderer, recipients: RecipientList, common: Mapping[str, str]
) -> None:
    """Name a missing column once, instead of failing on every recipient."""
    have = set(recipients.columns) | set(common) | {"name", "email", "first_name"}
    missing = [v for v in renderer.info.required if v not in have]
    if missing and recipients.recipients:
        names = ", ".join(f"'{m}'" for m in missing)
        raise TemplateError(
            f"The template '{renderer.info.name}' needs {names}: add a CSV column or give "
            "a value for all recipients.",
            field="variables",
            remedy=Remedy.SET_VARIABLE,
            remedy_arg=missing[0],
        )


def _check_link_values(
    renderer: Renderer, common: Mapping[str, str], recipients: list[Recipient]
) -> None:
    """Values that become links are http, https or mailto URLs; name each one that is not.

    A value is a link when the template puts it where a link begins
    (``href="{{ x }}"``) or its name says so (``start_url``, ``cta_link``).
    """
    used = renderer.link_variables()
    names = set(common)
    for recipient in recipients:
        names.update(recipient.variables)
    links = {n for n in names if n in used or values.is_url_name(n)} - values.SYSTEM_VARIABLES
    if not links:
        return
    for name in sorted(links & set(common)):
        problem = values.link_problem(str(common[name]))
        if problem:
            raise UserInputError(f"The value {name!r} {problem}.", field="variables")
    problems: list[str] = []
    first_line: int | None = None
    for recipient in recipients:
        for name in sorted(links & set(recipient.variables)):
            problem = values.link_problem(str(recipient.variables[name]))
            if problem:
                problems.append(f"{recipient.label}, column {name!r}: the value {problem}")
                first_line = first_line or recipient.line or None
        if len(problems) >= MAX_LISTED_ERRORS:
            break
    if problems:
        raise UserInputError(
            f"{problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + ".",
            field="csv",
            line=first_line,
            details=problems,
        )


def preflight(request: CampaignRequest, deps: Deps) -> Plan:
    """Render and check every message; raise before anything is recorded or sent."""
    # The workspace's templates (its own and the shared ones): another workspace's
    # template name is as unknown as one that does not exist.
    catalogue = deps.catalogue.for_team(request.team)
    renderer = catalogue.renderer(request.template, subject_override=request.subject)
    recipients = request.recipients
    if recipients.rejected and not request.skip_invalid:
        listed = [str(r) for r in recipients.rejected[:MAX_LISTED_ERRORS]]
        more = len(recipients.rejected) - len(listed)
        raise UserInputError(
            f"{len(recipients.rejected)} recipient line(s) are not usable"
            + (f" ({more} more not shown)" if more > 0 else "")
            + ". Fix them, or skip the invalid addresses.",
            field="recipients",
            line=recipients.rejected[0].line,
            details=listed,
            remedy=Remedy.SKIP_INVALID,
        )
    if request.limit is not None and request.limit < 1:
        raise UserInputError(
            f"The limit must be 1 or more (got {request.limit}); nothing was recorded.",
            field="limit",
        )
    if not recipients.recipients:
        raise UserInputError("There are no valid recipients.", field="recipients")
    values.check_common_names(request.common_vars)
    values.check_column_names(recipients.columns, filename="The recipient list")
    _check_required(renderer, recipients, request.common_vars)
    policy.check_marketing_settings(
        renderer.info,
        deps.policy.postal_address,
        unsubscribe_base=deps.policy.unsubscribe_base,
        public_links=deps.policy.public_links,
    )
    _check_link_values(renderer, request.common_vars, recipients.recipients)
    category = renderer.info.category
    to_send, suppressed = policy.suppress(deps.store, recipients.recipients, category, request.team)
    over_limit: list[Recipient] = []
    if request.limit is not None and len(to_send) > request.limit:
        to_send, over_limit = to_send[: request.limit], to_send[request.limit :]
    errors: list[str] = []
    first: RenderedMessage | None = None
    guard = sensitive.SensitiveGuard(common=frozenset(request.common_vars))
    varying = frozenset(recipients.columns) | _PER_RECIPIENT
    fast: RowChecker | None = None
    for recipient in to_send:
        variables = message_variables(
            deps,
            recipient.email,
            recipient.name,
            recipient.variables,
            request.common_vars,
            0,
            category,
        )
        if fast is not None and fast.clean(variables):
            continue  # proven to pass every check below; see bot.handlers.row_check
        try:
            if first is None:  # built for real: the preview, and a check of the headers
                rendered = renderer.render(variables, who=recipient.label)
                build_message(
                    deps.envelope,
                    to_address=recipient.email,
                    to_name=recipient.name,
                    rendered=rendered,
                    message_id="<preflight@mailbolt.invalid>",
                    extra_headers=list_unsubscribe_headers(deps, variables),
                )
                first = rendered
                fast = renderer.row_checker(variables, varying)
            else:
                rendered = renderer.render(variables, who=recipient.label, check_only=True)
        except MailboltError as exc:
            text = str(exc)
            errors.append(text if recipient.email in text else f"{recipient.label}: {text}")
            if len(errors) >= MAX_LISTED_ERRORS:
                break
            continue
        guard.check(rendered, variables, recipient.label)
    if errors:
        raise TemplateError(
            f"The template '{renderer.info.name}' could not be rendered for every recipient; "
            f"nothing was sent. {errors[0]}",
            field="template",
            details=errors,
        )
    guard.raise_if_found()
    attachments.check_selection(request.attachments, to_send)
    if request.attachments:
        attachments.check_sensitive(request.attachments, to_send)
        _check_sizes(request.attachments, request, deps, renderer, to_send)
    return Plan(request, renderer, to_send, suppressed, over_limit, first)


def _check_sizes(
    files: attachments.AttachmentSet,
    request: CampaignRequest,
    deps: Deps,
    renderer: Renderer,
    to_send: list[Recipient],
) -> None:
    """Measure the real encoded message for each different set of files.

    The first recipient of each set is rendered and encoded in full (attachments
    included); the encoded files are shared, not copied, so this costs one render
    per set. Recipients with the same files differ only in their text (and the
    Gmail transport refuses a message over the limit all the same).
    """
    measured: set[tuple[str, ...]] = set()
    oversize: list[tuple[str, int, list[str]]] = []
    for recipient in to_send:
        theirs = files.for_row(recipient.variables)
        names = tuple(f.name for f in theirs)
        if not theirs or names in measured:
            continue
        measured.add(names)
        variables = message_variables(
            deps,
            recipient.email,
            recipient.name,
            recipient.variables,
            request.common_vars,
            0,
            renderer.info.category,
        )
        chunks = message_chunks(
            deps.envelope,
            to_address=recipient.email,
            to_name=recipient.name,
            rendered=renderer.render(variables, who=recipient.label),
            message_id="<preflight@mailbolt.invalid>",
            extra_headers=list_unsubscribe_headers(deps, variables),
            attachments=[f.part for f in theirs],
        )
        size = sum(map(len, chunks))
        if size > MAX_MESSAGE_BYTES:
            oversize.append((recipient.label, size, list(names)))
    attachments.refuse_too_large(oversize)


def record(
    plan: Plan,
    deps: Deps,
    *,
    status: CampaignStatus = CampaignStatus.RUNNING,
    when: tuple[float, str] | None = None,
) -> tuple[int, bool]:
    """Store the campaign: one queued row per recipient, suppressed rows as skipped.

    ``status`` is ``awaiting_approval`` for a campaign a second person must approve
    first (``bot.handlers.approval.record``): nothing sends it until then.
    ``when`` (a time and its zone) records it ``scheduled`` (``bot.handlers.schedule``),
    or keeps the time of one awaiting approval for when it is approved.
    """
    req = plan.request
    rows: list[NewMessage] = [
        NewMessage(
            email=r.email,
            name=r.name,
            variables=r.variables,
            message_id=deps.envelope.new_message_id(),
        )
        for r in plan.to_send
    ]
    emails = {r.email for r in plan.to_send}
    for s in plan.suppressed:
        if s.text not in emails:
            rows.append(
                NewMessage(
                    email=s.text,
                    state=SKIPPED,
                    last_error=s.reason,
                    message_id=deps.envelope.new_message_id(),
                )
            )
    common_vars = dict(req.common_vars)
    if req.attachments:
        if deps.attachment_files is None:
            raise UserInputError("Attachments cannot be kept: no attachment store is set up.")
        # Stored (and flushed) before the campaign exists, so a sender that picks the
        # campaign up at once, or a resume after a crash, always finds them.
        common_vars[values.ATTACHMENTS_COLUMN] = attachments.manifest(
            req.attachments, deps.attachment_files
        )
    return deps.store.campaigns.create(
        requested_by=req.requested_by,
        template=plan.renderer.info.name,
        category=plan.category,
        subject=req.subject or "",
        common_vars=common_vars,
        messages=rows,
        team=req.team,
        idempotency_key=req.idempotency_key,
        status_channel=req.status_channel,
        correlation_id=req.correlation_id,
        account=deps.account,
        status=status,
        scheduled_at=when[0] if when else None,
        schedule_zone=when[1] if when else "",
    )
