"""How mailbolt writes moments and durations for people: one place per format.

This module owns every time format a person reads (CLI output, Slack fallbacks,
error messages) and the machine format of exports. Moments are shown in UTC, to
the minute: the server, the CLI user and Slack readers may be in different time
zones, and UTC is the one they can all convert from. (Slack messages show each
reader's own time zone through a date token; its fallback text comes from here.)
It is a leaf module with no imports from mailbolt, so every layer may use it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: A fixed offset as a zone's name: ``UTC+01:00`` (what ``fixed_zone_name`` writes).
_OFFSET_NAME = re.compile(r"^UTC([+-])(\d{2}):(\d{2})$")


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


def fixed_zone_name(offset: timedelta) -> str:
    """``UTC+01:00`` for a fixed offset (``UTC`` for none): a zone name ``zone`` reads."""
    if not offset:
        return "UTC"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def zone(name: str) -> tzinfo:
    """The time zone called ``name``: an IANA name (``Europe/Paris``) or a fixed
    offset as ``fixed_zone_name`` writes it. Raises ``ValueError`` for neither."""
    if name in ("", "UTC", "Z"):
        return UTC
    fixed = _OFFSET_NAME.match(name)
    if fixed:
        sign, hours, minutes = fixed.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def local_moment(timestamp: float, zone_name: str, *, now: float | None = None) -> str:
    """``Tuesday 3 March, 09:00 Europe/Paris``: a moment as the person who chose it
    reads it, in their zone (the year is added when it is not ``now``'s year)."""
    try:
        where = zone(zone_name)
    except ValueError:
        where, zone_name = UTC, "UTC"
    moment = datetime.fromtimestamp(timestamp, where)
    year = "" if now is None or datetime.fromtimestamp(now, where).year == moment.year else " %Y"
    return moment.strftime(f"%A {moment.day} %B{year}, %H:%M ") + (zone_name or "UTC")


def wall_minute(moment: datetime) -> str:
    """``2026-03-03 09:00``: a wall-clock time as a person types it (no zone)."""
    return f"{moment:%Y-%m-%d %H:%M}"


def picker_time(moment: datetime) -> str:
    """``09:00``: a time as Slack's timepicker takes and gives it."""
    return f"{moment:%H:%M}"
