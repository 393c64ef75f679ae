"""``send --at`` and ``scheduled``: campaigns that start later, from the command line.

The same handler calls Slack makes (``bot.handlers.schedule``). Times are read in
the machine's time zone unless one is given, and shown back in the zone they
were given in. The person at the command line operates the machine, so they may
cancel or move anyone's scheduled campaign.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.table import Table

from bot.cli.args import several_teams, team_label
from bot.cli.core_cmds import out
from bot.config import Settings
from bot.handlers import schedule
from bot.handlers.campaign import Deps, Plan
from bot.timefmt import fixed_zone_name, local_moment, rough_duration
from bot.wiring import Wiring, sender_active

CLI_ACTOR = "cli"


def machine_zone() -> str:
    """The machine's IANA zone name (``TZ``, then ``/etc/localtime``), else its
    current offset (``UTC+01:00``): times typed without a zone are read in it."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = str(Path("/etc/localtime").resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if not name:
            continue
        try:
            ZoneInfo(name)
        except (ValueError, OSError):
            continue
        return name
    offset = datetime.now().astimezone().utcoffset()
    return fixed_zone_name(offset) if offset is not None else "UTC"


def parse_at(text: str) -> schedule.When:
    """``--at`` or ``move``'s WHEN, in the machine's zone unless it names one."""
    return schedule.parse_when(text, default_zone=machine_zone(), now=time.time())


def announce_scheduled(
    campaign_id: int, when: schedule.When, plan: Plan, deps: Deps, settings: Settings
) -> None:
    """Say when it starts, how to change it, and what it needs to start."""
    out.print(
        f"Campaign {campaign_id} is scheduled for {when.words(time.time())} "
        f"({len(plan.to_send)} message(s)). It is checked again when it starts.",
        markup=False,
    )
    finish = schedule.estimate_finish(
        len(plan.to_send), deps, when.at, settings.gmail_quota_units_per_minute
    )
    if finish.deferred:  # the sandbox has no daily limit, so never here
        out.print(
            f"The daily sending limit cannot cover it then: {finish.deferred} message(s) "
            f"wait for it, so it should finish around "
            f"{local_moment(finish.finish_at, when.zone, now=time.time())}.",
            markup=False,
        )
    elif settings.mail_transport != "sandbox" and finish.finish_at - when.at >= 60:
        out.print(f"Sending takes {rough_duration(finish.finish_at - when.at)}.", markup=False)
    out.print(
        f"Cancel: `python -m bot scheduled cancel {campaign_id}`; move: "
        f'`python -m bot scheduled move {campaign_id} "YYYY-MM-DD HH:MM"`.',
        markup=False,
    )
    if not sender_active(settings):
        out.print(
            "Nothing is running to start it: keep `python -m bot serve` running, or run "
            "`python -m bot send --resume` after that time.",
            markup=False,
        )


def cmd_scheduled(args: argparse.Namespace, settings: Settings) -> int:
    """List the scheduled campaigns, soonest first."""
    store = Wiring(settings).store
    rows = store.campaigns.scheduled(team=getattr(args, "team", None))
    if not rows:
        out.print("No campaigns are scheduled.")
        return 0
    now = time.time()
    table = Table(title=f"Scheduled campaigns ({len(rows)})")
    teams = several_teams(r.team for r in rows)
    for column in ("id", "starts", "template", "by", "from", "messages"):
        table.add_column(column)
    if teams:
        table.add_column("workspace")
    for row in rows:
        starts = (
            local_moment(row.scheduled_at, row.schedule_zone, now=now) if row.scheduled_at else ""
        )
        table.add_row(
            str(row.id),
            starts,
            row.template,
            row.requested_by,
            row.account or "-",
            str(row.total),
            *([team_label(row.team)] if teams else []),
        )
    out.print(table)
    return 0


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    deps = Wiring(settings).deps(sending=False)
    row = schedule.cancel(deps, args.campaign, CLI_ACTOR, None)
    out.print(f"Campaign {row.id} is cancelled; nothing was sent.")
    return 0


def cmd_move(args: argparse.Namespace, settings: Settings) -> int:
    deps = Wiring(settings).deps(sending=False)
    when = parse_at(args.when)
    row = schedule.move(deps, args.campaign, CLI_ACTOR, None, when)
    out.print(f"Campaign {row.id} now starts {when.words(time.time())}.", markup=False)
    return 0
