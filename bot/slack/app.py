"""The Bolt app: a client pointed at ``SLACK_API_URL``, two middlewares, and the
listeners of ``commands``, ``submissions`` and ``home``.

Choices that matter:
- ``process_before_response=True``: each acknowledgement function runs to its
  end before Slack gets its answer, and lazy listeners start only after it. So
  nothing slow may sit in an acknowledgement (it does not), and a lazy listener
  never races its own acknowledgement.
- Token verification stays on: ``auth.test`` runs when the app is built, so a
  wrong token fails at start, not at the first click.
- 429s are retried after ``Retry-After`` (slack_sdk retries only connection
  errors unless told).
- Slack's retries (``X-Slack-Retry-Num``) are acknowledged and dropped: the first
  delivery already did the work, and doing it again is how things happen twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from bot.config import Settings
from bot.handlers.campaign import Deps
from bot.runner import Runner
from bot.slack import Services, commands, home, submissions
from bot.slack.lookups import Lookups
from bot.slack.status import UPDATE_INTERVAL_SECONDS, StatusBoard

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"


def build_client(settings: Settings) -> WebClient:
    """The Web API client every part of the app shares."""
    return WebClient(
        token=settings.slack_bot_token or None,
        base_url=settings.slack_api_url or DEFAULT_API_URL,
        retry_handlers=[
            ConnectionErrorRetryHandler(),
            RateLimitErrorRetryHandler(max_retry_count=2),
        ],
    )


def ignore_retries(request: BoltRequest, next: Callable[[], None]) -> BoltResponse | None:
    """Answer Slack's re-deliveries with 200 and "do not retry", doing nothing else.

    In Socket Mode every event envelope carries ``retry_attempt``, 0 on the first
    delivery, and Bolt passes it on as ``x-slack-retry-num``; only above 0 is it a retry.
    """
    if (request.headers.get("x-slack-retry-num") or ["0"])[0] not in ("", "0"):
        log.info("ignored a Slack retry (%s)", request.headers.get("x-slack-retry-reason"))
        return BoltResponse(status=200, body="", headers={"x-slack-no-retry": "1"})
    next()
    return None


def correlate(context: BoltContext, next: Callable[[], None]) -> None:
    """Give each request an id that its log lines and error messages share."""
    context["correlation_id"] = uuid.uuid4().hex[:12]
    next()


def log_error(error: Exception, context: BoltContext) -> None:
    log.error("[%s] unhandled error in a listener", context.get("correlation_id"), exc_info=error)


def build_services(
    settings: Settings,
    deps: Deps,
    runner: Runner,
    *,
    client: WebClient | None = None,
    status_interval: float = UPDATE_INTERVAL_SECONDS,
) -> Services:
    """What the listeners share, with the status board following ``runner``.

    Separate from ``bolt_app`` so ``serve`` can hand the board to background jobs
    (the bounce scan's warnings).
    """
    client = client or build_client(settings)
    board = StatusBoard(
        client,
        deps,
        interval=status_interval,
        bounces_known=settings.bounce_scan,
        alert_channel=settings.status_channel,
    )
    runner.add_observer(board)
    board.start()
    return Services(settings, deps, runner, board, client, Lookups(client))


def bolt_app(services: Services) -> App:
    """The Bolt app with its middlewares and every listener registered."""
    app = App(
        name="mailbolt",
        client=services.client,
        signing_secret=services.settings.slack_signing_secret,
        process_before_response=True,
        token_verification_enabled=True,
    )
    app.use(ignore_retries)
    app.use(correlate)
    app.error(log_error)
    for module in (commands, submissions, home):
        module.register(app, services)
    return app


def build_app(
    settings: Settings,
    deps: Deps,
    runner: Runner,
    *,
    client: WebClient | None = None,
    status_interval: float = UPDATE_INTERVAL_SECONDS,
) -> App:
    """The app, its listeners, and the status board following ``runner``."""
    return bolt_app(
        build_services(settings, deps, runner, client=client, status_interval=status_interval)
    )
