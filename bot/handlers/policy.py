"""Rules that decide whether a campaign may start and who receives it."""

from __future__ import annotations

from collections.abc import Iterable

from bot.errors import PolicyError
from bot.models import Recipient, Rejected, RenderedMessage, TemplateInfo
from bot.store import Store


def sender_allowed(allowed_users: frozenset[str], user_id: str) -> bool:
    """Nobody may send until ``ALLOWED_SLACK_USERS`` names them (or is ``*``)."""
    return "*" in allowed_users or user_id in allowed_users


def suppress(
    store: Store, recipients: Iterable[Recipient], category: str
) -> tuple[list[Recipient], list[Rejected]]:
    """Drop hard-bounced addresses always, unsubscribed ones from marketing mail.

    Transactional mail (a password reset, a receipt) may still reach someone who
    unsubscribed from marketing: that is what the law and Gmail's rules allow.
    """
    recipients = list(recipients)
    emails = [r.email for r in recipients]
    bounced = store.hard_bounced_among(emails)
    unsubscribed = store.unsubscribed_among(emails) if category == "marketing" else set()
    keep: list[Recipient] = []
    dropped: list[Rejected] = []
    for r in recipients:
        key = r.email.lower()
        if key in bounced:
            dropped.append(Rejected(r.line, r.email, "bounced permanently before"))
        elif key in unsubscribed:
            dropped.append(Rejected(r.line, r.email, "has unsubscribed"))
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


def check_marketing_footer(
    info: TemplateInfo, postal_address: str, unsubscribe_url: str, sample: RenderedMessage
) -> None:
    """Anti-spam law: marketing mail shows a postal address and a way to opt out.

    Checked on a rendered sample so that a template that forgets the footer is
    caught, not only a missing setting.
    """
    if info.category != "marketing":
        return
    problems = []
    for part, body in (("HTML", sample.html), ("text", sample.text)):
        if postal_address and postal_address not in body:
            problems.append(f"make the template's {part} footer show {{{{ postal_address }}}}")
        if unsubscribe_url and unsubscribe_url not in body:
            problems.append(f"make the template's {part} footer link {{{{ unsubscribe_url }}}}")
    if problems:
        raise PolicyError(
            f"The marketing template '{info.name}' cannot be sent yet: "
            + "; ".join(problems)
            + ".",
            field="template",
            details=problems,
        )
