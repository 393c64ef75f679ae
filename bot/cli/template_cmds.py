"""``templates``: the catalogue as a table.

Its own module so listing templates loads the catalogue and rich's table, not
the send loop, the store or the recipient parsers (see ``bot/cli/parser.py``).
"""

from __future__ import annotations

import argparse

from rich.table import Table

from bot.cli.console import make_console
from bot.config import Settings
from bot.wiring import Wiring


def cmd_templates(args: argparse.Namespace, settings: Settings) -> int:
    """The shared templates; with ``--team T``, those workspace T sees (its own
    marked, a shared one it replaces shown once, as its own)."""
    catalogue = Wiring(settings).catalogue.for_team(args.team)
    folder = settings.templates_dir
    title = f"Templates in {folder}/"
    if args.team:
        title = f"Templates of workspace {args.team} ({folder}/{args.team}/ and {folder}/)"
    table = Table(title=title)
    columns = ["name", "category", "description", "required variables"]
    for col in columns + (["from"] if args.team else []):
        table.add_column(col)
    for info in catalogue.list():
        row = [info.name, info.category, info.description, ", ".join(info.required)]
        if args.team:
            row.append(f"{args.team}'s own" if info.name in catalogue.own else "shared")
        table.add_row(*row)
    make_console().print(table)
    return 0
