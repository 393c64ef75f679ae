"""Rendered parts + one recipient → the bytes of one RFC 5322 message.

Why we write MIME by hand instead of using ``email.message.EmailMessage``:
- Safety. Python 3.11.7's email generator re-folds headers and can turn an RFC
  2047 encoded word that hides a newline into a real header (CVE-2024-6923).
  Here every header value is checked for control characters, and any value that
  is non-ASCII, long, or merely *contains* ``=?`` is emitted as base64 encoded
  words, so its text can never be read back as header structure.
- Speed. ``EmailMessage`` spends ~0.9 ms per message parsing its own headers;
  this writer is ~20× faster, which matters when a 10,000-recipient preflight
  builds every message.

The output is checked in tests by parsing it back with the standard library.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate

from bot.errors import UserInputError
from bot.handlers.values import describe_invisible, invisible_character
from bot.models import RenderedMessage

CRLF = "\r\n"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SAFE_ATOM_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ .]*$")
_LIST_ITEMS = re.compile(r",\s*(?=<)")  # between <item>s, never inside a URL
_MAX_PLAIN_HEADER = 66  # leaves room for "Subject: " within 78
# base64 of 39 bytes is 52 chars; with "=?utf-8?b?" and "?=" a word is 64, so even
# the first line ("Subject: " + a word) stays within RFC 5322's 78.
_WORD_BYTES = 39
# RFC 2231 attribute-chars that need no %-escape (a cautious subset: letters, digits, -._).
_ATTR_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._")
MAX_LINE = 998
"""RFC 5322 §2.1.1: no line of a message may be longer, whatever the values hold."""


def check_header_text(field: str, value: str) -> str:
    """Refuse a value that could break out of its header or hide what it says.

    Line breaks and controls could start a new header; invisible and
    direction-changing characters (bidi overrides, zero-width spaces) make a
    name or subject read differently from what it is. Returns ``value`` unchanged.
    """
    if _CONTROL.search(value):
        raise UserInputError(
            f"The {field} contains a line break or control character, which is not allowed "
            "in an email header.",
            field=field,
        )
    code = invisible_character(value.replace("\t", " "))
    if code is not None:
        raise UserInputError(
            f"The {field} contains the invisible or direction-changing character "
            f"{describe_invisible(code)}, which is not allowed in an email header.",
            field=field,
        )
    return value


def _encoded_words(value: str) -> list[str]:
    """Split ``value`` into base64 encoded words without cutting a character."""
    words: list[str] = []
    chunk = bytearray()
    for char in value:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
            chunk = bytearray()
        chunk += encoded
    if chunk or not words:
        words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
    return words


def _fold(value: str) -> str:
    """Fold long ASCII text at spaces (RFC 5322 asks for lines under 78 chars)."""
    lines: list[str] = []
    current = ""
    for word in value.split(" "):
        if current and len(current) + 1 + len(word) > _MAX_PLAIN_HEADER:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return (CRLF + " ").join(lines)


def _fold_list(value: str) -> str:
    """Fold a comma-separated ASCII header (e.g. List-Unsubscribe) between items."""
    if len(value) <= _MAX_PLAIN_HEADER:
        return value
    return ("," + CRLF + " ").join(item.strip() for item in _LIST_ITEMS.split(value))


def _plain(value: str) -> bool:
    """Whether ``value`` can be written as it is, folded at single spaces.

    Anything else (non-ASCII, ``=?``, a word too long to fold, runs of spaces or
    spaces at the ends, which folding and unfolding would change) is written as
    encoded words, which fold anywhere and read back exactly.
    """
    if not value.isascii() or "=?" in value or "\t" in value:
        return False
    if value != value.strip(" ") or "  " in value:
        return False
    return all(len(word) <= _MAX_PLAIN_HEADER for word in value.split(" "))


def encode_text_header(field: str, value: str) -> str:
    """Header-safe form of free text (a subject): every line within 78 characters."""
    check_header_text(field, value)
    if _plain(value):
        return value if len(value) <= _MAX_PLAIN_HEADER else _fold(value)
    return (CRLF + " ").join(_encoded_words(value))


def ascii_address(address: str) -> str:
    """``local@domain`` with an IDNA domain; refuses anything header-unsafe."""
    check_header_text("address", address)
    local, _, domain = address.rpartition("@")
    if not local or not domain or not local.isascii() or any(c in local for c in '<>",; '):
        raise UserInputError(
            f"{address!r} cannot be used as an email address header.", field="address"
        )
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


def format_address(name: str, address: str) -> str:
    """``Name <addr>``, quoting or encoding the name as needed."""
    addr = ascii_address(address)
    if not name:
        return addr
    check_header_text("name", name)
    if _plain(name) and len(name) <= _MAX_PLAIN_HEADER:
        if _SAFE_ATOM_PHRASE.match(name):
            return f"{name} <{addr}>"
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{addr}>'
    return f"{(CRLF + ' ').join(_encoded_words(name))} <{addr}>"


def _check_line_lengths(headers: list[str]) -> None:
    """The last guard: a header line over ``MAX_LINE`` would make the message invalid."""
    for header in headers:
        for line in header.split(CRLF):
            if len(line) > MAX_LINE:
                name = header.partition(":")[0]
                raise UserInputError(
                    f"The {name} header would have a line of {len(line):,} characters; email "
                    f"allows at most {MAX_LINE}.",
                    field=name.lower(),
                )


def _quoted_printable(text: str) -> str:
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(normalized.encode("utf-8"), istext=True).decode("ascii")
    return encoded.replace("\n", CRLF)


@dataclass(frozen=True)
class Envelope:
    """What every message of a campaign shares."""

    from_name: str
    from_address: str
    reply_to: str = ""

    @property
    def domain(self) -> str:
        return self.from_address.rpartition("@")[2] or "mailbolt.invalid"

    def new_message_id(self) -> str:
        """A unique Message-ID; stored before sending so a send can be found later.

        A fixed domain avoids ``make_msgid``'s per-call ``getfqdn()`` lookup.
        """
        return f"<{uuid.uuid4().hex}@{self.domain}>"


def _parameter(key: str, value: str) -> str:
    """One MIME parameter, ``; key="value"`` or RFC 2231 ``; key*0*=utf-8''…``.

    A plain ASCII value without quotes or backslashes is quoted as it is; any
    other value is percent-encoded as UTF-8 (RFC 2231) and split into numbered
    continuations, so no header line grows past 78 characters and no character
    of the name can be read as header structure.
    """
    plain = value.isascii() and value.isprintable() and not any(c in value for c in '"\\')
    if plain and len(value) <= _MAX_PLAIN_HEADER - len(key) - 4:
        return f';{CRLF} {key}="{value}"'
    encoded = "utf-8''" + "".join(
        chr(b) if chr(b) in _ATTR_CHARS else f"%{b:02X}" for b in value.encode("utf-8")
    )
    pieces: list[str] = []
    while encoded:
        cut = min(len(encoded), _MAX_PLAIN_HEADER - len(key) - 8)
        while 0 < cut < len(encoded) and "%" in encoded[max(0, cut - 2) : cut]:
            cut -= 1  # never split a %XX escape
        pieces.append(encoded[:cut])
        encoded = encoded[cut:]
    return "".join(f";{CRLF} {key}*{n}*={piece}" for n, piece in enumerate(pieces))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def encode_attachment(filename: str, content_type: str, data: bytes) -> bytes:
    """One attachment as a MIME body part (its headers, a blank line, base64 lines).

    Built once per file and reused for every message that carries it: base64 of
    a 10 MB file is the costly step, and the part does not depend on the recipient.
    ``filename`` must already be a safe name (``attachments.safe_name``).
    """
    check_header_text("attachment name", filename)
    if not re.fullmatch(r"[a-z0-9.+-]+/[a-z0-9.+-]+", content_type):
        raise UserInputError(f"{content_type!r} is not a content type.", field="attachments")
    charset = ""
    if content_type.startswith("text/") and _is_utf8(data):
        charset = '; charset="utf-8"'  # else mail programs would read it as ASCII
    head = (
        f"Content-Type: {content_type}{charset}{_parameter('name', filename)}{CRLF}"
        f"Content-Disposition: attachment{_parameter('filename', filename)}{CRLF}"
        f"Content-Transfer-Encoding: base64{CRLF}{CRLF}"
    )
    body = base64.encodebytes(data).replace(b"\n", CRLF.encode("ascii"))
    return head.encode("ascii") + body


def message_chunks(
    envelope: Envelope,
    *,
    to_address: str,
    to_name: str,
    rendered: RenderedMessage,
    message_id: str,
    extra_headers: Mapping[str, str] | None = None,
    date: str | None = None,
    attachments: Sequence[bytes] = (),
) -> list[bytes]:
    """The message as consecutive pieces; ``b"".join`` them for the bytes.

    The pieces share the (large) encoded attachments instead of copying them, so
    preflight can measure a message's exact size without building it.
    ``attachments`` are parts made by ``encode_attachment``.
    """
    if not rendered.subject.strip():
        raise UserInputError(
            "The subject is empty; every message needs a subject.", field="subject"
        )
    boundary = f"==mailbolt_{uuid.uuid4().hex}=="
    headers = [
        f"From: {format_address(envelope.from_name, envelope.from_address)}",
        f"To: {format_address(to_name, to_address)}",
        f"Subject: {encode_text_header('subject', rendered.subject)}",
        f"Date: {date or formatdate(usegmt=True)}",
        f"Message-ID: {check_header_text('Message-ID', message_id)}",
    ]
    if envelope.reply_to:
        headers.append(f"Reply-To: {ascii_address(envelope.reply_to)}")
    for name, value in (extra_headers or {}).items():
        check_header_text(name, name)
        if not value.isascii():
            raise UserInputError(f"The {name} header must be ASCII.", field=name)
        check_header_text(name, value)
        headers.append(f"{name}: {_fold_list(value)}")
    alternative = f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"'
    mixed = boundary.replace("mailbolt_", "mailbolt_mixed_")
    if attachments:
        headers += ["MIME-Version: 1.0", f'Content-Type: multipart/mixed;{CRLF} boundary="{mixed}"']
    else:
        headers += ["MIME-Version: 1.0", alternative]
    _check_line_lengths(headers)
    part_headers = "Content-Transfer-Encoding: quoted-printable"
    body = [
        f"--{boundary}",
        'Content-Type: text/plain; charset="utf-8"',
        part_headers,
        "",
        _quoted_printable(rendered.text),
        f"--{boundary}",
        'Content-Type: text/html; charset="utf-8"',
        part_headers,
        "",
        _quoted_printable(rendered.html),
        f"--{boundary}--",
        "",
    ]
    if not attachments:
        return [(CRLF.join(headers) + CRLF + CRLF + CRLF.join(body)).encode("ascii")]
    head = CRLF.join(headers) + CRLF + CRLF + f"--{mixed}" + CRLF + alternative + CRLF + CRLF
    chunks = [(head + CRLF.join(body)).encode("ascii")]
    for part in attachments:
        chunks += [f"--{mixed}{CRLF}".encode("ascii"), part, CRLF.encode("ascii")]
    chunks.append(f"--{mixed}--{CRLF}".encode("ascii"))
    return chunks


def build_message(
    envelope: Envelope,
    *,
    to_address: str,
    to_name: str,
    rendered: RenderedMessage,
    message_id: str,
    extra_headers: Mapping[str, str] | None = None,
    date: str | None = None,
    attachments: Sequence[bytes] = (),
) -> bytes:
    """One message to one recipient: multipart/alternative (text, then HTML), wrapped
    in multipart/mixed with the ``attachments`` parts when there are any."""
    return b"".join(
        message_chunks(
            envelope,
            to_address=to_address,
            to_name=to_name,
            rendered=rendered,
            message_id=message_id,
            extra_headers=extra_headers,
            date=date,
            attachments=attachments,
        )
    )
