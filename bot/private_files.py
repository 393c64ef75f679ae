"""Secret files (the unsubscribe key, the Gmail grant), written so nobody sees half of one.

Every secret file mailbolt writes is first written in full to a temporary file
created with mode 0600 in the same folder, flushed to disk, and only then put in
place with one atomic step:
- ``write_private`` *replaces* the file (``os.replace``): a refreshed Gmail token.
- ``create_private`` *creates* it only if it is not there yet (``os.link``, which
  fails if the name exists): a key that several processes may generate at once.
  The first one wins and every other one reads the winner's complete file.

Creating the real name empty and writing it afterwards (``O_EXCL`` then
``write``) is what this replaces: a second process could read the empty file in
between, and an empty HMAC key makes every token forgeable.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

MODE = 0o600


def _temporary(path: Path, data: bytes) -> Path:
    """``data`` in a fresh 0600 file next to ``path``, flushed to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return tmp


def _sync_folder(folder: Path) -> None:
    """Make the new name itself durable, not only the bytes behind it."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0600), replacing it atomically."""
    path = Path(path)
    tmp = _temporary(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _sync_folder(path.parent)


def create_private(path: Path, data: bytes) -> bool:
    """Create ``path`` (mode 0600) holding ``data`` unless it exists; True if we did.

    When several processes race, exactly one creates the file and the others
    find it complete: the name appears only once the content is on disk.
    """
    path = Path(path)
    if path.exists():
        return False
    tmp = _temporary(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _sync_folder(path.parent)
    return True


def key_file(path: Path) -> bytes:
    """The secret key kept in ``path``, generated there (0600, 32 random bytes as
    text) the first time; racing processes all read the one that was created.

    Raises ``OSError`` when the file can be neither created nor read.
    """
    create_private(path, secrets.token_urlsafe(32).encode("ascii") + b"\n")
    return Path(path).read_bytes().strip()
