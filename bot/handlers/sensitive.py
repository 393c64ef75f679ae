"""Refuse to send messages that carry payment cards, credentials or US SSNs.

The danger is accidental: a CSV exported with a card or password column, a
template someone pasted a test key into, "Your password: {{ password }}". So
every rendered message is scanned (subject, text part, and the HTML part as the
reader sees it, its link targets, and for keys its whole markup) and a hit
blocks the whole campaign before anything is recorded or sent. Findings name the
recipient, the part and the variable the value came from, but never the value:
even "ending in 4242" would put part of a card number into Slack and the logs.

Rules, chosen to keep false positives rare without missing real data:
- Payment cards: 13–19 digits, optionally grouped by single spaces or dashes,
  that pass the Luhn check **and** start with an issuer prefix of a major network
  at a length it issues (Visa, Mastercard, Amex, Discover, JCB, Diners,
  UnionPay, Maestro). Order numbers, phone numbers, dates and long IDs fail on
  length, prefix or Luhn. A number glued to letters or to more digits (across
  one space or dash) is part of something longer, such as a tracking code, and
  is not taken apart.
- Credentials: ``password``/``passwd``/``passcode``/``pwd`` (optionally followed
  by "is") then ``:`` or ``=`` and a value on the same line; a value made only of
  ``*`` or ``•`` is a mask and a link is a reset URL, neither is a password.
  Slack tokens ``xox[abposr]-…`` and ``xapp-…``; Google API keys ``AIza`` + 35
  characters; AWS access key IDs ``AKIA``/``ASIA`` + 16; any
  ``-----BEGIN … PRIVATE KEY-----`` line.
- US SSNs: ``ddd-dd-dddd`` whose area is not 000, 666 or 9xx, group not 00 and
  serial not 0000. Undashed nine-digit numbers are not flagged: too many IDs
  look like that.

Speed: 10,000 messages of a few kB each are ~35 MB of text, too much to run
seven regular expressions over in Python. No pattern spans a line break, so a
line that was clean once is clean every time: most of a message is the template's
markup, repeated for every recipient, and is scanned once per campaign. New
lines pass cheap substring gates first, and numbers are found with one simple
expression and checked in Python.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from markupsafe import escape

from bot.errors import PolicyError
from bot.models import RenderedMessage

CARD = "a payment card number"
PASSWORD = "a password"  # noqa: S105 - a label, not a password
SLACK_TOKEN = "a Slack token"  # noqa: S105 - a label
GOOGLE_KEY = "a Google API key"
AWS_KEY = "an AWS access key"
PRIVATE_KEY = "a private key"
SSN = "a US social security number"

# Each pattern starts with a literal or one small class, and is boundary-checked
# in Python afterwards: a lookbehind in front would switch off the regex
# engine's fast literal search, and digit patterns are slow on digit-rich CSS.
_NUMBER_RUN = re.compile(r"[0-9][0-9 -]{9,}")  # candidate cards and SSNs
_SEPARATOR_RUN = re.compile(r"[ -]{2,}")
_SSN = re.compile(r"[0-9]{3}-[0-9]{2}-[0-9]{4}")
_PASSWORD = re.compile(
    r"(?:pass(?:word|wd|code)|pwd)(?:[ \t]+is)?[ \t]*[:=][ \t]*(?![*•]+(?:\s|$)|https?://)\S+",
    re.IGNORECASE,
)
_SLACK = re.compile(r"x(?:ox[abposr]|app)-[0-9A-Za-z-]{10,}")
_GOOGLE = re.compile(r"AIza[0-9A-Za-z_-]{35}")
_AWS = re.compile(r"A[KS]IA[0-9A-Z]{16}")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_TAG = re.compile(r"<[^>\n]*>")  # per line: the scan may see lines in any order
_LINK = re.compile(r'(?:href|src)="([^"\n]*)"')

_DIGITS = frozenset("0123456789")
_UPPER_ALNUM = _DIGITS | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALNUM = _UPPER_ALNUM | frozenset("abcdefghijklmnopqrstuvwxyz")
_TOKEN_CHARS = _ALNUM | frozenset("_-")


# (prefix length, lowest prefix, highest prefix, lengths issued) of the major networks.
_IIN_RANGES: tuple[tuple[int, int, int, frozenset[int]], ...] = (
    (1, 4, 4, frozenset({13, 16, 19})),  # Visa
    (2, 51, 55, frozenset({16})),  # Mastercard
    (4, 2221, 2720, frozenset({16})),  # Mastercard 2-series
    (2, 34, 34, frozenset({15})),  # American Express
    (2, 37, 37, frozenset({15})),
    (4, 6011, 6011, frozenset(range(16, 20))),  # Discover
    (3, 644, 649, frozenset(range(16, 20))),
    (2, 65, 65, frozenset(range(16, 20))),
    (4, 3528, 3589, frozenset(range(16, 20))),  # JCB
    (3, 300, 305, frozenset(range(14, 20))),  # Diners Club
    (2, 36, 36, frozenset(range(14, 20))),
    (2, 38, 39, frozenset(range(16, 20))),
    (2, 62, 62, frozenset(range(16, 20))),  # UnionPay
    (2, 50, 50, frozenset(range(13, 20))),  # Maestro
    (2, 56, 58, frozenset(range(13, 20))),
    (2, 63, 63, frozenset(range(13, 20))),
    (2, 67, 67, frozenset(range(13, 20))),
)

MAX_CLEAN_LINES = 50_000
"""Bound on one campaign's memory of clean lines (a few MB at most)."""


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check that every payment card number passes."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_card_number(candidate: str) -> bool:
    """True if ``candidate`` (digits, single spaces or dashes) can be a real card number."""
    digits = candidate.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456" or not digits.isdigit():
        return False
    if not luhn_ok(digits):
        return False
    return any(
        low <= int(digits[:width]) <= high and len(digits) in lengths
        for width, low, high, lengths in _IIN_RANGES
    )


def _is_ssn(value: str) -> bool:
    area, group, serial = value.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _at(text: str, index: int) -> str:
    return text[index] if 0 <= index < len(text) else ""


def _standalone(text: str, start: int, end: int, word: frozenset[str]) -> bool:
    """The match is not the middle of a longer run of ``word`` characters."""
    return _at(text, start - 1) not in word and _at(text, end) not in word


def _number_matches(text: str) -> Iterator[tuple[str, str]]:
    """Cards and SSNs in runs of digits, spaces and dashes.

    A run is cut where two or more separators meet, and each piece must be a
    whole SSN or card number: digits glued to more digits across a single space
    or dash belong to something longer (an ID, a phone number with extension).
    A run glued to letters (a tracking code, a token) is skipped.
    """
    for run in _NUMBER_RUN.finditer(text):
        start, end = run.start(), run.start() + len(run.group().rstrip(" -"))
        if not _standalone(text, start, end, _ALNUM):
            continue
        for piece in _SEPARATOR_RUN.split(text[start:end]):
            if _SSN.fullmatch(piece):
                if _is_ssn(piece):
                    yield SSN, piece
            elif is_card_number(piece):
                yield CARD, piece


def _password_matches(text: str) -> Iterator[tuple[str, str]]:
    lowered = text.lower()  # every spelling has "ss" (password, passwd, passcode) or "wd"
    if "ss" in lowered or "wd" in lowered:
        for m in _PASSWORD.finditer(text):
            yield PASSWORD, m.group()


def _token_matches(text: str) -> Iterator[tuple[str, str]]:
    """Keys and tokens: fixed prefixes, found by fast substring search."""
    if "xox" in text or "xapp-" in text:
        for m in _SLACK.finditer(text):
            if _at(text, m.start() - 1) not in _ALNUM:
                yield SLACK_TOKEN, m.group()
    if "AIza" in text:
        for m in _GOOGLE.finditer(text):
            if _standalone(text, *m.span(), _TOKEN_CHARS):
                yield GOOGLE_KEY, m.group()
    if "IA" in text:
        for m in _AWS.finditer(text):
            if _standalone(text, *m.span(), _UPPER_ALNUM):
                yield AWS_KEY, m.group()
    if "PRIVATE KEY" in text:
        for m in _PRIVATE_KEY.finditer(text):
            yield PRIVATE_KEY, m.group()


def _matches(text: str) -> Iterator[tuple[str, str]]:
    """(kind, matched text) for every sensitive value in plain ``text``."""
    yield from _number_matches(text)
    yield from _password_matches(text)
    yield from _token_matches(text)


def _html_matches(markup: str) -> Iterator[tuple[str, str]]:
    """Sensitive values in HTML: in what a reader sees, in links, and anywhere for keys.

    Numbers and passwords are looked for in the visible text and in link targets
    (``href``/``src``, where a query string can carry ``passwd=``); scanning
    style attributes for them would be slow and find nothing. Keys and tokens
    are looked for in the whole markup, which is cheap.
    """
    yield from _token_matches(markup)
    visible = html_as_text(markup) if "<" in markup or "&" in markup else markup
    links = html_lib.unescape("\n".join(_LINK.findall(markup))) if "=" in markup else ""
    for text in (visible, links):
        yield from _number_matches(text)
        yield from _password_matches(text)


def text_has_findings(text: str) -> bool:
    """Whether plain ``text`` holds any sensitive value (preflight's fast path)."""
    return next(_matches(text), None) is not None


def html_has_findings(markup: str) -> bool:
    """Whether HTML ``markup`` holds any sensitive value, looked for as ``Scanner`` does."""
    return next(_html_matches(markup), None) is not None


def find_sensitive(text: str) -> list[str]:
    """The kinds of sensitive value in ``text`` (one entry per value found)."""
    return [kind for kind, _ in _matches(text)]


def find_sensitive_html(markup: str) -> list[str]:
    """The kinds of sensitive value in an HTML document, read as ``_html_matches`` does."""
    return [kind for kind, _ in _html_matches(markup)]


def html_as_text(html: str) -> str:
    """Markup as a reader sees it: tags removed, entities decoded."""
    return html_lib.unescape(_TAG.sub("", html))


@dataclass(frozen=True)
class Finding:
    """A sensitive value in one part of one message, traced to where it came from."""

    kind: str
    part: str
    variable: str | None

    @property
    def source(self) -> str:
        return f"the variable '{self.variable}'" if self.variable else "the template itself"

    def __str__(self) -> str:
        return f"{self.kind} in the {self.part} (from {self.source})"


def _attribute(matched: str, variables: Mapping[str, Any]) -> str | None:
    """The variable the matched text came from, or None for the template itself.

    A value holding the whole match wins (a ``note`` column with a card number);
    otherwise the longest value inside the match ("Password: {{ pw }}").
    """
    best: tuple[int, str] | None = None
    for name, value in variables.items():
        text = str(value)
        if len(text) < 4:
            continue
        for shown in {text, str(escape(text))}:
            if matched in shown:
                return name
            if shown in matched and (best is None or len(shown) > best[0]):
                best = (len(shown), name)
    return best[1] if best else None


@dataclass
class Scanner:
    """Scans the messages of one campaign, remembering lines already found clean.

    The fast path joins a message's not-yet-seen lines and scans them in one go
    (equivalent, because no pattern crosses a line break); only a message with
    a hit is scanned again part by part to say where the hit is. Text and HTML
    lines are remembered apart because HTML is scanned differently.
    """

    clean_text: set[str] = field(default_factory=set)
    clean_html: set[str] = field(default_factory=set)

    def scan(self, rendered: RenderedMessage, variables: Mapping[str, Any]) -> list[Finding]:
        """Sensitive values in one rendered message, each traced to its source."""
        seen_text, seen_html = self.clean_text, self.clean_html
        # Set difference runs in C; the order of lines does not matter to the scan.
        new_text = set(rendered.text.split("\n"))
        new_text.add(rendered.subject)
        new_text -= seen_text
        new_html = set(rendered.html.split("\n")) - seen_html
        text, markup = "\n".join(new_text), "\n".join(new_html)
        if next(_matches(text), None) is None and next(_html_matches(markup), None) is None:
            for seen, lines in ((seen_text, new_text), (seen_html, new_html)):
                if len(seen) + len(lines) > MAX_CLEAN_LINES:
                    seen.clear()
                seen.update(lines)
            return []
        findings: list[Finding] = []
        for part, matches in (
            ("subject", _matches(rendered.subject)),
            ("text part", _matches(rendered.text)),
            ("HTML part", _html_matches(rendered.html)),
        ):
            for kind, matched in matches:
                finding = Finding(kind, part, _attribute(matched, variables))
                if finding not in findings:
                    findings.append(finding)
        return findings


@dataclass
class SensitiveGuard:
    """Collects findings over a campaign, then refuses it with one readable error.

    Preflight calls ``check`` after each message renders and ``raise_if_found``
    once after the loop, so the person sees every affected row at once.
    """

    max_listed: int = 10
    scanner: Scanner = field(default_factory=Scanner)
    details: list[str] = field(default_factory=list)
    rows: int = 0
    from_template: bool = False
    #: Names of the values given once for every recipient (the form's values
    #: field, the CLI's --var): a finding there is reported on that field.
    common: frozenset[str] = frozenset()
    from_rows: bool = False

    def check(self, rendered: RenderedMessage, variables: Mapping[str, Any], who: str) -> None:
        findings = self.scanner.scan(rendered, variables)
        if not findings:
            return
        self.rows += 1
        self.from_template |= any(f.variable is None for f in findings)
        self.from_rows |= any(f.variable and f.variable not in self.common for f in findings)
        if len(self.details) < self.max_listed:
            self.details.append(f"{who}: " + "; ".join(str(f) for f in findings))

    def raise_if_found(self) -> None:
        """Raise ``PolicyError`` naming rows, parts and variables, never the values."""
        if not self.rows:
            return
        more = self.rows - len(self.details)
        if self.from_template:
            where, field = "the template", "template"
        elif self.from_rows:
            where, field = "the recipient list", "recipients"
        else:
            where, field = "the values given for every recipient", "variables"
        raise PolicyError(
            f"{self.rows} message(s) would contain sensitive data, so nothing was sent: "
            f"{self.details[0]}"
            + (f" (and {self.rows - 1} more)" if self.rows > 1 else "")
            + f". Remove the value from {where} and try again; payment card numbers, "
            "passwords, API keys, private keys and social security numbers must never be "
            "sent by email.",
            field=field,
            details=self.details + ([f"… {more} more message(s)"] if more > 0 else []),
        )
