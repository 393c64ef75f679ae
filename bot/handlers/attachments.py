"""Attachments: which files go with a campaign, who gets which, and what Gmail would refuse.

This module owns the rules for files that travel with a campaign:

- **Who gets what.** Files given for the campaign (the CLI's ``--attach``, the
  files uploaded in the Slack form) go to every recipient, except a file that
  the CSV's ``attachments`` column names: that one goes only to the rows that
  name it. The column lists names separated by ``;``. From the CLI those are
  paths relative to the CSV's folder (so ``--attach`` is always "everyone" and
  the column always "these rows"); from Slack they are names of uploaded files.
- **What Gmail refuses, refused before anything is recorded:** a message over
  35 MiB after base64 encoding (measured on the real message), a blocked type
  (``.exe``, ``.js``, … by name, inside a ZIP too, and programs by their content),
  a name whose extension lies about the content, a name the column gives that
  was not attached, and sensitive data in a text-like file (txt, csv, html, md).
- **Safe names.** A name is the last part of a path; controls, invisible
  characters, quotes and backslashes are refused; compose writes non-ASCII names
  as RFC 2231 parameters.
- **Kept with the campaign.** The bytes are stored by content before the
  campaign is recorded; the manifest (names, keys, types, who gets them) is
  stored with the campaign, in its values under the reserved name
  ``attachments``, in the same transaction as its messages. A resumed campaign
  sends exactly what was checked. Files are removed once every message of the
  campaign is sent or skipped (nothing is left that a person could retry) and
  no other campaign that may still send uses them; ``prune`` removes old files
  nobody uses (uploads for a Slack preview that was never sent).

What a single file may be (names, blocked and lying types, content types) lives
in ``attachment_types``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from bot.errors import PolicyError, UserInputError
from bot.handlers import sensitive
from bot.handlers.attachment_types import (
    TEXT_LIKE,
    check_file,
    extension,
    safe_name,
)
from bot.handlers.compose import encode_attachment
from bot.handlers.values import ATTACHMENTS_COLUMN
from bot.models import Recipient
from bot.ports import MAX_MESSAGE_BYTES, AttachmentFiles, StoreParts


@dataclass(frozen=True)
class Attachment:
    """One checked file: its safe name, bytes, content type and who gets it."""

    name: str
    data: bytes = field(repr=False)
    content_type: str
    everyone: bool = True

    @cached_property
    def key(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def part(self) -> bytes:
        """The encoded MIME part, built once for every message that carries it."""
        return encode_attachment(self.name, self.content_type, self.data)

    @property
    def text_like(self) -> bool:
        return extension(self.name) in TEXT_LIKE


def attachment(name: str, data: bytes, *, everyone: bool = True) -> Attachment:
    """A checked ``Attachment`` from a name and its bytes."""
    safe = safe_name(name)
    return Attachment(safe, data, check_file(safe, data), everyone)


# -- the campaign's set and each row's selection ------------------------------------


def row_names(value: str) -> list[str]:
    """The entries of one ``attachments`` cell, in order, blanks and repeats dropped."""
    names: list[str] = []
    for entry in value.split(";"):
        if entry.strip() and entry.strip() not in names:
            names.append(entry.strip())
    return names


@dataclass
class AttachmentSet:
    """Every file of one campaign, by name; who gets each is in ``Attachment.everyone``
    and in each row's ``attachments`` value."""

    files: dict[str, Attachment] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.files)

    def add(self, item: Attachment) -> None:
        """Add a file; the same name twice must be the same bytes."""
        known = self.files.get(item.name)
        if known is not None and known.key != item.key:
            raise UserInputError(
                f"Two different files are both named {item.name}; a recipient could not "
                "tell them apart. Rename one of them.",
                field="attachments",
            )
        if known is None or (item.everyone and not known.everyone):
            self.files[item.name] = item

    def for_row(self, variables: Mapping[str, Any]) -> list[Attachment]:
        """What one recipient gets: the files for everyone, then the row's own."""
        chosen = row_names(str(variables.get(ATTACHMENTS_COLUMN, "")))
        found = [a for a in self.files.values() if a.everyone]
        found += [self.files[n] for n in chosen if n in self.files and self.files[n] not in found]
        return found

    def missing(self, variables: Mapping[str, Any]) -> list[str]:
        chosen = row_names(str(variables.get(ATTACHMENTS_COLUMN, "")))
        return [n for n in chosen if n not in self.files]


def from_uploads(
    uploads: Iterable[tuple[str, bytes]], recipients: Sequence[Recipient]
) -> AttachmentSet:
    """Files uploaded in the Slack form: for everyone unless a row of the CSV names them."""
    named = {n for r in recipients for n in row_names(r.variables.get(ATTACHMENTS_COLUMN, ""))}
    files = AttachmentSet()
    for name, data in uploads:
        safe = safe_name(name)
        files.add(attachment(safe, data, everyone=safe not in named))
    return files


def from_paths(
    paths: Sequence[Path], recipients: Sequence[Recipient], csv_folder: Path | None
) -> tuple[AttachmentSet, list[Recipient]]:
    """The CLI's files: every ``--attach`` file for everyone, and each path the CSV's
    ``attachments`` column gives, read relative to ``csv_folder``, for its rows.

    Returns the set and the recipients with their column rewritten to file names.
    A path that is absolute or leads out of the CSV's folder (``..``, a symbolic
    link) is refused: a CSV from someone else must not attach this machine's files.
    """
    files = AttachmentSet()
    for path in paths:
        files.add(attachment(path.name, _read(path, f"--attach {path}")))
    rewritten: list[Recipient] = []
    problems: list[str] = []
    for recipient in recipients:
        entries = row_names(recipient.variables.get(ATTACHMENTS_COLUMN, ""))
        if not entries:
            rewritten.append(recipient)
            continue
        names: list[str] = []
        for entry in entries:
            try:
                path = _inside(entry, csv_folder)
                files.add(attachment(path.name, _read(path, entry), everyone=False))
                names.append(safe_name(path.name))
            except UserInputError as exc:
                problems.append(f"{recipient.label}: {exc}")
        variables = {**recipient.variables, ATTACHMENTS_COLUMN: ";".join(names)}
        rewritten.append(
            Recipient(recipient.email, recipient.name, variables, recipient.line, recipient.source)
        )
    if problems:
        raise UserInputError(
            f"{len(problems)} attachment(s) in the CSV cannot be used: {problems[0]}",
            field="attachments",
            details=problems,
        )
    return files, rewritten


def _inside(entry: str, folder: Path | None) -> Path:
    """``entry`` as a file inside ``folder``, or a UserInputError saying why not."""
    if folder is None:
        raise UserInputError(
            f"the attachments column names {entry!r}, but the recipients are not read from "
            "a CSV file whose folder it could be in.",
            field="attachments",
        )
    candidate = Path(entry)
    if candidate.is_absolute() or entry.startswith(("/", "\\")) or ":" in entry[:3]:
        raise UserInputError(
            f"{entry!r} is an absolute path; attachments in the CSV must be paths relative "
            "to the CSV's folder.",
            field="attachments",
        )
    base = folder.resolve()
    resolved = (base / candidate).resolve()
    if not resolved.is_relative_to(base):
        raise UserInputError(
            f"{entry!r} leads out of the CSV's folder ({base}); attachments must be inside it.",
            field="attachments",
        )
    return resolved


def _read(path: Path, shown: str) -> bytes:
    try:
        if path.exists() and not path.is_file() and not path.is_dir():
            raise UserInputError(f"{shown} is not a regular file.", field="attachments")
        size = path.stat().st_size
        if size > MAX_MESSAGE_BYTES:
            raise UserInputError(
                f"{shown}: the file is {size / 1_048_576:.1f} MiB; Gmail takes at most 35 MiB "
                "per message, attachments included.",
                field="attachments",
            )
        return path.read_bytes()
    except IsADirectoryError:
        raise UserInputError(f"{shown} is a folder, not a file.", field="attachments") from None
    except FileNotFoundError:
        raise UserInputError(f"{shown}: no such file.", field="attachments") from None
    except OSError as exc:
        raise UserInputError(
            f"{shown} cannot be read: {exc.strerror}.", field="attachments"
        ) from None


# -- preflight ---------------------------------------------------------------------


def check_selection(files: AttachmentSet | None, recipients: Sequence[Recipient]) -> None:
    """Refuse rows naming a file that was not attached or uploaded, naming each row."""
    problems: list[str] = []
    for recipient in recipients:
        cell = recipient.variables.get(ATTACHMENTS_COLUMN)
        if not cell:
            continue  # the usual row: one dictionary look-up
        missing = files.missing(recipient.variables) if files else row_names(cell)
        if missing:
            names = ", ".join(missing)
            problems.append(f"{recipient.label}: {names} (not attached)")
    if problems:
        raise UserInputError(
            f"The attachments column names {len(problems)} file(s) that were not attached "
            f"or uploaded: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + ". Attach them, or correct the names.",
            field="attachments",
            details=problems[:10],
        )


def check_sensitive(files: AttachmentSet, recipients: Sequence[Recipient]) -> None:
    """Scan every text-like file once; name the file and who would receive it."""
    details: list[str] = []
    for item in files.files.values():
        if not item.text_like:
            continue
        text = item.data.decode("utf-8", errors="replace")
        if extension(item.name) in (".html", ".htm"):
            kinds = sensitive.find_sensitive_html(text)
        else:
            kinds = sensitive.find_sensitive(text)
        if not kinds:
            continue
        who = [r.label for r in recipients if item in files.for_row(r.variables)]
        shown = ", ".join(who[:3]) + (f" and {len(who) - 3} more" if len(who) > 3 else "")
        found = ", ".join(dict.fromkeys(kinds))
        details.append(f"{item.name} (for {shown or 'nobody'}) contains {found}")
    if details:
        raise PolicyError(
            f"An attachment would carry sensitive data, so nothing was sent: {details[0]}"
            + (f" (and {len(details) - 1} more)" if len(details) > 1 else "")
            + ". Remove it from the file and attach it again; payment card numbers, "
            "passwords, API keys, private keys and social security numbers must never be "
            "sent by email.",
            field="attachments",
            details=details,
        )


def refuse_too_large(oversize: Sequence[tuple[str, int, Sequence[str]]]) -> None:
    """``(recipient label, message bytes, file names)`` of messages over Gmail's limit."""
    if not oversize:
        return
    who, size, names = oversize[0]
    details = [f"{w}: {s / 1_048_576:.1f} MiB with {', '.join(n)}" for w, s, n in oversize]
    raise PolicyError(
        f"{len(oversize)} message(s) would be larger than Gmail accepts "
        f"({MAX_MESSAGE_BYTES / 1_048_576:.0f} MiB after encoding, attachments included): "
        f"the message to {who} would be {size / 1_048_576:.1f} MiB with "
        f"{', '.join(names)}. Send fewer or smaller files, or link to them instead.",
        field="attachments",
        details=details[:10],
    )


def summary(files: AttachmentSet | None, recipients: Sequence[Recipient]) -> str:
    """The files in words, for a preview: ``terms.pdf (everyone, 1.2 MB), a.pdf (3 recipients)``."""
    if not files:
        return ""
    shown = []
    for item in files.files.values():
        if item.everyone:
            who = "everyone"
        else:
            count = sum(1 for r in recipients if item in files.for_row(r.variables))
            who = f"{count:,} recipient{'s' if count != 1 else ''}"
        shown.append(f"{item.name} ({who}, {_size(len(item.data))})")
    return ", ".join(shown)


def _size(count: int) -> str:
    if count >= 100_000:
        return f"{count / 1_000_000:.1f} MB"
    return f"{count / 1000:.0f} kB" if count >= 1000 else f"{count} bytes"


# -- kept with the campaign --------------------------------------------------------


def describe(files: AttachmentSet | None) -> str:
    """The manifest of ``files`` (names, keys, types, who gets them), without bytes."""
    entries = [
        {"name": f.name, "key": f.key, "type": f.content_type, "everyone": f.everyone}
        for f in (files.files.values() if files else ())
    ]
    return json.dumps(entries, ensure_ascii=False) if entries else ""


def manifest(files: AttachmentSet, store: AttachmentFiles) -> str:
    """Store every file's bytes (flushed to disk); the manifest to keep with them."""
    for item in files.files.values():
        if store.put(item.data) != item.key:
            raise ValueError("the attachment store must key files by their SHA-256")
    return describe(files)


def load(common_vars: Mapping[str, str], store: AttachmentFiles | None) -> AttachmentSet:
    """The files a recorded campaign was checked with, read back from ``store``."""
    return load_manifest(common_vars.get(ATTACHMENTS_COLUMN), store)


def load_manifest(packed: str | None, store: AttachmentFiles | None) -> AttachmentSet:
    """``describe`` undone: the files read back from ``store`` by their keys."""
    files = AttachmentSet()
    if not packed:
        return files
    if store is None:
        raise UserInputError("This campaign has attachments but no attachment store is set up.")
    for entry in json.loads(packed):
        try:
            data = store.get(entry["key"])
        except FileNotFoundError:
            raise UserInputError(
                f"The attachment {entry['name']} of this campaign is no longer stored, so its "
                "messages cannot be sent as they were checked."
            ) from None
        files.files[entry["name"]] = Attachment(
            entry["name"], data, entry["type"], bool(entry["everyone"])
        )
    return files


def keys_of(common_vars: Mapping[str, str]) -> set[str]:
    packed = common_vars.get(ATTACHMENTS_COLUMN)
    return {entry["key"] for entry in json.loads(packed)} if packed else set()


#: States in which a message may still be sent, by the loop or by a person's retry.
_NEEDS_FILES = ("queued", "deferred", "sending", "uncertain", "failed")
#: How many recent campaigns ``release`` looks through for one still using a file.
RECENT_CAMPAIGNS_CHECKED = 1000


#: Files nobody's campaign uses are removed after this long: longer than a Slack
#: preview (a draft) is kept, so a preview's "Send" still finds its files.
ORPHAN_SECONDS = 8 * 24 * 3600


def prune(store: StoreParts, files: AttachmentFiles, now: float) -> list[str]:
    """Remove files stored more than ``ORPHAN_SECONDS`` ago that no campaign that may
    still send uses: uploads for a preview nobody sent, or left by a crash between
    storing a file and recording its campaign. Returns the removed keys."""
    old = set(files.stored_before(now - ORPHAN_SECONDS))
    if not old:
        return []
    others = {c.id: c for c in store.campaigns.recent(limit=RECENT_CAMPAIGNS_CHECKED)}
    for other in store.campaigns.unfinished():
        if other not in others and (row := store.campaigns.get(other)) is not None:
            others[other] = row
    for campaign_id, campaign in others.items():
        if old & keys_of(campaign.common_vars) and _needs_files(store, campaign_id):
            old -= keys_of(campaign.common_vars)
    for key in sorted(old):
        files.remove(key)
    return sorted(old)


def _needs_files(store: StoreParts, campaign_id: int) -> bool:
    counts = store.outbox.counts(campaign_id)
    return any(counts.get(state) for state in _NEEDS_FILES)


def release(campaign_id: int, store: StoreParts, files: AttachmentFiles | None) -> bool:
    """Remove a campaign's files once nothing of it can be sent any more.

    Kept while any message is queued, deferred, in flight, uncertain or failed (a
    person may retry a failed one), and while another recent campaign that may
    still send uses the same bytes. Returns whether anything was removed.
    """
    campaign = store.campaigns.get(campaign_id)
    if files is None or campaign is None:
        return False
    keys = keys_of(campaign.common_vars)
    if not keys or _needs_files(store, campaign_id):
        return False
    others = {c.id: c for c in store.campaigns.recent(limit=RECENT_CAMPAIGNS_CHECKED)}
    for other in store.campaigns.unfinished():
        if other not in others and (row := store.campaigns.get(other)) is not None:
            others[other] = row
    for other_id, other_row in others.items():
        shared = keys & keys_of(other_row.common_vars)
        if other_id != campaign_id and shared and _needs_files(store, other_id):
            keys -= shared
    for key in keys:
        files.remove(key)
    return bool(keys)
