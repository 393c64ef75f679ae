"""Recipients from pasted text: ``a@x.com, Bob <b@x.com>; "Smith, Ann" <ann@x.com>``.

This module owns splitting a paste into entries (separators inside quotes and
angle brackets do not count) and its size limit; each entry is validated by
``bot.handlers.recipients``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from bot.errors import UserInputError
from bot.handlers.recipient_dns import drop_undeliverable
from bot.handlers.recipients import accept, check_early, dedupe, enforce_limit, megabytes
from bot.models import RecipientList

MAX_PASTE_BYTES = 1_000_000
# Separators outside quoted strings and angle brackets. Quoted strings and
# <addresses> are matched (and skipped) so commas inside them do not split.
_PASTE_TOKENS = re.compile(r'"(?:[^"\\\r\n]|\\[^\r\n])*"?|<[^>\r\n]*>?|(\r\n|[\r\n])|[,;\t]')


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
            f"The pasted text is {megabytes(size)}; pasting is limited to 1 MB. "
            "Upload the list as a CSV file instead.",
            field="recipients",
        )
    entries = list(_split_paste(text))
    check_early(len(entries), max_recipients, "The pasted list", "entries", "recipients")
    result = dedupe(accept(entry, line, "paste") for line, entry in entries)
    enforce_limit(result, max_recipients, what="The pasted list", field="recipients")
    if check_deliverability:
        drop_undeliverable(result)
    return result


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
