"""``python -m bot serve``: the Slack app, the background runner and the web server.

Socket Mode when ``SLACK_APP_TOKEN`` is set (no public URL needed), otherwise
HTTP mode with Slack's requests on ``POST /slack/events``. Either way waitress
serves ``/healthz`` and ``/unsubscribe/``.

Before anything starts, every Slack setting is checked, and each problem gets
one line saying which step of the Slack set-up provides the value; then
``auth.test`` proves the token works and has the scopes the features need.

With ``BOUNCE_SCAN=on`` and the Gmail transport, the runner also polls the
mailbox for bounce reports every ``BOUNCE_SCAN_SECONDS`` and warns in a
campaign's status thread when its bounce rate passes 5 %.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import time
from collections.abc import Callable
from concurrent.futures import Executor
from types import FrameType

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.channels import CHANNEL_PREFIXES, WITH_DMS, ChannelMap
from bot.cli import parser
from bot.cli.console import make_console
from bot.config import Settings
from bot.handlers import attachments
from bot.handlers.policy import public_url_problem
from bot.runner import Runner
from bot.slack.app import bolt_app, build_client, build_services
from bot.slack.installations import INSTALL_PATH, REQUIRED_SCOPES, SlackClients
from bot.web import WebServer, make_wsgi_app
from bot.wiring import ROLE_SERVE, Wiring, approval_policy, sender_lock

log = logging.getLogger(__name__)
err = make_console(stderr=True)

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}\Z")
_REINSTALL = "reinstall the app (OAuth & Permissions → Reinstall to Workspace)"
#: Bounce reports usually arrive within minutes; a poll that finds nothing new
#: costs one messages.list call (5 quota units), so this is cheap and timely enough.
BOUNCE_SCAN_SECONDS = 600.0
#: How often files no campaign needs any more are looked for (see ``attachments.prune``).
ATTACHMENT_PRUNE_SECONDS = 3600.0
STOPPED = (
    "Stopped. Sends that were under way finished; every campaign's other messages stay "
    "queued and go out when mailbolt starts again."
)
STOPPED_MID_SEND = (
    "Stopped while a send was still under way. Unsent messages stay queued for the next "
    "start; the interrupted one is checked then and, if that cannot tell whether it went "
    "out, held as 'uncertain' for a person to decide."
)


NO_WORKERS_ON_SQLITE = (
    "--no-send with the SQLite file: nothing sends the campaigns recorded here until "
    "`python -m bot send --resume` runs (workers need DATABASE_URL)."
)


def startup_problems(settings: Settings) -> tuple[list[str], list[str]]:
    """(problems that stop the server, warnings), one line each."""
    problems: list[str] = []
    warnings: list[str] = []
    token = settings.slack_bot_token
    workspaces = settings.workspaces_problem()
    if workspaces:
        problems.append(workspaces)
    if settings.many_workspaces and settings.slack_app_token:
        problems.append(
            "SLACK_APP_TOKEN (Socket Mode) and SLACK_CLIENT_ID/SECRET (many workspaces) "
            "cannot be used together here: Slack's apps installed by OAuth use HTTP. "
            "Unset SLACK_APP_TOKEN, or the client ID and secret."
        )
    if not token and settings.many_workspaces:
        pass  # each workspace's token comes from its installation
    elif not token:
        problems.append(
            "SLACK_BOT_TOKEN is not set: in your Slack app's settings, OAuth & Permissions → "
            "Install to Workspace, then copy the Bot User OAuth Token (xoxb-…)."
        )
    elif not token.startswith("xoxb-"):
        problems.append(
            "SLACK_BOT_TOKEN must be the Bot User OAuth Token starting with xoxb- "
            "(OAuth & Permissions); a user token (xoxp-) or app-level token (xapp-) will not do."
        )
    if settings.slack_app_token and not settings.slack_app_token.startswith("xapp-"):
        problems.append(
            "SLACK_APP_TOKEN must be an app-level token starting with xapp-: Basic Information → "
            "App-Level Tokens → Generate Token and Scopes, with the connections:write scope."
        )
    if not settings.slack_app_token and not settings.slack_signing_secret:
        problems.append(
            "SLACK_SIGNING_SECRET is not set: Basic Information → App Credentials → Signing "
            "Secret. (Or set SLACK_APP_TOKEN to use Socket Mode, which needs no public URL.)"
        )
    for name, raw, prefixes in (
        ("STATUS_CHANNEL", settings.status_channel, WITH_DMS),
        ("APPROVAL_CHANNEL", settings.approval_channel, CHANNEL_PREFIXES),
    ):
        try:
            ChannelMap.parse(raw, prefixes)
        except ValueError as exc:  # set in code (tests), not read through bot.config
            problems.append(f"{name}={raw!r} {exc}")
    odd = sorted(u for u in settings.allowed_users if u != "*" and not _USER_ID.match(u))
    if odd:
        what = "is not a Slack user ID" if len(odd) == 1 else "are not Slack user IDs"
        problems.append(
            f"ALLOWED_SLACK_USERS has {', '.join(repr(u) for u in odd)}, which {what}: "
            "open a person's profile → ⋯ → Copy member ID (it starts with U)."
        )
    if not settings.allowed_users:
        warnings.append(
            "ALLOWED_SLACK_USERS is empty, so nobody may send yet: list Slack user IDs "
            "(profile → ⋯ → Copy member ID), or * for everyone in the workspace."
        )
    outside = sorted(
        a
        for a in settings.approver_ids
        if not a.startswith("S") and "*" not in settings.allowed_users
        if a not in settings.allowed_users
    )
    if outside:
        warnings.append(
            f"APPROVERS names {', '.join(outside)}, not in ALLOWED_SLACK_USERS: Slack clicks "
            "from them are refused, so they cannot approve. Add them to ALLOWED_SLACK_USERS."
        )
    if settings.mail_transport == "gmail":
        link_problem = public_url_problem(settings.public_base_url)
        if link_problem:
            warnings.append(f"Marketing templates will be refused: {link_problem}")
    if settings.bounce_scan and settings.mail_transport != "gmail":
        warnings.append(
            f"BOUNCE_SCAN=on does nothing with MAIL_TRANSPORT={settings.mail_transport}: "
            "bounce reports are read from the Gmail mailbox, and nothing sent here can bounce."
        )
    return problems, warnings


def check_slack(client: WebClient) -> list[str]:
    """``auth.test``: the token works here, and has every scope the features need."""
    try:
        response = client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error", "")
        return [
            f"Slack refused SLACK_BOT_TOKEN ({error}): copy the Bot User OAuth Token again "
            f"from OAuth & Permissions, or {_REINSTALL} and copy the new one."
        ]
    except OSError as exc:
        return [
            f"Cannot reach Slack at {client.base_url} ({exc}): check the network, or "
            "SLACK_API_URL if you set it."
        ]
    header = response.headers.get("x-oauth-scopes") or response.headers.get("X-OAuth-Scopes")
    granted = {s.strip() for s in (header or "").split(",") if s.strip()}
    missing = [s for s in REQUIRED_SCOPES if s not in granted]
    if header is not None and missing:
        return [
            f"The bot token lacks the scope(s) {', '.join(missing)}: add them under OAuth & "
            f"Permissions → Bot Token Scopes (or paste manifest.yml again), then {_REINSTALL}."
        ]
    log.info("Slack: connected to %s as %s", response.get("team"), response.get("user"))
    return []


def channel_warnings(settings: Settings, teams: list[str]) -> list[str]:
    """Many workspaces: a channel setting whose one bare ID serves several installed
    workspaces (a channel ID exists in one workspace only, so the others' posts
    fail), and installed workspaces with no approval channel while approval is on."""
    warnings = []
    for name, channels in (
        ("APPROVAL_CHANNEL", settings.approval_channels),
        ("STATUS_CHANNEL", settings.status_channels),
    ):
        sharing = sorted(t for t in teams if t not in channels.named())
        if channels.default and len(sharing) > 1:
            warnings.append(
                f"{name}={channels.default} is one channel for the {len(sharing)} workspaces "
                f"{', '.join(sharing)}, but a channel belongs to one workspace only: posts "
                f"from the others fail. Give each its own as TEAM:CHANNEL pairs, e.g. "
                f"{name}={sharing[0]}:{channels.default},{sharing[1]}:C0456EFGH."
            )
    policy = approval_policy(settings)
    if policy.active:
        without = sorted(t for t in teams if not policy.channels.for_team(t))
        if without:
            warnings.append(
                f"APPROVAL_CHANNEL names no channel for the workspace(s) {', '.join(without)}: "
                "their campaigns that need approval are refused at the preview. Add "
                f"{without[0]}:C0123ABCD (its channel's ID) to APPROVAL_CHANNEL."
            )
    return warnings


def _check_workspaces(settings: Settings, client: WebClient) -> tuple[list[str], list[str]]:
    """Many workspaces: record SLACK_BOT_TOKEN's workspace as installed, and check the
    token and scopes of every installation (a problem in one is a warning: the
    others keep working). (problems, warnings)."""
    wiring = Wiring(settings)
    try:
        clients = SlackClients(client, wiring.store.installations, wiring.seal)
        if settings.slack_bot_token:
            known = set(clients.teams())
            team = clients.record_single_token(settings.slack_bot_token)
            log.info("SLACK_BOT_TOKEN's workspace %s counts as installed", team)
            if team not in known:  # the switch from one workspace: its data is its own
                _adopt(wiring, team)
        warnings = clients.scope_problems()
        teams = clients.teams()
        warnings += channel_warnings(settings, teams)
    finally:
        wiring.store.close()
    link = settings.public_base_url.rstrip("/") + INSTALL_PATH
    err.print(
        f"Many workspaces: installed in {len(teams)}; install into another at {link}",
        soft_wrap=True,
        highlight=False,
    )
    return [], warnings


def _adopt(wiring: Wiring, team: str) -> None:
    """What the one-workspace setup kept with no workspace (campaigns sent and
    accounts linked on the command line) becomes that workspace's, so the
    workspaces installed next never see it."""
    store = wiring.store
    campaigns = store.campaigns.adopt_unowned(team, actor="serve")
    accounts = store.senders.adopt_unowned(team, actor="serve")
    if campaigns or accounts:
        err.print(
            f"{campaigns} campaign(s) and {accounts} sender account(s) of the one-workspace "
            f"setup now belong to workspace {team}.",
            soft_wrap=True,
            highlight=False,
        )


def serve(
    settings: Settings,
    client: WebClient,
    host: str,
    port: int,
    *,
    ready: Callable[[WebServer], None] | None = None,
    bounce_scan_seconds: float = BOUNCE_SCAN_SECONDS,
    listener_executor: Executor | None = None,
    send: bool = True,
) -> None:
    """Build everything, resume unfinished campaigns, and serve until stopped.

    ``listener_executor`` runs the Slack listeners; tests pass one they can wait on.
    ``send=False`` (``--no-send``): campaigns are handed to ``python -m bot worker``
    processes and followed, never sent from here.
    """
    wiring = Wiring(settings)
    deps = wiring.default_deps()
    runner = Runner(deps, deps_for=wiring.deps_for, hand_off=not send)
    services = build_services(settings, deps, runner, client=client, wiring=wiring)
    app = bolt_app(services, listener_executor=listener_executor)
    if settings.bounce_scan and settings.mail_transport == "gmail":
        job = wiring.bounce_job(services.board.alert)  # Google's libraries only now
        runner.every(bounce_scan_seconds, job, "bounce scan")
    if deps.attachment_files is not None:
        files = deps.attachment_files
        runner.every(
            ATTACHMENT_PRUNE_SECONDS,
            lambda: attachments.prune(deps.store, files, time.time()),
            "attachment clean-up",
        )
    socket_mode = bool(settings.slack_app_token)
    handler = None
    mode = "socket_mode" if socket_mode else "http"
    wsgi = make_wsgi_app(
        settings,
        deps.store,
        None if socket_mode else app,
        health=lambda: {"slack": mode},
        unsubscribe_secret=wiring.unsubscribe_secret,
        oauth=wiring.oauth_pages(lambda account: runner.resume_paused(account.address)),
    )
    web = WebServer(wsgi, host, port)
    resumed = runner.open()
    if resumed:
        log.warning("resuming campaign(s) %s", ", ".join(map(str, resumed)))
    try:
        if socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            handler = SocketModeHandler(app, settings.slack_app_token)
            handler.connect()
        sending = (
            f"transport: {settings.mail_transport}"
            if send
            else "not sending: `python -m bot worker` sends"
        )
        err.print(
            f"mailbolt is listening on {web.url} ("
            + ("Socket Mode" if socket_mode else "Slack requests on /slack/events")
            + (
                f"; many workspaces, installed through {INSTALL_PATH}"
                if settings.many_workspaces
                else "; one workspace (SLACK_BOT_TOKEN)"
            )
            + f"; {sending}). Stop with Ctrl+C."
        )
        if ready is not None:
            ready(web)
        web.serve_forever()
    finally:
        if handler is not None:
            handler.close()
        err.print(STOPPED if runner.close() else STOPPED_MID_SEND, soft_wrap=True)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    problems, warnings = startup_problems(settings)
    for line in warnings:
        err.print(f"[yellow]warning:[/] {line}", soft_wrap=True)
    client = build_client(settings)
    if not problems and settings.slack_bot_token:
        problems = check_slack(client)
    if not problems and settings.many_workspaces:
        problems, more = _check_workspaces(settings, client)
        for line in more:
            err.print(f"[yellow]warning:[/] {line}", soft_wrap=True)
    if problems:
        for line in problems:
            err.print(f"[red]error:[/] {line}", soft_wrap=True)
        err.print("mailbolt did not start.")
        return 2
    send = not getattr(args, "no_send", False)
    if not send and not settings.database_url:
        err.print(f"[yellow]warning:[/] {NO_WORKERS_ON_SQLITE}", soft_wrap=True, highlight=False)
    # --no-send takes no sender lock: it sends nothing, so any number may run,
    # beside workers or a `python -m bot send`.
    lock = sender_lock(settings, role=ROLE_SERVE) if send else None
    if lock is not None:
        lock.acquire()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        port = settings.port if args.port is None else args.port
        serve(settings, client, args.host, port, send=send)
    except KeyboardInterrupt:
        pass  # waitress usually swallows it and returns; either way we stop here
    finally:
        if lock is not None:
            lock.release()
    return 0


#: Kept here so a parser can be built from this group alone (tests do).
register = parser.register_serve
