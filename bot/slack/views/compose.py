"""The compose modal: the form after ``/sendmail``, and reading its submission back.

Owns: the form's fields and their order. The block ids it is built with and the
ones its submission is parsed with (``read_compose``) live side by side, so they
cannot drift. Also the "Checking…" view shown while the full check runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.models import TemplateInfo
from bot.slack.views.blocks import (
    B_ATTACHMENTS,
    B_CHANNEL,
    B_CSV,
    B_FROM,
    B_OPTIONS,
    B_PEOPLE,
    B_RECIPIENTS,
    B_SUBJECT,
    B_TEMPLATE,
    B_VARIABLES,
    CB_COMPOSE,
    MAX_PASTE_CHARS,
    MAX_SUBJECT_CHARS,
    OPT_SKIP_INVALID,
    context,
    escape,
    input_block,
    modal,
    plain,
    section,
    text_input,
    value_of,
)

#: The audience blocks: user groups (options loaded from ``usergroups.list`` by
#: ``bot.slack.audiences``; Bolt matches option requests by action_id, so this
#: element has its own), channels whose members get it, and guests in or out.
B_GROUPS = "audience_groups"
B_CHANNELS = "audience_channels"
B_GUESTS = "audience_guests"
A_GROUPS = "usergroups"
OPT_INCLUDE_GUESTS = "include_guests"
#: Picking more audiences than this in one form is refused by Slack's element.
MAX_AUDIENCES = 10
#: Slack's ``file_input`` takes at most 10 files (docs.slack.dev, file input element).
MAX_ATTACHMENTS = 10


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
    #: The address of the sender account chosen ("" when the form offers none).
    sender: str = ""
    #: User groups as picked: ``{"value": id, "text": "@handle (name)"}`` each.
    groups: list[dict[str, str]] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    include_guests: bool = False

    @property
    def group_ids(self) -> tuple[str, ...]:
        return tuple(g["value"] for g in self.groups)

    #: Files to attach (``file_input`` entries); like ``files``, never pre-filled again.
    attachments: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the uploaded files (the CSV and the attachments), which Slack
        cannot pre-fill again."""
        return {
            "template": self.template,
            "paste": self.paste,
            "people": list(self.people),
            "subject": self.subject,
            "variables": self.variables,
            "channel": self.channel,
            "skip_invalid": self.skip_invalid,
            "sender": self.sender,
            "groups": [dict(g) for g in self.groups],
            "channels": list(self.channels),
            "include_guests": self.include_guests,
        }


def read_compose(values: Mapping[str, Any]) -> ComposeForm:
    """The compose modal's ``view.state.values`` as a ``ComposeForm``."""
    template = (value_of(values, B_TEMPLATE).get("selected_option") or {}).get("value") or ""
    options = value_of(values, B_OPTIONS).get("selected_options") or []
    return ComposeForm(
        template=template,
        paste=value_of(values, B_RECIPIENTS).get("value") or "",
        people=list(value_of(values, B_PEOPLE).get("selected_users") or []),
        files=list(value_of(values, B_CSV).get("files") or []),
        attachments=list(value_of(values, B_ATTACHMENTS).get("files") or []),
        subject=(value_of(values, B_SUBJECT).get("value") or "").strip(),
        variables=value_of(values, B_VARIABLES).get("value") or "",
        channel=value_of(values, B_CHANNEL).get("selected_conversation") or "",
        skip_invalid=any(o.get("value") == OPT_SKIP_INVALID for o in options),
        sender=(value_of(values, B_FROM).get("selected_option") or {}).get("value") or "",
        **_read_audiences(values),
    )


def _read_audiences(values: Mapping[str, Any]) -> dict[str, Any]:
    """The audience blocks' values (absent blocks read as nothing picked)."""
    groups = (values.get(B_GROUPS) or {}).get(A_GROUPS) or {}
    guests = value_of(values, B_GUESTS).get("selected_options") or []
    return {
        "groups": [
            {"value": o["value"], "text": (o.get("text") or {}).get("text") or o["value"]}
            for o in groups.get("selected_options") or []
            if o.get("value")
        ],
        "channels": list(value_of(values, B_CHANNELS).get("selected_conversations") or []),
        "include_guests": any(o.get("value") == OPT_INCLUDE_GUESTS for o in guests),
    }


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
    senders: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The form a person fills in after ``/sendmail``.

    ``senders``: (address, label) of the accounts this person may send from, their
    own first; the From menu is shown when there are any (the server checks the
    choice again on submission, whatever the menu offered).

    ``form`` pre-fills it (a channel default, or what they typed before when
    sending them back to fix something). ``problems`` maps block ids to problems
    shown right under the field, for those found after the modal was submitted
    (Slack's inline errors exist only in the submission's answer); ``notes`` are
    hints shown the same way.
    """
    problems = problems or {}
    notes = notes or {}
    blocks: list[dict[str, Any]] = []
    if problems:
        blocks.append(
            section(
                ":warning: *Some things need fixing before a preview.* "
                "The notes are under each field."
            )
        )
    fields = _fields(templates[:100], form)  # static_select: at most 100 options
    if senders:
        fields.insert(0, _from_field(senders[:100], form))
    for field_block in fields:
        blocks.append(field_block)
        blocks += _notes_under(field_block["block_id"], problems, notes)
    blocks.append(input_block(B_OPTIONS, "Options", _options(form)))
    return modal(
        "Send email",
        blocks,
        callback_id=CB_COMPOSE,
        submit="Preview",
        close="Cancel",
        metadata=metadata,
    )


def _notes_under(
    block_id: str, problems: Mapping[str, str], notes: Mapping[str, str]
) -> list[dict[str, Any]]:
    """A field's problem and note, shown right under it."""
    shown = []
    if block_id in problems:
        shown.append(context(f":x: {escape(problems[block_id])}"))
    if block_id in notes:
        shown.append(context(f":information_source: {escape(notes[block_id])}"))
    return shown


def _fields(templates: Sequence[TemplateInfo], form: ComposeForm) -> list[dict[str, Any]]:
    """The form's input blocks in order, each pre-filled from ``form``."""
    return [
        _template_field(templates, form),
        input_block(
            B_RECIPIENTS,
            "Recipients",
            text_input(
                form.paste,
                "ann@example.com, Bob Smith <bob@example.com>",
                multiline=True,
                max_length=MAX_PASTE_CHARS,
            ),
            hint="Addresses separated by commas or new lines; 'Name <address>' works. "
            "Slack limits this box to 3,000 characters: upload longer lists as a CSV.",
        ),
        input_block(
            B_PEOPLE,
            "Slack people",
            _people(form),
            hint="Their email addresses come from their Slack profiles.",
        ),
        *audience_fields(form),
        input_block(
            B_CSV,
            "CSV file",
            {"type": "file_input", "filetypes": ["csv", "txt"], "max_files": 1},
            hint="A header row with an 'email' column, optional 'name', and one column per "
            "template variable. UTF-8, up to 10 MB.",
        ),
        input_block(
            B_ATTACHMENTS,
            "Attachments",
            {"type": "file_input", "max_files": MAX_ATTACHMENTS},
            hint="Sent with every message. To send a file only to some people, name it in a "
            "CSV column 'attachments' (several names separated by ;). Up to 10 files of "
            "10 MB each; Gmail refuses programs and messages over 35 MB once encoded.",
        ),
        input_block(
            B_SUBJECT,
            "Subject (optional)",
            text_input(
                form.subject,
                "Leave empty to use the template's subject",
                multiline=False,
                max_length=MAX_SUBJECT_CHARS,
            ),
            hint="Variables work here too, e.g. Hello {{ first_name }}.",
        ),
        input_block(
            B_VARIABLES,
            "Values for every recipient",
            text_input(
                form.variables,
                "team=Mailbolt\nstart_url=https://example.com/start",
                multiline=True,
                max_length=MAX_PASTE_CHARS,
            ),
            hint="One name=value per line. A CSV column with the same name wins.",
        ),
        input_block(
            B_CHANNEL,
            "Post progress in",
            _channel(form),
            hint="Invite the app to a private channel first (/invite @mailbolt).",
        ),
    ]


def _template_field(templates: Sequence[TemplateInfo], form: ComposeForm) -> dict[str, Any]:
    """The template menu, with what each template needs in its hint."""
    select: dict[str, Any] = {
        "type": "static_select",
        "placeholder": plain("Choose a template"),
        "options": [_template_option(t) for t in templates],
    }
    chosen = next((t for t in templates if t.name == form.template), None)
    if chosen is not None:
        select["initial_option"] = _template_option(chosen)
    needs = "; ".join(f"{t.name}: {', '.join(t.required) or 'nothing extra'}" for t in templates)
    return input_block(
        B_TEMPLATE,
        "Template",
        select,
        optional=False,
        hint=f"Variables each template needs. {needs}",
    )


def _from_field(senders: Sequence[tuple[str, str]], form: ComposeForm) -> dict[str, Any]:
    """The accounts this person may send from; their own (the first) by default."""
    options = [{"text": plain(label, 75), "value": address} for address, label in senders]
    chosen = next((o for o in options if o["value"] == form.sender), options[0])
    select = {"type": "static_select", "options": options, "initial_option": chosen}
    return input_block(
        B_FROM,
        "From",
        select,
        optional=False,
        hint="Each account sends at its own Gmail rate and daily limit.",
    )


def _people(form: ComposeForm) -> dict[str, Any]:
    people: dict[str, Any] = {"type": "multi_users_select", "placeholder": plain("Pick people")}
    if form.people:
        people["initial_users"] = list(form.people)
    return people


def audience_fields(form: ComposeForm) -> list[dict[str, Any]]:
    """User groups, channels' members, and whether guests among them are included."""
    groups: dict[str, Any] = {
        "type": "multi_external_select",
        "action_id": A_GROUPS,
        "placeholder": plain("Type to find a user group"),
        "min_query_length": 0,
        "max_selected_items": MAX_AUDIENCES,
    }
    if form.groups:
        groups["initial_options"] = [
            {"text": plain(g["text"], 75), "value": g["value"]} for g in form.groups
        ]
    channels: dict[str, Any] = {
        "type": "multi_conversations_select",
        "placeholder": plain("Pick channels"),
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
        "max_selected_items": MAX_AUDIENCES,
    }
    if form.channels:
        channels["initial_conversations"] = list(form.channels)
    guests: dict[str, Any] = {
        "type": "checkboxes",
        "options": [
            {
                "text": plain("Include guests from these groups and channels"),
                "value": OPT_INCLUDE_GUESTS,
            }
        ],
    }
    if form.include_guests:
        guests["initial_options"] = guests["options"]
    return [
        input_block(
            B_GROUPS,
            "Slack user groups",
            groups,
            hint="Everyone in the group, e.g. @design-team.",
        ),
        input_block(
            B_CHANNELS,
            "Members of channels",
            channels,
            hint="Everyone in the channel. For a private channel, invite me first. "
            "Bots, deactivated accounts and people without a visible email are left "
            "out and counted in the preview.",
        ),
        input_block(B_GUESTS, "Guests", guests),
    ]


def _channel(form: ComposeForm) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "type": "conversations_select",
        "placeholder": plain("Where progress is posted"),
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if form.channel:
        channel["initial_conversation"] = form.channel
    else:
        channel["default_to_current_conversation"] = True
    return channel


def _options(form: ComposeForm) -> dict[str, Any]:
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
    return options


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
