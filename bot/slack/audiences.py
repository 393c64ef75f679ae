"""The compose form's user-group menu: its options, loaded from Slack as a person types.

A workspace can have hundreds of user groups and a static menu holds 100, so the
menu is an external select: Slack asks for options (within 3 seconds) with what
was typed so far. ``usergroups.list`` is Tier 2, so the list is read once and
reused briefly (``Lookups.usergroups``); each request only filters it. Reading
the members (``Lookups.group_members``/``channel_members``) happens later, in the
full check after "Checking…".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slack_bolt import Ack, App, BoltContext

from bot.slack import Services, views
from bot.slack.answers import answering

#: Slack shows at most 100 options per answer.
MAX_OPTIONS = 100


def group_label(group: Mapping[str, Any]) -> str:
    """``@design-team (Design team, 12)``: the handle people type, then the name."""
    handle = group.get("handle") or group.get("id", "?")
    name = group.get("name") or ""
    count = group.get("user_count")
    extra = ", ".join(str(x) for x in (name, count) if x not in ("", None))
    return f"@{handle} ({extra})" if extra else f"@{handle}"


def group_options(groups: Sequence[Mapping[str, Any]], query: str) -> list[dict[str, Any]]:
    """The groups whose handle or name contains ``query``, as select options."""
    wanted = query.strip().lstrip("@").lower()
    found = [
        g
        for g in groups
        if not g.get("date_delete")
        and (wanted in (g.get("handle") or "").lower() or wanted in (g.get("name") or "").lower())
    ]
    found.sort(key=lambda g: (g.get("handle") or "").lower())
    return [
        {"text": views.plain(group_label(g), 75), "value": g["id"]} for g in found[:MAX_OPTIONS]
    ]


def register(app: App, services: Services) -> None:
    """The user-group menu's options."""

    def group_menu(ack: Ack, body: dict, context: BoltContext) -> None:
        options = answering(
            context.get("correlation_id", ""),
            "user group options",
            lambda: group_options(services.lookups.usergroups(), body.get("value") or ""),
            lambda _words: [],
        )
        ack(options=options)

    app.options(views.A_GROUPS)(group_menu)
