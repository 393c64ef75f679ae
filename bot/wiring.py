"""The composition root: settings → the concrete objects the use cases need.

The only place that chooses a transport, so the handler layer never imports
Google's libraries, and the Gmail modules are imported only when configured.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from bot.config import Settings
from bot.errors import AuthError, MailboltError
from bot.handlers.campaign import Deps
from bot.handlers.compose import Envelope
from bot.handlers.templates import TemplateCatalogue
from bot.handlers.unsubscribe import load_secret
from bot.mail.sandbox import SandboxTransport
from bot.ports import NoPacing, Pacer, Transport
from bot.records import SANDBOX_ACCOUNT, account_key
from bot.store import Store

SANDBOX_SENDER = "sandbox@mailbolt.invalid"


def sender_address(settings: Settings) -> str:
    """The From address: configured, else learned at ``python -m bot auth`` time."""
    if settings.sender_address:
        return settings.sender_address
    if settings.mail_transport == "sandbox":
        return SANDBOX_SENDER
    from bot.mail.google_auth import authorized_address

    return authorized_address(settings)


def sending_account(settings: Settings) -> str:
    """The account whose quota and daily limit a send spends: the sandbox's own, or
    the Gmail sender address. Counting per account keeps sandbox runs from using
    up Gmail's day, and is the first step toward per-person sender accounts."""
    if settings.mail_transport != "gmail":
        return SANDBOX_ACCOUNT
    return account_key(sender_address(settings))


def unsubscribe_base(settings: Settings) -> str:
    """Where unsubscribe links point; localhost is good enough for the sandbox."""
    if settings.public_base_url:
        return settings.public_base_url
    return f"http://localhost:{settings.port}"


def build_transport(settings: Settings) -> Transport:
    if settings.mail_transport == "gmail":
        from bot.mail.gmail import build_transport as build_gmail

        return build_gmail(settings)
    return SandboxTransport(settings.sandbox_outbox)


def build_pacer(settings: Settings) -> Pacer:
    if settings.mail_transport == "gmail":
        from bot.mail.pacing import QuotaPacer

        return QuotaPacer(settings.gmail_quota_units_per_minute)
    return NoPacing()


def build_deps(settings: Settings, store: Store | None = None, *, sending: bool = True) -> Deps:
    """Everything a campaign needs; the transport is created on first use.

    With ``sending=False`` (commands that only read or decide: ``status``,
    ``templates``, ``resolve``) a missing Gmail grant is no error: the From
    address is left empty instead of asking for an ``auth`` nobody needs yet.
    """
    store = store or Store(settings.database_path)
    try:
        address = sender_address(settings)
    except AuthError:
        if sending:
            raise
        address = ""
    gmail = settings.mail_transport == "gmail"
    transport: list[Transport] = []

    def lazy_transport() -> Transport:
        if not transport:
            transport.append(build_transport(settings))
        return transport[0]

    return Deps(
        store=store,
        catalogue=TemplateCatalogue(settings.templates_dir),
        transport=lazy_transport,
        pacer=build_pacer(settings),
        envelope=Envelope(settings.from_name, address, settings.reply_to),
        account=account_key(address) if gmail else SANDBOX_ACCOUNT,
        postal_address=settings.postal_address,
        unsubscribe_base=unsubscribe_base(settings),
        public_links=gmail,
        unsubscribe_secret=load_secret(
            settings.unsubscribe_secret, Path(settings.database_path).parent
        ),
        daily_limit=settings.gmail_daily_send_limit if gmail else None,
        reconcile_grace=settings.gmail_reconcile_grace_seconds if gmail else 0.0,
    )


class SenderBusy(MailboltError):
    """Another process holds the sender lock; ``pid`` and ``role`` say which."""

    def __init__(self, message: str, *, pid: int | None, role: str):
        super().__init__(message)
        self.pid = pid
        self.role = role


#: Roles written into the lock file, so a CLI send can tell a running server
#: (which takes campaigns over) from another CLI send (which it must wait for).
ROLE_SERVE, ROLE_SEND = "serve", "send"


def sender_active(database_path: Path) -> bool:
    """Whether some process holds the sender lock of this database right now.

    A campaign "running" in the database with nobody holding the lock was
    interrupted. Tested without taking the lock, so a status check never keeps a
    sender from starting.
    """
    return SenderLock(database_path).held_by_other()


class SenderLock:
    """One sending process per database, so crash recovery never races a live sender.

    ``recover_in_flight`` turns ``sending`` into ``uncertain``; if another process
    were mid-send, that would be wrong. An advisory ``flock`` on
    ``<DATABASE_PATH>.lock`` is released by the kernel when the process dies,
    so a crash never leaves a stale lock. The file says who holds it
    (``<pid> <role>``): a CLI send hands its campaign to a running server instead
    of sending itself, and both share one database, one quota and one pacing.
    """

    def __init__(self, database_path: Path, role: str = ROLE_SEND):
        self.path = Path(f"{database_path}.lock")
        self.role = role
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ``SenderBusy`` naming the process that has it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.close()
            pid, role = self._holder()
            raise SenderBusy(
                f"Another mailbolt process (`python -m bot {role}`, pid {pid or 'unknown'}) "
                f"is sending from this database "
                f"({self.path}). Wait for it to finish or stop it first.",
                pid=pid,
                role=role,
            ) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()} {self.role}")
        fh.flush()
        self._fh = fh

    def held_by_other(self) -> bool:
        """Whether some other process holds the lock now (e.g. the server is still up)."""
        if self._fh is not None:
            return False
        try:
            fh = open(self.path)  # noqa: SIM115 - closed by the with below
        except OSError:
            return False  # no lock file: nobody has ever sent from here
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False

    def _holder(self) -> tuple[int | None, str]:
        """``(pid, role)`` as written by the holder; the role is ``send`` if unknown."""
        try:
            words = self.path.read_text(encoding="utf-8").split()
        except OSError:
            return None, ROLE_SEND
        pid = int(words[0]) if words and words[0].isdigit() else None
        return pid, words[1] if len(words) > 1 else ROLE_SEND

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
