"""``accounts``: the Gmail accounts mail is sent from, and who may use each.

CLI users administer the machine, so every command here is allowed; each change
is written to the audit log as ``cli``. ``link`` signs in like ``auth`` does,
but the grant goes into the database, encrypted (``GRANT_KEY`` or the key file),
so several shared addresses can be linked side by side.
"""

from __future__ import annotations

import argparse
import re

from rich.table import Table

from bot.cli.args import several_teams
from bot.cli.console import make_console
from bot.config import Settings
from bot.errors import UserInputError
from bot.handlers import senders
from bot.records import GrantClient, SenderAccount, SenderKind, account_key
from bot.wiring import Wiring

out = make_console()
err = make_console(stderr=True)

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}\Z")
_GROUP_ID = re.compile(r"S[A-Z0-9]{2,}\Z")


def _ids(values: list[str], pattern: re.Pattern[str], what: str, example: str) -> list[str]:
    bad = [v for v in values if not pattern.match(v.strip())]
    if bad:
        raise UserInputError(
            f"{', '.join(bad[:3])}: not a Slack {what} id (such as {example}). In Slack, open "
            "the profile or group and choose 'Copy member ID' / copy the id from its link.",
            field=what,
        )
    return [v.strip() for v in values]


def _who(account: SenderAccount) -> str:
    if account.kind == SenderKind.PERSONAL:
        return f"its owner <{account.owner}>"
    parts = ["everyone who may send"] if account.everyone else []
    parts += sorted(account.users) + sorted(account.groups)
    return ", ".join(parts) or "nobody yet (use `accounts allow`)"


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    accounts = Wiring(settings).senders.all(team=args.team)
    if not accounts:
        out.print(
            "No sender accounts yet. `python -m bot auth` sets up the default one; "
            "`python -m bot accounts link NAME` links a shared address; people connect "
            "their own Gmail from mailbolt's App Home in Slack."
        )
        return 0
    table = Table(title="Sender accounts")
    teams = several_teams(a.team for a in accounts)
    for column in ("address", "name", "kind", "status", "may use it", "grant kept in"):
        table.add_column(column)
    if teams:
        table.add_column("workspace")
    where = {
        GrantClient.TOKEN_FILE: str(settings.gmail_token_file),
        GrantClient.WEB: "database (encrypted)",
        GrantClient.INSTALLED: "database (encrypted)",
    }
    for account in accounts:
        status = str(account.status)
        if account.status_reason:
            status += f": {account.status_reason}"
        table.add_row(
            account.address,
            account.name,
            str(account.kind),
            status,
            _who(account),
            where[account.client],
            *([account.team or "(every)"] if teams else []),
        )
    out.print(table)
    return 0


def cmd_link(args: argparse.Namespace, settings: Settings) -> int:
    from bot.mail.google_auth import link_grant

    users = _ids(args.user, _USER_ID, "user", "U012AB3CD")
    groups = _ids(args.group, _GROUP_ID, "user group", "S0614TZR7")
    wiring = Wiring(settings)
    existing = wiring.senders.find(args.name)
    grant = link_grant(settings, open_browser=not args.no_browser, port=args.port)
    address = account_key(grant.address)
    old = wiring.senders.get(address)
    if old is not None and old.kind == SenderKind.PERSONAL:
        raise UserInputError(
            f"{address} is connected as {old.owner}'s own account; it cannot also be shared."
        )
    if existing is not None and existing.address != address:
        raise UserInputError(
            f"The name {args.name!r} already belongs to {existing.address}; choose another."
        )
    base = old or SenderAccount(
        address=address, kind=SenderKind.SHARED, client=GrantClient.INSTALLED
    )
    account = SenderAccount(
        address=address,
        kind=SenderKind.SHARED,
        client=GrantClient.INSTALLED,
        name=args.name,
        scopes=grant.scopes,
        everyone=args.everyone or base.everyone,
        users=frozenset(base.users) | frozenset(users),
        groups=frozenset(base.groups) | frozenset(groups),
        sealed_grant=wiring.seal.seal(grant.refresh_token),
    )
    wiring.senders.save(account, actor=senders.CLI_ACTOR, action="account.linked")
    out.print(f"Linked {args.name} <{address}>; may be used by: {_who(account)}.")
    return 0


def cmd_allow(args: argparse.Namespace, settings: Settings) -> int:
    users = _ids(args.user, _USER_ID, "user", "U012AB3CD")
    groups = _ids(args.group, _GROUP_ID, "user group", "S0614TZR7")
    everyone = True if args.everyone else (False if args.not_everyone else None)
    account = senders.allow(
        Wiring(settings).senders,
        args.name,
        actor=senders.CLI_ACTOR,
        users=users,
        groups=groups,
        everyone=everyone,
        replace_lists=args.only,
    )
    out.print(f"{account.label} may now be used by: {_who(account)}.")
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    wiring = Wiring(settings)
    account = wiring.senders.find(args.name)
    if account is None:
        raise UserInputError(f"There is no sender account {args.name!r} (see `accounts list`).")
    if account.client == GrantClient.TOKEN_FILE:
        raise UserInputError(
            f"{account.address} is the account of `python -m bot auth`; its grant is the file "
            f"{settings.gmail_token_file}. Delete that file (and revoke mailbolt at "
            "https://myaccount.google.com/permissions) to remove it."
        )
    note = senders.revoke_quietly(wiring.grant_flow, wiring.seal, account)
    wiring.senders.remove(account.address, actor=senders.CLI_ACTOR, action="account.removed")
    out.print(f"Removed {account.label}.{note}")
    return 0
