"""The composition root: settings → the concrete parts the use cases need.

Owns every choice of implementation (store, template catalogue, transport,
pacer, bounce source, sender identity, policy) and builds each part when it is
first asked for: ``status`` opens only the store, ``templates`` only the
catalogue, and nothing reads the Gmail grant until a command needs the From
address or the transport. The only place that chooses a transport, so the
handler layer never imports Google's libraries, and the Gmail modules are
imported only when configured. Also owns ``SenderLock``: one sender per database.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING

from bot.config import Settings
from bot.errors import AuthError, MailboltError

if TYPE_CHECKING:
    from bot.handlers.bounces import ScanResult
    from bot.handlers.campaign import Deps, Policy
    from bot.handlers.compose import Envelope
    from bot.handlers.templates import TemplateCatalogue
    from bot.ports import BounceSource, Pacer, Transport
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
    gmail = settings.mail_transport == "gmail"
    return account_of(settings, sender_address(settings) if gmail else "")


def account_of(settings: Settings, address: str) -> str:
    """The account key of ``address`` with Gmail; the sandbox's own account otherwise."""
    from bot.records import SANDBOX_ACCOUNT, account_key  # not needed to list templates

    return account_key(address) if settings.mail_transport == "gmail" else SANDBOX_ACCOUNT


def unsubscribe_base(settings: Settings) -> str:
    """Where unsubscribe links point; localhost is good enough for the sandbox."""
    if settings.public_base_url:
        return settings.public_base_url
    return f"http://localhost:{settings.port}"


def attachments_folder(settings: Settings) -> Path:
    """Where campaigns keep their attachments: ``attachments/`` beside the database."""
    return Path(settings.database_path).parent / "attachments"


def build_transport(settings: Settings) -> Transport:
    if settings.mail_transport == "gmail":
        from bot.mail.gmail import build_transport as build_gmail

        return build_gmail(settings)
    from bot.mail.sandbox import SandboxTransport

    return SandboxTransport(settings.sandbox_outbox)


def build_pacer(settings: Settings) -> Pacer:
    if settings.mail_transport == "gmail":
        from bot.mail.pacing import QuotaPacer

        return QuotaPacer(settings.gmail_quota_units_per_minute)
    from bot.ports import NoPacing

    return NoPacing()


def build_policy(settings: Settings) -> Policy:
    """The rules a campaign is held to, from settings alone (no file, no grant)."""
    from bot.handlers.campaign import Policy

    gmail = settings.mail_transport == "gmail"
    return Policy(
        postal_address=settings.postal_address,
        unsubscribe_base=unsubscribe_base(settings),
        public_links=gmail,
        daily_limit=settings.gmail_daily_send_limit if gmail else None,
        reconcile_grace=settings.gmail_reconcile_grace_seconds if gmail else 0.0,
    )


class Wiring:
    """Every part, each built on first use and then shared (one per process).

    ``store`` may be passed in (tests, a server that already opened it).
    Reading a part that needs the Gmail grant (``sender``, ``envelope``,
    ``account``, ``transport``, ``bounce_source``) is what reads the grant.
    """

    def __init__(self, settings: Settings, store: Store | None = None):
        self.settings = settings
        if store is not None:
            self.__dict__["store"] = store
        self._transport: Transport | None = None

    @cached_property
    def store(self) -> Store:
        from bot.store import Store

        return Store(self.settings.database_path, busy_seconds=self.settings.database_busy_seconds)

    @cached_property
    def catalogue(self) -> TemplateCatalogue:
        from bot.handlers.templates import TemplateCatalogue

        return TemplateCatalogue(self.settings.templates_dir)

    @cached_property
    def pacer(self) -> Pacer:
        return build_pacer(self.settings)

    @cached_property
    def policy(self) -> Policy:
        return build_policy(self.settings)

    @cached_property
    def sender(self) -> str:
        """The From address; with Gmail and no ``SENDER_ADDRESS``, read from the grant."""
        return sender_address(self.settings)

    @cached_property
    def account(self) -> str:
        """Whose quota and daily limit a send spends (see ``sending_account``)."""
        gmail = self.settings.mail_transport == "gmail"
        return account_of(self.settings, self.sender if gmail else "")

    @cached_property
    def unsubscribe_secret(self) -> bytes:
        """The key of unsubscribe links; created beside the database on first use."""
        from bot.handlers.unsubscribe import load_secret

        folder = Path(self.settings.database_path).parent
        return load_secret(self.settings.unsubscribe_secret, folder)

    def envelope(self, *, sending: bool = True) -> Envelope:
        """From, name and Reply-To. With ``sending=False`` a missing grant leaves
        the address empty instead of asking for an ``auth`` nobody needs yet."""
        from bot.handlers.compose import Envelope

        try:
            address = self.sender
        except AuthError:
            if sending:
                raise
            address = ""
        return Envelope(self.settings.from_name, address, self.settings.reply_to)

    def transport(self) -> Transport:
        """The transport, created on first call (the Gmail one reads the grant)."""
        if self._transport is None:
            self._transport = build_transport(self.settings)
        return self._transport

    def bounce_source(self) -> BounceSource:
        """The Gmail mailbox, read with the saved grant (whatever ``MAIL_TRANSPORT``
        is: bounces come back to the Gmail account)."""
        from bot.mail.bounces import GmailBounceSource
        from bot.mail.gmail import GmailTransport
        from bot.mail.gmail import build_transport as build_gmail

        current = self.transport() if self.settings.mail_transport == "gmail" else None
        gmail = current if isinstance(current, GmailTransport) else build_gmail(self.settings)
        return GmailBounceSource(gmail)

    def scan_bounces(self) -> ScanResult:
        """One bounce scan (``BOUNCE_SCAN=on`` only), its reads paced and counted
        against the sending account's quota."""
        from bot.handlers import bounces
        from bot.mail.google_auth import AUTH_COMMAND

        bounces.check_enabled(self.settings.bounce_scan, AUTH_COMMAND)
        source = self.bounce_source()
        return bounces.scan(self.store, source, pacer=self.pacer, account=self.account)

    def bounce_job(self, alert: Callable[[int, str], None]) -> Callable[[], None]:
        """The server's periodic scan, warning through ``alert`` (see ``bounces.bounce_job``)."""
        from bot.handlers import bounces

        return bounces.bounce_job(self.scan_bounces, self.store, alert)

    def deps(self, *, sending: bool = True) -> Deps:
        """What a campaign use case needs. ``sending=False`` (``resolve``, checks
        that only decide) tolerates a missing grant: the From address, and so the
        account, stay empty until a grant exists."""
        from bot.attachment_files import FileAttachments
        from bot.handlers.campaign import Deps

        envelope = self.envelope(sending=sending)
        return Deps(
            store=self.store,
            catalogue=self.catalogue,
            transport=self.transport,
            pacer=self.pacer,
            envelope=envelope,
            account=account_of(self.settings, envelope.from_address),
            unsubscribe_secret=self.unsubscribe_secret,
            policy=self.policy,
            attachment_files=FileAttachments(attachments_folder(self.settings)),
        )


def build_deps(settings: Settings, store: Store | None = None, *, sending: bool = True) -> Deps:
    """``Wiring(settings, store).deps(sending=...)``, for callers that need only Deps."""
    return Wiring(settings, store).deps(sending=sending)


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
