"""App Home: recent campaigns, today's sending and delivery, the templates and setup
health.

Published with ``views.publish`` each time someone opens the tab, from a lazy
listener so the event is acknowledged first.
"""

from __future__ import annotations

import time

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.config import Settings
from bot.handlers import audit_log, schedule, stats
from bot.handlers.campaign import Deps
from bot.slack import Services, accounts, views
from bot.slack.answers import answering
from bot.slack.commands import STATS_DAYS, campaign_lines, quota_data


def health(
    settings: Settings, deps: Deps, accounts: int = 0, team: str = ""
) -> list[tuple[bool, str]]:
    """(fine, what) lines for the setup panel of workspace ``team``, each saying what
    to change. ``accounts``: how many sender accounts are connected or linked."""
    lines: list[tuple[bool, str]] = []
    account = deps.envelope.from_address
    if settings.mail_transport == "sandbox":
        lines.append((True, f"Transport: sandbox (From: {account})."))
    elif settings.gmail_token_file.is_file():
        lines.append((True, f"Transport: Gmail, sending as {account} by default."))
    elif accounts:
        lines.append((True, f"Transport: Gmail, {accounts} sender account(s) connected."))
    else:
        lines.append(
            (False, "Transport: Gmail, but not authorized yet: an admin runs `python -m bot auth`.")
        )
    allowed = settings.allowed_users
    if not allowed:
        lines.append((False, "Nobody may send yet: an admin sets ALLOWED_SLACK_USERS."))
    elif "*" in allowed:
        lines.append((True, "Everyone in the workspace may send (ALLOWED_SLACK_USERS=*)."))
    else:
        lines.append((True, f"{len(allowed)} people may send (ALLOWED_SLACK_USERS)."))
    if not settings.postal_address:
        lines.append((False, "POSTAL_ADDRESS is not set, so marketing templates cannot be sent."))
    if settings.mail_transport == "gmail" and not settings.public_base_url:
        lines.append((False, "PUBLIC_BASE_URL is not set: unsubscribe links point to localhost."))
    status_channel = settings.status_channels.for_team(team)
    if status_channel:
        lines.append((True, f"Status messages go to <#{status_channel}> by default."))
    else:
        lines.append((True, "Status messages go to the channel where /sendmail is typed."))
    return lines


#: Audit entries shown to admins on the Home tab (the CLI shows any number).
HOME_AUDIT_ENTRIES = 15


def home_data(services: Services, user: str = "", team: str = "", note: str = "") -> views.HomeData:
    """What the tab shows ``user``; the audit section only if they are an admin."""
    admin = bool(user) and user in services.settings.admin_users
    audit = (
        audit_log.audit_lines(services.deps.store.audit, limit=HOME_AUDIT_ENTRIES, team=team)
        if admin
        else None
    )
    return views.HomeData(
        accounts=accounts.home_accounts(services, user, team) if user else None,
        note=note,
        campaigns=campaign_lines(services, team),
        quota=quota_data(services),
        delivery=stats.stats(
            services.deps.store,
            days=STATS_DAYS,
            bounces_known=services.settings.bounce_scan,
            team=team,
        ),
        templates=services.deps.catalogue.for_team(team).list(),
        health=health(
            services.settings,
            services.deps,
            len(services.wiring.senders.all(team=team))
            if services.settings.mail_transport == "gmail"
            else 0,
            team,
        ),
        sandbox_outbox=str(services.settings.sandbox_outbox),
        audit=audit,
        scheduled=_scheduled(services, user, team),
    )


def _scheduled(services: Services, user: str, team: str) -> str:
    """Upcoming campaigns for the tab: the person's own (an admin's: everyone's in
    the workspace)."""
    admins = services.settings.admin_users
    rows = schedule.listed(services.deps, user, admins, team=team) if user else []
    return views.scheduled_lines(rows, time.time()) if rows else ""


def publish_home(
    services: Services, client: WebClient, user: str, team: str, note: str = ""
) -> None:
    """Draw ``user``'s Home tab (with ``note`` on top); on failure it stays as it was
    and the log says why."""
    answering(
        "",
        "publishing App Home",
        lambda: client.views_publish(
            user_id=user, view=views.home_view(home_data(services, user, team, note))
        ),
        lambda _words: None,
    )


def register(app: App, services: Services) -> None:
    def event_ack(ack: Ack) -> None:
        ack()

    def publish(event: dict, client: WebClient, context: BoltContext) -> None:
        if event.get("tab", "home") != "home":
            return
        publish_home(services, client, event["user"], context.team_id or "")

    app.event("app_home_opened")(ack=event_ack, lazy=[publish])
