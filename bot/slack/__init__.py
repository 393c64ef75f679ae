"""The Slack front-end: thin listeners that parse a payload, call one handler and
answer with a view from ``views/``.

This module holds what every listener module shares: the services they are
given, who may send, and how a failure is put into words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.errors import AuthError, MailboltError
from bot.handlers.senders import RECONNECT

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from bot.config import Settings
    from bot.handlers.approval import ApprovalPolicy
    from bot.handlers.campaign import Deps
    from bot.runner import Runner
    from bot.slack.installations import SlackClients
    from bot.slack.lookups import Lookups
    from bot.slack.status import StatusBoard
    from bot.wiring import Wiring

log = logging.getLogger(__name__)

#: Slack shows our answer's "Checking…" view when our HTTP response arrives. An
#: update sent before that would be overwritten by it, so the result waits this long.
CHECKING_MIN_SECONDS = 1.0


@dataclass
class Services:
    """What the listeners work with, built once by ``build_app``."""

    settings: Settings
    deps: Deps
    runner: Runner
    board: StatusBoard
    client: WebClient
    lookups: Lookups
    #: Sender accounts: the store's list, grant sealing, Google's flow, each
    #: account's Deps (``bot.slack.accounts`` uses it).
    wiring: Wiring
    #: The "Checking…" floor; tests set 0, since the loopback fake has no such race.
    checking_min_seconds: float = CHECKING_MIN_SECONDS
    #: Which campaigns a second person approves (``bot.slack.approval``); None: none.
    approval: ApprovalPolicy | None = None
    #: Each workspace's client (many workspaces); None: ``client`` speaks for the one.
    clients: SlackClients | None = None

    def client_for(self, team: str) -> WebClient:
        """The client of workspace ``team`` (a campaign's, an account's): its own bot
        token with many workspaces, else the one client."""
        return self.clients.for_team(team) if self.clients is not None else self.client


def describe(error: Exception, correlation_id: str = "") -> str:
    """A failure as a person reads it; unexpected ones point to the log line."""
    if isinstance(error, AuthError) and RECONNECT in str(error):
        return str(error)  # a sender account's own words: who reconnects it, and how
    if isinstance(error, AuthError):
        return (
            f"Gmail refused our authorization: {error} An admin must run "
            "`python -m bot auth`, then restart mailbolt; sending continues where it stopped."
        )
    if isinstance(error, MailboltError):
        return str(error)
    ref = f" (reference {correlation_id})" if correlation_id else ""
    return f"Something went wrong on our side{ref}. An admin can find the details in the log."


def report(error: Exception, correlation_id: str, what: str) -> str:
    """Log ``error`` with its correlation id and return the text for the person."""
    if isinstance(error, MailboltError) and not isinstance(error, AuthError):
        log.info("[%s] %s: %s", correlation_id, what, error)
    else:
        log.error("[%s] %s failed", correlation_id, what, exc_info=error)
    return describe(error, correlation_id)
