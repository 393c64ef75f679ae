"""Recipients from an uploaded CSV file (Excel and Google Sheets exports as they are).

This module owns reading the file (size, encoding, binary and workbook checks),
the delimiter, the header (which columns are the address, the name and template
variables) and each row; each address is validated by ``bot.handlers.recipients``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

from bot.errors import UserInputError
from bot.handlers.recipient_dns import drop_undeliverable
from bot.handlers.recipients import accept, check_early, clip, dedupe, enforce_limit, megabytes
from bot.handlers.values import ATTACHMENTS_COLUMN, reserved_as
from bot.models import Recipient, RecipientList, Rejected

MAX_CSV_BYTES = 10_000_000  # Slack's file_input limit; larger lists belong in several campaigns

EMAIL_COLUMNS = frozenset({"email", "e_mail", "email_address", "e_mail_address"})
NAME_COLUMN = "name"
# Names a template cannot use as a plain variable: Jinja literals and operators,
# and names Jinja binds itself inside templates, loops and macros.
RESERVED_VARIABLES = frozenset(
    {"true", "false", "none", "not", "self", "loop", "caller", "varargs", "kwargs"}
)

_BINARY = re.compile(rb"[\x00-\x08\x0e-\x1f]")
_QUOTED_TEXT = re.compile(r'"[^"]*"')
_COLUMN_SEPARATORS = re.compile(r"[\s\-]+")


@dataclass(frozen=True)
class _Layout:
    """Where the CSV keeps the address, the name and each template variable."""

    email: int
    name: int | None
    variables: tuple[tuple[int, str], ...]
    width: int


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
    check_early(len(body), max_recipients, filename, "rows", "csv")
    result = dedupe(_csv_candidates(body, layout, delimiter))
    # The attachments column names files: kept with each row, never a template variable.
    result.columns = [name for _, name in layout.variables if name != ATTACHMENTS_COLUMN]
    enforce_limit(result, max_recipients, what=filename, field="csv")
    if check_deliverability:
        drop_undeliverable(result)
    return result


def _decode(data: bytes, filename: str) -> str:
    """The file as text, or a UserInputError saying how to export it properly."""
    if len(data) > MAX_CSV_BYTES:
        raise UserInputError(
            f"{filename} is {megabytes(len(data))}; the limit is 10 MB. "
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
                clip(delimiter.join(cells)),
                f"has {len(cells)} fields but the header has {layout.width}",
            )
            continue
        address = cells[layout.email].strip()
        yield accept(
            address,
            line,
            "csv",
            shown=address or delimiter.join(cells),
            name="" if layout.name is None else cells[layout.name].strip(),
            variables={key: cells[index].strip() for index, key in layout.variables},
        )
