"""Drafts: a campaign's recipients gathered from every source, the request built
from them, and the draft that keeps it between a preview and its "Send".

Owns: merging pasted text, an uploaded CSV's bytes, Slack people and Slack
audiences (user groups, channel members, read through the ``Directory`` port)
into one list; who from an audience is left out and why (bots, deactivated
accounts, guests unless the sender includes them, no visible email), counted; the campaign-wide
limit on that list; refusing unusable rows or an empty list; building the
``CampaignRequest``; and packing a request into a draft and out again.

Both edges call these functions: the Slack compose form (every source) and the
CLI's ``send`` (one file). Nothing here knows Slack's or the terminal's words
for a way out: errors carry a ``Remedy`` each edge phrases for itself.
"""

from __future__ import annotations

import uuid
from collections import Counter
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
from bot.ports import AttachmentFiles, Directory, Drafts
from bot.records import Draft


@dataclass(frozen=True)
class CsvUpload:
    """An uploaded CSV file: its name (for messages) and its bytes."""

    name: str
    data: bytes


#: Why someone in a Slack audience gets no email, in the order the preview lists them.
BOT, DEACTIVATED, GUEST, NO_EMAIL = "bot", "deactivated", "guest", "no visible email"
LEFT_OUT_REASONS = (BOT, DEACTIVATED, GUEST, NO_EMAIL)


@dataclass(frozen=True)
class Audience:
    """Slack people picked one by one, user groups and channels, as ids.

    Guests (``is_restricted``/``is_ultra_restricted``) in a group or channel are
    left out unless ``include_guests``; a guest picked by name is meant.
    """

    people: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    include_guests: bool = False

    def __bool__(self) -> bool:
        return bool(self.people or self.groups or self.channels)


def left_out_reason(user: Mapping[str, Any], *, include_guests: bool) -> str | None:
    """Why this Slack user gets no email (one of ``LEFT_OUT_REASONS``), or None."""
    if user.get("deleted"):
        return DEACTIVATED
    if user.get("is_bot") or user.get("is_app_user") or user.get("id") == "USLACKBOT":
        return BOT
    if not include_guests and (user.get("is_restricted") or user.get("is_ultra_restricted")):
        return GUEST
    if not ((user.get("profile") or {}).get("email") or "").strip():
        return NO_EMAIL
    return None


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
    #: Everyone from Slack left out, by reason (``LEFT_OUT_REASONS``).
    left_out: Counter[str] = field(default_factory=Counter)

    @property
    def invalid(self) -> list[Rejected]:
        """Every unusable pasted line and CSV row."""
        return list(self.recipients.rejected)


def gather_recipients(
    *,
    paste: str = "",
    csv: CsvUpload | None = None,
    people: Sequence[Mapping[str, Any]] = (),
    audience: Audience | None = None,
    directory: Directory | None = None,
    max_recipients: int,
    check_deliverability: bool = False,
    pasted: RecipientList | None = None,
) -> Gathered:
    """Parse and merge every source, first one first, and hold the merged list to
    ``max_recipients`` (each source is also held to it while parsing, so a huge
    file stops early).

    ``people`` are Slack profiles already looked up; ``audience`` names people,
    groups and channels by id, read through ``directory``. Someone in several
    sources is one recipient.

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
    left_out: Counter[str] = Counter()
    if audience and directory is not None:
        people, left_out = slack_people(audience, directory)
    if people:
        found = from_slack_users([dict(p) for p in people])
        no_email = found.rejected
        merged = merged.extend(RecipientList(found.recipients, [], found.duplicates))
    enforce_limit(merged, max_recipients, what="The campaign", field="recipients")
    return Gathered(merged, csv_rejected, no_email, left_out)


def slack_people(
    audience: Audience, directory: Directory
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The profiles of everyone in ``audience`` who can be mailed (each id once,
    people picked by name first), and how many were left out, by reason.

    People picked by name who cannot be mailed are kept in the list, so
    ``from_slack_users`` names them in the preview; they are counted too.
    """
    members: dict[str, None] = {}
    for group in audience.groups:
        members.update(dict.fromkeys(directory.group_members(group)))
    for channel in audience.channels:
        members.update(dict.fromkeys(directory.channel_members(channel)))
    picked = list(dict.fromkeys(audience.people))
    from_audiences = [m for m in members if m not in set(picked)]
    profiles = directory.users([*picked, *from_audiences])
    kept: list[dict[str, Any]] = []
    left_out: Counter[str] = Counter()
    for index, user in enumerate(profiles):
        by_name = index < len(picked)
        reason = left_out_reason(user, include_guests=audience.include_guests or by_name)
        if reason:
            left_out[reason] += 1
        if reason is None or by_name:
            kept.append(user)
    return kept, left_out


_REASON_WORDS = {
    BOT: "bot(s)",
    DEACTIVATED: "deactivated account(s)",
    GUEST: "guest(s)",
    NO_EMAIL: "without a visible email address",
}


def describe_left_out(left_out: Mapping[str, int]) -> str:
    """``3 bot(s), 40 guest(s), 2 without a visible email address``; empty if nobody."""
    return ", ".join(
        f"{left_out[r]:,} {_REASON_WORDS[r]}" for r in LEFT_OUT_REASONS if left_out.get(r)
    )


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
    if gathered.left_out and not no_email:
        reason = f": everyone from Slack was left out ({describe_left_out(gathered.left_out)})"
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
    drafts.save(key, user, {**extra, "request": pack_request(request)}, team=request.team)
    return key


def update_draft(drafts: Drafts, draft: Draft, **changes: Any) -> None:
    """Replace some of a draft's data (its owner, workspace and age stay)."""
    drafts.save(draft.key, draft.user, {**draft.data, **changes}, team=draft.team)


def draft_of(drafts: Drafts, key: str, team: str) -> Draft | None:
    """The draft under ``key`` as workspace ``team`` sees it: None when unknown,
    expired, or another workspace's (a view's metadata can be edited to name any
    key). A draft from before workspaces were recorded tells its team by its
    request."""
    draft = drafts.get(key) if key else None
    if draft is None:
        return None
    owner = draft.team or str((draft.data.get("request") or {}).get("team") or "")
    return draft if owner == team else None


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
