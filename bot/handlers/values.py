"""What a variable may be called and what it may hold.

Values come from people (CSV cells, ``--var``, the Slack "values" field); what
mailbolt itself puts in a message (the sender, the postal address the law
requires, the unsubscribe link) must not be replaceable by them, links that come
from them must not run code, and names and subjects must not hide characters
that change how a header reads. Each rule lives here once, and every edge that
takes values goes through it.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Mapping

from bot.errors import UserInputError

SENDER_VARIABLES = frozenset({"from_name", "sender_address", "postal_address", "unsubscribe_url"})
"""Set by mailbolt from its settings for every message; nobody's values may replace them."""

RECIPIENT_VARIABLES = frozenset({"email", "name", "first_name"})
"""Set per recipient from its address and name. A CSV supplies them through its
``email``, ``name`` and (optionally) ``first_name`` columns; a value given for
every recipient (``--var``, the Slack "values" field) cannot set them."""

SYSTEM_VARIABLES = SENDER_VARIABLES | RECIPIENT_VARIABLES
"""Every variable mailbolt supplies to a render: the one declared set of reserved names."""

ATTACHMENTS_COLUMN = "attachments"
"""The CSV column naming each row's files (``;``-separated). It is not a template
variable: a CSV uses it for files, and no value for every recipient may set it."""

URL_SCHEMES = frozenset({"http", "https", "mailto"})
"""The only kinds of link a value may become."""

_SEPARATORS = re.compile(r"[\s\-]+")
_SHOWN_ENTRY_CHARS = 60  # how much of a malformed name=value entry an error quotes
_URL_NAME = re.compile(r"(?:^|_)(?:url|link|href|uri)$")
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_PLAIN_URL = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)
# What browsers drop from a URL before reading its scheme (WHATWG URL: leading C0
# controls and spaces, and tab/CR/LF anywhere), and more: any control or space.
_URL_NOISE = re.compile(r"[\x00-\x20\x7f-\x9f]")
_LINE_SEPARATORS = frozenset("\u2028\u2029")
_ZWJ = "\u200d"
_TAG_CHARS = range(0xE0020, 0xE0080)
_BLACK_FLAG = "\U0001f3f4"


def canonical_name(raw: str) -> str:
    """The name a variable is compared by: `` Postal-Address `` → ``postal_address``.

    NFKC folds look-alike forms (full-width letters), ``casefold`` the case, and
    runs of spaces and dashes become one ``_``, as CSV headers are read.
    """
    folded = unicodedata.normalize("NFKC", raw).casefold().strip()
    return _SEPARATORS.sub("_", folded)


def reserved_as(raw: str, *, for_everyone: bool) -> str | None:
    """The system variable ``raw`` would stand for, or None if it is free to use.

    ``for_everyone``: a value for every recipient (``--var``, Slack values), which
    may not set a recipient's own fields either; a CSV column may (``first_name``).
    """
    name = canonical_name(raw)
    reserved = SYSTEM_VARIABLES if for_everyone else SENDER_VARIABLES
    if for_everyone and name == ATTACHMENTS_COLUMN:
        return name
    return name if name in reserved else None


def check_common_names(values: Mapping[str, str], *, field: str = "variables") -> None:
    """Refuse values for every recipient that would replace what mailbolt sets."""
    for raw in values:
        reserved = reserved_as(raw, for_everyone=True)
        if reserved is None:
            continue
        if reserved in SENDER_VARIABLES:
            why = "mailbolt sets it from its settings"
        elif reserved == ATTACHMENTS_COLUMN:
            why = "it names files (attach them, or use a CSV column 'attachments')"
        else:
            why = "it is set for each recipient from their address and name"
        raise UserInputError(
            f"The value {raw.strip()!r} cannot be given: {reserved!r} is reserved, because "
            f"{why}. Use another name.",
            field=field,
        )


def check_column_names(columns: Iterable[str], *, filename: str, line: int = 1) -> None:
    """Refuse CSV columns that would replace what mailbolt sets, naming the column."""
    for raw in columns:
        reserved = reserved_as(raw, for_everyone=False)
        if reserved is not None:
            raise UserInputError(
                f"{filename}: the column {raw.strip()!r} cannot be used: {reserved!r} is "
                "reserved, because mailbolt sets it from its settings. Rename or delete "
                "the column.",
                field="csv",
                line=line,
            )


def parse_name_values(
    entries: Iterable[str], *, field: str, option: str | None = None
) -> dict[str, str]:
    """``name=value`` entries as a dict: the CLI's ``--var`` options and the lines of
    the Slack "values" field, read by one rule.

    Blank entries are skipped, the name and value are trimmed, and a later value
    for a name replaces an earlier one. An entry that is not ``name=value`` with a
    valid name is refused, named by ``option`` (``--var 'x'``) or, for the lines of
    one field, by its line (``line 2: 'x'``).
    """
    parsed: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        if not entry.strip():
            continue
        name, sep, value = entry.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            shown = entry.strip()
            shown = (
                shown if len(shown) <= _SHOWN_ENTRY_CHARS else shown[: _SHOWN_ENTRY_CHARS - 1] + "…"
            )
            where = f"{option} {shown!r}" if option else f"line {number}: {shown!r}"
            raise UserInputError(
                f"{where} should look like name=value, e.g. team=Mailbolt.",
                field=field,
                line=None if option else number,
            )
        parsed[name] = value.strip()
    return parsed


# -- links -------------------------------------------------------------------------


def is_url_name(name: str) -> bool:
    """A variable whose name says it holds a link: ``url``, ``start_url``, ``cta_link``."""
    return bool(_URL_NAME.search(canonical_name(name)))


def url_scheme(value: str) -> str | None:
    """The scheme a mail program would read from ``value``, lower-cased; None if none.

    Entities are decoded (as often as they nest) and controls and spaces removed
    first, so ``&#106;ava\\tScript:`` reads as ``javascript``.
    """
    text = value
    for _ in range(5):
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    match = _SCHEME.match(_URL_NOISE.sub("", text).lower())
    return match.group(1) if match else None


def link_problem(value: str) -> str | None:
    """Why ``value`` may not be a link in a message, or None if it may (or is empty).

    An allow-list: the value must plainly start with one of ``URL_SCHEMES``, so
    no spelling of ``javascript:`` (entities, tabs, mixed case) can pass.
    """
    if not value.strip():
        return None
    if _PLAIN_URL.match(value.strip()):
        return None
    scheme = url_scheme(value)
    if scheme is None or scheme in URL_SCHEMES:
        return "is not a full link: it must start with https://, http:// or mailto:"
    return f"is a {scheme}: link; only https://, http:// and mailto: links are allowed"


# -- names and subjects ---------------------------------------------------------------


def invisible_character(text: str) -> str | None:
    """The first character of ``text`` a reader cannot see or that reorders text.

    Controls (Cc), format characters (Cf: bidi overrides and isolates, zero-width
    spaces and joiners, the BOM, soft hyphens) and line separators are refused in
    names and subjects: they hide or reverse what a header seems to say. A zero-width
    joiner inside an emoji sequence (👩‍💻) and the tags of a subdivision flag are
    how those emoji are written, so they pass. Returns e.g. ``'U+202E'`` or None.
    """
    if text.isprintable():  # in C: no Cc, Cf, Zl or Zp anywhere (the usual case)
        return None
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category not in ("Cc", "Cf") and char not in _LINE_SEPARATORS:
            continue
        if char == _ZWJ and _emoji_joiner(text, index):
            continue
        if ord(char) in _TAG_CHARS and _flag_tag(text, index):
            continue
        return f"U+{ord(char):04X}"
    return None


def _emoji_joiner(text: str, index: int) -> bool:
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    if not before or not after:
        return False
    return _is_emoji_part(before) and unicodedata.category(after) == "So"


def _is_emoji_part(char: str) -> bool:
    """An emoji, a variation selector or a skin-tone modifier."""
    return unicodedata.category(char) in ("So", "Sk") or char in "\ufe0f\ufe0e"


def _flag_tag(text: str, index: int) -> bool:
    """Tag characters (U+E0020–E007F) directly after 🏴 spell a subdivision flag."""
    start = index
    while start > 0 and ord(text[start - 1]) in _TAG_CHARS:
        start -= 1
    return start > 0 and text[start - 1] == _BLACK_FLAG


def describe_invisible(code: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)`` for an error message."""
    char = chr(int(code[2:], 16))
    return f"{code} ({unicodedata.name(char, 'a control character')})"
