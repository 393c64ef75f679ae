"""The DNS deliverability check: drop recipients whose domain cannot receive mail.

This module owns the lookups (one per domain, through one process-wide caching
resolver) and when to stop asking because DNS is not answering.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import email_validator
from email_validator import EmailUndeliverableError

from bot.models import Recipient, RecipientList, Rejected

if TYPE_CHECKING:
    import dns.resolver

DNS_TIMEOUT = 3
# When this many domains got no DNS answer, DNS is down: each further lookup would
# cost DNS_TIMEOUT seconds and could not reject anything, so stop asking.
DNS_GIVE_UP_AFTER = 3

_resolver: dns.resolver.Resolver | None = None
_resolver_lock = threading.Lock()


def drop_undeliverable(result: RecipientList) -> None:
    """Move recipients whose domain cannot receive mail to ``rejected``.

    One lookup per domain: a list of 2,000 colleagues usually has a handful of
    domains, and the shared resolver's cache does not remember timeouts.
    """
    verdicts: dict[str, str | None] = {}
    unanswered = 0
    kept: list[Recipient] = []
    for recipient in result.recipients:
        domain = recipient.email.rpartition("@")[2].lower()
        if domain not in verdicts:
            if unanswered >= DNS_GIVE_UP_AFTER:
                verdicts[domain] = None
            else:
                verdicts[domain], answered = _lookup(recipient.email)
                unanswered += not answered
        problem = verdicts[domain]
        if problem is None:
            kept.append(recipient)
        else:
            result.rejected.append(Rejected(recipient.line, recipient.email, problem))
    result.recipients = kept
    result.rejected.sort(key=lambda item: item.line)


def _lookup(address: str) -> tuple[str | None, bool]:
    """``(reason to reject or None, whether DNS answered)`` for one address's domain.

    Timeouts and resolver failures say nothing about the domain, so they never
    reject an address.
    """
    import dns.resolver  # email-validator imports it lazily too: it is slow to load

    try:
        valid = email_validator.validate_email(
            address,
            check_deliverability=True,
            allow_smtputf8=False,
            dns_resolver=_dns_resolver(),
        )
    except EmailUndeliverableError as err:
        cause = err.__cause__
        if cause is not None and not isinstance(
            cause, dns.resolver.NXDOMAIN | dns.resolver.NoAnswer
        ):
            return None, False
        return f"is not a valid address: {err}", True
    return None, getattr(valid, "mx", None) is not None


def _dns_resolver() -> dns.resolver.Resolver:
    """The process-wide caching resolver, built on first use.

    One per call would throw its cache away; none at all would make
    email-validator change the lifetime of dnspython's global resolver.
    """
    global _resolver
    with _resolver_lock:
        if _resolver is None:
            _resolver = email_validator.caching_resolver(timeout=DNS_TIMEOUT)
        return _resolver
