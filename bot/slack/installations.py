"""Many workspaces: Bolt's installation and OAuth-state stores over our store, the
"Add to Slack" flow, and one Web API client per workspace.

Why it looks like this:
- ``slack_sdk``'s own stores (file, SQLite, SQLAlchemy) would keep bot tokens in
  the clear in a second place. These keep them in our database (SQLite or
  PostgreSQL, through ``bot.ports.Installations``), sealed with the grant key,
  so a copy of the database alone holds no token.
- The Bolt app is built with these stores explicitly: Bolt otherwise turns on
  OAuth with *file* stores by itself whenever ``SLACK_CLIENT_ID`` and
  ``SLACK_CLIENT_SECRET`` are in the environment.
- The state is single use and lives 10 minutes; the cookie Bolt sets ties it to
  the browser that started the install. The GETs of the flow are not signed by
  Slack: the cookie and the single-use state are the protection.
- ``SlackClients.for_team`` is how everything we send on our own (status
  messages, approval requests, notices) reaches the right workspace with its token.
"""

from __future__ import annotations

import html
import logging
import secrets
import threading
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from slack_bolt import BoltResponse
from slack_bolt.authorization.authorize import InstallationStoreAuthorize
from slack_bolt.oauth.callback_options import CallbackOptions, FailureArgs, SuccessArgs
from slack_bolt.oauth.oauth_flow import OAuthFlow
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store import Bot, Installation, InstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore

from bot.config import Settings
from bot.errors import AuthError, MailboltError
from bot.ports import Installations, Sealer
from bot.records import Installation as InstallationRecord

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
#: How long an "Add to Slack" link works, from the click to Slack's redirect back.
STATE_SECONDS = 600
#: The bot scopes the features need; manifest.yml asks for exactly these.
REQUIRED_SCOPES = (
    "commands",
    "chat:write",
    "users:read",
    "users:read.email",
    "files:read",
    "channels:read",
    "groups:read",
    "usergroups:read",
    "files:write",
)


class NotInstalled(MailboltError):
    """A workspace mailbolt has no bot token for (never installed, or uninstalled)."""


def missing_scopes(granted: str | None) -> list[str]:
    """The required bot scopes absent from ``granted`` (Slack's comma-separated list)."""
    have = {s.strip() for s in (granted or "").split(",") if s.strip()}
    return [s for s in REQUIRED_SCOPES if s not in have]


class StoreInstallationStore(InstallationStore):
    """``slack_sdk``'s installation store over ``bot.ports.Installations`` (bot tokens only)."""

    def __init__(self, installations: Installations, sealer: Sealer):
        self._installations = installations
        self._sealer = sealer

    @property
    def logger(self) -> logging.Logger:
        return log

    def save(self, installation: Installation) -> None:
        if not installation.team_id or not installation.bot_token:
            raise MailboltError("Slack's answer named no workspace or no bot token.")
        self._installations.save(
            InstallationRecord(
                team=installation.team_id,
                enterprise=installation.enterprise_id or "",
                sealed_bot_token=self._sealer.seal(installation.bot_token),
                bot_user=installation.bot_user_id or "",
                bot_id=installation.bot_id or "",
                scopes=",".join(installation.bot_scopes or []),
                installer=installation.user_id or "",
                app_id=installation.app_id or "",
                team_name=installation.team_name or "",
            )
        )
        log.info("installed in workspace %s by %s", installation.team_id, installation.user_id)

    def save_bot(self, bot: Bot) -> None:
        """Bots are saved with their installation (``save``)."""

    def _record(self, team_id: str | None) -> InstallationRecord | None:
        return self._installations.get(team_id) if team_id else None

    def _token(self, record: InstallationRecord) -> str | None:
        try:
            return self._sealer.open(record.sealed_bot_token)
        except AuthError:
            log.error(
                "the bot token of workspace %s cannot be opened (another GRANT_KEY?)", record.team
            )
            return None

    def find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        installation = self.find_installation(enterprise_id=enterprise_id, team_id=team_id)
        return installation.to_bot() if installation else None

    def find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        record = self._record(team_id)
        token = self._token(record) if record else None
        if record is None or token is None:
            return None
        return Installation(
            app_id=record.app_id or None,
            enterprise_id=record.enterprise or None,
            team_id=record.team,
            team_name=record.team_name or None,
            bot_token=token,
            bot_id=record.bot_id,
            bot_user_id=record.bot_user,
            bot_scopes=record.scopes,
            user_id=record.installer or "unknown",
            installed_at=record.updated_at,
        )

    def delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        self.delete_all(enterprise_id=enterprise_id, team_id=team_id)

    def delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        if user_id is None:
            self.delete_all(enterprise_id=enterprise_id, team_id=team_id)

    def delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        if team_id and self._installations.delete(team_id):
            log.info("uninstalled from workspace %s: its bot token is forgotten", team_id)


class StoreStateStore(OAuthStateStore):
    """``slack_sdk``'s OAuth state store over ``bot.ports.Installations``: single use,
    ``STATE_SECONDS`` long, consumed atomically (one server wins)."""

    def __init__(self, installations: Installations):
        self._installations = installations

    @property
    def logger(self) -> logging.Logger:
        return log

    def issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        self._installations.issue_state(state)
        return state

    def consume(self, state: str) -> bool:
        return bool(state) and self._installations.consume_state(state, STATE_SECONDS)


# -- the pages a person sees after "Add to Slack" -----------------------------------------

_FAILURES = {
    "access_denied": "The install was cancelled in Slack, so nothing was installed.",
    "invalid_browser": (
        "This install link was started in another browser (or its cookie is gone). "
        "Start again from the install link in this browser."
    ),
    "invalid_state": (
        "This install link has expired or was already used. Start again from the install link."
    ),
    "missing_code": "Slack's answer was incomplete. Start again from the install link.",
    "invalid_code": (
        "Slack did not accept the install (the code was refused or already used). "
        "Start again from the install link."
    ),
    "storage_error": "The install could not be saved. An admin can find the details in the log.",
}


def _page(title: str, text: str, status: int, cookie: str | None) -> BoltResponse:
    body = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    headers: dict[str, Any] = {"Content-Type": "text/html; charset=utf-8"}
    if cookie:
        headers["Set-Cookie"] = [cookie]
    return BoltResponse(status=status, body=body, headers=headers)


def _success(args: SuccessArgs) -> BoltResponse:
    installation = args.installation
    name = installation.team_name or installation.team_id or "your workspace"
    missing = missing_scopes(",".join(installation.bot_scopes or []))
    text = f"mailbolt is installed in {name}. Type /sendmail in Slack to start."
    if missing:
        log.warning("workspace %s granted no %s", installation.team_id, ", ".join(missing))
        text += (
            f" It was not granted {', '.join(missing)}, so some features will fail: "
            "ask an admin to add them to the app and install again."
        )
    cookie = args.settings.state_utils.build_set_cookie_for_deletion()
    return _page("Installed", text, 200, cookie)


def _failure(args: FailureArgs) -> BoltResponse:
    text = _FAILURES.get(
        args.reason, "The install did not work. Start again from the install link."
    )
    log.info("an install was refused: %s", args.reason)
    cookie = args.settings.state_utils.build_set_cookie_for_deletion()
    status = args.suggested_status_code if args.suggested_status_code >= 400 else 400
    return _page("Not installed", text, status, cookie)


def oauth_flow(
    settings: Settings, installations: Installations, sealer: Sealer, client: WebClient
) -> OAuthFlow:
    """Bolt's "Add to Slack" flow over our stores; ``client`` reaches ``SLACK_API_URL``."""
    oauth_settings = OAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret,
        scopes=list(REQUIRED_SCOPES),
        redirect_uri=settings.public_base_url.rstrip("/") + REDIRECT_PATH,
        install_path=INSTALL_PATH,
        install_page_rendering_enabled=False,
        redirect_uri_path=REDIRECT_PATH,
        authorization_url=settings.slack_oauth_authorize_url,
        callback_options=CallbackOptions(success=_success, failure=_failure),
        installation_store=StoreInstallationStore(installations, sealer),
        installation_store_bot_only=True,
        state_store=StoreStateStore(installations),
        state_expiration_seconds=STATE_SECONDS,
        logger=log,
    )
    # Bolt checks a workspace's token with auth.test on every request unless told to
    # keep the answer: a Slack round trip inside every 3-second acknowledgement. The
    # installation is still looked up each time, so an uninstalled workspace is
    # refused at once; only the answer for a token it still has is kept.
    oauth_settings.authorize = InstallationStoreAuthorize(
        logger=log,
        client_id=oauth_settings.client_id,
        client_secret=oauth_settings.client_secret,
        installation_store=oauth_settings.installation_store,
        bot_only=True,
        cache_enabled=True,
    )
    return OAuthFlow(client=client, settings=oauth_settings, logger=log)


class SlackClients:
    """The Web API client of each workspace: in single-workspace mode always the one
    client; with many, one per team, its bot token opened from the installation."""

    def __init__(
        self,
        base: WebClient,
        installations: Installations | None = None,
        sealer: Sealer | None = None,
    ):
        self.base = base
        self._store = (
            StoreInstallationStore(installations, sealer)
            if installations is not None and sealer is not None
            else None
        )
        self._installations = installations
        self._clients: dict[tuple[str, str], WebClient] = {}
        self._lock = threading.Lock()

    @property
    def many(self) -> bool:
        return self._store is not None

    def for_team(self, team: str) -> WebClient:
        """The client speaking for ``team``; ``NotInstalled`` if there is none.

        ``""`` (a campaign from the CLI) gets the base client: ``SLACK_BOT_TOKEN``'s.
        """
        if self._store is None or not team:
            return self.base
        bot = self._store.find_bot(enterprise_id=None, team_id=team)
        if bot is None:
            raise NotInstalled(f"mailbolt is not installed in Slack workspace {team}.")
        key = (team, bot.bot_token)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = WebClient(
                    token=bot.bot_token,
                    base_url=self.base.base_url,
                    retry_handlers=list(self.base.retry_handlers),
                )
                self._clients = {k: v for k, v in self._clients.items() if k[0] != team}
                self._clients[key] = client
            return client

    def teams(self) -> list[str]:
        return [i.team for i in self._installations.all()] if self._installations else []

    def record_single_token(self, token: str) -> str:
        """Record ``SLACK_BOT_TOKEN``'s workspace as an installation, so a setup that
        switches to many workspaces keeps answering the one it had; its team ID."""
        assert self._store is not None
        answer = self.base.auth_test(token=token)
        team = str(answer["team_id"])
        if self._installations is not None and self._installations.get(team) is None:
            scopes = answer.headers.get("x-oauth-scopes") or ""
            self._store.save(
                Installation(
                    team_id=team,
                    team_name=answer.get("team"),
                    bot_token=token,
                    bot_id=answer.get("bot_id"),
                    bot_user_id=answer.get("user_id"),
                    bot_scopes=scopes,
                    user_id="",
                    installed_at=datetime.now().timestamp(),
                )
            )
        return team

    def scope_problems(self) -> list[str]:
        """One line per installed workspace whose token fails or lacks a scope."""
        problems = []
        for team in self.teams():
            try:
                answer = self.for_team(team).auth_test()
            except (SlackApiError, NotInstalled) as exc:
                problems.append(f"workspace {team}: its bot token does not work ({exc}).")
                continue
            header = answer.headers.get("x-oauth-scopes")
            missing = missing_scopes(header)
            if header is not None and missing:
                problems.append(
                    f"workspace {team}: the bot token lacks {', '.join(missing)}; "
                    "add them to the app and install it there again."
                )
        return problems


#: The workspace of the Slack request being handled (set by the app's middleware,
#: carried into its lazy listeners by ``ListenerExecutor``): what a listener asks
#: of Slack is asked in that workspace, with its token.
CURRENT_TEAM: ContextVar[str] = ContextVar("mailbolt_slack_team", default="")


def current_team() -> str:
    return CURRENT_TEAM.get()
