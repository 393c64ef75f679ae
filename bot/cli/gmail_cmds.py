"""``auth`` and ``quota``: the Gmail grant and how much sending is left.

``auth`` shows which permissions it will ask for and why before opening the
browser, so nobody grants a read scope by surprise. ``quota`` reads only the
local database (what mailbolt itself spent), because asking Gmail would need a
read scope and cost quota.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.table import Table

from bot.cli import parser
from bot.cli.console import make_console
from bot.config import Settings
from bot.errors import AuthError, UserInputError
from bot.handlers import quota
from bot.handlers.quota import SEND_UNITS, estimate_duration
from bot.records import LEGACY_ACCOUNT, MessageState, SenderStatus
from bot.store import SqlStore
from bot.timefmt import duration, utc_minute
from bot.wiring import Wiring

out = make_console()
err = make_console(stderr=True)


def _print_grant(info: dict[str, Any]) -> None:
    table = Table(title="Gmail authorization", show_header=False)
    table.add_row("account", info["account"] or "(not recorded)")
    table.add_row("token file", info["token_file"])
    table.add_row(
        "access token valid until", utc_minute(info["expiry"]) if info["expiry"] else "unknown"
    )
    table.add_row("scopes", "\n".join(info["scopes"]))
    table.add_row("can send", "yes" if info["can_send"] else "[red]no[/]")
    table.add_row("can read (reconcile, bounces)", "yes" if info["can_read"] else "no")
    out.print(table)
    if info["missing"]:
        err.print(
            "[yellow]Not granted:[/] "
            + ", ".join(info["missing"])
            + ". Run `python -m bot auth` again and allow every permission."
        )


def cmd_auth(args: argparse.Namespace, settings: Settings) -> int:
    from bot.mail import google_auth

    if args.check:
        info = google_auth.check_auth(settings)
        if settings.sender_address:
            # The sign-in scopes only serve to learn the From address, which is set.
            info["missing"] = [
                s
                for s in info["missing"]
                if s not in (google_auth.OPENID_SCOPE, google_auth.EMAIL_SCOPE)
            ]
            info["account"] = info["account"] or f"{settings.sender_address} (SENDER_ADDRESS)"
        _print_grant(info)
        return 0 if info["can_send"] and not info["missing"] else 1
    out.print("mailbolt will ask Google for these permissions:")
    for scope, why in google_auth.requested_scopes(settings).items():
        out.print(f"  • {scope}\n    {why}")
    info = google_auth.run_auth_flow(settings, open_browser=not args.no_browser, port=args.port)
    _print_grant(info)
    out.print(f"Saved. mailbolt will send as [bold]{info['account']}[/].")
    return 0


def _remaining(store: SqlStore, campaign_id: int) -> int:
    if store.campaigns.get(campaign_id) is None:
        raise UserInputError(f"There is no campaign {campaign_id}.", field="--campaign")
    counts = store.outbox.counts(campaign_id)
    return counts[MessageState.QUEUED] + counts[MessageState.DEFERRED]


def cmd_quota(args: argparse.Namespace, settings: Settings) -> int:
    if args.messages is not None and args.messages < 0:
        raise UserInputError("--messages must be 0 or more.", field="--messages")
    ceiling = settings.gmail_quota_units_per_minute
    limit = settings.gmail_daily_send_limit
    wiring = Wiring(settings)
    store = wiring.store
    try:
        now = time.time()
        if args.sender:  # each sender account has its own minute and day
            from bot.handlers.senders import named_account

            record = named_account(wiring.senders, args.sender)
            account = record.address
            shown = (
                account if record.status == SenderStatus.ACTIVE else f"{account} ({record.status})"
            )
        else:
            try:
                account = wiring.account
                shown = account
            except AuthError:  # no grant yet: only rows from before accounts were kept count
                account = LEGACY_ACCOUNT
                shown = "none authorized yet (run `python -m bot auth`)"
        use = quota.read(store, account, daily_limit=limit, now=now)
        pending = _remaining(store, args.campaign) if args.campaign is not None else None
    finally:
        store.close()
    left = use.left or 0

    table = Table(title="Gmail quota (as spent by mailbolt)", show_header=False)
    table.add_row("account", shown)
    table.add_row("units in the last minute", f"{use.units_in_window:,} of {ceiling:,} per minute")
    table.add_row("sending rate at this quota", f"{ceiling // SEND_UNITS} messages per minute")
    table.add_row(
        "sent in the last 24 h", f"{use.sent_in_day:,} of {limit:,} (GMAIL_DAILY_SEND_LIMIT)"
    )
    table.add_row("left in the rolling day", f"{left:,}")
    if left == 0 and use.oldest_sent is not None:
        table.add_row("next message can go", utc_minute(use.next_free_at))
    out.print(table)
    if settings.mail_transport != "gmail":
        out.print("MAIL_TRANSPORT is sandbox: nothing is sent through Gmail yet.")

    wanted = pending if pending is not None else args.messages
    if wanted:
        label = f"campaign {args.campaign}" if pending is not None else f"{wanted} message(s)"
        now_part = min(wanted, left)
        out.print(
            f"{label}: {wanted:,} to send; about {duration(estimate_duration(now_part, ceiling))}"
            f" for the {now_part:,} that fit today's limit."
        )
        if wanted > left:
            out.print(
                f"[yellow]{wanted - left:,} must wait for the daily limit[/]: sending pauses and "
                "resumes as the rolling 24 hours free up (a campaign can take days)."
            )
    return 0


#: Kept here so a parser can be built from this group alone (tests do).
register = parser.register_gmail
