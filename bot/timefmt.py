"""How mailbolt writes moments and durations for people: one place per format.

This module owns every time format a person reads (CLI output, Slack fallbacks,
error messages) and the machine format of exports. Moments are shown in UTC, to
the minute: the server, the CLI user and Slack readers may be in different time
zones, and UTC is the one they can all convert from. (Slack messages show each
reader's own time zone through a date token; its fallback text comes from here.)
It is a leaf module with no imports from mailbolt, so every layer may use it.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_minute(moment: datetime | float) -> str:
    """``2026-03-01 14:05 UTC``: a moment (a datetime or a Unix timestamp) to the minute."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def utc_iso(timestamp: float | None) -> str:
    """``2026-03-01T14:05:09Z`` for exports that programs read; empty for no moment."""
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: float) -> str:
    """A measured span to the second: ``12 s``, ``3 min 07 s``, ``1 h 05 min``."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def rough_duration(seconds: float) -> str:
    """An estimate, said as one: ``under a minute``, ``about 12 min``, ``about 2.5 h``."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    return f"about {minutes} min" if minutes < 90 else f"about {minutes / 60:.1f} h"
