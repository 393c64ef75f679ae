"""Sender accounts in Slack: the From menu's choices, the server-side check of a
submitted choice, ``/sendmail accounts``, and App Home's connect/disconnect.

The rules are ``bot.handlers.senders``; this module only reads Slack (which
user groups a person is in) and turns answers into words and views.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import MailboltError, UserInputError
from bot.handlers import senders
from bot.handlers.campaign import Deps
from bot.handlers.send_loop import daily_left
from bot.records import SenderAccount, SenderKind, SenderStatus
from bot.slack import Services, views
from bot.slack.answers import answering
from bot.slack.installations import current_team

log = logging.getLogger(__name__)

START_PATH = "/oauth/google/start"


def groups_of(client: WebClient, user: str) -> senders.GroupsOf:
    """Which of some user groups ``user`` is in, asked of Slack only when needed
    (``usergroups.users.list``, Tier 2, ``usergroups:read``). A group Slack will
    not list counts as "not a member": access is never granted on an error."""

    def member_of(groups: frozenset[str]) -> frozenset[str]:
        found = set()
        for group in sorted(groups):
            try:
                members = client.usergroups_users_list(usergroup=group).get("users") or []
            except SlackApiError as exc:
                log.warning("could not list user group %s: %s", group, exc.response.get("error"))
                continue
            if user in members:
                found.add(group)
        return frozenset(found)

    return member_of


def _gmail(services: Services) -> bool:
    return services.settings.mail_transport == "gmail"


def choices(services: Services, user: str, team: str) -> list[SenderAccount]:
    """The accounts ``user`` of workspace ``team`` may send from, their own first
    (none with the sandbox)."""
    if not _gmail(services):
        return []
    return senders.usable(
        services.wiring.senders.all(team=team),
        user,
        groups_of(services.client_for(current_team()), user),
        team,
    )


def menu(services: Services, user: str, team: str) -> list[tuple[str, str]]:
    """(address, label) for the compose form's From menu."""
    return [(a.address, _label(a)) for a in choices(services, user, team)]


def _label(account: SenderAccount) -> str:
    mine = " (yours)" if account.kind == SenderKind.PERSONAL else ""
    return f"{account.label}{mine}"


def deps_for_choice(services: Services, user: str, address: str, team: str) -> Deps:
    """The Deps to send with, after checking on the server that ``user`` of
    workspace ``team`` may use ``address`` (whatever the form offered or the payload
    says; never another workspace's). With no account known to the workspace,
    today's single account (``services.deps``) as before."""
    if not _gmail(services):
        return services.deps
    store = services.wiring.senders
    if not address and not store.all(team=team):
        return services.deps
    account = senders.choose(
        store, user, address, groups_of(services.client_for(current_team()), user), team
    )
    return services.wiring.deps_for(account.address)


def budget_words(deps: Deps) -> str:
    """The chosen account's remaining daily budget, in a few words."""
    left = daily_left(deps)
    return "no daily limit" if left is None else f"{left:,} left today"


# -- /sendmail accounts ------------------------------------------------------------------


def accounts_text(services: Services, user: str, team: str) -> str:
    """``/sendmail accounts``: what the caller may send from, and how to add their
    own; an admin also sees every account of the workspace (and the operator's)."""
    if not _gmail(services):
        return "Sandbox mode: messages are written to files, so there are no sender accounts."
    mine = choices(services, user, team)
    lines = [
        f"• {views.escape(_label(a))}: {budget_words(services.wiring.deps_for(a.address))}"
        for a in mine
    ]
    revoked = [
        a
        for a in services.wiring.senders.all(team=team)
        if a.status != SenderStatus.ACTIVE and a.kind == SenderKind.PERSONAL and a.owner == user
    ]
    lines += [f"• {views.escape(a.address)}: needs reconnecting (App Home)" for a in revoked]
    head = "*You may send from:*" if mine else "*You have no account to send from yet.*"
    tail = (
        "Connect your own Gmail from mailbolt's App Home; an admin gives access to "
        "shared accounts (`python -m bot accounts allow`)."
    )
    text = [head, *lines, tail]
    if senders.may_administer(services.settings.admin_users, user):
        text += ["", "*Every account* (you are an admin, ADMIN_SLACK_USERS):"]
        text += [
            f"• {views.escape(_admin_line(a))}" for a in services.wiring.senders.all(team=team)
        ]
    return "\n".join(text)


def _admin_line(account: SenderAccount) -> str:
    """One account for an admin: kind, state, and who may use it."""
    if account.kind == SenderKind.PERSONAL:
        who = f"owner {account.owner}"
    else:
        names = (["everyone"] if account.everyone else []) + sorted(account.users | account.groups)
        who = "used by " + (", ".join(names) or "nobody yet")
    return f"{account.label}: {account.kind}, {account.status}, {who}"


# -- App Home ----------------------------------------------------------------------------


@dataclass
class HomeAccounts:
    """App Home's sender-account panel for one person."""

    usable: list[tuple[str, str, str, bool]]  # (address, label, budget words, is it theirs)
    revoked: list[str]
    connect_url: str = ""
    note: str = ""


def home_accounts(services: Services, user: str, team: str) -> HomeAccounts | None:
    """The panel, with a fresh single-use "Connect your Gmail" link; None in sandbox mode."""
    if not _gmail(services):
        return None
    wiring, settings = services.wiring, services.settings
    mine = choices(services, user, team)
    usable = [
        (
            a.address,
            _label(a),
            budget_words(wiring.deps_for(a.address)),
            a.kind == SenderKind.PERSONAL,
        )
        for a in mine
    ]
    revoked = [
        a.address
        for a in wiring.senders.all(team=team)
        if a.kind == SenderKind.PERSONAL and a.owner == user and a.status != SenderStatus.ACTIVE
    ]
    if not settings.public_base_url:
        return HomeAccounts(
            usable, revoked, note="An admin sets PUBLIC_BASE_URL to let people connect their Gmail."
        )
    if not settings.google_web_client_secrets_file.is_file():
        return HomeAccounts(
            usable,
            revoked,
            note="To let people connect their own Gmail, an admin creates an OAuth client of "
            "type Web application with the redirect URI "
            f"{settings.public_base_url.rstrip('/')}/oauth/google/callback and saves it as "
            f"{settings.google_web_client_secrets_file} (GOOGLE_WEB_CLIENT_SECRETS_FILE).",
        )
    state = senders.begin_connect(wiring.senders, wiring.seal, user, team, time.time())
    url = settings.public_base_url.rstrip("/") + START_PATH + "?" + urlencode({"state": state})
    return HomeAccounts(usable, revoked, connect_url=url)


def register(app: App, services: Services) -> None:
    """The Home tab's Connect (a link: only acknowledged) and Disconnect buttons."""

    def just_ack(ack: Ack) -> None:
        ack()

    app.action(views.A_CONNECT_GMAIL)(just_ack)

    def disconnect(body: dict, client: WebClient, context: BoltContext) -> None:
        user = body["user"]["id"]
        address = (body.get("actions") or [{}])[0].get("value", "")

        def run() -> str:
            wiring = services.wiring
            return senders.disconnect(
                wiring.senders, wiring.grant_flow, wiring.seal, user, address, context.team_id or ""
            )

        note = answering(
            context.get("correlation_id", ""), "disconnecting Gmail", run, lambda text: text
        )
        from bot.slack import home  # the Home tab, redrawn with the outcome on top

        home.publish_home(services, client, user, context.team_id or "", note)

    app.action(views.A_DISCONNECT_GMAIL)(ack=just_ack, lazy=[disconnect])


def refusal_text(error: MailboltError) -> str:
    """A From choice refused, as shown on the form's From field."""
    return str(error) if isinstance(error, UserInputError) else f"Cannot send: {error}"
