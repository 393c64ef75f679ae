"""Block Kit builders: pure functions from plain data to the dicts Slack takes.

Pure, so every view can be validated with ``slack_sdk.models`` in tests without a
server, and listeners never assemble JSON by hand. This module also reads the
compose form back (``read_compose``): the block ids a view is built with and the
ones its submission is parsed with live side by side, so they cannot drift.

Slack's limits shape the texts: modal titles and buttons ≤ 24 characters, a
section ≤ 3,000, an option ≤ 75, and a message ≤ 50 blocks. ``clip`` keeps
anything built from user data inside them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.handlers.stats import BOUNCE_ALERT_RATE, DeliveryStats
from bot.models import TemplateInfo

# Block ids of the compose modal: ``response_action: errors`` is keyed by them.
B_TEMPLATE = "template"
B_RECIPIENTS = "recipients"
B_PEOPLE = "people"
B_CSV = "csv"
B_SUBJECT = "subject"
B_VARIABLES = "variables"
B_CHANNEL = "channel"
B_OPTIONS = "options"
B_CONFIRM = "confirm"
ACTION = "value"  # every input element uses this action_id; the block_id tells them apart

# Callback ids and button action ids.
CB_COMPOSE = "compose"
CB_PREVIEW = "preview"
A_SEND_TEST = "send_test"
A_EDIT = "edit_compose"
A_CANCEL = "campaign_cancel"
A_RETRY_FAILED = "campaign_retry_failed"
A_RESEND_UNCERTAIN = "campaign_resend_uncertain"
A_SKIP_UNCERTAIN = "campaign_skip_uncertain"

OPT_SKIP_INVALID = "skip_invalid"
OPT_CONFIRMED = "confirmed"

MAX_PASTE_CHARS = 3000  # Slack's plain_text_input ceiling
MAX_SUBJECT_CHARS = 250  # bot.handlers.templates.MAX_SUBJECT_OVERRIDE
MAX_SECTION_CHARS = 3000
MAX_MESSAGE_TEXT = 3900  # chat.postMessage rejects text over 4,000 characters
CONFIRM_AT = 100  # sends this large need an explicit tick in the preview
PROGRESS_WIDTH = 20
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}\Z")


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, for Slack's length limits."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str, limit: int = MAX_SECTION_CHARS) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def mrkdwn(text: str, limit: int = MAX_SECTION_CHARS) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, limit)}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text)}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn(text)]}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": plain(text, 150)}


def button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": plain(text, 75),
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def escape(text: str) -> str:
    """Make user text inert in mrkdwn: no mentions, links or channel pings."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def who(requested_by: str) -> str:
    """A Slack user id as a mention; anything else (``cli``) as plain text."""
    if _SLACK_USER.match(requested_by):
        return f"<@{requested_by}>"
    return escape(requested_by)


def modal(
    title: str,
    blocks: list[dict[str, Any]],
    *,
    callback_id: str = "",
    submit: str | None = None,
    close: str = "Close",
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "title": plain(title, 24),
        "close": plain(close, 24),
        "blocks": blocks,
    }
    if callback_id:
        view["callback_id"] = callback_id
    if submit:
        view["submit"] = plain(submit, 24)
    if metadata:
        view["private_metadata"] = json.dumps(dict(metadata), separators=(",", ":"))
    return view


def metadata_of(view: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON we put in ``private_metadata`` (an empty dict if there is none)."""
    raw = view.get("private_metadata") or ""
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# -- the compose modal ----------------------------------------------------------


def compose_metadata(channel: str) -> dict[str, str]:
    """What the compose view remembers: the channel the command was typed in."""
    return {"channel": channel}


@dataclass
class ComposeForm:
    """What a person entered in the compose modal (also its initial values)."""

    template: str = ""
    paste: str = ""
    people: list[str] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    subject: str = ""
    variables: str = ""
    channel: str = ""
    skip_invalid: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Everything but the uploaded files, which Slack cannot pre-fill again."""
        return {
            "template": self.template,
            "paste": self.paste,
            "people": list(self.people),
            "subject": self.subject,
            "variables": self.variables,
            "channel": self.channel,
            "skip_invalid": self.skip_invalid,
        }


def _value(values: Mapping[str, Any], block_id: str) -> dict[str, Any]:
    return (values.get(block_id) or {}).get(ACTION) or {}


def read_compose(values: Mapping[str, Any]) -> ComposeForm:
    """The compose modal's ``view.state.values`` as a ``ComposeForm``."""
    template = (_value(values, B_TEMPLATE).get("selected_option") or {}).get("value") or ""
    options = _value(values, B_OPTIONS).get("selected_options") or []
    return ComposeForm(
        template=template,
        paste=_value(values, B_RECIPIENTS).get("value") or "",
        people=list(_value(values, B_PEOPLE).get("selected_users") or []),
        files=list(_value(values, B_CSV).get("files") or []),
        subject=(_value(values, B_SUBJECT).get("value") or "").strip(),
        variables=_value(values, B_VARIABLES).get("value") or "",
        channel=_value(values, B_CHANNEL).get("selected_conversation") or "",
        skip_invalid=any(o.get("value") == OPT_SKIP_INVALID for o in options),
    )


def confirmed(values: Mapping[str, Any]) -> bool:
    """Whether the large-send confirmation box of the preview is ticked."""
    options = _value(values, B_CONFIRM).get("selected_options") or []
    return any(o.get("value") == OPT_CONFIRMED for o in options)


def _input(
    block_id: str,
    label: str,
    element: dict[str, Any],
    *,
    hint: str = "",
    optional: bool = True,
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, 2000),
        "element": {"action_id": ACTION, **element},
        "optional": optional,
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def _text_input(initial: str, placeholder: str, *, multiline: bool, max_length: int) -> dict:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "multiline": multiline,
        "max_length": max_length,
        "placeholder": plain(placeholder, 150),
    }
    if initial:
        element["initial_value"] = initial[:max_length]
    return element


def _template_option(info: TemplateInfo) -> dict[str, Any]:
    return {
        "text": plain(info.name, 75),
        "value": info.name,
        "description": plain(f"{info.category}: {info.description}", 75),
    }


def compose_view(
    templates: Sequence[TemplateInfo],
    *,
    form: ComposeForm,
    metadata: Mapping[str, Any],
    problems: Mapping[str, str] | None = None,
    notes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The form a person fills in after ``/sendmail``.

    ``form`` pre-fills it (a channel default, or what they typed before when
    sending them back to fix something). ``problems`` maps block ids to problems
    shown right under the field, for those found after the modal was submitted
    (Slack's inline errors exist only in the submission's answer); ``notes`` are
    hints shown the same way.
    """
    problems = problems or {}
    notes = notes or {}
    shown = templates[:100]  # static_select takes at most 100 options
    template_select: dict[str, Any] = {
        "type": "static_select",
        "placeholder": plain("Choose a template"),
        "options": [_template_option(t) for t in shown],
    }
    if form.template in {t.name for t in shown}:
        chosen = next(t for t in shown if t.name == form.template)
        template_select["initial_option"] = _template_option(chosen)
    needs = "; ".join(f"{t.name}: {', '.join(t.required) or 'nothing extra'}" for t in shown)
    people: dict[str, Any] = {"type": "multi_users_select", "placeholder": plain("Pick people")}
    if form.people:
        people["initial_users"] = list(form.people)
    channel: dict[str, Any] = {
        "type": "conversations_select",
        "placeholder": plain("Where progress is posted"),
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if form.channel:
        channel["initial_conversation"] = form.channel
    else:
        channel["default_to_current_conversation"] = True
    options: dict[str, Any] = {
        "type": "checkboxes",
        "options": [
            {
                "text": plain("Skip invalid addresses and send to the rest"),
                "value": OPT_SKIP_INVALID,
            }
        ],
    }
    if form.skip_invalid:
        options["initial_options"] = options["options"]

    blocks: list[dict[str, Any]] = []
    if problems:
        blocks.append(
            section(
                ":warning: *Some things need fixing before a preview.* "
                "The notes are under each field."
            )
        )

    def note(block_id: str) -> None:
        if block_id in problems:
            blocks.append(context(f":x: {escape(problems[block_id])}"))
        if block_id in notes:
            blocks.append(context(f":information_source: {escape(notes[block_id])}"))

    blocks.append(
        _input(
            B_TEMPLATE,
            "Template",
            template_select,
            optional=False,
            hint=f"Variables each template needs. {needs}",
        )
    )
    note(B_TEMPLATE)
    blocks.append(
        _input(
            B_RECIPIENTS,
            "Recipients",
            _text_input(
                form.paste,
                "ann@example.com, Bob Smith <bob@example.com>",
                multiline=True,
                max_length=MAX_PASTE_CHARS,
            ),
            hint="Addresses separated by commas or new lines; 'Name <address>' works. "
            "Slack limits this box to 3,000 characters: upload longer lists as a CSV.",
        )
    )
    note(B_RECIPIENTS)
    blocks.append(
        _input(
            B_PEOPLE,
            "Slack people",
            people,
            hint="Their email addresses come from their Slack profiles.",
        )
    )
    note(B_PEOPLE)
    blocks.append(
        _input(
            B_CSV,
            "CSV file",
            {"type": "file_input", "filetypes": ["csv", "txt"], "max_files": 1},
            hint="A header row with an 'email' column, optional 'name', and one column per "
            "template variable. UTF-8, up to 10 MB.",
        )
    )
    note(B_CSV)
    blocks.append(
        _input(
            B_SUBJECT,
            "Subject (optional)",
            _text_input(
                form.subject,
                "Leave empty to use the template's subject",
                multiline=False,
                max_length=MAX_SUBJECT_CHARS,
            ),
            hint="Variables work here too, e.g. Hello {{ first_name }}.",
        )
    )
    note(B_SUBJECT)
    blocks.append(
        _input(
            B_VARIABLES,
            "Values for every recipient",
            _text_input(
                form.variables,
                "team=Mailbolt\nstart_url=https://example.com/start",
                multiline=True,
                max_length=MAX_PASTE_CHARS,
            ),
            hint="One name=value per line. A CSV column with the same name wins.",
        )
    )
    note(B_VARIABLES)
    blocks.append(
        _input(
            B_CHANNEL,
            "Post progress in",
            channel,
            hint="Invite the app to a private channel first (/invite @mailbolt).",
        )
    )
    note(B_CHANNEL)
    blocks.append(_input(B_OPTIONS, "Options", options))
    return modal(
        "Send email",
        blocks,
        callback_id=CB_COMPOSE,
        submit="Preview",
        close="Cancel",
        metadata=metadata,
    )


def checking_view(what: str) -> dict[str, Any]:
    """Shown at once while slow checks (downloads, Slack look-ups, rendering) run."""
    return modal(
        "Send email",
        [
            section(f":hourglass_flowing_sand: *Checking…* {escape(what)}"),
            context(
                "The preview appears here in a moment. If nothing happens within a minute, "
                "close this and run /sendmail again."
            ),
        ],
    )


def notice_view(title: str, text: str) -> dict[str, Any]:
    """A one-message modal, e.g. for a problem that cannot be shown on a field."""
    return modal(title, [section(text)])


# -- the preview modal ------------------------------------------------------------


@dataclass
class PreviewData:
    """Everything the preview shows; stored with the draft so it can be redrawn."""

    template: str
    category: str
    valid: int
    invalid: int
    duplicates: int
    suppressed: int
    deferred: int
    duration: str
    subject: str
    opening: str
    first_to: str
    transport: str
    dropped: str = ""
    no_email: str = ""
    sandbox_outbox: str = ""
    test_note: str = ""
    #: Where the status message will really go, in words (a channel the app is in,
    #: or the requester's direct messages and why).
    status_where: str = ""

    @property
    def needs_confirmation(self) -> bool:
        return self.valid >= CONFIRM_AT


def preview_view(data: PreviewData, *, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """What would be sent, and what would not, before anything is recorded."""
    counts = [
        f"*Will send:* {data.valid:,}",
        f"*Invalid, left out:* {data.invalid:,}",
        f"*Duplicates, left out:* {data.duplicates:,}",
        f"*Unsubscribed or bounced:* {data.suppressed:,}",
        f"*Deferred by the daily limit:* {data.deferred:,}",
        f"*Estimated time:* {data.duration}",
    ]
    blocks: list[dict[str, Any]] = [
        header(f"{data.template} ({data.category})"),
        {"type": "section", "fields": [mrkdwn(c, 2000) for c in counts]},
    ]
    if data.transport == "sandbox":
        blocks.append(
            context(
                ":test_tube: *Sandbox mode:* messages are written as .eml files to "
                f"`{escape(data.sandbox_outbox)}`; nobody receives them."
            )
        )
    if data.deferred:
        blocks.append(
            section(
                f":hourglass: {data.deferred:,} message(s) go over the daily sending limit; "
                "they are sent automatically when the limit allows, within 24 hours."
            )
        )
    if data.status_where:
        blocks.append(context(f":satellite_antenna: Progress is posted in {data.status_where}."))
    if data.no_email:
        blocks.append(section(f":bust_in_silhouette: Not included: {data.no_email}"))
    if data.dropped:
        blocks.append(section(f":scissors: Left out: {escape(data.dropped)}"))
    blocks += [
        {"type": "divider"},
        section(f"*To:* {escape(data.first_to)}\n*Subject:* {escape(data.subject)}"),
        section(f">>> {escape(data.opening)}" if data.opening else "_(empty message)_"),
        {
            "type": "actions",
            "block_id": "preview_actions",
            "elements": [
                button("Send a test to me", A_SEND_TEST, "test"),
                button("Edit", A_EDIT, "edit"),
            ],
        },
    ]
    if data.test_note:
        blocks.append(context(escape(data.test_note)))
    if data.needs_confirmation:
        blocks.append(
            _input(
                B_CONFIRM,
                "Confirm a large send",
                {
                    "type": "checkboxes",
                    "options": [
                        {
                            "text": plain(f"Yes, send {data.valid:,} emails"),
                            "value": OPT_CONFIRMED,
                        }
                    ],
                },
                optional=False,
            )
        )
    return modal(
        "Preview",
        blocks,
        callback_id=CB_PREVIEW,
        submit=f"Send {data.valid:,}" if data.valid > 1 else "Send",
        close="Cancel",
        metadata=metadata,
    )


# -- the status message -----------------------------------------------------------


@dataclass
class StatusData:
    """One campaign as the status message shows it."""

    campaign_id: int
    requested_by: str
    template: str
    status: str
    counts: Mapping[str, int]
    total: int
    reason: str = ""
    resume_at: float | None = None
    failures: Sequence[tuple[str, str]] = ()
    active: bool = False
    queued: bool = False
    #: The campaign this one waits for, when it is queued behind another.
    waiting_for: int | None = None
    #: Messages skipped because the campaign was cancelled (not sent, not done).
    cancelled: int = 0
    note: str = ""
    delivery: DeliveryStats | None = None  # only when bounce reports are read


def progress_bar(done: int, total: int, width: int = PROGRESS_WIDTH) -> str:
    """``▓▓▓▓▓░░░░░ 50%`` (monospace in Slack's code span)."""
    share = done / total if total else 1.0
    filled = round(share * width)
    return f"`{'▓' * filled}{'░' * (width - filled)}` {share:.0%}"


def _when(timestamp: float) -> str:
    """A Slack date token, shown in each reader's own time zone."""
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))
    return f"<!date^{int(timestamp)}^{{date_short_pretty}} at {{time}}|{fallback}>"


def status_message(data: StatusData) -> tuple[str, list[dict[str, Any]]]:
    """The text fallback and blocks of a campaign's status message."""
    c = data.counts
    # Messages skipped by a cancel were never worked on: they fill no progress.
    skipped = c.get("skipped", 0) - data.cancelled
    done = sum(c.get(s, 0) for s in ("sent", "failed", "uncertain")) + skipped
    finished = not data.active and data.status in ("completed", "cancelled")
    if data.queued and data.waiting_for is not None:
        state = f":double_vertical_bar: waiting for campaign #{data.waiting_for} to finish"
    elif data.queued:
        state = ":hourglass_flowing_sand: starting"
    elif data.active:
        state = ":arrows_counterclockwise: sending"
    elif data.status == "completed":
        state = ":white_check_mark: finished"
    elif data.status == "cancelled":
        state = ":no_entry_sign: cancelled"
    elif data.status == "paused":
        state = ":warning: paused"
    elif c.get("deferred"):
        state = ":hourglass: waiting for the daily limit"
    else:
        state = ":pause_button: stopped"
    title = (
        f"{who(data.requested_by)} is sending *{escape(data.template)}* to "
        f"{data.total:,} recipient(s) — campaign #{data.campaign_id}"
    )
    counts = (
        f"sent *{c.get('sent', 0):,}* · failed *{c.get('failed', 0):,}* · "
        f"skipped *{skipped:,}* · deferred *{c.get('deferred', 0):,}* · "
        f"uncertain *{c.get('uncertain', 0):,}*"
    )
    if data.cancelled:
        counts += f" · not sent (cancelled) *{data.cancelled:,}*"
    if not finished:
        counts += f" · to go *{c.get('queued', 0) + c.get('sending', 0):,}*"
    blocks: list[dict[str, Any]] = [
        section(title),
        section(f"{state}\n{progress_bar(done, data.total)}\n{counts}"),
    ]
    if data.reason and data.status != "completed":
        blocks.append(section(f":information_source: {escape(data.reason)}"))
    if data.status == "paused" and not data.active:
        blocks.append(
            section(
                "Sending is paused because Gmail refused our authorization: an admin must run "
                "`python -m bot auth` and restart mailbolt. Nothing is lost; it continues "
                "where it stopped."
            )
        )
    if c.get("deferred") and data.resume_at:
        blocks.append(context(f"Deferred messages go out from {_when(data.resume_at)}."))
    if data.failures:
        lines = "\n".join(
            f"• {escape(email)}: {escape(clip(reason, 200))}" for email, reason in data.failures
        )
        blocks.append(section(f"*First failures*\n{lines}"))
    if c.get("uncertain"):
        blocks.append(
            context(
                "Uncertain: the provider may or may not have sent these. Re-send only if "
                "you are sure they did not arrive."
            )
        )
    if data.delivery and data.delivery.sent and not data.active:
        blocks.append(
            context(
                f":mailbox_with_mail: Delivery so far: {delivery_line(data.delivery)}. "
                "Bounce reports can take hours to arrive; `/sendmail stats "
                f"{data.campaign_id}` shows the latest."
            )
        )
    if data.note:
        blocks.append(context(escape(data.note)))
    buttons = []
    value = str(data.campaign_id)
    if not finished:
        buttons.append(button("Cancel", A_CANCEL, value, "danger"))
    if c.get("failed") and not data.active:
        buttons.append(button("Retry failed", A_RETRY_FAILED, value))
    if c.get("uncertain") and not data.active:
        buttons.append(button("Re-send uncertain", A_RESEND_UNCERTAIN, value))
        buttons.append(button("Skip uncertain", A_SKIP_UNCERTAIN, value))
    if buttons:
        blocks.append({"type": "actions", "block_id": "campaign_actions", "elements": buttons})
    text = (
        f"Campaign #{data.campaign_id} ({data.template}): {state.split(' ', 1)[1]}, "
        f"{c.get('sent', 0)} of {data.total} sent"
    )
    return clip(text, MAX_MESSAGE_TEXT), blocks


# -- ephemeral answers and App Home ------------------------------------------------

HELP = (
    "*`/sendmail`* opens the form to send a template to a list of people.\n"
    "*`/sendmail status [id]`* recent campaigns, or one campaign's counts\n"
    "*`/sendmail quota`* how much of today's sending limit is used\n"
    "*`/sendmail templates`* the templates you can choose from\n"
    "*`/sendmail stats [id]`* delivery and bounce rates: the last 7 days, or one campaign\n"
    "*`/sendmail unsubscribe ADDRESS`* stop marketing mail to an address\n"
    "*`/sendmail resubscribe ADDRESS`* undo that, when the person asked for it\n"
    "*`/sendmail help`* this message"
)


def help_blocks() -> list[dict[str, Any]]:
    return [section(HELP)]


def templates_blocks(templates: Iterable[TemplateInfo]) -> list[dict[str, Any]]:
    lines = [
        f"• *{t.name}* ({t.category}) — {escape(t.description)}"
        + (f"\n   needs {', '.join(f'`{v}`' for v in t.required)}" if t.required else "")
        for t in templates
    ]
    return [section("*Templates*\n" + ("\n".join(lines) or "_none_"))]


@dataclass
class QuotaData:
    """Today's use of the sending limits."""

    transport: str
    sent_24h: int
    daily_limit: int | None
    units_last_minute: int
    units_per_minute: int


def quota_text(q: QuotaData) -> str:
    if q.daily_limit is None:
        return (
            f"Sent in the last 24 hours: *{q.sent_24h:,}*. The {q.transport} transport has "
            "no daily limit (GMAIL_DAILY_SEND_LIMIT applies when MAIL_TRANSPORT=gmail)."
        )
    left = max(0, q.daily_limit - q.sent_24h)
    return (
        f"Sent in the last 24 hours: *{q.sent_24h:,}* of {q.daily_limit:,} "
        f"(GMAIL_DAILY_SEND_LIMIT); *{left:,}* left.\n"
        f"{progress_bar(min(q.sent_24h, q.daily_limit), q.daily_limit)}\n"
        f"Gmail API units in the last minute: {q.units_last_minute:,} of "
        f"{q.units_per_minute:,}."
    )


@dataclass
class CampaignLine:
    campaign_id: int
    template: str
    status: str
    requested_by: str
    total: int
    sent: int
    created_at: float


def campaign_lines(campaigns: Sequence[CampaignLine]) -> str:
    if not campaigns:
        return "_No campaigns yet._"
    return "\n".join(
        f"• *#{c.campaign_id}* {escape(c.template)} — {c.status}, {c.sent:,}/{c.total:,} sent, "
        f"by {who(c.requested_by)} {_when(c.created_at)}"
        for c in campaigns
    )


# -- delivery and bounce rates ----------------------------------------------------

STATS_CAMPAIGNS = 15  # lines in /sendmail stats; the CLI lists them all


def delivery_line(s: DeliveryStats) -> str:
    """``sent *40* · delivered *39* (97.5%) · bounced *1* (2.5%: 1 hard, 0 soft)``."""
    if not s.sent:
        return "no mail sent"
    line = f"sent *{s.sent:,}* · delivered *{s.delivered:,}* ({s.delivery_rate:.1%})"
    if not s.bounces_known:
        return line + " · bounces not tracked"
    return (
        f"{line} · bounced *{s.bounced:,}* ({s.bounce_rate:.1%}: "
        f"{s.hard_bounces:,} hard, {s.soft_bounces:,} soft)"
    )


def delivery_note(transport: str, bounces_known: bool) -> str:
    """What "delivered" means with this set-up, so nobody reads more into it."""
    if transport == "sandbox":
        return (
            ':test_tube: Sandbox mode: "delivered" means written to the outbox as an .eml '
            "file; nobody receives these messages, so none can bounce."
        )
    if not bounces_known:
        return (
            'Bounce scanning is off, so "delivered" means accepted by Gmail, not that the '
            "message reached an inbox. To count bounces, an admin sets BOUNCE_SCAN=on, runs "
            "`python -m bot auth` to allow reading bounce reports, and restarts mailbolt."
        )
    return (
        '"Delivered" means sent with no bounce report back yet; reports can take hours '
        "to arrive, so recent rates may still rise."
    )


def delivery_report(
    total: DeliveryStats,
    campaigns: Sequence[DeliveryStats],
    *,
    flagged: Iterable[int],
    note: str,
) -> tuple[str, list[dict[str, Any]]]:
    """``/sendmail stats``: the window's totals and each campaign that sent in it."""
    marked = set(flagged)
    lines = [
        f"• {':warning: ' if s.campaign_id in marked else ''}*#{s.campaign_id}* "
        f"{escape(s.template)} — {delivery_line(s)}"
        for s in campaigns[:STATS_CAMPAIGNS]
    ]
    if len(campaigns) > STATS_CAMPAIGNS:
        lines.append(
            f"…and {len(campaigns) - STATS_CAMPAIGNS:,} more: `python -m bot stats` lists them all."
        )
    title = f"Delivery, {total.scope.lower()}"
    text = f"*{title}*\n{delivery_line(total)}"
    blocks = [
        section(text),
        section("*By campaign* (messages sent in this window)\n" + "\n".join(lines))
        if lines
        else section("_No mail was sent in this window._"),
    ]
    if marked:
        blocks.append(
            context(
                f":warning: more than {BOUNCE_ALERT_RATE:.0%} bounced; "
                "`/sendmail stats ID` says what to do."
            )
        )
    blocks.append(context(note))
    return text, blocks


def campaign_delivery(
    s: DeliveryStats, *, alert: str | None, note: str
) -> tuple[str, list[dict[str, Any]]]:
    """``/sendmail stats ID``: one campaign, all its messages."""
    text = f"*Delivery of campaign #{s.campaign_id}* ({escape(s.template)})\n{delivery_line(s)}"
    blocks = [section(text)]
    if alert:
        blocks.append(section(f":warning: {escape(alert)}"))
    blocks.append(context(note))
    return text, blocks


@dataclass
class HomeData:
    campaigns: Sequence[CampaignLine]
    quota: QuotaData
    delivery: DeliveryStats
    templates: Sequence[TemplateInfo]
    health: Sequence[tuple[bool, str]]
    sandbox_outbox: str = ""


def home_view(data: HomeData) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [header("Mailbolt")]
    if data.quota.transport == "sandbox":
        blocks.append(
            section(
                ":test_tube: *Sandbox mode.* Messages are written as .eml files to "
                f"`{escape(data.sandbox_outbox)}`; nobody receives them. An admin sets "
                "MAIL_TRANSPORT=gmail to send for real."
            )
        )
    blocks += [
        section("Type `/sendmail` in any channel to send a template; `/sendmail help` for more."),
        {"type": "divider"},
        section("*Recent campaigns*\n" + campaign_lines(data.campaigns)),
        {"type": "divider"},
        section("*Today's sending*\n" + quota_text(data.quota)),
        section(f"*Delivery, {data.delivery.scope.lower()}*\n{delivery_line(data.delivery)}"),
        context(delivery_note(data.quota.transport, data.delivery.bounces_known)),
        {"type": "divider"},
        *templates_blocks(data.templates),
        {"type": "divider"},
        section(
            "*Setup*\n"
            + "\n".join(
                f"{':white_check_mark:' if ok else ':warning:'} {text}" for ok, text in data.health
            )
        ),
    ]
    return {"type": "home", "blocks": blocks[:100]}
