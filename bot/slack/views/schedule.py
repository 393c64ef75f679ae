""" "Send later" in Slack: the preview's When choice, the Move… modal, and the list
of upcoming campaigns (``/sendmail scheduled``, App Home).

Owns: the ids of those inputs and reading them back. Times are picked with a
``datepicker`` and a ``timepicker`` in the person's Slack time zone (its IANA
``tz`` from ``users.info``) and shown back in words in that zone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from bot.records import Campaign
from bot.slack.views.blocks import (
    A_CANCEL,
    ACTION,
    button,
    context,
    escape,
    input_block,
    modal,
    plain,
    value_of,
    who,
)
from bot.timefmt import local_moment, picker_time, zone

B_WHEN = "when"
B_DATE = "send_date"
B_TIME = "send_time"
OPT_NOW = "now"
OPT_LATER = "later"
A_MOVE = "campaign_move"
CB_MOVE = "schedule_move"
#: The hour a new schedule is offered at (the next morning, in the person's zone).
DEFAULT_HOUR = "09:00"


def _today(zone_name: str, now: float) -> date:
    try:
        return datetime.fromtimestamp(now, zone(zone_name)).date()
    except ValueError:
        return datetime.fromtimestamp(now).date()


def _pickers(zone_name: str, day: date, hour: str, hint: str) -> list[dict[str, Any]]:
    timepicker: dict[str, Any] = {"type": "timepicker", "initial_time": hour}
    if zone_name and "/" in zone_name:
        timepicker["timezone"] = zone_name  # shown as a hint and sent back on submit
    return [
        input_block(B_DATE, "Date", {"type": "datepicker", "initial_date": day.isoformat()}),
        input_block(B_TIME, f"Time ({zone_name or 'UTC'})", timepicker, hint=hint),
    ]


def when_blocks(zone_name: str, now: float) -> list[dict[str, Any]]:
    """Send now, or at a date and time (tomorrow 09:00 offered) in the person's zone."""
    options = [
        {"text": plain("Send now"), "value": OPT_NOW},
        {"text": plain("Send at the date and time below"), "value": OPT_LATER},
    ]
    choice = input_block(
        B_WHEN,
        "When",
        {"type": "radio_buttons", "options": options, "initial_option": options[0]},
        optional=False,
    )
    day = _today(zone_name, now) + timedelta(days=1)
    hint = "Within a year. The campaign is checked again when it starts."
    return [choice, *_pickers(zone_name, day, DEFAULT_HOUR, hint)]


def read_when(values: Mapping[str, Any]) -> tuple[bool, datetime | None, str]:
    """(later?, the wall-clock time picked, which block is missing) from a submission."""
    chosen = (value_of(values, B_WHEN).get("selected_option") or {}).get("value")
    if chosen != OPT_LATER:
        return False, None, ""
    day = value_of(values, B_DATE).get("selected_date")
    hour = value_of(values, B_TIME).get("selected_time")
    if not day:
        return True, None, B_DATE
    if not hour:
        return True, None, B_TIME
    try:
        picked = datetime.combine(date.fromisoformat(day), time.fromisoformat(hour))
    except ValueError:
        return True, None, B_DATE
    return True, picked, ""


def move_view(campaign: Campaign, now: float) -> dict[str, Any]:
    """The Move… modal: the campaign's time, in its zone, to change."""
    at = campaign.scheduled_at or now
    zone_name = campaign.schedule_zone or "UTC"
    try:
        local = datetime.fromtimestamp(at, zone(zone_name))
    except ValueError:
        local = datetime.fromtimestamp(at)
    blocks = [
        context(
            f"Campaign #{campaign.id} ({escape(campaign.template)}) is scheduled for "
            f"{escape(local_moment(at, zone_name, now=now))}."
        ),
        *_pickers(zone_name, local.date(), picker_time(local), "Within a year."),
    ]
    return modal(
        "Move campaign",
        blocks,
        callback_id=CB_MOVE,
        submit="Move",
        metadata={"campaign": campaign.id, "zone": zone_name},
    )


def read_moved(values: Mapping[str, Any]) -> tuple[datetime | None, str]:
    """The new wall-clock time of the Move… modal, or the block that is missing."""
    later, picked, missing = read_when(
        {**values, B_WHEN: {ACTION: {"selected_option": {"value": OPT_LATER}}}}
    )
    assert later
    return picked, missing


def schedule_buttons(campaign_id: int) -> list[dict[str, Any]]:
    """Cancel and Move… on a scheduled campaign's status message."""
    value = str(campaign_id)
    return [button("Cancel", A_CANCEL, value, "danger"), button("Move…", A_MOVE, value)]


def scheduled_lines(rows: Sequence[Campaign], now: float) -> str:
    """One line per upcoming campaign: when, what, who, how many."""
    if not rows:
        return "_Nothing is scheduled._"
    return "\n".join(
        f"• #{row.id} {escape(row.template)} to {row.total:,}, "
        f"{escape(local_moment(row.scheduled_at or now, row.schedule_zone, now=now))}, "
        f"by {who(row.requested_by)}"
        for row in rows[:20]
    ) + (f"\n… and {len(rows) - 20} more" if len(rows) > 20 else "")
