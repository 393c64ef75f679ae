"""Drafts: a campaign's recipients gathered from every source, the request built
from them, and the draft that keeps it between a preview and its "Send".

Owns: merging pasted text, an uploaded CSV's bytes and Slack people (already
looked up, as plain ``users.info`` objects) into one list; the campaign-wide
limit on that list; refusing unusable rows or an empty list; building the
``CampaignRequest``; and packing a request into a draft and out again.

Both edges call these functions: the Slack compose form (every source) and the
CLI's ``send`` (one file). Nothing here knows Slack's or the terminal's words
for a way out: errors carry a ``Remedy`` each edge phrases for itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.errors import Remedy, UserInputError
from bot.handlers import attachments
from bot.handlers.attachments import AttachmentSet
from bot.handlers.campaign import CampaignRequest
from bot.handlers.recipient_csv import parse_csv
from bot.handlers.recipient_paste import parse_text
from bot.handlers.recipients import enforce_limit, from_slack_users, summarize
from bot.models import Recipient, RecipientList, Rejected
from bot.ports import AttachmentFiles, Drafts
from bot.records import Draft


@dataclass(frozen=True)
class CsvUpload:
    """An uploaded CSV file: its name (for messages) and its bytes."""

    name: str
    data: bytes


@dataclass
class Gathered:
    """Everyone a campaign could go to, and who was dropped on the way.

    ``recipients.rejected`` holds the unusable pasted lines and CSV rows, so
    ``preflight`` refuses them unless the request skips invalid addresses;
    ``csv_rejected`` are the CSV's alone; ``no_email`` the Slack people the app
    cannot mail, kept apart because they are people to reach another way.
    """

    recipients: RecipientList
    csv_rejected: list[Rejected] = field(default_factory=list)
    no_email: list[Rejected] = field(default_factory=list)

    @property
    def invalid(self) -> list[Rejected]:
        """Every unusable pasted line and CSV row."""
        return list(self.recipients.rejected)


def gather_recipients(
    *,
    paste: str = "",
    csv: CsvUpload | None = None,
    people: Sequence[Mapping[str, Any]] = (),
    max_recipients: int,
    check_deliverability: bool = False,
    pasted: RecipientList | None = None,
) -> Gathered:
    """Parse and merge every source, first one first, and hold the merged list to
    ``max_recipients`` (each source is also held to it while parsing, so a huge
    file stops early).

    ``pasted`` is the paste already parsed without DNS checks (the Slack form's
    quick check); it is parsed again only when deliverability is checked.
    """
    if pasted is None or (check_deliverability and paste.strip()):
        pasted = parse_text(
            paste, check_deliverability=check_deliverability, max_recipients=max_recipients
        )
    merged = RecipientList(
        list(pasted.recipients),
        list(pasted.rejected),
        list(pasted.duplicates),
        list(pasted.columns),
    )
    csv_rejected: list[Rejected] = []
    if csv is not None:
        from_csv = parse_csv(
            csv.data,
            filename=csv.name,
            check_deliverability=check_deliverability,
            max_recipients=max_recipients,
        )
        csv_rejected = list(from_csv.rejected)
        merged = merged.extend(from_csv)
    no_email: list[Rejected] = []
    if people:
        found = from_slack_users([dict(p) for p in people])
        no_email = found.rejected
        merged = merged.extend(RecipientList(found.recipients, [], found.duplicates))
    enforce_limit(merged, max_recipients, what="The campaign", field="recipients")
    return Gathered(merged, csv_rejected, no_email)


def refuse_invalid(rejected: Sequence[Rejected], where: str, *, field: str) -> None:
    """Refuse a source with unusable entries: ``where`` says what they are
    ("line(s) are", "rows are"); the remedy is to skip them."""
    if rejected:
        raise UserInputError(
            f"{len(rejected):,} {where} not usable: {summarize(list(rejected), 5)}.",
            field=field,
            remedy=Remedy.SKIP_INVALID,
        )


def require_recipients(gathered: Gathered, *, pasted_any: bool) -> None:
    """Refuse a list with nobody on it, saying so when the people picked are why."""
    if gathered.recipients.recipients:
        return
    no_email = bool(gathered.no_email)
    reason = ": none of the people picked has a visible email address" if no_email else ""
    raise UserInputError(
        f"There are no valid recipients{reason}.",
        field="people" if no_email and not pasted_any else "recipients",
    )


def build_request(
    gathered: Gathered | RecipientList,
    *,
    template: str,
    requested_by: str,
    common_vars: Mapping[str, str] | None = None,
    subject: str | None = None,
    skip_invalid: bool = False,
    limit: int | None = None,
    team: str = "",
    status_channel: str = "",
    correlation_id: str = "",
    attachments: AttachmentSet | None = None,
) -> CampaignRequest:
    """The request ``preflight`` checks; no subject means the template's own."""
    recipients = gathered.recipients if isinstance(gathered, Gathered) else gathered
    return CampaignRequest(
        template=template,
        recipients=recipients,
        requested_by=requested_by,
        common_vars=dict(common_vars or {}),
        subject=subject,
        skip_invalid=skip_invalid,
        limit=limit,
        team=team,
        status_channel=status_channel,
        correlation_id=correlation_id,
        attachments=attachments,
    )


# -- drafts ------------------------------------------------------------------------------


def save_draft(
    drafts: Drafts, user: str, request: CampaignRequest, extra: Mapping[str, Any]
) -> str:
    """Keep ``request`` (and the edge's ``extra`` data) as a new draft; its key.

    The key doubles as the campaign's idempotency key when the draft is sent.
    """
    key = uuid.uuid4().hex
    drafts.save(key, user, {**extra, "request": pack_request(request)})
    return key


def update_draft(drafts: Drafts, draft: Draft, **changes: Any) -> None:
    """Replace some of a draft's data (its owner and age stay)."""
    drafts.save(draft.key, draft.user, {**draft.data, **changes})


def load_request(
    draft: Draft, files: AttachmentFiles | None = None, **changes: Any
) -> CampaignRequest:
    """The request kept in ``draft``, with ``changes`` applied (e.g. who sends it)
    and its attachments read from ``files``."""
    return unpack_request(draft.data["request"], files, **changes)


def pack_request(request: CampaignRequest) -> dict[str, Any]:
    """A request as JSON-able data; invalid rows are not kept (a draft's request
    always skips them)."""
    return {
        "template": request.template,
        "subject": request.subject,
        "common_vars": request.common_vars,
        "team": request.team,
        "status_channel": request.status_channel,
        "correlation_id": request.correlation_id,
        "columns": request.recipients.columns,
        # Names and keys only: the bytes are already in the attachment store.
        "attachments": attachments.describe(request.attachments),
        "recipients": [
            [r.email, r.name, r.variables, r.line, r.source] for r in request.recipients.recipients
        ],
    }


def unpack_request(
    packed: Mapping[str, Any], files: AttachmentFiles | None = None, **changes: Any
) -> CampaignRequest:
    """``pack_request`` undone, with ``changes`` applied; attachments are read back
    from ``files``, where the full check stored them."""
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
        "attachments": attachments.load_manifest(packed.get("attachments"), files) or None,
    }
    values.update(changes)
    return CampaignRequest(**values)
