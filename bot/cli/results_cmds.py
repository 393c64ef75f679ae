"""``export`` and ``audit``: a campaign's results as CSV, and who did what.

Both are the same handler calls Slack makes (``bot.handlers.export``,
``bot.handlers.audit_log``). The export holds people's addresses, so a file is
written with mode 0600, in one atomic step.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from bot.cli.args import several_teams, team_label
from bot.cli.core_cmds import out
from bot.config import Settings
from bot.handlers import audit_log
from bot.handlers.export import CLI_ACTOR, export_campaign
from bot.private_files import write_private
from bot.timefmt import utc_iso
from bot.wiring import Wiring


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    result = export_campaign(Wiring(settings).store, args.campaign, actor=CLI_ACTOR)
    if args.output is None:
        sys.stdout.write(result.text)
        return 0
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, result.data)
    out.print(
        f"Wrote {result.rows:,} row(s) of campaign {result.campaign_id} to {escape(str(path))}."
    )
    return 0


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    since = audit_log.parse_since(args.since, time.time()) if args.since else None
    lines = audit_log.audit_lines(
        Wiring(settings).store.audit,
        limit=args.limit,
        campaign_id=args.campaign,
        since=since,
        team=args.team,
    )
    if not lines:
        out.print("No audit entries match.")
        return 0
    table = Table(title=f"Audit log, newest first ({len(lines)})")
    teams = several_teams(line.team for line in lines)
    for column in ("when (UTC)", "who", "action", "what"):
        table.add_column(column)
    if teams:
        table.add_column("workspace")
    for line in lines:
        table.add_row(
            utc_iso(line.at),
            escape(line.actor),
            line.action,
            escape(line.what),
            *([team_label(line.team)] if teams else []),
        )
    out.print(table)
    return 0
