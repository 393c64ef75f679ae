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
    table = Table(title=f"Templates in {settings.templates_dir}/")
    for col in ("name", "category", "description", "required variables"):
        table.add_column(col)
    for info in Wiring(settings).catalogue.list():
        table.add_row(info.name, info.category, info.description, ", ".join(info.required))
    make_console().print(table)
    return 0
