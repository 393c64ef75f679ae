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
        postal_address=settings.postal_address,
        unsubscribe_base=unsubscribe_base(settings),
        unsubscribe_secret=load_secret(
            settings.unsubscribe_secret, Path(settings.database_path).parent
        ),
        daily_limit=settings.gmail_daily_send_limit if gmail else None,
        reconcile_grace=settings.gmail_reconcile_grace_seconds if gmail else 0.0,
    )


def sender_active(database_path: Path) -> bool:
    """Whether some process holds the sender lock of this database right now.

    Tested with a shared, non-blocking ``flock`` released at once, so a status
    check never keeps a sender from starting. A campaign "running" in the
    database with nobody holding the lock was interrupted.
    """
    path = Path(f"{database_path}.lock")
    try:
        fh = open(path)  # noqa: SIM115 - closed below
    except OSError:
        return False  # no lock file: nobody has ever sent from here
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


class SenderLock:
    """One sending process per database, so crash recovery never races a live sender.

    ``recover_in_flight`` turns ``sending`` into ``uncertain``; if another process
    were mid-send, that would be wrong. An advisory ``flock`` on
    ``<DATABASE_PATH>.lock`` is released by the kernel when the process dies,
    so a crash never leaves a stale lock.
    """

    def __init__(self, database_path: Path):
        self.path = Path(f"{database_path}.lock")
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.close()
            raise MailboltError(
                "Another mailbolt process is sending from this database "
                f"({self.path}). Wait for it to finish or stop it first."
            ) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
