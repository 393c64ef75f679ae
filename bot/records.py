"""What the store keeps, as typed records, and the one table of message states.

The store's parts (``bot/ports.py``) take and return these, never rows, so a
second implementation (PostgreSQL) returns exactly the same thing and the
handlers cannot come to depend on a column name or a storage quirk.

Enum values are the strings already stored in the database: changing one would
change stored data, so they never change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypedDict


class MessageState(StrEnum):
    """Where one message is. ``sending`` is the only state in which a message may be
    at the provider without us knowing; on restart it becomes ``uncertain``."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    DEFERRED = "deferred"
    UNCERTAIN = "uncertain"


class CampaignStatus(StrEnum):
    """Where one campaign is, as a whole.

    ``scheduled``: checked and recorded, waiting for its time (``scheduled_at``);
    nothing sends it before ``bot.handlers.schedule.release`` moves it to ``running``.
    """

    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    #: Recorded, but nothing sends it until a second person approves it
    #: (``bot.handlers.approval``); a rejection cancels it.
    AWAITING_APPROVAL = "awaiting_approval"


#: The account that sends through the sandbox transport. Quota use and daily counts
#: belong to the account that sent: a sandbox run never counts against Gmail.
SANDBOX_ACCOUNT = "sandbox"
#: Rows written before accounts were recorded that could not be told apart from
#: Gmail sends: they count against every Gmail account (conservative), never the sandbox.
LEGACY_ACCOUNT = ""


def account_key(address: str) -> str:
    """The account a Gmail sender address sends as: one spelling per address."""
    return address.strip().lower()


#: Every message state, in the order counts are shown.
MESSAGE_STATES: tuple[MessageState, ...] = tuple(MessageState)
#: States nothing moves a message out of on its own (a person may re-queue FAILED).
FINAL_STATES: frozenset[MessageState] = frozenset(
    {MessageState.SENT, MessageState.FAILED, MessageState.SKIPPED}
)
#: States that still hold work for a campaign run (send, or settle a doubt).
UNFINISHED_STATES: frozenset[MessageState] = frozenset(
    {MessageState.QUEUED, MessageState.DEFERRED, MessageState.SENDING, MessageState.UNCERTAIN}
)
#: States in which a message may have reached the provider without a ``sent`` record:
#: they count against the daily limit from the time they were claimed.
MAYBE_SENT_STATES: frozenset[MessageState] = frozenset(
    {MessageState.SENDING, MessageState.UNCERTAIN}
)

_Q, _SG, _ST, _F, _SK, _D, _U = (
    MessageState.QUEUED,
    MessageState.SENDING,
    MessageState.SENT,
    MessageState.FAILED,
    MessageState.SKIPPED,
    MessageState.DEFERRED,
    MessageState.UNCERTAIN,
)

#: THE table of allowed moves: target state → the states a message may be in to
#: move there. The outbox refuses anything else (a conditional update that
#: changes nothing), which is what keeps two resumers from sending one message
#: twice and keeps ``sent`` final.
TRANSITIONS: Mapping[MessageState, frozenset[MessageState]] = {
    # claim: only work not yet started
    _SG: frozenset({_Q, _D}),
    # the provider accepted it, or reconciliation found it among sent mail
    _ST: frozenset({_SG, _U}),
    # a permanent error, or it could not even be rendered
    _F: frozenset({_SG, _U, _Q}),
    # the daily limit: before or instead of sending
    _D: frozenset({_SG, _Q, _D}),
    # the provider may have it: only from an attempt in flight
    _U: frozenset({_SG}),
    # suppressed, cancelled, or a person gave up on it
    _SK: frozenset({_Q, _D, _U, _F}),
    # certainly not sent (or a person chose to send again)
    _Q: frozenset({_SG, _U, _F}),
}


def may_move(before: MessageState | str, after: MessageState | str) -> bool:
    """Whether ``TRANSITIONS`` allows a message in ``before`` to move to ``after``."""
    return MessageState(before) in TRANSITIONS.get(MessageState(after), frozenset())


@dataclass(frozen=True)
class Transition:
    """Outcome of a conditional state change: did it happen, and the state now."""

    changed: bool
    state: MessageState | None


@dataclass(frozen=True)
class NewMessage:
    """One message handed to ``Campaigns.create`` (suppressed ones arrive ``skipped``)."""

    email: str
    message_id: str
    name: str = ""
    variables: dict[str, str] = field(default_factory=dict, hash=False)
    state: MessageState = MessageState.QUEUED
    last_error: str | None = None


@dataclass(frozen=True)
class Campaign:
    """One campaign as recorded."""

    id: int
    created_at: float
    requested_by: str
    template: str
    category: str
    subject: str
    common_vars: dict[str, str] = field(hash=False)
    status: CampaignStatus
    total: int
    team: str = ""
    paused_reason: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    idempotency_key: str | None = None
    status_channel: str = ""
    status_ts: str | None = None
    correlation_id: str = ""
    #: The account meant to send it (``SANDBOX_ACCOUNT``, a Gmail address, or legacy).
    account: str = LEGACY_ACCOUNT
    #: When it is to start (seconds since the epoch, UTC); None: at once.
    scheduled_at: float | None = None
    #: The IANA zone the time was given in, to show it back ("Europe/Paris").
    schedule_zone: str = ""


class CampaignChanges(TypedDict, total=False):
    """The columns ``Campaigns.update`` may change; a key left out is left alone."""

    status: CampaignStatus
    paused_reason: str | None
    started_at: float | None
    finished_at: float | None
    status_channel: str
    status_ts: str | None
    scheduled_at: float | None
    schedule_zone: str


@dataclass(frozen=True)
class Message:
    """One message of a campaign and how far it got."""

    id: int
    campaign_id: int
    position: int
    email: str
    name: str
    variables: dict[str, str] = field(hash=False)
    state: MessageState
    message_id: str
    attempts: int = 0
    last_error: str | None = None
    provider_id: str | None = None
    not_before: float | None = None
    created_at: float | None = None
    updated_at: float | None = None
    sent_at: float | None = None
    claimed_at: float | None = None
    bounce: str | None = None
    #: The account that claimed it last (its day counts this message).
    account: str = LEGACY_ACCOUNT
    #: When an uncertain attempt a person chose to re-send was claimed: it may have
    #: gone out too, so it keeps counting against that day.
    prior_claimed_at: float | None = None


@dataclass(frozen=True)
class Unsubscribe:
    """An address that opted out of marketing mail (stored lower-cased)."""

    email: str
    source: str
    campaign_id: int | None
    created_at: float
    #: The Slack workspace it holds for; ``''`` (the CLI's, or from before
    #: workspaces were told apart) holds for every workspace.
    team: str = ""


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log, newest first when listed."""

    id: int
    at: float
    actor: str
    action: str
    detail: dict[str, Any] = field(hash=False)
    #: The workspace it happened in (``''``: the CLI, the system, or from before).
    team: str = ""


@dataclass(frozen=True)
class DeliveryCounts:
    """``sent`` messages and how many of them bounced."""

    sent: int
    hard: int
    soft: int


@dataclass(frozen=True)
class CampaignDelivery:
    """Delivery counts of one campaign, with what names it."""

    campaign_id: int
    template: str
    created_at: float
    sent: int
    hard: int
    soft: int


@dataclass(frozen=True)
class Draft:
    """What a Slack preview needs to start its campaign; ``data`` is the Slack
    layer's own payload (the store only keeps it)."""

    key: str
    user: str
    data: dict[str, Any] = field(hash=False)
    #: The workspace it was composed in (``''``: from before workspaces were kept).
    team: str = ""


@dataclass(frozen=True)
class TestSend:
    """One message to the person previewing, marked as a test: audited and counted
    against its account's quota and day, but not a campaign and not in stats."""

    __test__ = False  # a record, not a pytest test class

    id: int
    at: float
    account: str
    requested_by: str
    email: str
    template: str
    subject: str
    message_id: str
    #: ``sending`` until finished, then ``sent``, ``failed`` or ``uncertain``.
    state: MessageState
    provider_id: str | None = None
    last_error: str | None = None
    reference: str = ""
    #: The workspace it was sent from (``''``: the CLI).
    team: str = ""


class SenderKind(StrEnum):
    """Whose account it is: one person's own, or a team address several may use."""

    PERSONAL = "personal"
    SHARED = "shared"


class SenderStatus(StrEnum):
    """Whether the account's grant is believed to work."""

    ACTIVE = "active"
    #: Google refused the grant (revoked, expired): its campaigns pause until reconnected.
    REVOKED = "revoked"


class GrantClient(StrEnum):
    """Which OAuth client issued the grant: a refresh must use the same one."""

    #: ``GOOGLE_WEB_CLIENT_SECRETS_FILE`` ("Connect your Gmail" from Slack).
    WEB = "web"
    #: ``GOOGLE_CLIENT_SECRETS_FILE`` (``python -m bot accounts link`` on the CLI).
    INSTALLED = "installed"
    #: The grant stays in ``GMAIL_TOKEN_FILE`` (the account of ``python -m bot auth``).
    TOKEN_FILE = "token_file"  # noqa: S105 - a kind of client, not a secret


@dataclass(frozen=True)
class SenderAccount:
    """A Gmail account mail can be sent from, and who may use it.

    ``sealed_grant`` is the refresh token *encrypted* (``bot.mail.grant_seal``):
    the store never sees a grant in the clear, so a copy of the database alone
    reveals none. Empty for the ``TOKEN_FILE`` account, whose grant stays in its
    0600 file.
    """

    address: str
    kind: SenderKind
    client: GrantClient
    name: str = ""
    #: The Slack user who connected it (personal) or linked it ("" from the CLI).
    owner: str = ""
    team: str = ""
    scopes: frozenset[str] = frozenset()
    status: SenderStatus = SenderStatus.ACTIVE
    status_reason: str = ""
    #: Shared accounts: anyone allowed to send may use it (today's single account).
    everyone: bool = False
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    sealed_grant: str = field(default="", repr=False)
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def label(self) -> str:
        """How a person sees it in a list: ``Team <team@x.com>`` or the address."""
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass(frozen=True)
class OAuthState:
    """One started "Connect your Gmail": whose it is, and its PKCE verifier (sealed)."""

    state: str
    user: str
    team: str
    sealed_verifier: str = field(repr=False)
    created_at: float
    #: A hash of the browser cookie set when the link was opened ("" until then).
    browser: str = ""


class ApprovalDecision(StrEnum):
    """Where one approval request is."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    #: The requester (or an admin) took the request back: the campaign is cancelled.
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class Approval:
    """A campaign's request for approval and its decision (one per campaign).

    ``digest`` names exactly what was asked about (``approval.campaign_digest``):
    a campaign whose digest differs when sending starts was changed after the
    request and is not sent on this approval.
    """

    campaign_id: int
    requested_by: str
    requested_at: float
    digest: str
    #: Which rule asked for approval, in words ("marketing template").
    reason: str
    decision: ApprovalDecision = ApprovalDecision.PENDING
    decided_by: str = ""
    decided_at: float | None = None
    #: Why it was rejected (empty when approved or pending).
    note: str = ""
    #: Where the request message is (empty until posted).
    channel: str = ""
    ts: str = ""


@dataclass(frozen=True)
class Installation:
    """mailbolt installed in one Slack workspace through "Add to Slack" (OAuth v2).

    ``sealed_bot_token`` is the workspace's bot token *encrypted* with the same key
    as Gmail grants (``bot.mail.grant_seal``): a copy of the database alone reveals
    no token. ``team`` is the Slack team ID, the key.
    """

    team: str
    sealed_bot_token: str = field(repr=False)
    enterprise: str = ""
    bot_user: str = ""
    bot_id: str = ""
    #: The bot scopes granted, comma-separated as Slack gives them.
    scopes: str = ""
    #: The Slack user who installed it.
    installer: str = ""
    app_id: str = ""
    team_name: str = ""
    installed_at: float = 0.0
    updated_at: float = 0.0
