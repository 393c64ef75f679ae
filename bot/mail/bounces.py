"""The Gmail mailbox as a ``BounceSource``: lists and downloads bounce reports.

Owns the two Gmail read calls and nothing else; the scan that paces them,
counts their quota and records what the reports say is
``bot/handlers/bounces.py``.

Why it looks like this:
- Bounces come back to the sending account as DSNs from mailer-daemon. Finding
  them needs ``messages.list(q=…)`` and ``messages.get(format="raw")``, which
  ``gmail.metadata`` forbids, so the grant must include ``gmail.readonly``
  (restricted). ``python -m bot auth`` asks for it only while ``BOUNCE_SCAN=on``
  (see ``google_auth.requested_scopes``); without it the scan stops with an
  ``AuthError`` that says what to run, and sending is unaffected.
- Calls go through the Gmail transport's ``read`` (one connection per thread,
  token refresh and saving, error classification).
"""

from __future__ import annotations

import base64
from typing import Any

from bot.errors import AuthError
from bot.mail.gmail import GmailTransport
from bot.mail.google_auth import AUTH_COMMAND

DSN_QUERY = "from:mailer-daemon newer_than:{days}d"
PAGE_SIZE = 500


class GmailBounceSource:
    """Lists and downloads the mailbox's delivery-status notifications."""

    def __init__(self, gmail: GmailTransport):
        if not gmail.can_read:
            raise AuthError(
                "BOUNCE_SCAN=on needs the gmail.readonly permission to find bounce reports, "
                f"and the saved Gmail authorization does not have it. Run `{AUTH_COMMAND}` "
                "with BOUNCE_SCAN=on and allow reading on the consent screen."
            )
        self._gmail = gmail

    def report_page(self, days: int, page_token: str | None) -> tuple[list[str], str | None]:
        """Gmail ids of mailer-daemon messages from the last ``days``, newest first."""
        page: dict[str, Any] = self._gmail.read(
            lambda service: (
                service.users()
                .messages()
                .list(
                    userId="me",
                    q=DSN_QUERY.format(days=days),
                    maxResults=PAGE_SIZE,
                    pageToken=page_token,
                    includeSpamTrash=True,
                )
            ),
            what="the bounce-report request",
        )
        ids = [str(item["id"]) for item in page.get("messages") or []]
        return ids, page.get("nextPageToken") or None

    def raw(self, report_id: str) -> bytes:
        """The whole report, as the bytes the mailer-daemon sent."""
        found: dict[str, Any] = self._gmail.read(
            lambda service: service.users().messages().get(userId="me", id=report_id, format="raw"),
            what="the bounce-report request",
        )
        return base64.urlsafe_b64decode(found["raw"] + "=" * (-len(found["raw"]) % 4))
