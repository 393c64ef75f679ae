"""``python -m bot``: the command line.

Each command module has ``register(subparsers)``; its parsers set ``func(args,
settings) -> exit code``. Errors become one readable message on stderr and an
exit code here, and nowhere else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from rich.text import Text

from bot.cli import compliance_cmds, core_cmds, gmail_cmds, serve_cmds
from bot.config import Settings
from bot.errors import (
    AuthError,
    ConfigError,
    MailboltError,
    UserInputError,
    describe_os_error,
)

COMMAND_MODULES = [core_cmds, gmail_cmds, compliance_cmds, serve_cmds]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    parser.set_defaults(needs_settings=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _say(prefix: str, exc: Exception) -> None:
    """Print an error without letting its text be read as rich markup."""
    core_cmds.err.print(Text.assemble((prefix, "bold red"), str(exc)), soft_wrap=True)


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
        core_cmds.err.print("`python -m bot config` shows every setting with the bad ones marked.")
        return 2
    except UserInputError as exc:
        _say("error: ", exc)
        for detail in getattr(exc, "details", [])[:20]:
            core_cmds.err.print(f"  - {detail}", markup=False, soft_wrap=True)
        if hint := core_cmds.remedy_hint(exc):
            core_cmds.err.print(hint, markup=False, soft_wrap=True)
        core_cmds.err.print("Nothing was sent.")
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
        core_cmds.err.print("Interrupted. Run `python -m bot send --resume` to continue.")
        return 130


if __name__ == "__main__":
    sys.exit(main())
