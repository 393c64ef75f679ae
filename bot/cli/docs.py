"""The README's command list and settings table, generated from the code.

``python -m bot.cli.docs --write README.md`` rewrites the two generated blocks
in place; ``tests/test_trust_docs.py`` fails when they drift from the parser or
from ``SPECS``.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from pathlib import Path

from bot.config import SPECS

BLOCK = re.compile(r"(<!-- BEGIN (\w+)[^>]*-->\n)(.*?)(<!-- END \2 -->)", re.DOTALL)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[argparse.ArgumentParser, str]]:
    """Every leaf command with its help line, nested groups (``unsubscribes list``) included."""
    found: list[tuple[argparse.ArgumentParser, str]] = []
    for action in parser._actions:  # argparse keeps no public list of subparsers
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                nested = _subcommands(sub)
                found.extend(nested or [(sub, helps.get(name, ""))])
    return found


def _usage(parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = functools.partial(argparse.HelpFormatter, width=10_000)
    text = parser.format_usage().removeprefix("usage: ").strip()
    return text.replace(" [-h]", "")


def command_list(parser: argparse.ArgumentParser) -> str:
    """One line per command: its usage and what it is for."""
    lines = [(_usage(sub), help_) for sub, help_ in _subcommands(parser)]
    width = max(len(usage) for usage, _ in lines if len(usage) <= 60)
    return "\n".join(
        f"{usage.ljust(width)}  # {help_}" if help_ else usage for usage, help_ in lines
    )


def settings_table() -> str:
    """A Markdown table of every setting, its default and its help."""
    rows = ["| Setting | Default | Allowed | What it does |", "|---|---|---|---|"]
    for spec in SPECS:
        default = f"`{spec.default}`" if spec.default else "—"
        secret = " (secret)" if spec.secret else ""
        rows.append(f"| `{spec.env}` | {default} | {spec.allowed} | {spec.help}{secret} |")
    return "\n".join(rows)


def blocks() -> dict[str, str]:
    from bot.__main__ import build_parser

    return {
        "commands": f"```sh\n{command_list(build_parser())}\n```\n",
        "settings": settings_table() + "\n",
    }


def render(readme: str) -> str:
    """``readme`` with every generated block replaced by what the code says now."""
    generated = blocks()
    return BLOCK.sub(lambda m: m[1] + generated[m[2]] + m[4], readme)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--write":
        path = Path(argv[1])
        path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    for name, text in blocks().items():
        print(f"<!-- {name} -->\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
