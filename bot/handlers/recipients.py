"""What a usable recipient is: the validation every source of recipients shares.

This module owns turning one entry into a ``Recipient`` or a ``Rejected`` line,
de-duplication, the per-campaign limit, the summary of dropped entries, and
recipients from Slack users. Pasted text is ``recipient_paste``, CSV uploads
``recipient_csv``, the DNS deliverability check ``recipient_dns``.

Input comes from people, so every problem becomes either a ``Rejected`` line the
sender can read and fix, or, when the whole input is unusable, a
``UserInputError`` naming the field. Size and count limits run before any
per-address work, so a huge paste or file fails in milliseconds instead of tying up
a Slack worker thread.

Display names end up in the ``To:`` header, so a name containing a line break, a
control character, an invisible or direction-changing character (a bidi override,
a zero-width space) or an RFC 2047 encoded word (``=?``, the CVE-2024-6923 header
smuggling trick) is *rejected*, never cleaned: silently editing a name would hide
an attack from the sender and surprise an honest one, while a rejected line says
exactly what to fix. The same rule applies to addresses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import email_validator
from email_validator import EmailNotValidError
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from bot.errors import UserInputError
from bot.handlers.values import describe_invisible, invisible_character
from bot.models import Recipient, RecipientList, Rejected

MAX_ENTRY_CHARS = 320  # 64 (local part) + "@" + 255 (domain): nothing longer is valid
# Before validating, refuse inputs whose entry count is far beyond the limit: even
# if four in five entries were duplicates or invalid, the list would still be too big.
EARLY_LIMIT_FACTOR = 5

_QUOTED_NAME = re.compile(r'"((?:[^"\\]|\\.)*)"(.*)', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# An ASCII dot-atom local part, exactly as email-validator's DOT_ATOM_TEXT (RFC 5322 3.2.3).
_ATEXT = r"a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~"
_PLAIN_LOCAL = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*\Z")
_MAX_ADDRESS_BYTES = 254  # RFC 5321 4.5.3.1.3, as email-validator counts it (UTF-8)
_CASE_INSENSITIVE = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_MAX_KNOWN_DOMAINS = 10_000
_known_domains: dict[str, tuple[str, str]] = {}
"""Domains email-validator accepted: as written → (normalized, IDNA ASCII)."""


class _Reject(Exception):
    """One entry is unusable; the message is the human reason."""


def from_slack_users(users: list[dict[str, Any]]) -> RecipientList:
    """Recipients from Slack ``users.info`` user objects (line 0, source ``slack``).

    People the app cannot mail (no visible email, bots, deactivated accounts) are
    rejected with their ``<@ID>`` mention as text and their name in the reason,
    so the sender knows whom to reach another way.
    """
    candidates: list[Recipient | Rejected] = []
    for user in users:
        profile = user.get("profile") or {}
        mention = f"<@{user.get('id', '?')}>"
        name = user.get("real_name") or profile.get("real_name") or profile.get("display_name")
        who = name or user.get("name") or mention
        email = (profile.get("email") or "").strip()
        if user.get("deleted"):
            candidates.append(Rejected(0, mention, f"({who}) has a deactivated Slack account"))
        elif user.get("is_bot") or user.get("id") == "USLACKBOT":
            candidates.append(Rejected(0, mention, f"({who}) is a bot"))
        elif not email:
            candidates.append(
                Rejected(
                    0,
                    mention,
                    f"({who}) has no email address visible to this app "
                    "(it needs the users:read.email scope; guests may hide theirs)",
                )
            )
        else:
            candidates.append(accept(email, 0, "slack", shown=mention, name=name or ""))
    return dedupe(candidates)


def enforce_limit(
    recipients: RecipientList,
    max_recipients: int,
    *,
    what: str = "The campaign",
    field: str = "recipients",
) -> None:
    """Refuse a list with more valid recipients than one campaign may have.

    Public so the edges can check again after merging sources with ``extend``.
    """
    count = len(recipients.recipients)
    if count > max_recipients:
        raise UserInputError(
            f"{what} has {count:,} recipients, more than the limit of {max_recipients:,} "
            "(MAX_RECIPIENTS_PER_CAMPAIGN). Split it into smaller campaigns.",
            field=field,
        )


def summarize(items: list[Rejected], limit: int = 5) -> str:
    """A one-paragraph account of dropped entries, short enough for a Slack modal:
    ``line 3: 'bob@' is not a valid address …; and 12 more``."""
    shown = "; ".join(
        str(item) if item.line else f"{item.text} {item.reason}" for item in items[:limit]
    )
    more = len(items) - limit
    return f"{shown}; and {more:,} more" if more > 0 else shown


def accept(
    text: str,
    line: int,
    source: str,
    *,
    shown: str | None = None,
    name: str = "",
    variables: dict[str, str] | None = None,
) -> Recipient | Rejected:
    """One entry as a Recipient, or as a Rejected showing ``shown`` (default: the entry)."""
    try:
        return _recipient(text, line, source, name, variables or {})
    except _Reject as problem:
        return Rejected(line, clip(shown if shown is not None else text), str(problem))


def _recipient(
    text: str, line: int, source: str, name: str, variables: dict[str, str]
) -> Recipient:
    if len(text) > MAX_ENTRY_CHARS:
        raise _Reject(f"is longer than {MAX_ENTRY_CHARS} characters")
    entry_name, address = _split_entry(text)
    name = name or entry_name
    _check_name(name)
    return Recipient(_normalize(address), name, variables, line, source)


def _split_entry(text: str) -> tuple[str, str]:
    """``Name <addr>``, ``"Quoted, Name" <addr>``, ``<addr>`` or ``addr`` → (name, addr)."""
    text = text.strip()
    if text.startswith('"'):
        quoted = _QUOTED_NAME.fullmatch(text)
        if quoted is None:
            raise _Reject('has an unclosed quote (")')
        rest = quoted.group(2).strip()
        if not (rest.startswith("<") and rest.endswith(">")):
            raise _Reject("has a quoted name but no <address> after it")
        return _QUOTED_PAIR.sub(r"\1", quoted.group(1)).strip(), rest[1:-1].strip()
    if text.endswith(">") and "<" in text:
        bracket = text.rfind("<")
        return text[:bracket].strip(), text[bracket + 1 : -1].strip()
    return "", text


def _check_name(name: str) -> None:
    if len(name) > MAX_ENTRY_CHARS:
        raise _Reject(f"has a name longer than {MAX_ENTRY_CHARS} characters")
    if _CONTROL.search(name):
        raise _Reject("has a line break or control character in its name")
    if "=?" in name:
        raise _Reject("has '=?' in its name, which could smuggle extra mail headers")
    code = invisible_character(name)
    if code is not None:
        raise _Reject(
            f"has an invisible or direction-changing character in its name "
            f"({describe_invisible(code)}), which can make it read as something else"
        )


def _normalize(address: str) -> str:
    if not address:
        raise _Reject("has no email address")
    if _CONTROL.search(address):
        raise _Reject("contains a line break or control character")
    if "=?" in address:
        raise _Reject("contains '=?', which could smuggle extra mail headers")
    known = _known_address(address)
    if known is not None:
        return known
    try:
        valid = email_validator.validate_email(
            address, check_deliverability=False, allow_smtputf8=False
        )
    except EmailNotValidError as err:
        raise _Reject(f"is not a valid address: {err}") from None
    _remember_domain(address, valid.domain, valid.ascii_domain)
    return valid.normalized


def _known_address(address: str) -> str | None:
    """The normalized form email-validator would return, if it can be had cheaply.

    Most of email-validator's time goes to the domain (IDNA, Unicode tables),
    and a list has few distinct domains. An address whose local part is a plain
    ASCII dot-atom and whose domain the validator already accepted in this
    process differs from that accepted address only in the local part, which
    the validator would accept as it is (lower-casing RFC 2142 role names) —
    given the length limits below. Anything else (quotes, non-ASCII local part,
    a new domain) is validated in full. tests/test_e_preflight_fast.py compares
    this with email-validator on crafted addresses.
    """
    local, at, domain = address.rpartition("@")
    known = _known_domains.get(domain) if at else None
    if known is None or not _PLAIN_LOCAL.match(local):
        return None
    if local.lower() in _CASE_INSENSITIVE:
        local = local.lower()
    normalized = f"{local}@{known[0]}"
    for form in (address, normalized, f"{local}@{known[1]}"):
        if len(form.encode()) > _MAX_ADDRESS_BYTES:
            return None
    return normalized


def _remember_domain(address: str, domain: str, ascii_domain: str | None) -> None:
    local, at, written = address.rpartition("@")
    if at and ascii_domain and _PLAIN_LOCAL.match(local):
        if len(_known_domains) >= _MAX_KNOWN_DOMAINS:
            _known_domains.clear()
        _known_domains[written] = (domain, ascii_domain)


def dedupe(candidates: Iterable[Recipient | Rejected]) -> RecipientList:
    """Collect candidates; the first occurrence of an address (any case) wins."""
    result = RecipientList()
    first: dict[str, Recipient] = {}
    for candidate in candidates:
        if isinstance(candidate, Rejected):
            result.rejected.append(candidate)
            continue
        key = candidate.email.lower()
        earlier = first.get(key)
        if earlier is None:
            first[key] = candidate
            result.recipients.append(candidate)
        else:
            where = f"line {earlier.line}" if earlier.line else earlier.name or earlier.email
            result.duplicates.append(
                Rejected(candidate.line, candidate.email, f"is a duplicate of {where}")
            )
    return result


def check_early(count: int, max_recipients: int, what: str, unit: str, field: str) -> None:
    if count > EARLY_LIMIT_FACTOR * max_recipients:
        raise UserInputError(
            f"{what} has {count:,} {unit}, far more than the limit of {max_recipients:,} "
            "recipients (MAX_RECIPIENTS_PER_CAMPAIGN). Split it into smaller campaigns.",
            field=field,
        )


def clip(text: str) -> str:
    """Keep rejected entries small: a 1 MB line helps nobody in an error message."""
    return text if len(text) <= MAX_ENTRY_CHARS else text[:MAX_ENTRY_CHARS] + "…"


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"
