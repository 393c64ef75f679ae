"""A campaign's shared records and what every step of it needs.

This module owns the request a person makes (``CampaignRequest``), what preflight
decides (``Plan``), the counts a campaign ends with (``Result``), the
collaborators and policy the use cases receive (``Deps``), and the variables and
headers each message is built with. The steps live next to it: ``preflight``
(check and record), ``send_loop`` (the outbox loop), ``resolution`` (what a person
or a restart decides about failed and uncertain messages) and ``trial_send``
(a test message to oneself).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.handlers.compose import Envelope
from bot.handlers.rendering import Renderer
from bot.handlers.templates import TemplateCatalogue
from bot.handlers.unsubscribe import make_token, unsubscribe_url
from bot.handlers.values import ATTACHMENTS_COLUMN
from bot.models import Recipient, RecipientList, Rejected, RenderedMessage
from bot.ports import AttachmentFiles, Pacer, StoreParts, Transport
from bot.records import SANDBOX_ACCOUNT, CampaignStatus, MessageState

if TYPE_CHECKING:
    from bot.handlers.attachments import AttachmentSet

# Short names for the enum members this module uses throughout.
CANCELLED, COMPLETED, PAUSED, RUNNING = (
    CampaignStatus.CANCELLED,
    CampaignStatus.COMPLETED,
    CampaignStatus.PAUSED,
    CampaignStatus.RUNNING,
)
DEFERRED, FAILED, QUEUED, SENDING, SENT, SKIPPED, UNCERTAIN = (
    MessageState.DEFERRED,
    MessageState.FAILED,
    MessageState.QUEUED,
    MessageState.SENDING,
    MessageState.SENT,
    MessageState.SKIPPED,
    MessageState.UNCERTAIN,
)


#: Why the messages a cancel left unsent are skipped (told apart from suppressions).
CANCELLED_REASON = "the campaign was cancelled"
MAX_LISTED_ERRORS = 10


@dataclass(frozen=True)
class RetryPolicy:
    """How long a transient send error is retried: bounded, jittered, exponential."""

    max_attempts: int = 5
    max_elapsed: float = 300.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0


@dataclass
class Policy:
    """The rules a campaign is held to: numbers and texts from settings, no objects."""

    postal_address: str = ""
    unsubscribe_base: str = ""
    public_links: bool = False
    """Messages go to real inboxes, so links in them must work from anywhere."""
    daily_limit: int | None = None
    reconcile_grace: float = 0.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class Deps:
    """The collaborators the use cases work with, and the policy they apply (no globals).

    Built by ``bot.wiring.Wiring.deps``; tests replace a collaborator or a policy
    number on the instance.
    """

    store: StoreParts
    catalogue: TemplateCatalogue
    transport: Callable[[], Transport]
    pacer: Pacer
    envelope: Envelope
    #: Who sends: ``SANDBOX_ACCOUNT`` or the Gmail address. Quota use and the daily
    #: limit are counted per account.
    account: str = SANDBOX_ACCOUNT
    unsubscribe_secret: bytes = b""
    policy: Policy = field(default_factory=Policy)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    #: Where attachment bytes are kept until a campaign's last message is sent.
    attachment_files: AttachmentFiles | None = None


@dataclass
class CampaignRequest:
    """What a person asked for, from the CLI or the Slack modal."""

    template: str
    recipients: RecipientList
    requested_by: str
    common_vars: dict[str, str] = field(default_factory=dict)
    subject: str | None = None
    skip_invalid: bool = False
    limit: int | None = None
    team: str = ""
    idempotency_key: str | None = None
    status_channel: str = ""
    correlation_id: str = ""
    #: Files for the messages (checked by preflight, stored with the campaign).
    attachments: AttachmentSet | None = None


@dataclass
class Plan:
    """The outcome of preflight: exactly what would be sent, and what would not."""

    request: CampaignRequest
    renderer: Renderer
    to_send: list[Recipient]
    suppressed: list[Rejected]
    over_limit: list[Recipient]
    first: RenderedMessage | None

    @property
    def category(self) -> str:
        return self.renderer.info.category


@dataclass
class Result:
    """Final or intermediate counts of one campaign."""

    campaign_id: int
    status: str
    counts: dict[str, int]
    reason: str = ""
    resume_at: float | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """CLI convention: 0 all sent, 1 something not sent."""
        bad = sum(self.counts[s] for s in (FAILED, UNCERTAIN, DEFERRED, QUEUED, SENDING))
        return 0 if bad == 0 and self.status == COMPLETED else 1


# -- variables -----------------------------------------------------------------


def first_name_of(name: str) -> str:
    """The word to greet someone by: ``Ann Lee`` → ``Ann``; ``Wei, Chen`` → ``Chen``.

    A comma means "Family, Given" (how address books and CRMs export names), and
    punctuation around the word is dropped, so "Welcome, Wei,!" cannot happen.
    Empty when the name has no letters; templates then fall back ("Hi there").
    """
    family, comma, given = name.partition(",")
    words = (given if comma and given.strip() else family).split()
    word = _strip_punctuation(words[0]) if words else ""
    return word if any(c.isalpha() for c in word) else ""


def _strip_punctuation(word: str) -> str:
    """``"Wei,"`` → ``Wei``; ``(Bobby)`` → ``Bobby``; inner marks stay (``O'Brien``)."""
    start, end = 0, len(word)
    while start < end and unicodedata.category(word[start]).startswith("P"):
        start += 1
    while end > start and unicodedata.category(word[end - 1]).startswith("P"):
        end -= 1
    return word[start:end]


def message_variables(
    deps: Deps,
    recipient_email: str,
    name: str,
    row_vars: Mapping[str, Any],
    common: Mapping[str, str],
    campaign_id: int,
    category: str,
) -> dict[str, Any]:
    """The variables one message is rendered with: common, then row, then mailbolt's.

    The ``attachments`` value names files, not text, so no template sees it.
    What mailbolt sets (sender, postal address, unsubscribe link, the recipient's
    address and name) comes last, so no value can replace it; preflight refuses
    such values outright, naming them (``values.check_common_names``).
    """
    link = ""
    if category == "marketing":
        token = make_token(deps.unsubscribe_secret, recipient_email, campaign_id)
        link = unsubscribe_url(deps.policy.unsubscribe_base, token)
    if ATTACHMENTS_COLUMN in common:
        common = {k: v for k, v in common.items() if k != ATTACHMENTS_COLUMN}
    if ATTACHMENTS_COLUMN in row_vars:
        row_vars = {k: v for k, v in row_vars.items() if k != ATTACHMENTS_COLUMN}
    return {
        **common,
        **row_vars,
        "from_name": deps.envelope.from_name,
        "sender_address": deps.envelope.from_address,
        "postal_address": deps.policy.postal_address,
        "email": recipient_email,
        "name": name,
        "first_name": row_vars.get("first_name") or first_name_of(name),
        "unsubscribe_url": link,
    }


def list_unsubscribe_headers(deps: Deps, variables: Mapping[str, Any]) -> dict[str, str]:
    """RFC 2369/8058 headers for marketing mail: the one-click https link only.

    No ``mailto:`` alternative: nothing reads the replies it would bring (the
    grant may not even read mail), and an opt-out that is advertised but never
    honoured is worse than none.
    """
    link = variables.get("unsubscribe_url")
    if not link:
        return {}
    return {
        "List-Unsubscribe": f"<{link}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


__all__ = [
    "CANCELLED_REASON",
    "SENDING",
    "CampaignRequest",
    "Deps",
    "Plan",
    "Result",
    "first_name_of",
    "list_unsubscribe_headers",
    "message_variables",
]
