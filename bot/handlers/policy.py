"""Rules that decide whether a campaign may start and who receives it.

Marketing vs transactional: a *marketing* template (a newsletter, an invitation)
is something the reader did not ask for; it needs the postal address and the
unsubscribe link, and never reaches anyone who unsubscribed. A *transactional*
one (a welcome after sign-up, a receipt, a password reset) answers something
the reader did; it may reach someone who unsubscribed from marketing, as
CAN-SPAM and Gmail's rules allow. Neither ever goes to an address that bounced
permanently: mail to it cannot arrive and only hurts the sender's reputation.
"""

from __future__ import annotations

from collections.abc import Iterable

from email_validator import EmailNotValidError, validate_email

from bot.errors import PolicyError, UserInputError
from bot.models import Recipient, Rejected, TemplateInfo
from bot.ports import StoreParts

BOUNCED = "bounced permanently before"
UNSUBSCRIBED = "has unsubscribed"


def sender_allowed(allowed_users: frozenset[str], user_id: str) -> bool:
    """Nobody may send until ``ALLOWED_SLACK_USERS`` names them (or is ``*``)."""
    return "*" in allowed_users or user_id in allowed_users


def suppress(
    store: StoreParts, recipients: Iterable[Recipient], category: str
) -> tuple[list[Recipient], list[Rejected]]:
    """Drop hard-bounced addresses always, unsubscribed ones from marketing mail.

    Transactional mail (a password reset, a receipt) may still reach someone who
    unsubscribed from marketing: that is what the law and Gmail's rules allow.
    """
    recipients = list(recipients)
    emails = [r.email for r in recipients]
    bounced = store.suppressions.hard_bounced_among(emails)
    unsubscribed = (
        store.suppressions.unsubscribed_among(emails) if category == "marketing" else set()
    )
    keep: list[Recipient] = []
    dropped: list[Rejected] = []
    for r in recipients:
        key = r.email.lower()
        if key in bounced:
            dropped.append(Rejected(r.line, r.email, BOUNCED))
        elif key in unsubscribed:
            dropped.append(Rejected(r.line, r.email, UNSUBSCRIBED))
        else:
            keep.append(r)
    return keep, dropped


def check_marketing_settings(info: TemplateInfo, postal_address: str) -> None:
    """Refuse a marketing campaign before rendering when a setting is missing."""
    if info.category == "marketing" and not postal_address.strip():
        raise PolicyError(
            f"The marketing template '{info.name}' cannot be sent yet: set POSTAL_ADDRESS to "
            "your organisation's postal address (anti-spam law requires it in marketing mail).",
            field="template",
        )


def suppression_reason(store: StoreParts, email: str, category: str) -> str | None:
    """Why ``email`` must not get a message of ``category`` now, or None.

    The send loop asks again just before each send: an unsubscribe or a hard
    bounce can arrive while a long campaign is still running.
    """
    if store.suppressions.hard_bounced_among([email]):
        return BOUNCED
    if category == "marketing" and store.suppressions.unsubscribed_among([email]):
        return UNSUBSCRIBED
    return None


def normalize_address(raw: str) -> str:
    """A typed address, validated offline and normalized; ``UserInputError`` if invalid."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise UserInputError(
            f"{raw!r} is not a valid email address: {exc}", field="address"
        ) from exc


def unsubscribe(store: StoreParts, raw_address: str, *, actor: str) -> tuple[str, bool]:
    """Stop marketing mail to an address on someone's behalf (Slack, CLI).

    Returns the normalized address and whether it was newly added; ``actor``
    (``cli``, ``slack:U123``) is recorded as the source and in the audit log.
    """
    address = normalize_address(raw_address)
    return address, store.suppressions.add_unsubscribe(address, source=actor)


def resubscribe(store: StoreParts, raw_address: str, *, actor: str) -> tuple[str, bool]:
    """Allow marketing mail again; only at the person's own request.

    Not validated like ``unsubscribe``: whatever is on the list can be taken off.
    Returns the address as given (trimmed) and whether it was on the list.
    """
    address = raw_address.strip()
    return address, store.suppressions.remove_unsubscribe(address, actor)
