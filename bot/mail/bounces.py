"""Fetch bounce reports from the Gmail mailbox (``BOUNCE_SCAN=on`` only).

Why it looks like this:
- Bounces come back to the sending account as DSNs from mailer-daemon. Finding
  them needs ``messages.list(q=…)`` and ``messages.get(format="raw")``, which
  ``gmail.metadata`` forbids, so the grant must include ``gmail.readonly``
  (restricted). ``python -m bot auth`` asks for it only while ``BOUNCE_SCAN=on``
  (see ``google_auth.requested_scopes``); without it the scan stops with an
  ``AuthError`` that says what to run, and sending is unaffected.
- Calls go through the Gmail transport's ``read`` (one connection per thread,
  token refresh and saving, error classification), are paced against the same
  per-user quota as sending and logged in the quota table. A failed read is not
  retried on the spot: reading is idempotent, and the next poll tries again.
- Every report read is recorded by its Gmail id (``Suppressions.record_bounce``), so a
  poll fetches only reports it has not seen: a poll with nothing new costs one
  ``messages.list`` call (5 units).
- Parsing and matching are ``bot/handlers/bounce_parse.py``'s job.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from typing import Any

from bot.config import Settings
from bot.errors import AuthError, MailboltError, UserInputError
from bot.handlers import bounce_parse, stats
from bot.handlers.bounce_parse import ScanResult
from bot.mail.gmail import GmailTransport, build_transport
from bot.mail.google_auth import AUTH_COMMAND
from bot.mail.pacing import GET_UNITS, LIST_UNITS
from bot.ports import NoPacing, Pacer, StoreParts
from bot.records import account_key

log = logging.getLogger(__name__)

SCAN_DAYS = 7
DSN_QUERY = "from:mailer-daemon newer_than:{days}d"
PAGE_SIZE = 500


class GmailBounceSource:
    """Lists and downloads the mailbox's delivery-status notifications."""

    def __init__(
        self,
        gmail: GmailTransport,
        *,
        pacer: Pacer | None = None,
        store: StoreParts | None = None,
    ):
        if not gmail.can_read:
            raise AuthError(
                "BOUNCE_SCAN=on needs the gmail.readonly permission to find bounce reports, "
                f"and the saved Gmail authorization does not have it. Run `{AUTH_COMMAND}` "
                "with BOUNCE_SCAN=on and allow reading on the consent screen."
            )
        self._gmail = gmail
        self._pacer = pacer or NoPacing()
        self._store = store
        self._account = account_key(gmail.sender_address()) if store is not None else ""

    def report_ids(self, days: int = SCAN_DAYS) -> Iterator[str]:
        """Gmail ids of mailer-daemon messages from the last ``days``, newest first."""
        token: str | None = None
        while True:
            page = self._call(
                lambda service, token=token: (  # type: ignore[misc]
                    service.users()
                    .messages()
                    .list(
                        userId="me",
                        q=DSN_QUERY.format(days=days),
                        maxResults=PAGE_SIZE,
                        pageToken=token,
                        includeSpamTrash=True,
                    )
                ),
                LIST_UNITS,
                "messages.list",
            )
            for item in page.get("messages") or []:
                yield str(item["id"])
            token = page.get("nextPageToken")
            if not token:
                return

    def raw(self, gmail_id: str) -> bytes:
        """The whole report, as the bytes the mailer-daemon sent."""
        found = self._call(
            lambda service: service.users().messages().get(userId="me", id=gmail_id, format="raw"),
            GET_UNITS,
            "messages.get",
        )
        return base64.urlsafe_b64decode(found["raw"] + "=" * (-len(found["raw"]) % 4))

    def _call(self, make_request: Callable[[Any], Any], units: int, method: str) -> dict[str, Any]:
        self._pacer.acquire(units)
        if self._store is not None:
            self._store.quota.record_units(units, method, account=self._account)
        return self._gmail.read(make_request, what="the bounce-report request")


def scan(store: StoreParts, source: GmailBounceSource, *, days: int = SCAN_DAYS) -> ScanResult:
    """Read every new report of the last ``days`` and record what it says."""
    result = ScanResult()
    ids = list(source.report_ids(days))
    result.reports = len(ids)
    known = store.suppressions.known_bounce_reports(ids)
    for gmail_id in ids:
        if gmail_id not in known:
            bounce_parse.ingest(store, gmail_id, source.raw(gmail_id), result)
    if result.new:
        log.info("Bounce scan: %s", result)
    return result


def scan_bounces(
    settings: Settings, store: StoreParts, *, pacer: Pacer | None = None, days: int = SCAN_DAYS
) -> ScanResult:
    """One scan with the saved Gmail grant; ``UserInputError`` if BOUNCE_SCAN is off."""
    if not settings.bounce_scan:
        raise UserInputError(
            "Bounce scanning is off. Set BOUNCE_SCAN=on and run "
            f"`{AUTH_COMMAND}` to allow reading bounce reports.",
            field="BOUNCE_SCAN",
        )
    source = GmailBounceSource(build_transport(settings), pacer=pacer, store=store)
    return scan(store, source, days=days)


def bounce_job(
    settings: Settings,
    store: StoreParts,
    alert: Callable[[int, str], None],
    *,
    pacer: Pacer | None = None,
) -> Callable[[], None]:
    """A job for ``Runner.every``: scan, then ``alert(campaign_id, text)`` once per
    campaign over 5 %.

    Errors are logged, not raised, so a revoked grant or a Gmail outage never
    stops the server; the next run tries again.
    """
    alerted: set[int] = set()

    def job() -> None:
        try:
            result = scan_bounces(settings, store, pacer=pacer)
        except MailboltError as exc:
            log.warning("Bounce scan failed: %s", exc)
            return
        for campaign_id in sorted(result.campaigns - alerted):
            message = stats.bounce_alert(stats.stats(store, campaign_id=campaign_id))
            if message:
                alerted.add(campaign_id)
                alert(campaign_id, message)

    return job
