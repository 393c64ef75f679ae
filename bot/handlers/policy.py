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

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from bot.errors import PolicyError, UserInputError
from bot.models import Recipient, Rejected, TemplateInfo
from bot.ports import StoreParts

BOUNCED = "bounced permanently before"
UNSUBSCRIBED = "has unsubscribed"


def sender_allowed(allowed_users: frozenset[str], user_id: str) -> bool:
    """Nobody may send until ``ALLOWED_SLACK_USERS`` names them (or is ``*``)."""
    return "*" in allowed_users or user_id in allowed_users


@dataclass(frozen=True)
class Refusal:
    """Why a request from Slack is refused, in words for the person who made it.

    ``answerable`` is False when the asker is not (provably) in the installed
    workspace: then nothing is sent to them through the Web API.
    """

    reason: str
    text: str
    answerable: bool


def permission_problem(allowed_users: frozenset[str], user_id: str) -> str | None:
    """Why ``user_id`` may not use mailbolt, in words; None when they may."""
    if not allowed_users:
        return (
            "Nobody may send email from Slack yet: an admin must set ALLOWED_SLACK_USERS "
            "(Slack user IDs separated by commas, or * for everyone) and restart mailbolt. "
            f"Your user ID is `{user_id}`."
        )
    if not sender_allowed(allowed_users, user_id):
        return (
            "You may not send email with mailbolt. An admin can add your user ID "
            f"(`{user_id}`) to ALLOWED_SLACK_USERS."
        )
    return None


def authorization_problem(
    allowed_users: frozenset[str],
    installed_team: str | None,
    user_id: str | None,
    teams: Iterable[str],
) -> Refusal | None:
    """Whether a request may go on: the one check every command, form, button and
    App Home visit passes, each time, with the settings of that moment.

    ``teams`` are all the workspace IDs the request names (the workspace it came
    from, the user's own); every one must be the workspace mailbolt is installed
    in. Then the user must be allowed to send. A campaign's owner gets no
    exception: someone taken off ``ALLOWED_SLACK_USERS`` loses its buttons too.
    """
    named = {t for t in teams if t}
    if not installed_team or not named or named != {installed_team}:
        return Refusal(
            "other workspace",
            "mailbolt answers only in the Slack workspace it is installed in.",
            answerable=False,
        )
    if not user_id:
        return Refusal("no user", "mailbolt could not tell who sent this.", answerable=False)
    problem = permission_problem(allowed_users, user_id)
    if problem:
        return Refusal("not allowed", problem, answerable=True)
    return None


def suppression_team(team: str) -> str | None:
    """Whose suppressions hold for a campaign of workspace ``team``: that
    workspace's and every workspace's (``''``). A campaign from no workspace (the
    CLI, ``''``) respects every workspace's: safe by default."""
    return team or None


def suppress(
    store: StoreParts, recipients: Iterable[Recipient], category: str, team: str = ""
) -> tuple[list[Recipient], list[Rejected]]:
    """Drop hard-bounced addresses always, unsubscribed ones from marketing mail,
    as suppressed for workspace ``team`` (``suppression_team``).

    Transactional mail (a password reset, a receipt) may still reach someone who
    unsubscribed from marketing: that is what the law and Gmail's rules allow.
    """
    recipients = list(recipients)
    emails = [r.email for r in recipients]
    scope = suppression_team(team)
    bounced = store.suppressions.hard_bounced_among(emails, scope)
    unsubscribed = (
        store.suppressions.unsubscribed_among(emails, scope) if category == "marketing" else set()
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


def check_marketing_settings(
    info: TemplateInfo,
    postal_address: str,
    *,
    unsubscribe_base: str = "",
    public_links: bool = False,
) -> None:
    """Refuse a marketing campaign before rendering when a setting is missing.

    ``public_links``: the messages go to real inboxes (Gmail), so the one-click
    unsubscribe link must reach this server from anywhere; the sandbox may keep
    its localhost link.
    """
    if info.category != "marketing":
        return
    if not postal_address.strip():
        raise PolicyError(
            f"The marketing template '{info.name}' cannot be sent yet: set POSTAL_ADDRESS to "
            "your organisation's postal address (anti-spam law requires it in marketing mail).",
            field="template",
        )
    problem = public_url_problem(unsubscribe_base) if public_links else None
    if problem:
        raise PolicyError(
            f"The marketing template '{info.name}' cannot be sent yet: {problem}",
            field="template",
        )


_NOT_PUBLIC_SUFFIXES = (".localhost", ".local", ".internal", ".invalid", ".home.arpa")


def public_url_problem(base_url: str) -> str | None:
    """Why unsubscribe links under ``base_url`` could not work from a reader's inbox.

    Gmail and the law want a working one-click (RFC 8058: https) link, so the base
    must be https and name a host the internet can reach: not localhost, a
    loopback, private or link-local address, or a name that only resolves locally.
    """
    fix = (
        "set PUBLIC_BASE_URL to the public https address of `python -m bot serve` "
        "(e.g. https://mail.example.com), so the unsubscribe link in every message works."
    )
    if not base_url.strip():
        return f"PUBLIC_BASE_URL is not set; {fix}"
    parts = urlsplit(base_url.strip())
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme.lower() != "https":
        return f"unsubscribe links would point to {base_url}, which is not https; {fix}"
    if not host or _local_host(host):
        return (
            f"unsubscribe links would point to {base_url}, which only this machine or its "
            f"network can reach; {fix}"
        )
    return None


def _local_host(host: str) -> bool:
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        if not _LEGACY_IPV4.fullmatch(host):
            return host == "localhost" or "." not in host or host.endswith(_NOT_PUBLIC_SUFFIXES)
        try:  # 0x7f.1 and 2130706433 are 127.0.0.1 to a browser
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return False
    return ip.is_loopback or ip.is_private or ip.is_unspecified or ip.is_link_local


_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+")


def suppression_reason(store: StoreParts, email: str, category: str, team: str = "") -> str | None:
    """Why ``email`` must not get a message of ``category`` from a campaign of
    workspace ``team`` now, or None.

    The send loop asks again just before each send: an unsubscribe or a hard
    bounce can arrive while a long campaign is still running.
    """
    scope = suppression_team(team)
    if store.suppressions.hard_bounced_among([email], scope):
        return BOUNCED
    if category == "marketing" and store.suppressions.unsubscribed_among([email], scope):
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


def unsubscribe(
    store: StoreParts, raw_address: str, *, actor: str, team: str = ""
) -> tuple[str, bool]:
    """Stop marketing mail to an address on someone's behalf (Slack, CLI), from
    workspace ``team`` (``''``, the CLI's default: from every workspace).

    Returns the normalized address and whether it was newly added; ``actor``
    (``cli``, ``slack:U123``) is recorded as the source and in the audit log.
    """
    address = normalize_address(raw_address)
    return address, store.suppressions.add_unsubscribe(address, source=actor, team=team)


def resubscribe(
    store: StoreParts, raw_address: str, *, actor: str, team: str = ""
) -> tuple[str, bool]:
    """Allow marketing mail again; only at the person's own request. Lifts only
    workspace ``team``'s own unsubscribe: one workspace cannot lift another's, nor
    the operator's every-workspace one.

    Not validated like ``unsubscribe``: whatever is on the list can be taken off.
    Returns the address as given (trimmed) and whether it was on the list.
    """
    address = raw_address.strip()
    return address, store.suppressions.remove_unsubscribe(address, actor, team=team)
