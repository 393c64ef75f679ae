"""The vocabulary every Slack surface shares: block and action ids, Slack's length
limits, and the small builders (text, section, button, modal, input) the views
are made of.

Owns: ``clip`` and ``escape`` — anything built from user data passes through them,
so it stays inside Slack's limits (modal titles and buttons ≤ 24 characters, a
section ≤ 3,000, an option ≤ 75, a message ≤ 50 blocks) and mentions nobody.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from bot.timefmt import utc_minute

# Block ids of the compose modal: ``response_action: errors`` is keyed by them.
B_TEMPLATE = "template"
B_RECIPIENTS = "recipients"
B_PEOPLE = "people"
B_CSV = "csv"
B_ATTACHMENTS = "attachments"
B_SUBJECT = "subject"
B_VARIABLES = "variables"
B_CHANNEL = "channel"
B_OPTIONS = "options"
B_CONFIRM = "confirm"
B_FROM = "sender"  # the account the campaign is sent from
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
A_CONNECT_GMAIL = "connect_gmail"
A_DISCONNECT_GMAIL = "disconnect_gmail"

OPT_SKIP_INVALID = "skip_invalid"
OPT_CONFIRMED = "confirmed"

MAX_PASTE_CHARS = 3000  # Slack's plain_text_input ceiling
MAX_SUBJECT_CHARS = 250  # bot.handlers.template_compile.MAX_SUBJECT_OVERRIDE
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


def input_block(
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


def text_input(initial: str, placeholder: str, *, multiline: bool, max_length: int) -> dict:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "multiline": multiline,
        "max_length": max_length,
        "placeholder": plain(placeholder, 150),
    }
    if initial:
        element["initial_value"] = initial[:max_length]
    return element


def progress_bar(done: int, total: int, width: int = PROGRESS_WIDTH) -> str:
    """``▓▓▓▓▓░░░░░ 50%`` (monospace in Slack's code span)."""
    share = done / total if total else 1.0
    filled = round(share * width)
    return f"`{'▓' * filled}{'░' * (width - filled)}` {share:.0%}"


def when(timestamp: float) -> str:
    """A Slack date token, shown in each reader's own time zone."""
    fallback = utc_minute(timestamp)
    return f"<!date^{int(timestamp)}^{{date_short_pretty}} at {{time}}|{fallback}>"


def value_of(values: Mapping[str, Any], block_id: str) -> dict[str, Any]:
    """The submitted value of one input block (every input uses ``ACTION``)."""
    return (values.get(block_id) or {}).get(ACTION) or {}
