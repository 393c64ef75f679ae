"""A campaign's per-recipient results as a CSV file anyone can take away.

One function builds the file for both edges: ``/sendmail export ID`` posts it in
the conversation, ``python -m bot export ID`` writes it. It must be safe to open
in a spreadsheet: a cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR would
otherwise run as a formula (CSV injection, OWASP), so such a cell gets a leading
``'`` (``safe_cell``, the one rule every export here uses, the unsubscribe list's too).

Who may take it: a campaign's results are personal data, so in Slack only the
person who started the campaign and the admins (``ADMIN_SLACK_USERS``); on the
command line, whoever runs it (they can read the database anyway).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from bot.errors import UserInputError
from bot.handlers import scope
from bot.ports import StoreParts
from bot.records import Campaign, Message, MessageState
from bot.timefmt import utc_iso

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ("address", "name", "state", "time", "gmail_message_id", "error")
#: Who the command line acts as in the audit log.
CLI_ACTOR = "cli"


def safe_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text, never evaluates as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_text(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """CSV text with every cell quoted and formula-safe, CRLF line ends (RFC 4180)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(safe_cell(v) for v in row)
    return buffer.getvalue()


@dataclass(frozen=True)
class Export:
    """A campaign's results file: its name, its text and how many rows it has."""

    campaign_id: int
    filename: str
    text: str
    rows: int

    @property
    def data(self) -> bytes:
        """The file's bytes: UTF-8 with a byte-order mark, which spreadsheet programs
        need to read it as UTF-8 (Excel guesses a legacy code page otherwise)."""
        return self.text.encode("utf-8-sig")


def result_row(message: Message) -> tuple[str, str, str, str, str, str]:
    """One recipient's line: when it was sent (or last changed), Gmail's id, the error."""
    moment = message.sent_at if message.state == MessageState.SENT else message.updated_at
    return (
        message.email,
        message.name,
        MessageState(message.state).value,
        utc_iso(moment),
        message.provider_id or "",
        message.last_error or "",
    )


def may_export(campaign: Campaign, user: str, admins: Collection[str]) -> bool:
    """The campaign's owner and the admins may take its results."""
    return user == campaign.requested_by or user in admins


def export_campaign(
    store: StoreParts,
    campaign_id: int,
    *,
    actor: str,
    admins: Collection[str] | None = None,
    team: str | None = None,
) -> Export:
    """The results of ``campaign_id`` as CSV, audited as taken by ``actor``.

    ``admins`` None means no ownership check (the command line); otherwise
    ``actor`` must own the campaign or be one of them. ``team``: the asker's
    workspace (None: the operator); another workspace's campaign does not exist.
    """
    campaign = scope.campaign_of(store, campaign_id, team)
    if admins is not None and not may_export(campaign, actor, admins):
        raise UserInputError(
            f"Only the person who started campaign #{campaign_id} and the admins "
            "(ADMIN_SLACK_USERS) may export its results: they list people's addresses.",
            field="campaign",
        )
    messages = store.outbox.messages(campaign_id)
    text = csv_text(COLUMNS, (result_row(m) for m in messages))
    store.audit.record(actor, "campaign.exported", campaign_id=campaign_id, rows=len(messages))
    return Export(campaign_id, f"campaign-{campaign_id}-results.csv", text, len(messages))
