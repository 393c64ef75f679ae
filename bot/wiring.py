"""The composition root: settings → the concrete parts the use cases need.

Owns every choice of implementation (store, template catalogue, transport,
pacer, bounce source, sender identity, policy) and builds each part when it is
first asked for: ``status`` opens only the store, ``templates`` only the
catalogue, and nothing reads the Gmail grant until a command needs the From
address or the transport. The only place that chooses a transport, so the
handler layer never imports Google's libraries, and the Gmail modules are
imported only when configured. Chooses the store too: PostgreSQL when
``DATABASE_URL`` is set, else the SQLite file. Also owns the sender lock
(``sender_lock``): one sender per database, a file lock beside SQLite or an
advisory lock in PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bot.config import Settings
from bot.errors import AuthError, MailboltError

if TYPE_CHECKING:
    from bot.handlers.approval import ApprovalPolicy
    from bot.handlers.bounces import ScanResult
    from bot.handlers.campaign import Deps, Policy
    from bot.handlers.compose import Envelope
    from bot.handlers.templates import TemplateCatalogue
    from bot.models import OutgoingMessage
    from bot.ports import BounceSource, GrantFlow, Pacer, Sealer, SenderAccounts, Transport
    from bot.records import SenderAccount
    from bot.store import SqlStore

log = logging.getLogger(__name__)

SANDBOX_SENDER = "sandbox@mailbolt.invalid"
#: Who the audit log names for what mailbolt does by itself.
SYSTEM_ACTOR = "mailbolt"


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


def build_pacer(settings: Settings, store: SqlStore | None = None, account: str = "") -> Pacer:
    """The pacer of one sender account. With PostgreSQL (``store`` given) the schedule
    lives in the database, shared by every process that sends for the account
    (workers on many machines); otherwise in this process."""
    if settings.mail_transport == "gmail" and settings.database_url and store is not None:
        from bot.store.pacing import SharedPacer

        return SharedPacer(store.database, account, settings.gmail_quota_units_per_minute)
    if settings.mail_transport == "gmail":
        from bot.mail.pacing import QuotaPacer

        return QuotaPacer(settings.gmail_quota_units_per_minute)
    from bot.ports import NoPacing

    return NoPacing()


def open_store(settings: Settings) -> SqlStore:
    """PostgreSQL when ``DATABASE_URL`` is set, else the SQLite file ``DATABASE_PATH``."""
    if settings.database_url:
        from bot.store_pg.store import PgStore

        return PgStore(settings.database_url, busy_seconds=settings.database_busy_seconds)
    from bot.store import Store

    return Store(settings.database_path, busy_seconds=settings.database_busy_seconds)


def approval_policy(settings: Settings) -> ApprovalPolicy:
    """Who must approve which campaigns, from the four APPROVAL settings."""
    from bot.handlers.approval import ApprovalPolicy

    return ApprovalPolicy(
        required=settings.approval_required,
        min_recipients=settings.approval_min_recipients,
        approvers=settings.approver_ids,
        channels=settings.approval_channels,
    )


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

    def __init__(self, settings: Settings, store: SqlStore | None = None):
        self.settings = settings
        if store is not None:
            self.__dict__["store"] = store
        self._transport: Transport | None = None
        self._lock = threading.RLock()
        self._senders_ready = False
        self._account_deps: dict[str, Deps] = {}
        self._account_transports: dict[tuple[str, str], Transport] = {}

    @cached_property
    def store(self) -> SqlStore:
        return open_store(self.settings)

    @cached_property
    def catalogue(self) -> TemplateCatalogue:
        from bot.handlers.templates import TemplateCatalogue

        return TemplateCatalogue(self.settings.templates_dir)

    @cached_property
    def pacer(self) -> Pacer:
        """The default account's pacer (its schedule is in the database with PostgreSQL)."""
        if self.settings.database_url and self.settings.mail_transport == "gmail":
            return build_pacer(self.settings, self.store, self.account)
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

    def _pacer_of(self, address: str) -> Pacer:
        """The default pacer; with PostgreSQL, that of ``address``'s account (no grant read)."""
        if self.settings.database_url and self.settings.mail_transport == "gmail":
            return build_pacer(self.settings, self.store, account_of(self.settings, address))
        return self.pacer

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
            pacer=self._pacer_of(envelope.from_address),
            envelope=envelope,
            account=account_of(self.settings, envelope.from_address),
            unsubscribe_secret=self.unsubscribe_secret,
            policy=self.policy,
            attachment_files=FileAttachments(attachments_folder(self.settings)),
        )

    # -- sender accounts ---------------------------------------------------------

    @cached_property
    def seal(self) -> Sealer:
        """Encrypts grants for the store: ``GRANT_KEY``, else a key file beside the database."""
        from bot.mail.grant_seal import load_seal

        return load_seal(self.settings.grant_key, Path(self.settings.database_path).parent)

    @cached_property
    def grant_flow(self) -> GrantFlow:
        """Google's web-server flow ("Connect your Gmail")."""
        from bot.mail.google_web_flow import GoogleWebFlow

        return GoogleWebFlow(self.settings)

    @property
    def senders(self) -> SenderAccounts:
        """The store's sender accounts, with today's ``python -m bot auth`` account
        registered as the first (shared, open to everyone who may send) on first use:
        no new consent, and its grant stays in its 0600 token file."""
        with self._lock:
            if not self._senders_ready:
                self._senders_ready = True
                self._register_token_file_account()
        return self.store.senders

    def _register_token_file_account(self) -> None:
        from bot.records import GrantClient, SenderAccount, SenderKind, account_key

        settings = self.settings
        if settings.mail_transport != "gmail" or not Path(settings.gmail_token_file).is_file():
            return
        try:
            address = account_key(self.sender)
        except AuthError as exc:
            log.warning("the token file's account is not listed: %s", exc)
            return
        if self.store.senders.get(address) is not None:
            return
        account = SenderAccount(
            address=address,
            kind=SenderKind.SHARED,
            client=GrantClient.TOKEN_FILE,
            name="default",
            everyone=True,
        )
        self.store.senders.save(account, actor=SYSTEM_ACTOR, action="account.migrated")

    def oauth_pages(self, on_connected: Callable[[SenderAccount], object] | None = None) -> Any:
        """The "Connect your Gmail" pages the web server serves (``bot.web_oauth``)."""
        from bot.web_oauth import OAuthPages

        return OAuthPages(
            lambda: self.senders,
            lambda: self.grant_flow,
            lambda: self.seal,
            secure_cookie=self.settings.public_base_url.startswith("https://"),
            on_connected=on_connected,
        )

    def use_default_deps(self, deps: Deps) -> None:
        """Share ``deps`` (the one the runner and the app already use) as the default
        account's, so there is one transport and one pacer for it."""
        with self._lock:
            self._account_deps.setdefault("", deps)

    def default_deps(self) -> Deps:
        """The Deps of the default account (built once)."""
        with self._lock:
            if "" not in self._account_deps:
                self._account_deps[""] = self.deps()
            return self._account_deps[""]

    def deps_for(self, account: str) -> Deps:
        """What a campaign sending as ``account`` needs: its From, its transport and
        its own pacer (two accounts send side by side, each at its own full rate;
        campaigns of one account share its pacer). The default account, legacy
        campaigns and the sandbox get ``default_deps``."""
        from bot.records import LEGACY_ACCOUNT, SANDBOX_ACCOUNT, GrantClient

        default = self.default_deps()
        if (
            self.settings.mail_transport != "gmail"
            or account in (LEGACY_ACCOUNT, SANDBOX_ACCOUNT, default.account)
            or not account
        ):
            return default
        with self._lock:
            if account in self._account_deps:
                return self._account_deps[account]
            record = self.senders.get(account)
            if record is None or record.client == GrantClient.TOKEN_FILE:
                return default
            from bot.handlers.compose import Envelope

            deps = dataclasses.replace(
                default,
                envelope=Envelope(
                    record.name or self.settings.from_name, record.address, self.settings.reply_to
                ),
                account=account,
                transport=lambda: self.account_transport(account),
                pacer=build_pacer(self.settings, self.store, account),
            )
            self._account_deps[account] = deps
            return deps

    def account_transport(self, account: str) -> Transport:
        """The Gmail transport of a stored account, rebuilt when its grant changes.

        An account that lost its grant raises ``AuthError`` saying who reconnects
        it and how; so does its transport when Google refuses the grant mid-send,
        and the account is then marked revoked (only its campaigns pause).
        """
        from bot.handlers.senders import reconnect_hint
        from bot.records import GrantClient, SenderStatus

        record = self.store.senders.get(account)
        if record is None:
            raise AuthError(f"The sender account {account} was removed. Send from another account.")
        if record.status != SenderStatus.ACTIVE:
            raise AuthError(
                f"The Gmail authorization of {account} no longer works "
                f"({record.status_reason or 'revoked'}). {reconnect_hint(record)}"
            )
        key = (account, record.sealed_grant)
        with self._lock:
            transport = self._account_transports.get(key)
            if transport is None:
                from bot.mail.gmail import build_account_transport

                inner = build_account_transport(
                    self.settings,
                    address=record.address,
                    refresh_token=self.seal.open(record.sealed_grant),
                    scopes=record.scopes,
                    web=record.client == GrantClient.WEB,
                )
                transport = _AccountTransport(inner, record, self)
                self._account_transports[key] = transport
        return transport

    def grant_refused(self, record: SenderAccount, error: AuthError) -> AuthError:
        """Mark ``record`` revoked and say who reconnects it and how."""
        from bot.handlers.senders import reconnect_hint
        from bot.records import SenderStatus

        reason = str(error).split(". ")[0][:300]
        self.store.senders.set_status(
            record.address, SenderStatus.REVOKED, reason, actor=SYSTEM_ACTOR
        )
        return AuthError(
            f"Gmail refused the authorization of {record.address} ({reason}). "
            f"{reconnect_hint(record)}"
        )


class _AccountTransport:
    """A stored account's transport: an ``AuthError`` marks the account revoked and
    says how to reconnect it (``Wiring.grant_refused``); everything else passes."""

    def __init__(self, inner: Transport, record: SenderAccount, wiring: Wiring):
        self._inner = inner
        self._record = record
        self._wiring = wiring
        self.name = inner.name
        self.max_in_flight = inner.max_in_flight
        self.can_read = getattr(inner, "can_read", True)

    def send(self, message: OutgoingMessage) -> str:
        try:
            return self._inner.send(message)
        except AuthError as exc:
            raise self._wiring.grant_refused(self._record, exc) from exc

    def find_sent(self, message_id: str) -> str | None:
        try:
            return self._inner.find_sent(message_id)
        except AuthError as exc:
            raise self._wiring.grant_refused(self._record, exc) from exc


def build_deps(settings: Settings, store: SqlStore | None = None, *, sending: bool = True) -> Deps:
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
#: Workers (``python -m bot worker``, PostgreSQL only) hold the lock shared: any
#: number of them at once, and no ``serve`` or ``send`` that sends by itself.
ROLE_SERVE, ROLE_SEND, ROLE_WORKER = "serve", "send", "worker"
#: The roles that take over a campaign a CLI send records.
HANDS_OVER_TO = (ROLE_SERVE, ROLE_WORKER)


def sender_active(settings: Settings | Path) -> bool:
    """Whether some process holds the sender lock of this database right now.

    A campaign "running" in the database with nobody holding the lock was
    interrupted. Tested without taking the lock, so a status check never keeps a
    sender from starting. (A bare path means a SQLite database.)
    """
    lock = SenderLock(settings) if isinstance(settings, Path) else sender_lock(settings)
    try:
        return lock.held_by_other()
    finally:
        lock.release()


def sender_lock(settings: Settings, role: str = ROLE_SEND) -> AnySenderLock:
    """The lock that makes this process the one sender of its database."""
    if settings.database_url:
        return PgSenderLock(settings, role)
    return SenderLock(settings.database_path, role)


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


def _holder_name(role: str) -> str:
    """Who holds a PostgreSQL sender lock, as its session's ``application_name``."""
    return f"mailbolt {role} {os.getpid()}@{socket.gethostname()}"[:63]


def _parse_holder(name: str) -> tuple[int | None, str, str]:
    """``(pid, role, host)`` from a holder's ``application_name``."""
    words = name.split()
    if len(words) < 3 or words[0] != "mailbolt":
        return None, ROLE_SEND, ""
    pid, _, host = words[2].partition("@")
    return (int(pid) if pid.isdigit() else None), words[1], host


def _alive_here(pid: int | None, host: str) -> bool | None:
    """Whether ``pid`` on ``host`` is alive: None when that cannot be told from here."""
    if pid is None or host != socket.gethostname()[: len(host)]:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PgSenderLock:
    """``SenderLock`` on PostgreSQL: a session advisory lock in the shared database.

    The same promise as the file lock: one sending process per database, released
    by the server the moment the holder's session ends (a crash, a SIGKILL: the
    connection closes; a lost machine: when TCP keepalives give up). The holder's
    session is named ``mailbolt <role> <pid>@<host>`` so a second process can say
    who has it, and a CLI send can hand its campaign to a running server.

    A SIGKILLed holder's session ends a moment after the process does; a process on
    the same machine that finds the lock held by a dead pid waits for that (up to
    ``DEAD_HOLDER_WAIT`` seconds) instead of refusing.
    """

    DEAD_HOLDER_WAIT = 15.0

    def __init__(self, settings: Settings, role: str = ROLE_SEND):
        from bot.store_pg.lock import AdvisoryLock

        self.role = role
        self._lock = AdvisoryLock(
            settings.database_url,
            application_name=_holder_name(role),
            busy_seconds=settings.database_busy_seconds,
        )

    def acquire(self) -> None:
        """Take the lock, or raise ``SenderBusy`` naming the process that has it."""
        deadline = time.monotonic() + self.DEAD_HOLDER_WAIT
        while not self._lock.try_acquire(shared=self.role == ROLE_WORKER):
            holder = self._lock.holder()
            if holder is None:
                continue  # released between the two questions: try again
            pid, role, host = _parse_holder(holder)
            if _alive_here(pid, host) is False and time.monotonic() < deadline:
                time.sleep(0.05)  # its session is still closing
                continue
            where = f"pid {pid or 'unknown'}" + (f" on {host}" if host else "")
            if role == ROLE_WORKER:
                raise SenderBusy(
                    f"Workers (`python -m bot worker`, {where} and maybe more) send from this "
                    f"database ({self._lock.name}). Beside them run `python -m bot serve "
                    "--no-send`, and let `python -m bot send` hand its campaigns to them; or "
                    "stop every worker first.",
                    pid=pid,
                    role=role,
                )
            raise SenderBusy(
                f"Another mailbolt process (`python -m bot {role}`, {where}) is sending "
                f"from this database ({self._lock.name}). Wait for it to finish or stop it "
                "first.",
                pid=pid,
                role=role,
            )

    def held_by_other(self) -> bool:
        """Whether some other session holds the lock now (e.g. the server is still up)."""
        return not self._lock.held and self._lock.holder() is not None

    def release(self) -> None:
        self._lock.release()


#: Either sender lock (what ``sender_lock`` returns).
AnySenderLock = SenderLock | PgSenderLock
