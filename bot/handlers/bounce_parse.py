"""Bounce reports (RFC 3464 DSNs) → which of our messages bounced, and how.

Pure functions over bytes, so every rule is testable without a mailbox; the
scan that records what they find is ``bot/handlers/bounces.py``, the Gmail
calls that fetch the reports are ``bot/mail/bounces.py``.

Why these rules:
- Only ``multipart/report; report-type=delivery-status`` is read. Free-text
  bounces vary by server and language; guessing from prose would suppress
  people by mistake.
- ``Action: failed`` with a 5.x.x status is a hard bounce (the address does not
  exist, the domain has no mail server): that address gets no more mail. A 4.x.x
  failure is soft (mailbox full, the server gave up retrying): recorded and
  counted, not suppressed. ``delayed`` is not a bounce: the server is still
  trying, and counting it would inflate the bounce rate.
- A report is ours only if the returned headers carry the Message-ID of a
  message we sent **and** the failed recipient is that message's recipient
  (``Final-Recipient``, or ``Original-Recipient`` when a forward failed further
  along). A failure at some forwarding address we never wrote to suppresses
  nobody.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from typing import Any

from bot.records import Message as StoredMessage

HARD, SOFT = "hard", "soft"
UNMATCHED = "unmatched"
"""Kinds stored in ``bounces.kind``; ``unmatched`` marks a report read but not ours."""
MAX_DIAGNOSTIC = 300

_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_BRACKETED = re.compile(r"<([^<>]+)>")


@dataclass(frozen=True)
class FailedRecipient:
    """One per-recipient block of a DSN that reports a failure."""

    recipient: str
    original_recipient: str
    kind: str
    status: str
    diagnostic: str


@dataclass(frozen=True)
class DeliveryReport:
    """What a DSN says: the Message-ID it is about (if returned) and its failures."""

    message_id: str | None
    failures: tuple[FailedRecipient, ...]


@dataclass(frozen=True)
class Bounce:
    """A failure matched to one of our messages, ready to record."""

    message_row_id: int
    campaign_id: int
    email: str
    kind: str
    status: str
    diagnostic: str


def _address(field: str | None) -> str:
    """``rfc822; Bob@Example.com`` → ``bob@example.com``."""
    if not field:
        return ""
    value = str(field).split(";", 1)[-1]
    return value.strip().strip("<>").strip().lower()


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DIAGNOSTIC else text[: MAX_DIAGNOSTIC - 1] + "…"


def normalize_message_id(value: str | None) -> str | None:
    """``<id@host>`` however it was folded, commented or bracketed; None if there is none."""
    text = "".join(str(value or "").split())
    found = _BRACKETED.search(text)
    bare = found.group(1) if found else text.strip("<>")
    return f"<{bare}>" if bare else None


def _failure(block: Message) -> FailedRecipient | None:
    action = str(block.get("Action", "")).strip().lower()
    diagnostic = _one_line(str(block.get("Diagnostic-Code", "")))
    found = _STATUS.search(str(block.get("Status", ""))) or _STATUS.search(diagnostic)
    status = found.group() if found else ""
    if action and action != "failed":
        return None  # delayed, delivered, relayed, expanded
    if not status or status[0] == "2":
        return None
    recipient = _address(block.get("Final-Recipient"))
    if not recipient:
        return None
    return FailedRecipient(
        recipient=recipient,
        original_recipient=_address(block.get("Original-Recipient")),
        kind=HARD if status[0] == "5" else SOFT,
        status=status,
        diagnostic=diagnostic,
    )


def _returned_message_id(part: Message) -> str | None:
    kind = part.get_content_type()
    if kind == "message/rfc822":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        return normalize_message_id(inner.get("Message-ID")) if isinstance(inner, Message) else None
    if kind == "text/rfc822-headers":
        text = part.get_payload(decode=True) or b""
        if not isinstance(text, bytes):
            return None
        headers = HeaderParser(policy=email.policy.default).parsestr(
            text.decode("utf-8", "replace")
        )
        return normalize_message_id(headers.get("Message-ID"))
    return None


def parse_dsn(raw: bytes) -> DeliveryReport | None:
    """The report in ``raw``, or None if it is not an RFC 3464 delivery-status report."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception:  # a mailbox holds anything; an unparsable message is just not a DSN
        return None
    reports = [
        part
        for part in message.walk()
        if part.get_content_type() == "multipart/report"
        and str(part.get_param("report-type") or "").lower() == "delivery-status"
    ]
    if not reports:
        return None
    failures: list[FailedRecipient] = []
    message_id: str | None = None
    for report in reports:
        for part in report.get_payload():
            if not isinstance(part, Message):
                continue
            if part.get_content_type() == "message/delivery-status":
                blocks: Any = part.get_payload()
                for block in blocks if isinstance(blocks, list) else []:
                    failure = _failure(block)
                    if failure is not None:
                        failures.append(failure)
            else:
                message_id = message_id or _returned_message_id(part)
    return DeliveryReport(message_id, tuple(failures))


def match_bounce(
    report: DeliveryReport, find_message: Callable[[str], StoredMessage | None]
) -> Bounce | None:
    """The failure in ``report`` about a message we sent to that same recipient, if any.

    ``find_message`` looks a Message-ID up among our messages (``Outbox.find_by_message_id``).
    Each of our messages has one recipient, so there is at most one match; should a
    report list that recipient twice, a hard failure outweighs a soft one.
    """
    if report.message_id is None or not report.failures:
        return None
    row = find_message(report.message_id)
    if row is None:
        return None
    ours = row.email.strip().lower()
    mine = [f for f in report.failures if ours in (f.recipient, f.original_recipient)]
    if not mine:
        return None
    failure = min(mine, key=lambda f: f.kind != HARD)
    return Bounce(
        message_row_id=row.id,
        campaign_id=row.campaign_id,
        email=ours,
        kind=failure.kind,
        status=failure.status,
        diagnostic=failure.diagnostic,
    )
