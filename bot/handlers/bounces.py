"""Bounce scanning: read new delivery reports, record what they say, warn once.

Owns the use case (``scan``, ``ingest``, the periodic ``bounce_job`` and its
alerts). Reports come through a ``BounceSource`` port (the Gmail mailbox, in
``bot/mail/bounces.py``), which only reads; every call is paced and its quota
units recorded here, against the same per-user quota as sending. Parsing and
matching are ``bounce_parse``'s pure functions.

Every report read is recorded by its provider id (``Suppressions.record_bounce``),
so a poll fetches only reports it has not seen: a poll with nothing new costs
one list call. A failed read is not retried on the spot: reading is
idempotent, and the next poll tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.errors import MailboltError, UserInputError
from bot.handlers import stats
from bot.handlers.bounce_parse import HARD, UNMATCHED, Bounce, match_bounce, parse_dsn
from bot.handlers.quota import GET_UNITS, LIST_UNITS
from bot.ports import BounceSource, Pacer, StoreParts

log = logging.getLogger(__name__)

#: How far back a scan looks; a report older than a week changes no decision.
SCAN_DAYS = 7


@dataclass
class ScanResult:
    """What one pass over the mailbox's bounce reports found."""

    reports: int = 0
    new: int = 0
    hard: int = 0
    soft: int = 0
    unmatched: int = 0
    campaigns: set[int] = field(default_factory=set)

    def __str__(self) -> str:
        return (
            f"{self.reports} bounce report(s) in the mailbox, {self.new} new: "
            f"{self.hard} hard, {self.soft} soft, {self.unmatched} not about our messages"
        )


def check_enabled(bounce_scan: bool, how_to_enable: str) -> None:
    """Refuse a scan while ``BOUNCE_SCAN`` is off, saying how to turn it on."""
    if not bounce_scan:
        raise UserInputError(
            f"Bounce scanning is off. Set BOUNCE_SCAN=on and run `{how_to_enable}` "
            "to allow reading bounce reports.",
            field="BOUNCE_SCAN",
        )


def ingest(
    store: StoreParts, provider_id: str, raw: bytes, result: ScanResult, team: str = ""
) -> Bounce | None:
    """Record one fetched report under its provider id (so it is never fetched again).

    A matched hard bounce lands in ``bounces``, where ``policy.suppress`` finds it
    for every later campaign of workspace ``team`` (the mailbox's account's;
    ``''``: every workspace).
    """
    report = parse_dsn(raw)
    bounce = match_bounce(report, store.outbox.find_by_message_id) if report else None
    if bounce is None:
        if store.suppressions.record_bounce(provider_id, kind=UNMATCHED):
            result.new += 1
            result.unmatched += 1
        return None
    recorded = store.suppressions.record_bounce(
        provider_id,
        kind=bounce.kind,
        message_row_id=bounce.message_row_id,
        email=bounce.email,
        status=bounce.status,
        diagnostic=bounce.diagnostic,
        team=team,
    )
    if recorded:
        result.new += 1
        result.campaigns.add(bounce.campaign_id)
        if bounce.kind == HARD:
            result.hard += 1
        else:
            result.soft += 1
    return bounce


class _Metered:
    """Paces each read and records its units for ``account``, before making it."""

    def __init__(self, store: StoreParts, pacer: Pacer, account: str):
        self.store, self.pacer, self.account = store, pacer, account

    def spend(self, units: int, method: str) -> None:
        self.pacer.acquire(units)
        self.store.quota.record_units(units, method, account=self.account)


def _report_ids(source: BounceSource, meter: _Metered, days: int) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    while True:
        meter.spend(LIST_UNITS, "messages.list")
        page, token = source.report_page(days, token)
        ids.extend(page)
        if not token:
            return ids


def scan(
    store: StoreParts,
    source: BounceSource,
    *,
    pacer: Pacer,
    account: str,
    days: int = SCAN_DAYS,
) -> ScanResult:
    """Read every new report of the last ``days`` and record what it says.

    ``account`` is the mailbox's sending account, whose quota the reads spend.
    """
    meter = _Metered(store, pacer, account)
    # A hard bounce suppresses the address for the workspace of the account whose
    # mailbox reported it; the operator's accounts (and the token file's) for all.
    owner = store.senders.get(account)
    team = owner.team if owner is not None else ""
    result = ScanResult()
    ids = _report_ids(source, meter, days)
    result.reports = len(ids)
    known = store.suppressions.known_bounce_reports(ids)
    for report_id in ids:
        if report_id not in known:
            meter.spend(GET_UNITS, "messages.get")
            ingest(store, report_id, source.raw(report_id), result, team)
    if result.new:
        log.info("Bounce scan: %s", result)
    return result


def bounce_job(
    scan_once: Callable[[], ScanResult],
    store: StoreParts,
    alert: Callable[[int, str], None],
) -> Callable[[], None]:
    """A job for ``Runner.every``: ``scan_once``, then ``alert(campaign_id, text)``
    once per campaign over 5 %.

    Errors are logged, not raised, so a revoked grant or a Gmail outage never
    stops the server; the next run tries again.
    """
    alerted: set[int] = set()

    def job() -> None:
        try:
            result = scan_once()
        except MailboltError as exc:
            log.warning("Bounce scan failed: %s", exc)
            return
        for campaign_id in sorted(result.campaigns - alerted):
            message = stats.bounce_alert(stats.stats(store, campaign_id=campaign_id))
            if message:
                alerted.add(campaign_id)
                alert(campaign_id, message)

    return job
