"""Who may ask: one check in front of every listener, on every request.

A Bolt global middleware runs before any listener, for every kind of request
(commands, form submissions and closes, buttons, options, events such as
``app_home_opened``), in HTTP and in Socket Mode alike. It asks
``policy.authorization_problem`` with the settings of the moment and the
workspace the bot token belongs to (``auth.test`` at start, which Bolt keeps as
``context.authorize_result``), and on a refusal no listener runs.

The refusal is said where the person is looking: privately under a command, on
the form's first field, in a private note for a button, on the Home tab. Someone
outside the installed workspace is answered only in the HTTP response itself
(nothing is posted anywhere for them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from slack_bolt import BoltContext, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.handlers.policy import Refusal, authorization_problem
from bot.slack import Services, views

log = logging.getLogger(__name__)

NOT_ALLOWED_TITLE = "Not allowed"


def _teams(body: Mapping[str, Any], context: BoltContext) -> Iterator[str]:
    """Every workspace ID the request names: where it came from, and the user's own."""
    yield context.team_id or ""
    yield _str(body.get("team_id"))
    team = body.get("team")
    yield _str(team.get("id")) if isinstance(team, Mapping) else _str(team)
    for key in ("user", "view", "event"):
        part = body.get(key)
        if isinstance(part, Mapping):
            yield _str(part.get("team_id"))
            yield _str(part.get("app_installed_team_id"))
            yield _str(part.get("user_team"))


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _kind(body: Mapping[str, Any]) -> str:
    """``command``, a payload type (``block_actions``, ``view_submission``…), or the event type."""
    if "command" in body:
        return "command"
    kind = _str(body.get("type"))
    event = body.get("event")
    if kind == "event_callback" and isinstance(event, Mapping):
        return _str(event.get("type")) or kind
    return kind or "unknown"


def _first_input(view: Any) -> str | None:
    blocks = view.get("blocks") if isinstance(view, Mapping) else None
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, Mapping) and block.get("type") == "input" and block.get("block_id"):
            return str(block["block_id"])
    return None


def _tell(client: WebClient, body: Mapping[str, Any], user: str, text: str) -> None:
    """A private note next to the button pressed, or a direct message from a form."""
    channel = body.get("channel")
    container = body.get("container")
    channel_id = _str(channel.get("id")) if isinstance(channel, Mapping) else ""
    if not channel_id and isinstance(container, Mapping):
        channel_id = _str(container.get("channel_id"))
    if channel_id:
        client.chat_postEphemeral(channel=channel_id, user=user, text=text)
    else:
        client.chat_postMessage(channel=user, text=text)


def _home(text: str) -> dict[str, Any]:
    return {"type": "home", "blocks": [views.header("Mailbolt"), views.section(text)]}


def refusal_response(
    body: Mapping[str, Any], refusal: Refusal, user: str, client: WebClient
) -> BoltResponse:
    """Say no where the person is looking; the HTTP answer itself where possible."""
    kind = _kind(body)
    if kind == "command":
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": refusal.text})
    if kind == "view_submission":
        block = _first_input(body.get("view"))
        if block:
            return BoltResponse(
                status=200, body={"response_action": "errors", "errors": {block: refusal.text}}
            )
        view = views.notice_view(NOT_ALLOWED_TITLE, refusal.text)
        return BoltResponse(status=200, body={"response_action": "update", "view": view})
    if kind in ("block_suggestion", "dialog_suggestion"):
        return BoltResponse(status=200, body={"options": []})
    if refusal.answerable:
        try:
            if kind in ("block_actions", "interactive_message", "shortcut", "message_action"):
                _tell(client, body, user, refusal.text)
            elif kind == "app_home_opened":
                client.views_publish(user_id=user, view=_home(refusal.text))
        except SlackApiError as exc:
            log.warning("could not tell %s why they were refused: %s", user, exc)
    return BoltResponse(status=200, body="")


def authorize(services: Services) -> Callable[..., BoltResponse | None]:
    """The global middleware; ``services.settings`` is read on every request."""

    def check(
        body: dict[str, Any], context: BoltContext, client: WebClient, next: Callable[[], None]
    ) -> BoltResponse | None:
        installed = context.authorize_result.team_id if context.authorize_result else None
        user = context.user_id or ""
        refusal = authorization_problem(
            services.settings.allowed_users, installed, user, _teams(body, context)
        )
        if refusal is None:
            next()
            return None
        log.info(
            "[%s] refused %s from user %s in workspace %s: %s",
            context.get("correlation_id"),
            _kind(body),
            user[:20] or "?",
            (context.team_id or "?")[:20],
            refusal.reason,
        )
        return refusal_response(body, refusal, user, client)

    return check
