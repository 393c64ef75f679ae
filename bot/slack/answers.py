"""How listeners answer: one helper that turns any failure into words for Slack,
and the two ways of reaching a person after the acknowledgement (replacing the
view they have open, or a private message when they closed it).

Owns: the rule that a person reads words, never a stack trace, and that every
failure is logged once with the request's correlation id (``report``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack import report

log = logging.getLogger(__name__)

T = TypeVar("T")


def answering(
    correlation_id: str,
    what: str,
    work: Callable[[], T],
    on_error: Callable[[str], T],
) -> T:
    """``work()``, or, when it raises, ``on_error`` given the failure in words.

    The failure is logged with ``correlation_id`` and ``what`` was being done;
    the person is shown the reference, never a stack trace.
    """
    try:
        return work()
    except Exception as exc:  # the person reads words, never a stack trace
        return on_error(report(exc, correlation_id, what))


def update_view(
    client: WebClient,
    view_id: str,
    view: dict[str, Any],
    correlation_id: str,
    *,
    tell: tuple[str, str] | None = None,
) -> None:
    """Replace an open view. If the person closed it meanwhile and ``tell`` is given
    as (user, text) — something they must know, such as why nothing was sent —
    message them directly instead."""
    try:
        client.views_update(view_id=view_id, view=view)
    except SlackApiError as exc:
        log.warning("[%s] views.update failed: %s", correlation_id, exc.response.get("error"))
        if tell is None:
            return
        try:
            client.chat_postMessage(channel=tell[0], text=tell[1])
        except SlackApiError:
            log.warning("[%s] could not message %s either", correlation_id, tell[0])


def tell_privately(
    client: WebClient, channel: str, user: str, text: str, correlation_id: str
) -> None:
    """An ephemeral answer in ``channel``; if Slack refuses it, the log says so."""
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as exc:
        log.warning("[%s] could not answer %s privately: %s", correlation_id, user, exc)
