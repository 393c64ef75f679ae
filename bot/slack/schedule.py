""" "Send later" in Slack: the time a preview is sent at, the status message's
Cancel and Move… on a scheduled campaign, and ``/sendmail scheduled``.

The decisions are ``bot.handlers.schedule``'s; who may cancel or move is checked
here on the server (the campaign's owner and ``ADMIN_SLACK_USERS``) whatever
buttons a message shows.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import UserInputError
from bot.handlers import schedule
from bot.handlers.campaign import Deps
from bot.slack import Services, views
from bot.slack.answers import answering, tell_privately
from bot.timefmt import local_moment

log = logging.getLogger(__name__)


def user_zone(services: Services, user: str) -> str:
    """The person's Slack time zone (``users.info`` ``tz``, IANA), else UTC.

    The profile read when the form was opened serves (``/sendmail`` reads it then):
    this runs inside the answer to Slack for small lists.
    """
    found = services.lookups.known(user)
    if found is not None:
        return str(found.get("tz") or "UTC")
    try:
        found = services.lookups.users([user])[0]
    except (SlackApiError, IndexError) as exc:
        log.warning("no time zone for %s: %s", user, exc)
        return "UTC"
    return str(found.get("tz") or "UTC")


def when_of(values: dict[str, Any], zone_name: str, now: float) -> schedule.When | None:
    """The time a preview is to be sent at (None: now); ``UserInputError`` whose
    ``field`` is the block to mark when the time is missing or refused."""
    later, picked, missing = views.read_when(values)
    if not later:
        return None
    if picked is None:
        what = "a date" if missing == views.B_DATE else "a time"
        raise UserInputError(f"Choose {what} to send at, or choose Send now.", field=missing)
    try:
        return schedule.local_when(picked, zone_name or "UTC", now=now)
    except UserInputError as exc:
        raise UserInputError(str(exc), field=views.B_DATE) from None


def scheduled_text(when: schedule.When, where: str, correlation_id: str, finish: str = "") -> str:
    """What the preview turns into once a scheduled send is recorded (``finish``:
    ``finish_words``, when the daily limit cannot cover it then)."""
    text = (
        f":calendar: Scheduled for {when.words(time.time())}. It is checked again when it "
        f"starts. Its status, with Cancel and Move…, is posted in {where}. (ref {correlation_id})"
    )
    return f"{text}\n{finish}" if finish else text


def finish_words(services: Services, deps: Deps, count: int, when: schedule.When) -> str:
    """When the sending account's daily limit cannot cover ``count`` messages at
    ``when``: how many wait, and when it should finish. Empty when it can."""
    finish = schedule.estimate_finish(
        count, deps, when.at, services.settings.gmail_quota_units_per_minute
    )
    if not finish.deferred:
        return ""
    return (
        f":hourglass: The daily sending limit cannot cover it then: {finish.deferred:,} "
        "message(s) wait for it, so it should finish around "
        f"{local_moment(finish.finish_at, when.zone, now=time.time())}."
    )


def tell_finish(services: Services, campaign_id: int, deps: Deps) -> None:
    """The same estimate in the status thread, where it stays."""
    row = deps.store.campaigns.get(campaign_id)
    if row is None or row.scheduled_at is None:
        return
    count = deps.store.outbox.counts(campaign_id)["queued"]
    words = finish_words(services, deps, count, schedule.When(row.scheduled_at, row.schedule_zone))
    if words:
        services.board.reply(campaign_id, words)


# -- /sendmail scheduled -----------------------------------------------------------


def scheduled_answer(services: Services, user: str, team: str) -> tuple[str, list[dict[str, Any]]]:
    """Your upcoming campaigns (an admin's: everyone's in the workspace)."""
    admins = services.settings.admin_users
    rows = schedule.listed(services.deps, user, admins, team=team)
    title = "*Scheduled campaigns*" if user in admins else "*Your scheduled campaigns*"
    text = f"{title}\n{views.scheduled_lines(rows, time.time())}"
    if rows:
        text += "\nCancel or move one with the buttons on its status message."
    return text, [views.section(views.clip(text, views.MAX_SECTION_CHARS))]


# -- Cancel and Move… ----------------------------------------------------------------


def cancel(campaign_id: int, user: str, services: Services, team: str) -> str | None:
    """Cancel a scheduled campaign (owner or admin); said in its status thread."""
    schedule.cancel(services.deps, campaign_id, user, services.settings.admin_users, team=team)
    services.board.reply(campaign_id, f"<@{user}> cancelled the scheduled campaign.")
    services.board.refresh(campaign_id)
    return None


def _move_target(services: Services, campaign_id: int, user: str, team: str) -> Any:
    return schedule.scheduled_campaign(
        services.deps, campaign_id, user, services.settings.admin_users, team=team
    )


def move(campaign_id: int, user: str, values: dict[str, Any], services: Services, team: str) -> Any:
    """Give the campaign the time picked in the Move… modal (checked again here)."""
    row = _move_target(services, campaign_id, user, team)
    picked, missing = views.read_moved(values)
    if picked is None:
        raise UserInputError("Choose a date and a time.", field=missing or views.B_DATE)
    now = time.time()
    try:
        when = schedule.local_when(picked, row.schedule_zone or "UTC", now=now)
    except UserInputError as exc:
        raise UserInputError(str(exc), field=views.B_DATE) from None
    moved = schedule.move(
        services.deps, campaign_id, user, services.settings.admin_users, when, team=team
    )
    services.board.refresh(campaign_id)  # the flusher redraws it: no Slack call in the ack
    return moved


def register(app: App, services: Services) -> None:
    """The Move… button and its modal (Cancel is ``campaign_actions``')."""

    def just_ack(ack: Ack) -> None:
        ack()

    def move_button(body: dict, client: WebClient, context: BoltContext) -> None:
        correlation_id = context.get("correlation_id", "")
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id", "")
        campaign_id = int(body["actions"][0]["value"])
        try:
            row = _move_target(services, campaign_id, user, context.team_id or "")
        except UserInputError as exc:
            tell_privately(client, channel, user, str(exc), correlation_id)
            return
        answering(
            correlation_id,
            "opening the Move modal",
            lambda: client.views_open(
                trigger_id=body["trigger_id"], view=views.move_view(row, time.time())
            ),
            lambda words: tell_privately(client, channel, user, words, correlation_id),
        )

    app.action(views.A_MOVE)(ack=just_ack, lazy=[move_button])

    def move_submit(ack: Ack, body: dict, context: BoltContext) -> None:
        view, user = body["view"], body["user"]["id"]
        campaign_id = int(views.metadata_of(view).get("campaign", 0))
        try:
            move(campaign_id, user, view["state"]["values"], services, context.team_id or "")
        except UserInputError as exc:
            block = exc.field if exc.field in (views.B_DATE, views.B_TIME) else views.B_DATE
            ack(response_action="errors", errors={block: str(exc)})
            return
        ack()

    app.view(views.CB_MOVE)(move_submit)
