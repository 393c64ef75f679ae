"""Attachment bytes on disk, by content, beside the database (``<data>/attachments/``).

The folder is 0700 and every file 0600: attachments are often private (an
invoice, a contract). A file is named by the SHA-256 of its bytes and written
with ``private_files.create_private`` (complete and flushed before its name
appears), so a crash never leaves half a file under a real name and the same
file in two campaigns is kept once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

from bot.private_files import create_private

_KEY = re.compile(r"^[0-9a-f]{64}$")


class FileAttachments:
    """``bot.ports.AttachmentFiles`` on the local disk."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not an attachment key: {key!r}")
        return self.folder / key

    def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        if not create_private(self._path(key), data):
            os.utime(self._path(key))  # stored again: its age starts over (see ``prune``)
        return key

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def stored_before(self, when: float) -> list[str]:
        if not self.folder.is_dir():
            return []
        return [
            path.name
            for path in self.folder.iterdir()
            if _KEY.match(path.name) and path.stat().st_mtime < when
        ]

    def remove(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()
