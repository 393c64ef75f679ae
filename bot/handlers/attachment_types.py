"""What Gmail refuses in a file, and what a file is: names, blocked types, content types.

Content types come from the content (a short table of magic numbers, no library
needed for a dozen formats): the extension only picks among types the content
allows, and a name whose extension lies about the content is refused. Gmail's
blocked types are refused by name, inside ZIP archives too (one archive deep
within them), and programs by their content whatever their name.
"""

from __future__ import annotations

import io
import mimetypes
import posixpath
import zipfile

from bot.errors import PolicyError, UserInputError
from bot.handlers.values import describe_invisible, invisible_character
from bot.ports import MAX_MESSAGE_BYTES

#: Gmail's blocked file types (support.google.com/mail/answer/6590, the English and
#: the newer French list together); Gmail refuses them inside archives too.
_GMAIL_BLOCKED = (
    ".ade .adp .apk .appx .appxbundle .bat .cab .chm .cmd .com .cpl .diagcab .diagcfg "
    ".diagpkg .dll .dmg .ex .ex_ .exe .hta .img .ins .iso .isp .jar .jnlp .js .jse .lib "
    ".lnk .mde .mjs .msc .msi .msix .msixbundle .msp .mst .nsh .pif .ps1 .scr .sct .shb "
    ".sys .vb .vbe .vbs .vhd .vxd .wsc .wsf .wsh .xll"
)
BLOCKED_EXTENSIONS = frozenset(_GMAIL_BLOCKED.split())
#: Files the sensitive-data scan reads as text.
TEXT_LIKE = frozenset({".txt", ".csv", ".html", ".htm", ".md"})
MAX_NAME_CHARS = 150
_SNIFF_BYTES = 8192

# (leading bytes, content type, how a person calls it). Programs are refused
# whatever their name; everything else must agree with its extension.
_PROGRAM = "program"
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"%PDF-", "application/pdf", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "a PNG image"),
    (b"\xff\xd8\xff", "image/jpeg", "a JPEG image"),
    (b"GIF87a", "image/gif", "a GIF image"),
    (b"GIF89a", "image/gif", "a GIF image"),
    (b"PK\x03\x04", "application/zip", "a ZIP archive"),
    (b"PK\x05\x06", "application/zip", "a ZIP archive"),
    (b"\x1f\x8b", "application/gzip", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "application/vnd.rar", "a RAR archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage", "an Office 97-2003 file"),
    (b"\x7fELF", _PROGRAM, "a Linux program"),
    (b"\xcf\xfa\xed\xfe", _PROGRAM, "a macOS program"),
    (b"\xce\xfa\xed\xfe", _PROGRAM, "a macOS program"),
    (b"\xca\xfe\xba\xbe", _PROGRAM, "a macOS or Java program"),
    (b"MZ", _PROGRAM, "a Windows program"),
)
_TEXT = "text/plain"
_BINARY = "application/octet-stream"
_ZIP, _OLE = "application/zip", "application/x-ole-storage"
#: What content each common extension may hold (anything else is a lie).
_EXPECTED: dict[str, frozenset[str]] = {
    ".pdf": frozenset({"application/pdf"}),
    ".png": frozenset({"image/png"}),
    ".jpg": frozenset({"image/jpeg"}),
    ".jpeg": frozenset({"image/jpeg"}),
    ".gif": frozenset({"image/gif"}),
    ".gz": frozenset({"application/gzip"}),
    ".tgz": frozenset({"application/gzip"}),
    ".7z": frozenset({"application/x-7z-compressed"}),
    ".rar": frozenset({"application/vnd.rar"}),
    **{ext: frozenset({_ZIP}) for ext in (".zip", ".docx", ".xlsx", ".pptx", ".odt", ".ods")},
    **{ext: frozenset({_OLE}) for ext in (".doc", ".xls", ".ppt")},
    **{ext: frozenset({_TEXT}) for ext in (*TEXT_LIKE, ".json", ".xml", ".ics", ".vcf")},
}
_KIND_NAMES = {mime: kind for _, mime, kind in _MAGIC} | {_TEXT: "text", _BINARY: "binary data"}


def extension(name: str) -> str:
    return posixpath.splitext(name.lower())[1]


def safe_name(raw: str, *, what: str = "An attachment") -> str:
    """The name a file is attached under: the last part of ``raw``, checked.

    Refused rather than cleaned: a name with a line break, quote, backslash or
    invisible character is more likely an attack than a typo, and silently
    changing a name the CSV refers to would break the match.
    """
    name = raw.strip().rsplit("/", 1)[-1].strip()
    problem = None
    if not name or name in (".", ".."):
        problem = "has no file name"
    elif any(c in name for c in '\\"') or any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "contains a backslash, a quote or a control character"
    elif (code := invisible_character(name)) is not None:
        problem = f"contains the invisible character {describe_invisible(code)}"
    elif len(name) > MAX_NAME_CHARS:
        problem = f"is longer than {MAX_NAME_CHARS} characters"
    if problem:
        raise UserInputError(f"{what} name {raw!r} {problem}.", field="attachments")
    return name


def sniff(data: bytes) -> tuple[str, str]:
    """``(content type, description)`` read from the bytes themselves."""
    for magic, mime, kind in _MAGIC:
        if data.startswith(magic):
            if magic == b"MZ" and b"\x00" not in data[:_SNIFF_BYTES]:
                break  # text that happens to start with "MZ"
            return mime, kind
    if b"\x00" in data[:_SNIFF_BYTES]:
        return _BINARY, "binary data"
    return _TEXT, "text"


def check_file(name: str, data: bytes) -> str:
    """Refuse what Gmail would refuse about one file; its content type otherwise."""
    ext = extension(name)
    if ext in BLOCKED_EXTENSIONS:
        raise PolicyError(
            f"{name} is a {ext} file; Gmail blocks that type, so it cannot be attached. "
            "Put it somewhere people can download it and link to it instead.",
            field="attachments",
        )
    mime, kind = sniff(data)
    if mime == _PROGRAM:
        raise PolicyError(
            f"{name} is {kind} (read from its content, whatever its name says); Gmail "
            "blocks programs, so it cannot be attached.",
            field="attachments",
        )
    expected = _EXPECTED.get(ext)
    if expected is not None and mime not in expected:
        wanted = _KIND_NAMES.get(next(iter(expected)), ext)
        raise PolicyError(
            f"{name} is named like {wanted} but its content is {kind}. Attach the real "
            "file, or give it the name that matches what it is.",
            field="attachments",
        )
    if mime == _ZIP:
        _check_archive(name, data)
    if expected is not None or mime == _TEXT:
        guessed = mimetypes.guess_type(name, strict=False)[0]
        if guessed and (mime != _TEXT or guessed.startswith("text/")):
            return guessed
    return mime if mime != _OLE else _BINARY


def _check_archive(name: str, data: bytes, depth: int = 0) -> None:
    """Gmail looks inside archives: refuse one holding a blocked type (one level of
    archives inside it is opened as well)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            for member in members:
                inner = extension(member.filename)
                if inner in BLOCKED_EXTENSIONS:
                    raise PolicyError(
                        f"{name} contains {member.filename}, a {inner} file; Gmail blocks that "
                        "type even inside an archive, so it cannot be attached.",
                        field="attachments",
                    )
                if inner == ".zip" and depth == 0 and member.file_size <= MAX_MESSAGE_BYTES:
                    _check_archive(f"{name} ({member.filename})", archive.read(member), depth + 1)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
        if extension(name) == ".zip":
            raise PolicyError(
                f"{name} cannot be opened as a ZIP archive ({exc}); Gmail refuses archives "
                "it cannot look into.",
                field="attachments",
            ) from None


def check_name(name: str) -> str:
    """What the name alone tells (before a download): a safe name, not a blocked type."""
    safe = safe_name(name)
    if extension(safe) in BLOCKED_EXTENSIONS:
        check_file(safe, b"")
    return safe
