"""The small interfaces the handler layer calls. Adapters live in ``bot/mail``.

Keeping them here (and not in the adapters) is what lets ``bot/handlers`` run
with no Google or Slack library imported.
"""

from __future__ import annotations

from typing import Protocol

from bot.models import OutgoingMessage


class Transport(Protocol):
    """Delivers one message. Raises only ``bot.errors`` types.

    - ``TransientSendError``: not delivered, retry later (honour ``retry_after``).
    - ``PermanentSendError``: not delivered, do not retry.
    - ``QuotaDeferred``: not delivered, the account's daily limit is reached.
    - ``UncertainSendError``: may have been delivered; never re-send blindly.
    - ``AuthError``: not delivered, credentials must be fixed by an admin.
    - ``LocalFault``: not delivered, this machine cannot do its part (outbox
      unwritable, disk full); the campaign pauses until a person fixes it.

    An optional ``can_read`` attribute (default true) says whether ``find_sent``
    can answer at all, so a resume does not wait for a lookup it cannot make.
    """

    name: str
    #: How many sends may be in flight at once to reach the pacer's ceiling.
    max_in_flight: int

    def send(self, message: OutgoingMessage) -> str:
        """Send and return the provider's message id."""
        ...

    def find_sent(self, message_id: str) -> str | None:
        """Look up a message by its Message-ID header among sent mail.

        Returns the provider id if found, ``None`` if certainly not sent.
        Raises ``NotImplementedError`` when the transport cannot tell (e.g. the
        Gmail grant has no read scope), so the caller must ask a person.
        """
        ...


class Pacer(Protocol):
    """Spaces calls so that a per-minute quota ceiling is never exceeded."""

    def acquire(self, units: int) -> None:
        """Block until ``units`` may be spent now."""
        ...


class NoPacing:
    """For transports without a quota (the sandbox)."""

    def acquire(self, units: int) -> None:
        return None
