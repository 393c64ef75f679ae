"""The small interfaces the handler layer calls. Adapters live in ``bot/mail``.

Keeping them here (and not in the adapters) is what lets ``bot/handlers`` run
with no Google or Slack library imported.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Unpack

from bot.models import OutgoingMessage
from bot.records import (
    LEGACY_ACCOUNT,
    Approval,
    ApprovalDecision,
    AuditEntry,
    Campaign,
    CampaignChanges,
    CampaignDelivery,
    CampaignStatus,
    DeliveryCounts,
    Draft,
    Installation,
    Message,
    MessageState,
    NewMessage,
    OAuthState,
    SenderAccount,
    SenderStatus,
    TestSend,
    Transition,
    Unsubscribe,
)

#: The largest raw message Gmail's messages.send takes (``mediaUpload.maxSize`` in the
#: discovery document: 35 MiB), attachments included after their base64 encoding.
#: Preflight refuses a campaign with a bigger message; the Gmail transport refuses
#: to send one.
MAX_MESSAGE_BYTES = 36_700_160


class AttachmentFiles(Protocol):
    """Where a campaign's attachment bytes wait until its last message is sent.

    Files are stored by content (their SHA-256), so the same file in two
    campaigns is kept once and a stored name says exactly which bytes it is.
    """

    def put(self, data: bytes) -> str:
        """Store ``data`` durably (written in full before it can be found); its key,
        which is the SHA-256 of ``data`` in hex."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; ``FileNotFoundError`` if they are gone."""
        ...

    def remove(self, key: str) -> None:
        """Forget ``key`` (nothing happens if it is not there)."""
        ...

    def stored_before(self, when: float) -> list[str]:
        """Keys of files stored (or stored again) before ``when`` (epoch seconds)."""
        ...


class Transport(Protocol):
    """Delivers one message. Raises only ``bot.errors`` types.

    - ``TransientSendError``: not delivered, retry later (honour ``retry_after``).
    - ``PermanentSendError``: not delivered, do not retry.
    - ``QuotaDeferred``: not delivered, the account's daily limit is reached.
    - ``UncertainSendError``: may have been delivered; never re-send blindly.
    - ``AuthError``: not delivered, credentials must be fixed by an admin.
    - ``LocalFault``: not delivered, this machine cannot do its part (outbox
      unwritable, disk full); the campaign pauses until a person fixes it.

    An optional ``can_read`` attribute (default true) says whether ``find_sent``
    can answer at all, so a resume does not wait for a lookup it cannot make.
    """

    name: str
    #: How many sends may be in flight at once to reach the pacer's ceiling.
    max_in_flight: int

    def send(self, message: OutgoingMessage) -> str:
        """Send and return the provider's message id."""
        ...

    def find_sent(self, message_id: str) -> str | None:
        """Look up a message by its Message-ID header among sent mail.

        Returns the provider id if found, ``None`` if certainly not sent.
        Raises ``NotImplementedError`` when the transport cannot tell (e.g. the
        Gmail grant has no read scope), so the caller must ask a person.
        """
        ...


class Pacer(Protocol):
    """Spaces calls so that a per-minute quota ceiling is never exceeded."""

    def acquire(self, units: int) -> None:
        """Block until ``units`` may be spent now."""
        ...


class BounceSource(Protocol):
    """Where delivery-status reports come back: read only, never written.

    Each method is one provider call; the caller paces it and counts its quota
    units (``bot/handlers/bounces.py``), so the adapter only reads.
    """

    def report_page(self, days: int, page_token: str | None) -> tuple[list[str], str | None]:
        """One page of ids of reports from the last ``days``, and the next page's token."""
        ...

    def raw(self, report_id: str) -> bytes:
        """One whole report, as the bytes the mailer-daemon sent."""
        ...


@dataclass(frozen=True)
class Grant:
    """What Google granted at the end of a consent: a secret and what it allows."""

    address: str
    refresh_token: str = field(repr=False)
    scopes: frozenset[str]


class GrantFlow(Protocol):
    """Google's web-server OAuth flow with PKCE (``bot/mail/google_web_flow.py``).

    Raises ``AuthError`` with words for the person when Google refuses, or when
    fewer permissions than sending needs were granted.
    """

    def authorization_url(self, state: str, code_verifier: str) -> str: ...

    def exchange(self, code: str, code_verifier: str) -> Grant: ...

    def revoke(self, refresh_token: str) -> None: ...


class Sealer(Protocol):
    """Encrypts grants before the store keeps them (``bot/mail/grant_seal.py``)."""

    def seal(self, secret: str) -> str: ...

    def open(self, sealed: str) -> str:
        """The secret; ``AuthError`` if it was sealed with another key or tampered with."""
        ...


class Directory(Protocol):
    """The workspace's people and audiences (Slack, for the compose form).

    People are plain Slack user objects (``users.info``'s ``user``), so the rules
    about who can be mailed stay in the handlers. A problem reading an audience is
    a ``UserInputError`` on the field it came from.
    """

    def users(self, user_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The profile of each id, in order."""
        ...

    def group_members(self, group_id: str) -> list[str]:
        """The user ids of a user group."""
        ...

    def channel_members(self, channel_id: str) -> list[str]:
        """The user ids of a channel's members, every page of them."""
        ...


class NoPacing:
    """For transports without a quota (the sandbox)."""

    def acquire(self, units: int) -> None:
        return None


# -- the store's parts ------------------------------------------------------------
# One Protocol per thing the store keeps. ``bot/store`` implements them on SQLite;
# a PostgreSQL store implements them again and passes the same contract tests
# (tests/store_contract/). Typed records in, typed records out (bot/records.py).


class Campaigns(Protocol):
    """Campaigns, each created atomically with all its messages."""

    def create(
        self,
        *,
        requested_by: str,
        template: str,
        category: str,
        subject: str,
        common_vars: dict[str, str],
        messages: Iterable[NewMessage],
        team: str = "",
        idempotency_key: str | None = None,
        status_channel: str = "",
        correlation_id: str = "",
        account: str = LEGACY_ACCOUNT,
        status: CampaignStatus = CampaignStatus.RUNNING,
        scheduled_at: float | None = None,
        schedule_zone: str = "",
    ) -> tuple[int, bool]:
        """Record a campaign and its messages, meant to be sent by ``account``;
        ``(id, created)``. An ``idempotency_key`` seen before returns the existing
        campaign with ``created`` False. ``status`` is ``running`` or
        ``awaiting_approval``; a running one with ``scheduled_at`` is recorded
        ``scheduled`` (``schedule_zone``: the zone to show the time in)."""
        ...

    def get(self, campaign_id: int) -> Campaign | None: ...

    def recent(self, limit: int = 10, *, team: str | None = None) -> list[Campaign]:
        """Newest first; with ``team``, what that workspace sees: its own and the
        command line's (team ``''``)."""
        ...

    def update(self, campaign_id: int, **changes: Unpack[CampaignChanges]) -> None:
        """Change only the columns given."""
        ...

    def update_if(
        self, campaign_id: int, expected: CampaignStatus, **changes: Unpack[CampaignChanges]
    ) -> bool:
        """Change the columns given only while the campaign is in ``expected``;
        True when it changed (one of two racing writers wins)."""
        ...

    def scheduled(
        self, requested_by: str | None = None, *, team: str | None = None
    ) -> list[Campaign]:
        """Scheduled campaigns, soonest first (of ``requested_by`` only, and those
        workspace ``team`` sees, its own and the command line's, if given)."""
        ...

    def scheduled_due(self, now: float) -> list[int]:
        """Ids of scheduled campaigns whose time is ``now`` or earlier."""
        ...

    def unfinished(self) -> list[int]:
        """Ids of campaigns (not cancelled, scheduled or awaiting approval) with
        messages to send or doubts to settle."""
        ...

    def due(self, now: float) -> list[int]:
        """Ids of running (or completed, after a person re-queued some) campaigns with
        queued messages or deferred ones due by ``now``; never paused or cancelled."""
        ...

    def newest_id(self) -> int:
        """The newest campaign's id (0 if none): a cheap way to notice new campaigns."""
        ...

    def adopt_unowned(self, team: str, *, actor: str) -> int:
        """Campaigns of no workspace (``''``) become ``team``'s; how many. Audited."""
        ...

    def drained(self) -> list[int]:
        """Ids of running campaigns with no message queued, deferred or in flight."""
        ...


class Outbox(Protocol):
    """Messages and their moves between states (``bot.records.TRANSITIONS``).

    Every move is conditional and committed before it returns: a move the table
    does not allow from the message's current state changes nothing and reports
    the state found (``Transition.changed`` False).
    """

    def messages(
        self,
        campaign_id: int,
        states: Iterable[MessageState] | None = None,
        limit: int | None = None,
    ) -> list[Message]: ...

    def ready_messages(self, campaign_id: int, now: float | None = None) -> list[Message]:
        """Queued, and deferred ones due by ``now``, in list order."""
        ...

    def state_of(self, row_id: int) -> MessageState | None: ...

    def find_by_message_id(self, message_id: str) -> Message | None: ...

    def counts(self, campaign_id: int) -> dict[str, int]:
        """Messages per state; every ``MessageState`` is a key."""
        ...

    def deferred_until(self, campaign_id: int) -> float | None: ...

    def sent_since(self, since: float, account: str, *, in_flight: bool = True) -> int:
        """Sent or possibly sent (in flight, uncertain: by claim time) by ``account``
        since ``since``: campaign messages, earlier attempts re-sent after a doubt,
        and test sends. Legacy rows count for every Gmail account, never the sandbox.
        ``in_flight=False`` leaves out campaign messages claimed and not yet settled."""
        ...

    def oldest_sent_since(self, since: float, account: str) -> float | None:
        """When the oldest of those sends happened: when the next slot frees up."""
        ...

    def delivery_counts(
        self,
        *,
        campaign_id: int | None = None,
        since: float | None = None,
        team: str | None = None,
    ) -> DeliveryCounts:
        """Of the campaigns workspace ``team`` sees (its own, the CLI's), when given."""
        ...

    def delivery_by_campaign(
        self, since: float, *, team: str | None = None
    ) -> list[CampaignDelivery]:
        """Of the campaigns workspace ``team`` sees (its own, the CLI's), when given."""
        ...

    def claim(self, row_id: int, account: str) -> bool:
        """queued/deferred → sending (attempts + 1) by ``account``; False if someone
        else has it."""
        ...

    def mark_sent(self, row_id: int, provider_id: str) -> Transition: ...

    def mark_failed(self, row_id: int, reason: str) -> Transition: ...

    def mark_deferred(
        self,
        row_id: int,
        not_before: float | None,
        reason: str,
        from_states: Collection[MessageState] | None = None,
    ) -> Transition:
        """To ``deferred``; ``from_states`` narrows where from (e.g. only ``queued``,
        never a message another worker has in flight)."""
        ...

    def mark_uncertain(self, row_id: int, reason: str) -> Transition: ...

    def mark_skipped(self, row_id: int, reason: str) -> Transition: ...

    def requeue(
        self,
        row_id: int,
        reason: str | None = None,
        from_states: Collection[MessageState] = (MessageState.SENDING,),
    ) -> Transition: ...

    def resend_uncertain(self, row_id: int) -> Transition:
        """uncertain → queued by a person's choice; the uncertain attempt keeps
        counting against its day next to the new one."""
        ...

    def recover_in_flight(self, campaign_id: int | None = None) -> int:
        """Every ``sending`` message becomes ``uncertain``; only with the sender lock held."""
        ...

    def claim_ready(
        self, account: str, limit: int, campaign_id: int | None = None
    ) -> list[Message]:
        """Up to ``limit`` ready messages of ``account``'s running campaigns, oldest
        campaign first, moved to ``sending`` at once: many workers may call this
        together and no message is handed to two of them."""
        ...

    def recover_expired(self, lease_seconds: float) -> int:
        """``sending`` messages claimed more than ``lease_seconds`` ago become
        ``uncertain`` (their worker died): safe while other workers send."""
        ...

    def ready_accounts(self, now: float | None = None) -> list[str]:
        """Accounts with messages ``claim_ready`` would hand out now."""
        ...


class QuotaLog(Protocol):
    """API units spent, for pacing and the quota report."""

    def record_units(
        self, units: int, method: str, *, account: str, at: float | None = None
    ) -> None: ...

    def units_since(self, since: float, account: str) -> int:
        """``account``'s units; legacy rows count for every Gmail account, not the sandbox."""
        ...


class Suppressions(Protocol):
    """Who must not get mail: unsubscribes and bounce reports (addresses compared
    case-insensitively, returned lower-cased)."""

    def add_unsubscribe(
        self, email: str, source: str, campaign_id: int | None = None, *, team: str = ""
    ) -> bool:
        """For workspace ``team`` (``''``: every workspace). False if already
        unsubscribed there. Audited."""
        ...

    def remove_unsubscribe(self, email: str, actor: str, *, team: str = "") -> bool:
        """Only ``team``'s own row. False if there was none. Audited."""
        ...

    def unsubscribes(self, team: str | None = None) -> list[Unsubscribe]:
        """Those holding for ``team`` (its own and every workspace's); all for None."""
        ...

    def unsubscribed_among(self, emails: Iterable[str], team: str | None = None) -> set[str]:
        """Unsubscribed from ``team`` or from every workspace (from any for None)."""
        ...

    def hard_bounced_among(self, emails: Iterable[str], team: str | None = None) -> set[str]:
        """Hard-bounced for ``team`` or every workspace (any for None)."""
        ...

    def record_bounce(
        self,
        provider_id: str,
        *,
        kind: str,
        message_row_id: int | None = None,
        email: str = "",
        status: str = "",
        diagnostic: str = "",
        team: str = "",
    ) -> bool:
        """False if this report was recorded before; never downgrades a hard bounce.
        ``team``: the workspace it suppresses the address for (``''``: all)."""
        ...

    def known_bounce_reports(self, provider_ids: Iterable[str]) -> set[str]: ...


class Audit(Protocol):
    """Who did what."""

    def record(self, actor: str, action: str, *, team: str | None = None, **detail: Any) -> None:
        """``team`` left out: the campaign's (``detail["campaign_id"]``), else ``''``."""
        ...

    def recent(
        self,
        limit: int = 50,
        *,
        campaign_id: int | None = None,
        since: float | None = None,
        team: str | None = None,
    ) -> list[AuditEntry]:
        """Newest first; only one campaign's entries (``detail["campaign_id"]``),
        only those at or after ``since``, only workspace ``team``'s, when given."""
        ...


class Drafts(Protocol):
    """Slack drafts, kept for a week."""

    def save(self, key: str, user: str, data: dict[str, Any], *, team: str = "") -> None:
        """Replacing keeps the owner, the workspace (``team``) and the age."""
        ...

    def get(self, key: str) -> Draft | None:
        """None if unknown or expired."""
        ...


class TestSends(Protocol):
    """Test sends: audited and counted against their account's day, not campaigns."""

    def start(
        self,
        *,
        account: str,
        requested_by: str,
        email: str,
        template: str,
        subject: str,
        message_id: str,
        reference: str = "",
        team: str = "",
    ) -> int:
        """Record one as ``sending`` before it is handed to the transport; its id.
        ``team``: the workspace it is sent from (``''``: the CLI)."""
        ...

    def finish(
        self, row_id: int, state: MessageState, *, provider_id: str = "", error: str = ""
    ) -> None:
        """What became of it: ``sent``, ``failed`` or ``uncertain``."""
        ...

    def by_reference(self, reference: str) -> TestSend | None:
        """The latest one made under ``reference`` (one preview), if any."""
        ...

    def recent(self, limit: int = 50, *, team: str | None = None) -> list[TestSend]:
        """Newest first; of workspace ``team`` only when given."""
        ...


class SenderAccounts(Protocol):
    """Gmail accounts mail is sent from, who may use each, and started OAuth flows.

    Grants arrive and leave sealed (encrypted by the caller); every change that a
    person makes is audited in the same transaction, with ``actor`` and ``action``.
    Addresses are account keys (``records.account_key``).
    """

    def save(self, account: SenderAccount, *, actor: str, action: str) -> None:
        """Insert or replace (by address) the account and its access lists;
        ``created_at`` of an existing one is kept."""
        ...

    def get(self, address: str) -> SenderAccount | None: ...

    def find(self, name_or_address: str) -> SenderAccount | None:
        """By address, else by name (case-insensitive)."""
        ...

    def all(self, *, team: str | None = None) -> list[SenderAccount]:
        """Every account, oldest first; with ``team``, that workspace's and the
        operator's (team ``''``), which serve every workspace."""
        ...

    def adopt_unowned(self, team: str, *, actor: str) -> int:
        """Accounts of no workspace (``''``) become ``team``'s; how many. Audited."""
        ...

    def set_status(
        self, address: str, status: SenderStatus, reason: str = "", *, actor: str
    ) -> bool:
        """False if there is no such account or it already had ``status``."""
        ...

    def set_access(
        self,
        address: str,
        *,
        everyone: bool,
        users: frozenset[str],
        groups: frozenset[str],
        actor: str,
    ) -> bool:
        """Replace who may use a shared account; False if there is none."""
        ...

    def remove(self, address: str, *, actor: str, action: str) -> bool:
        """Forget the account and its grant; False if there was none."""
        ...

    def add_state(self, state: OAuthState) -> None: ...

    def bind_state(self, state: str, browser: str) -> OAuthState | None:
        """Tie a state to the browser that opened its link, once; None if it was
        already tied to a browser, or is unknown."""
        ...

    def take_state(self, state: str) -> OAuthState | None:
        """The state, deleted in the same step: a second take finds nothing."""
        ...

    def drop_states_before(self, when: float) -> int:
        """Forget flows started before ``when`` (never finished); how many."""
        ...


class Approvals(Protocol):
    """Requests for a second person's approval; every move is conditional."""

    def request(self, campaign_id: int, requested_by: str, digest: str, reason: str) -> None:
        """Record a pending request for a campaign awaiting approval (audited)."""
        ...

    def get(self, campaign_id: int) -> Approval | None: ...

    def pending(self, *, team: str | None = None) -> list[Approval]:
        """Pending requests of campaigns still awaiting approval, oldest first (of
        the campaigns workspace ``team`` sees, when given)."""
        ...

    def set_message(self, campaign_id: int, channel: str, ts: str) -> None: ...

    def decide(
        self, campaign_id: int, decided_by: str, decision: ApprovalDecision, note: str = ""
    ) -> bool:
        """Decide a pending request (never by its requester); False if nothing
        changed. A rejection cancels the campaign and skips its messages."""
        ...

    def withdraw(self, campaign_id: int, by: str) -> bool:
        """Take a pending request back (the campaign is cancelled, its messages
        skipped); False if it was decided already."""
        ...

    def release(self, campaign_id: int, actor: str) -> bool:
        """Approved and awaiting approval → running; False otherwise."""
        ...

    def reopen(self, campaign_id: int, digest: str, why: str) -> bool:
        """Changed after approval: pending again on the new ``digest``."""
        ...

    def approved_waiting(self) -> list[int]:
        """Approved campaigns not released yet."""
        ...


class Installations(Protocol):
    """The Slack workspaces mailbolt is installed in, and the "Add to Slack" states.

    Bot tokens arrive and leave sealed (encrypted by the caller). A state is used
    once: ``consume_state`` is atomic, so two servers cannot both accept one.
    """

    def save(self, installation: Installation) -> None:
        """Insert or replace (by team) the installation; ``installed_at`` of an
        existing one is kept."""
        ...

    def get(self, team: str) -> Installation | None: ...

    def all(self) -> list[Installation]:
        """Every installation, by team."""
        ...

    def delete(self, team: str) -> bool:
        """Forget the workspace's installation; whether there was one."""
        ...

    def issue_state(self, state: str) -> None:
        """Remember a newly issued OAuth ``state`` (stamped with the store's clock)."""
        ...

    def consume_state(self, state: str, max_age: float) -> bool:
        """Whether ``state`` was issued less than ``max_age`` seconds ago and not used
        yet; it is used up either way."""
        ...


class StoreParts(Protocol):
    """A whole store: its parts and the clock it stamps rows with."""

    @property
    def campaigns(self) -> Campaigns: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def quota(self) -> QuotaLog: ...

    @property
    def suppressions(self) -> Suppressions: ...

    @property
    def audit(self) -> Audit: ...

    @property
    def drafts(self) -> Drafts: ...

    @property
    def test_sends(self) -> TestSends: ...

    @property
    def senders(self) -> SenderAccounts: ...

    @property
    def approvals(self) -> Approvals: ...

    @property
    def installations(self) -> Installations: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    def close(self) -> None: ...
