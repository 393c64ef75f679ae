"""Argument types shared by the commands: numbers refused in words, exit code 2."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

from bot.handlers.team_ids import TEAM_ID


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number in ``low..high`` (no upper bound if None)."""
    allowed = (
        f"must be a whole number from {low} to {high}"
        if high is not None
        else f"must be a whole number, {low} or more"
    )

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} {allowed}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{raw!r} {allowed}")
        return value

    parse.__name__ = "number"  # argparse names the type in some messages
    return parse


POSITIVE = whole(1)
CAMPAIGN_ID = whole(1)


def team_id(raw: str) -> str:
    """An argparse ``type`` for ``--team``: a Slack workspace ID (``T0AAA``), or
    ``''`` for what belongs to no workspace (the CLI's own)."""
    value = raw.strip()
    if value and not TEAM_ID.match(value):
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a Slack workspace ID: they look like T0123ABCD "
            "(give '' for the command line's own)"
        )
    return value


team_id.__name__ = "workspace ID"


def add_team_filter(parser: argparse.ArgumentParser, what: str) -> None:
    """``--team T``: only one workspace's ``what`` (the operator sees all by default)."""
    parser.add_argument(
        "--team",
        type=team_id,
        default=None,
        metavar="T",
        help=f"only the {what} of Slack workspace T ('': the command line's own)",
    )


def team_label(team: str) -> str:
    """A workspace as a table shows it."""
    return team or "(cli)"


def several_teams(teams: Iterable[str]) -> bool:
    """Whether a list spans more than one workspace, so it needs a team column."""
    return len(set(teams)) > 1
