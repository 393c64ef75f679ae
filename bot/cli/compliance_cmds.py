"""``unsubscribes`` and ``stats``: the suppression list and delivery numbers.

``unsubscribes export`` writes a CSV that is safe to open in a spreadsheet: an
address or source starting with ``=``, ``+``, ``-``, ``@``, tab or CR would
otherwise run as a formula (CSV injection, OWASP), so such a cell gets a leading
``'`` (``bot.handlers.export.safe_cell``, shared with the campaign results
export). Addresses added by hand are validated first; the file holds personal
data, so it is written with mode 0600. Adding and removing go through
``policy.unsubscribe``/``policy.resubscribe``, the same calls Slack makes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from bot.cli import parser
from bot.cli.args import several_teams
from bot.cli.core_cmds import out
from bot.config import Settings
from bot.handlers import policy, scope, stats
from bot.handlers.export import csv_text
from bot.records import Unsubscribe
from bot.store import SqlStore
from bot.timefmt import utc_iso
from bot.wiring import Wiring

EXPORT_COLUMNS = ("email", "source", "campaign_id", "unsubscribed_at")


def export_csv(rows: Iterable[Unsubscribe]) -> str:
    """The unsubscribe list as CSV text, every cell quoted and formula-safe."""
    return csv_text(
        EXPORT_COLUMNS,
        ((row.email, row.source, row.campaign_id, utc_iso(row.created_at)) for row in rows),
    )


def _store(settings: Settings) -> SqlStore:
    return Wiring(settings).store


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = _store(settings).suppressions.unsubscribes(args.team)
    if not rows:
        out.print("Nobody has unsubscribed.")
        return 0
    # A workspace's unsubscribe holds there only; the command line's ('') everywhere.
    teams = several_teams(r.team for r in rows)
    table = Table(title=f"Unsubscribed from marketing mail ({len(rows)})")
    for column in ("address", "source", "campaign", "since (UTC)"):
        table.add_column(column)
    if teams:
        table.add_column("workspace")
    for row in rows:
        campaign = "" if row.campaign_id is None else str(row.campaign_id)
        cells = [escape(row.email), escape(row.source), campaign, utc_iso(row.created_at)]
        if teams:
            cells.append(row.team or "(every)")
        table.add_row(*cells)
    out.print(table)
    return 0


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    address, added = policy.unsubscribe(_store(settings), args.address, actor="cli", team=args.team)
    where = f" from Slack workspace {args.team}" if args.team else ""
    if added:
        out.print(f"{escape(address)} will get no more marketing mail{where}.")
    else:
        out.print(f"{escape(address)} was already unsubscribed.")
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    address, removed = policy.resubscribe(
        _store(settings), args.address, actor="cli", team=args.team
    )
    if removed:
        out.print(f"{escape(address)} is subscribed again and can receive marketing mail.")
        return 0
    out.print(
        f"{escape(address)} is not on the unsubscribe list (see `python -m bot unsubscribes list`)."
    )
    return 1


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    rows = store.suppressions.unsubscribes(args.team)
    text = export_csv(rows)
    store.audit.record("cli", "unsubscribes.exported", rows=len(rows))
    if args.out is None:
        sys.stdout.write(text)
        return 0
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # A byte-order mark makes spreadsheet programs read the file as UTF-8.
    with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as fh:
        fh.write(text)
    out.print(f"Wrote {len(rows)} address(es) to {path}.")
    return 0


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    if args.scan:
        out.print(str(Wiring(settings, store).scan_bounces()))
    known = settings.bounce_scan
    campaign_id = args.campaign_id if args.campaign_id is not None else args.campaign
    if campaign_id is not None:
        scope.campaign_of(store, campaign_id, args.team)
        rows = [stats.stats(store, campaign_id=campaign_id, bounces_known=known, team=args.team)]
        total = None
    else:
        rows = stats.campaign_stats(store, days=args.days, bounces_known=known, team=args.team)
        total = stats.stats(store, days=args.days, bounces_known=known, team=args.team)
    table = Table(title=total.scope if total else rows[0].scope)
    for column in ("campaign", "template", "sent", "delivered", "hard", "soft", "bounce rate"):
        table.add_column(column, justify="right" if column not in ("template",) else "left")
    for s in rows + ([total] if total else []):
        table.add_row(
            str(s.campaign_id) if s.campaign_id is not None else "all",
            s.template,
            f"{s.sent:,}",
            f"{s.delivered:,} ({s.delivery_rate:.1%})",
            f"{s.hard_bounces:,}",
            f"{s.soft_bounces:,}",
            f"{s.bounce_rate:.1%}",
        )
    out.print(table)
    if not known:
        out.print(
            "Bounce scanning is off, so no bounce is known and 'delivered' counts every sent "
            "message. Set BOUNCE_SCAN=on to read bounce reports."
        )
    for s in rows:
        alert = stats.bounce_alert(s)
        if alert:
            out.print(f"[yellow]warning:[/] {alert}", soft_wrap=True)
    return 0


#: Kept here so a parser can be built from this group alone (tests do).
register = parser.register_compliance
