"""The default transport: every message becomes an ``.eml`` file, nothing leaves.

It behaves like a real provider where it matters for safety testing: one file
per accepted send (a duplicate send shows up as a second file, never an
overwrite), atomic writes (a crash leaves no half message), and ``find_sent``
answers by Message-ID, the way Gmail's ``rfc822msgid:`` search does.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import threading
from pathlib import Path

from bot.errors import LocalFault, describe_os_error
from bot.models import OutgoingMessage


def _key(message_id: str) -> str:
    return hashlib.sha256(message_id.encode()).hexdigest()[:16]


class SandboxTransport:
    """Writes ``<campaign>-<position>-<recipient>-<msgkey>.eml`` into ``outbox``."""

    name = "sandbox"
    max_in_flight = 4

    def __init__(self, outbox: Path):
        self.outbox = Path(outbox)
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> str:
        try:
            self.outbox.mkdir(parents=True, exist_ok=True)
            if not self.outbox.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(self.outbox))
        except OSError as exc:
            raise self._fault("create", exc) from exc
        safe_rcpt = "".join(c if c.isalnum() or c in "._-" else "_" for c in message.recipient)
        stem = f"{message.campaign_id:04d}-{message.row_id:06d}-{safe_rcpt[:60]}-" + _key(
            message.message_id
        )
        tmp = self.outbox / f".{stem}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(message.raw)
                fh.flush()
                os.fsync(fh.fileno())
            with self._lock:
                n = 1
                target = self.outbox / f"{stem}.eml"
                while target.exists():
                    n += 1
                    target = self.outbox / f"{stem}.{n}.eml"
                os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)  # never leave half a message behind
            raise self._fault("write to", exc) from exc
        return f"sandbox:{target.name}"

    def _fault(self, action: str, exc: OSError) -> LocalFault:
        """The outbox is unusable: the message did not leave, and no other one would."""
        return LocalFault(
            f"Cannot {action} the outbox {self.outbox}: {describe_os_error(exc)}. Fix it "
            "(SANDBOX_OUTBOX must be a writable folder with free space), then resume "
            "the campaign."
        )

    def find_sent(self, message_id: str) -> str | None:
        """The outbox file holding ``message_id``, found by the key in its name."""
        if not self.outbox.is_dir():
            return None
        key = _key(message_id)
        for path in sorted(self.outbox.glob(f"*-{key}*.eml")):
            return f"sandbox:{path.name}"
        return None
