"""Turn pasted text, CSV uploads and Slack users into validated recipients.

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

import csv
import io
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import email_validator
from email_validator import EmailNotValidError, EmailUndeliverableError

from bot.errors import UserInputError
from bot.handlers.values import describe_invisible, invisible_character, reserved_as
from bot.models import Recipient, RecipientList, Rejected

if TYPE_CHECKING:
    import dns.resolver

MAX_PASTE_BYTES = 1_000_000
MAX_CSV_BYTES = 10_000_000  # Slack's file_input limit; larger lists belong in several campaigns
MAX_ENTRY_CHARS = 320  # 64 (local part) + "@" + 255 (domain): nothing longer is valid
# Before validating, refuse inputs whose entry count is far beyond the limit: even
# if four in five entries were duplicates or invalid, the list would still be too big.
EARLY_LIMIT_FACTOR = 5
DNS_TIMEOUT = 3
# When this many domains got no DNS answer, DNS is down: each further lookup would
# cost DNS_TIMEOUT seconds and could not reject anything, so stop asking.
DNS_GIVE_UP_AFTER = 3

EMAIL_COLUMNS = frozenset({"email", "e_mail", "email_address", "e_mail_address"})
NAME_COLUMN = "name"
# Names a template cannot use as a plain variable: Jinja literals and operators,
# and names Jinja binds itself inside templates, loops and macros.
RESERVED_VARIABLES = frozenset(
    {"true", "false", "none", "not", "self", "loop", "caller", "varargs", "kwargs"}
)

# Separators outside quoted strings and angle brackets. Quoted strings and
# <addresses> are matched (and skipped) so commas inside them do not split.
_PASTE_TOKENS = re.compile(r'"(?:[^"\\\r\n]|\\[^\r\n])*"?|<[^>\r\n]*>?|(\r\n|[\r\n])|[,;\t]')
_QUOTED_NAME = re.compile(r'"((?:[^"\\]|\\.)*)"(.*)', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BINARY = re.compile(rb"[\x00-\x08\x0e-\x1f]")
_QUOTED_TEXT = re.compile(r'"[^"]*"')
_COLUMN_SEPARATORS = re.compile(r"[\s\-]+")

_resolver: dns.resolver.Resolver | None = None
_resolver_lock = threading.Lock()


class _Reject(Exception):
    """One entry is unusable; the message is the human reason."""


@dataclass(frozen=True)
class _Layout:
    """Where the CSV keeps the address, the name and each template variable."""

    email: int
    name: int | None
    variables: tuple[tuple[int, str], ...]
    width: int


def parse_text(
    text: str, *, check_deliverability: bool = False, max_recipients: int = 2000
) -> RecipientList:
    """Parse a pasted list: ``a@x.com, Bob <b@x.com>; "Smith, Ann" <ann@x.com>``.

    Entries are separated by commas, semicolons, tabs or line breaks; separators
    inside double quotes or angle brackets do not count. Line numbers are the
    1-based line of the paste. An empty paste gives an empty list: the caller
    decides whether another source (a CSV, Slack people) makes up for it.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_PASTE_BYTES:
        raise UserInputError(
            f"The pasted text is {_megabytes(size)}; pasting is limited to 1 MB. "
            "Upload the list as a CSV file instead.",
            field="recipients",
        )
    entries = list(_split_paste(text))
    _check_early(len(entries), max_recipients, "The pasted list", "entries", "recipients")
    result = _dedupe(_accept(entry, line, "paste") for line, entry in entries)
    enforce_limit(result, max_recipients, what="The pasted list", field="recipients")
    if check_deliverability:
        _drop_undeliverable(result)
    return result


def parse_csv(
    data: bytes,
    *,
    check_deliverability: bool = False,
    max_recipients: int = 2000,
    filename: str = "recipients.csv",
) -> RecipientList:
    """Parse an uploaded CSV with an ``email`` column, an optional ``name`` column
    and any number of template-variable columns.

    Exports from Excel (any locale: BOM, ``;`` or tab, CRLF) and Google Sheets are
    read as they are. Only UTF-8 is accepted: Latin-1, Windows-1252 and Mac Roman
    all decode any bytes, so a wrong guess would garble names in hundreds of
    greetings without any error.
    ``columns`` of the result lists the variable names in header order; ``email``
    and ``name`` are fields of every ``Recipient``, not variables.
    """
    text = _decode(data, filename)
    delimiter = _sniff_delimiter(text)
    rows = _csv_rows(text, delimiter, filename)
    header_line, header = next(rows, (0, []))
    if not header:
        raise UserInputError(f"{filename} is empty.", field="csv")
    layout = _layout(header, filename, header_line)
    body = list(rows)
    if not body:
        raise UserInputError(
            f"{filename} has no rows: add one row per recipient under the header.",
            field="csv",
        )
    _check_early(len(body), max_recipients, filename, "rows", "csv")
    result = _dedupe(_csv_candidates(body, layout, delimiter))
    result.columns = [name for _, name in layout.variables]
    enforce_limit(result, max_recipients, what=filename, field="csv")
    if check_deliverability:
        _drop_undeliverable(result)
    return result


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
            candidates.append(_accept(email, 0, "slack", shown=mention, name=name or ""))
    return _dedupe(candidates)


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


def _split_paste(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line, entry)`` for every non-blank entry of a paste."""
    line, start = 1, 0
    for match in _PASTE_TOKENS.finditer(text):
        if match.group(0)[0] in '"<':
            continue
        entry = text[start : match.start()].strip()
        if entry:
            yield line, entry
        if match.group(1):
            line += 1
        start = match.end()
    entry = text[start:].strip()
    if entry:
        yield line, entry


def _accept(
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
        return Rejected(line, _clip(shown if shown is not None else text), str(problem))


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
    try:
        valid = email_validator.validate_email(
            address, check_deliverability=False, allow_smtputf8=False
        )
    except EmailNotValidError as err:
        raise _Reject(f"is not a valid address: {err}") from None
    return valid.normalized


def _dedupe(candidates: Iterable[Recipient | Rejected]) -> RecipientList:
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


def _check_early(count: int, max_recipients: int, what: str, unit: str, field: str) -> None:
    if count > EARLY_LIMIT_FACTOR * max_recipients:
        raise UserInputError(
            f"{what} has {count:,} {unit}, far more than the limit of {max_recipients:,} "
            "recipients (MAX_RECIPIENTS_PER_CAMPAIGN). Split it into smaller campaigns.",
            field=field,
        )


def _drop_undeliverable(result: RecipientList) -> None:
    """Move recipients whose domain cannot receive mail to ``rejected``.

    One lookup per domain: a list of 2,000 colleagues usually has a handful of
    domains, and the shared resolver's cache does not remember timeouts.
    """
    verdicts: dict[str, str | None] = {}
    unanswered = 0
    kept: list[Recipient] = []
    for recipient in result.recipients:
        domain = recipient.email.rpartition("@")[2].lower()
        if domain not in verdicts:
            if unanswered >= DNS_GIVE_UP_AFTER:
                verdicts[domain] = None
            else:
                verdicts[domain], answered = _lookup(recipient.email)
                unanswered += not answered
        problem = verdicts[domain]
        if problem is None:
            kept.append(recipient)
        else:
            result.rejected.append(Rejected(recipient.line, recipient.email, problem))
    result.recipients = kept
    result.rejected.sort(key=lambda item: item.line)


def _lookup(address: str) -> tuple[str | None, bool]:
    """``(reason to reject or None, whether DNS answered)`` for one address's domain.

    Timeouts and resolver failures say nothing about the domain, so they never
    reject an address.
    """
    import dns.resolver  # email-validator imports it lazily too: it is slow to load

    try:
        valid = email_validator.validate_email(
            address,
            check_deliverability=True,
            allow_smtputf8=False,
            dns_resolver=_dns_resolver(),
        )
    except EmailUndeliverableError as err:
        cause = err.__cause__
        if cause is not None and not isinstance(
            cause, dns.resolver.NXDOMAIN | dns.resolver.NoAnswer
        ):
            return None, False
        return f"is not a valid address: {err}", True
    return None, getattr(valid, "mx", None) is not None


def _dns_resolver() -> dns.resolver.Resolver:
    """The process-wide caching resolver, built on first use.

    One per call would throw its cache away; none at all would make
    email-validator change the lifetime of dnspython's global resolver.
    """
    global _resolver
    with _resolver_lock:
        if _resolver is None:
            _resolver = email_validator.caching_resolver(timeout=DNS_TIMEOUT)
        return _resolver


def _decode(data: bytes, filename: str) -> str:
    """The file as text, or a UserInputError saying how to export it properly."""
    if len(data) > MAX_CSV_BYTES:
        raise UserInputError(
            f"{filename} is {_megabytes(len(data))}; the limit is 10 MB. "
            "Split the list into smaller files.",
            field="csv",
        )
    if data.startswith(b"PK\x03\x04"):
        raise UserInputError(
            f"{filename} is an Excel workbook, not a CSV file. "
            "Save it as 'CSV UTF-8' and upload that.",
            field="csv",
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserInputError(
            f"{filename} is saved as UTF-16 ('Unicode Text'). "
            "Save it as 'CSV UTF-8' and upload it again.",
            field="csv",
        )
    binary = _BINARY.search(data)
    if binary:
        line = data.count(b"\n", 0, binary.start()) + 1
        raise UserInputError(
            f"{filename} contains binary data (byte 0x{data[binary.start()]:02x} on line "
            f"{line}), so it is not a CSV text file. Save it as 'CSV UTF-8'.",
            field="csv",
            line=line,
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise UserInputError(
            f"{filename} is not UTF-8 text (line {line} has the byte "
            f"0x{data[err.start]:02x}). In Excel or Google Sheets, save it as 'CSV UTF-8' "
            "and upload it again.",
            field="csv",
            line=line,
        ) from None
    if not text.strip():
        raise UserInputError(f"{filename} is empty.", field="csv")
    return text


def _sniff_delimiter(text: str) -> str:
    """Comma, semicolon or tab: whichever the header line uses most.

    csv.Sniffer guesses from the whole sample and is easily fooled by commas in
    names; the header is short, plain, and written by the exporting program.
    """
    header = text.lstrip("\r\n").split("\n", 1)[0]
    unquoted = _QUOTED_TEXT.sub("", header)
    counts = {delimiter: unquoted.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _csv_rows(text: str, delimiter: str, filename: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line where the row starts, cells)``, skipping blank rows.

    ``strict`` makes a quote that is never closed an error: the lenient reader
    would silently swallow every later row into one field.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    ended = 0
    try:
        for cells in reader:
            start, ended = ended + 1, reader.line_num
            if any(cell.strip() for cell in cells):
                yield start, cells
    except csv.Error as err:
        line = ended + 1
        problem = (
            'a quoted field starts here but its closing quote (") is missing'
            if "end of data" in str(err)
            else f'{err}; check the quotes (") on that line'
        )
        raise UserInputError(
            f"{filename} line {line}: {problem}.", field="csv", line=line
        ) from None


def _layout(header: list[str], filename: str, line: int) -> _Layout:
    """Find the columns, refusing names a template could not use."""
    cells = [cell.strip() for cell in header]
    while cells and not cells[-1]:  # spreadsheets export formatted empty columns
        cells.pop()
    keys = [_column_key(cell) for cell in cells]
    if "email" not in keys:
        found = ", ".join(repr(cell) for cell in cells)
        hint = (
            "The first row must be a header naming the columns, e.g. 'email,name'."
            if any("@" in cell for cell in cells)
            else "Add a column named 'email'."
        )
        raise UserInputError(
            f"{filename} has no email column. Columns found: {found}. {hint}",
            field="csv",
            line=line,
        )
    name: int | None = None
    variables: list[tuple[int, str]] = []
    seen: dict[str, str] = {}
    for index, (raw, key) in enumerate(zip(cells, keys, strict=True)):
        if not raw:
            problem = f"column {index + 1} of the header has no name. Name it or delete the column."
        elif key in seen:
            problem = (
                f"the columns {seen[key]!r} and {raw!r} both mean {key!r}. "
                "Rename or delete one of them."
            )
        elif key != "email" and key != NAME_COLUMN and not _usable_variable(key):
            problem = (
                f"the column {raw!r} cannot be used in a template. Rename it with "
                "letters, digits, spaces and '_' (not starting with a digit)."
            )
        elif (reserved := reserved_as(raw, for_everyone=False)) is not None:
            problem = (
                f"the column {raw!r} cannot be used: {reserved!r} is reserved, because "
                "mailbolt sets it from its settings. Rename or delete the column."
            )
        else:
            seen[key] = raw
            if key == NAME_COLUMN:
                name = index
            elif key != "email":
                variables.append((index, key))
            continue
        raise UserInputError(f"{filename}: {problem}", field="csv", line=line)
    return _Layout(keys.index("email"), name, tuple(variables), len(cells))


def _column_key(header: str) -> str:
    """``" E-mail Address "`` → ``email``; ``"First Name"`` → ``first_name``."""
    key = _COLUMN_SEPARATORS.sub("_", header.strip().lower())
    return "email" if key in EMAIL_COLUMNS else key


def _usable_variable(key: str) -> bool:
    return key.isidentifier() and key not in RESERVED_VARIABLES


def _csv_candidates(
    rows: list[tuple[int, list[str]]], layout: _Layout, delimiter: str
) -> Iterator[Recipient | Rejected]:
    for line, cells in rows:
        if len(cells) != layout.width and (
            len(cells) < layout.width or any(cell.strip() for cell in cells[layout.width :])
        ):
            yield Rejected(
                line,
                _clip(delimiter.join(cells)),
                f"has {len(cells)} fields but the header has {layout.width}",
            )
            continue
        address = cells[layout.email].strip()
        yield _accept(
            address,
            line,
            "csv",
            shown=address or delimiter.join(cells),
            name="" if layout.name is None else cells[layout.name].strip(),
            variables={key: cells[index].strip() for index, key in layout.variables},
        )


def _clip(text: str) -> str:
    """Keep rejected entries small: a 1 MB line helps nobody in an error message."""
    return text if len(text) <= MAX_ENTRY_CHARS else text[:MAX_ENTRY_CHARS] + "…"


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"
