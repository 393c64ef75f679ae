"""``python -m bot``: the command line.

The parser (``bot/cli/parser.py``) is built from argparse alone; each parser's
``func(args, settings) -> exit code`` imports its command's module when it runs,
so ``--help`` never loads Slack, SQLite, Jinja or rich. Errors become one
readable message on stderr and an exit code here, and nowhere else.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from bot.cli.parser import build_parser
from bot.config import Settings
from bot.errors import (
    AuthError,
    ConfigError,
    MailboltError,
    UserInputError,
    describe_os_error,
)

__all__ = ["build_parser", "main"]


def _say(prefix: str, exc: Exception) -> None:
    """Print an error without letting its text be read as rich markup."""
    from rich.text import Text

    from bot.cli.core_cmds import err

    err.print(Text.assemble((prefix, "bold red"), str(exc)), soft_wrap=True)


def _note(text: str) -> None:
    from bot.cli.core_cmds import err

    err.print(text, markup=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        # `config` reads the settings itself, so it can show the table when one is bad.
        settings = Settings.load() if args.needs_settings else None
        return args.func(args, settings)
    except ConfigError as exc:
        _say("error: ", exc)
        _note("`python -m bot config` shows every setting with the bad ones marked.")
        return 2
    except UserInputError as exc:
        from bot.cli.core_cmds import remedy_hint

        _say("error: ", exc)
        for detail in getattr(exc, "details", [])[:20]:
            _note(f"  - {detail}")
        if hint := remedy_hint(exc):
            _note(hint)
        _note("Nothing was sent.")
        return 2
    except AuthError as exc:
        _say("Gmail authorization problem: ", exc)
        return 1
    except MailboltError as exc:
        _say("error: ", exc)
        return 1
    except OSError as exc:  # a file this command needed: say which, and what is wrong
        where = f" {exc.filename}" if exc.filename else ""
        _say("error: ", Exception(f"cannot use{where}: {describe_os_error(exc)}."))
        return 1
    except KeyboardInterrupt:
        _note("Interrupted. Run `python -m bot send --resume` to continue.")
        return 130


if __name__ == "__main__":
    sys.exit(main())
