"""The audit log read back: who sent what from which account to how many, who
cancelled, retried, resolved, exported, (un)subscribed, linked or removed accounts.

One reading for both edges (``python -m bot audit`` and App Home's admin section):
each entry becomes a line in words. Actions this module does not know (a new
kind written by another part) are still listed, with their details as
``name=value``, so the listing never hides an entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.errors import UserInputError
from bot.ports import Audit
from bot.records import AuditEntry

MAX_LIMIT = 10_000
_RELATIVE = re.compile(r"(\d+)\s*([mhd])\Z")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class AuditLine:
    """One entry as people read it."""

    at: float
    actor: str
    action: str
    what: str
    #: The workspace it happened in (``''``: the command line, the system).
    team: str = ""


def _campaign(d: Mapping[str, Any]) -> str:
    return f"campaign #{d.get('campaign_id', '?')}"


def _count(d: Mapping[str, Any], key: str = "count") -> str:
    value = d.get(key)
    return f"{value:,}" if isinstance(value, int) else str(value if value is not None else "?")


_WORDS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "campaign.created": lambda d: (
        f"started {_campaign(d)} ({d.get('template', '?')}) to {_count(d, 'total')} "
        f"recipient(s) from {d.get('account') or 'the default account'}"
    ),
    "campaign.dry_run": lambda d: (
        f"dry run of {d.get('template', '?')} to {_count(d, 'recipients')} recipient(s)"
    ),
    "slack.cancel": lambda d: f"cancelled {_campaign(d)}",
    "campaign.cancelled": lambda d: f"cancelled {_campaign(d)}",
    "campaign.retry_failed": lambda d: f"retried {_count(d)} failed message(s) of {_campaign(d)}",
    "campaign.resolve_uncertain": lambda d: (
        f"{'re-sent' if d.get('resend') else 'skipped'} {_count(d)} uncertain "
        f"message(s) of {_campaign(d)}"
    ),
    "campaign.exported": lambda d: (
        f"exported the results of {_campaign(d)} ({_count(d, 'rows')} row(s))"
    ),
    "test.started": lambda d: f"sent a test of {d.get('template', '?')} to {d.get('email', '?')}",
    "test.finished": lambda d: (
        f"test #{d.get('test_send', '?')}: {d.get('state', '?')}"
        + (f" ({d['error']})" if d.get("error") else "")
    ),
    "unsubscribes.exported": lambda d: (
        f"exported the unsubscribe list ({_count(d, 'rows')} row(s))"
    ),
    "unsubscribe.added": lambda d: f"unsubscribed {d.get('email', '?')}",
    "unsubscribe.removed": lambda d: f"resubscribed {d.get('email', '?')}",
    "bounce.recorded": lambda d: f"{d.get('kind', '?')} bounce from {d.get('email', '?')}",
    "account.linked": lambda d: f"linked the shared sender account {_account(d)}",
    "account.connected": lambda d: f"connected their Gmail {_account(d)}",
    "account.reconnected": lambda d: f"reconnected the Gmail {_account(d)}",
    "account.disconnected": lambda d: f"disconnected the Gmail {_account(d)}",
    "account.removed": lambda d: f"removed the sender account {_account(d)}",
    "account.migrated": lambda d: f"registered the `auth` account {_account(d)} as `default`",
    "account.access": lambda d: f"changed who may send from {_account(d)}: {_access(d)}",
    "account.revoked": lambda d: f"marked {_account(d)} revoked (Google refused its grant)",
    "account.active": lambda d: f"marked {_account(d)} working again",
}


def _account(d: Mapping[str, Any]) -> str:
    return str(d.get("address") or "?")


def _access(d: Mapping[str, Any]) -> str:
    """Who may use a shared account, in words."""
    if d.get("everyone"):
        return "everyone allowed to send"
    named = [*d.get("users", []), *d.get("groups", [])]
    return ", ".join(named) or "nobody yet"


def describe(entry: AuditEntry) -> str:
    """What an entry says, in words; unknown actions list their details."""
    words = _WORDS.get(entry.action)
    if words is not None:
        return words(entry.detail)
    details = " ".join(f"{k}={v}" for k, v in sorted(entry.detail.items()))
    return f"{entry.action} {details}".strip()


def audit_lines(
    audit: Audit,
    *,
    limit: int = 50,
    campaign_id: int | None = None,
    since: float | None = None,
    team: str | None = None,
) -> list[AuditLine]:
    """The newest ``limit`` entries (of one campaign, from ``since``, of workspace
    ``team`` only; None: every workspace, for the operator), newest first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise UserInputError(f"The limit must be between 1 and {MAX_LIMIT:,}.", field="limit")
    entries = audit.recent(limit, campaign_id=campaign_id, since=since, team=team)
    return [AuditLine(e.at, e.actor, e.action, describe(e), e.team) for e in entries]


def parse_since(raw: str, now: float) -> float:
    """``2026-12-01``, ``2026-12-01T14:00`` (UTC unless an offset is given) or a
    span back from ``now``: ``30m``, ``24h``, ``7d``."""
    text = raw.strip()
    relative = _RELATIVE.match(text.lower())
    if relative:
        span = timedelta(**{_UNITS[relative[2]]: int(relative[1])})
        return now - span.total_seconds()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserInputError(
            f"--since {raw!r} is not a time: give a date (2026-12-01), a date and time "
            "(2026-12-01T14:00, UTC), or a span back from now (30m, 24h, 7d).",
            field="since",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
