"""The Bolt app: a client pointed at ``SLACK_API_URL``, three middlewares, and the
listeners of every flow (``commands``, ``compose``, ``preview``,
``campaign_actions``, ``home``, ``audiences``, ``approval``).

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
- Every request passes ``authorize`` (``bot/slack/authorize.py``) before any
  listener: the installed workspace and ``ALLOWED_SLACK_USERS``, each time.
- Many workspaces (``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET``): the app is
  built with our installation store and "Add to Slack" flow
  (``bot/slack/installations.py``), each request is answered with the token of
  its workspace, and ``app_uninstalled``/``tokens_revoked`` forget that token.
  Otherwise the one ``SLACK_BOT_TOKEN``, exactly as before.
- ``MailboltApp.registered`` lists what every listener is registered for, so the
  authorization test covers each one and a new listener cannot slip past it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from bot.config import Settings
from bot.handlers.campaign import Deps
from bot.runner import Runner
from bot.slack import (
    CHECKING_MIN_SECONDS,
    Services,
    accounts,
    approval,
    audiences,
    campaign_actions,
    commands,
    compose,
    home,
    preview,
)
from bot.slack import schedule as sending_later
from bot.slack.authorize import authorize
from bot.slack.installations import CURRENT_TEAM, SlackClients, StoreInstallationStore, oauth_flow
from bot.slack.lookups import Lookups
from bot.slack.status import UPDATE_INTERVAL_SECONDS, StatusBoard
from bot.slack.team_lookups import TeamLookups
from bot.wiring import Wiring, approval_policy

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
#: What someone in a workspace mailbolt has no installation for is told.
NOT_INSTALLED = (
    "mailbolt is not installed in this workspace (or was removed from it). "
    "An admin of the workspace can install it from the install link mailbolt's admin gives."
)
#: Bolt's methods that register a listener (slack_bolt 1.30).
LISTENER_METHODS = (
    "event",
    "message",
    "function",
    "command",
    "shortcut",
    "global_shortcut",
    "message_shortcut",
    "action",
    "block_action",
    "attachment_action",
    "dialog_submission",
    "dialog_cancellation",
    "view",
    "view_submission",
    "view_closed",
    "options",
    "block_suggestion",
    "dialog_suggestion",
)


class MailboltApp(App):
    """Bolt's ``App``, remembering (method, constraint) for every listener registered."""

    def __init__(self, **kwargs: Any):
        self.registered: list[tuple[str, Any]] = []
        self._registering = False
        super().__init__(**kwargs)


def _recording(name: str) -> Callable[..., Any]:
    def register(self: MailboltApp, *args: Any, **kwargs: Any) -> Any:
        outer = not self._registering
        if outer:
            constraint = args[0] if args else next(iter(kwargs.values()), None)
            self.registered.append((name, constraint))
        self._registering = True
        try:
            return getattr(App, name)(self, *args, **kwargs)
        finally:
            if outer:
                self._registering = False

    register.__name__ = name
    register.__doc__ = getattr(App, name).__doc__
    return register


for _name in LISTENER_METHODS:
    setattr(MailboltApp, _name, _recording(_name))


class ListenerExecutor(ThreadPoolExecutor):
    """Bolt's pool for lazy listeners, able to say when every one has finished.

    With ``process_before_response`` Bolt submits a request's lazy listeners before
    it answers, so once the answer is out, ``wait_idle`` returning True means
    everything that request started has run to its end: tests wait on that
    instead of sleeping and hoping, and a stop can let listeners finish.
    """

    def __init__(self, max_workers: int = 5):
        super().__init__(max_workers=max_workers, thread_name_prefix="listener")
        self._pending = 0
        self._idle = threading.Condition()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._idle:
            self._pending += 1
        try:
            # the request's workspace (CURRENT_TEAM) goes along to the listener's thread
            future = super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future[Any] | None) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Whether every listener submitted so far finished within ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)


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


def in_workspace(context: BoltContext, next: Callable[[], None]) -> None:
    """Mark the request's workspace, so what its listeners ask of Slack goes there.

    Not reset afterwards: Bolt runs the listeners after the last middleware returns,
    and every request sets its own before any listener of it runs."""
    CURRENT_TEAM.set(context.team_id or "")
    next()


def forget_uninstalled(store: StoreInstallationStore) -> Callable[..., BoltResponse | None]:
    """``app_uninstalled`` and ``tokens_revoked`` (of the bot): delete that workspace's
    installation, so its token is no longer kept nor used. Slack sends these with
    no user, so they are answered here, before the check of who may ask."""

    def forget(
        body: dict[str, Any], context: BoltContext, next: Callable[[], None]
    ) -> BoltResponse | None:
        event = body.get("event") if body.get("type") == "event_callback" else None
        kind = event.get("type") if isinstance(event, dict) else None
        revoked = kind == "tokens_revoked" and (event or {}).get("tokens", {}).get("bot")
        if kind == "app_uninstalled" or revoked:
            store.delete_all(enterprise_id=context.enterprise_id, team_id=context.team_id)
            return BoltResponse(status=200, body="")
        next()
        return None

    return forget


def log_error(error: Exception, context: BoltContext) -> None:
    log.error("[%s] unhandled error in a listener", context.get("correlation_id"), exc_info=error)


def build_services(
    settings: Settings,
    deps: Deps,
    runner: Runner,
    *,
    client: WebClient | None = None,
    status_interval: float = UPDATE_INTERVAL_SECONDS,
    checking_min_seconds: float = CHECKING_MIN_SECONDS,
    wiring: Wiring | None = None,
) -> Services:
    """What the listeners share, with the status board following ``runner``.

    Separate from ``bolt_app`` so ``serve`` can hand the board to background jobs
    (the bounce scan's warnings).
    """
    client = client or build_client(settings)
    wiring = wiring or Wiring(settings, deps.store)  # type: ignore[arg-type]  # any StoreParts
    clients = (
        SlackClients(client, deps.store.installations, wiring.seal)
        if settings.many_workspaces
        else None
    )
    board = StatusBoard(
        client,
        deps,
        interval=status_interval,
        bounces_known=settings.bounce_scan,
        alert_channels=settings.status_channels,
        client_for=clients.for_team if clients else None,
    )
    runner.add_observer(board)
    board.start()
    wiring.use_default_deps(deps)
    return Services(
        settings,
        deps,
        runner,
        board,
        client,
        TeamLookups(clients) if clients else Lookups(client),
        wiring,
        checking_min_seconds=checking_min_seconds,
        approval=approval_policy(settings),
        clients=clients,
    )


#: Bolt turns on OAuth with *file* stores by itself, ignoring the token, whenever
#: these are in the environment — even set to "" (slack_bolt 1.30, ``App.__init__``).
_BOLT_OAUTH_VARIABLES = ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET")
_ENVIRON_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_bolts_oauth_variables() -> Iterator[None]:
    """Hide SLACK_CLIENT_ID/SECRET from Bolt while a token-mode app is built (once, at
    start), so the mode is ours to choose: our settings said one workspace."""
    with _ENVIRON_LOCK:
        hidden = {k: os.environ.pop(k) for k in _BOLT_OAUTH_VARIABLES if k in os.environ}
        try:
            yield
        finally:
            os.environ.update(hidden)


def bolt_app(services: Services, *, listener_executor: Executor | None = None) -> MailboltApp:
    """The Bolt app with its middlewares and every listener registered.

    ``listener_executor`` runs the lazy listeners (a ``ListenerExecutor`` by default).
    """
    common: dict[str, Any] = {
        "name": "mailbolt",
        "signing_secret": services.settings.slack_signing_secret,
        "process_before_response": True,
        "listener_executor": listener_executor or ListenerExecutor(),
    }
    clients = services.clients
    if clients is None:
        with _without_bolts_oauth_variables():
            app = MailboltApp(client=services.client, token_verification_enabled=True, **common)
    else:
        installations = services.deps.store.installations
        flow = oauth_flow(services.settings, installations, services.wiring.seal, clients.base)
        app = MailboltApp(
            client=WebClient(base_url=clients.base.base_url),
            oauth_flow=flow,
            installation_store_bot_only=True,
            user_facing_authorize_error_message=NOT_INSTALLED,
            **common,
        )
    app.use(ignore_retries)
    if clients is not None:
        app.use(forget_uninstalled(StoreInstallationStore(installations, services.wiring.seal)))
    app.use(correlate)
    app.use(in_workspace)
    app.use(authorize(services))
    app.error(log_error)
    for module in (
        commands,
        compose,
        preview,
        campaign_actions,
        home,
        accounts,
        audiences,
        approval,
        sending_later,
    ):
        module.register(app, services)
    return app


def build_app(
    settings: Settings,
    deps: Deps,
    runner: Runner,
    *,
    client: WebClient | None = None,
    status_interval: float = UPDATE_INTERVAL_SECONDS,
    checking_min_seconds: float = CHECKING_MIN_SECONDS,
    listener_executor: Executor | None = None,
    wiring: Wiring | None = None,
) -> MailboltApp:
    """The app, its listeners, and the status board following ``runner``."""
    services = build_services(
        settings,
        deps,
        runner,
        client=client,
        status_interval=status_interval,
        checking_min_seconds=checking_min_seconds,
        wiring=wiring,
    )
    return bolt_app(services, listener_executor=listener_executor)
