"""Argument types shared by the commands: numbers refused in words, exit code 2."""

from __future__ import annotations

import argparse
from collections.abc import Callable


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
