"""``/sendmail`` and its subcommands.

The bare command answers Slack at once (an empty acknowledgement) and opens the
compose modal from a lazy listener with the ``trigger_id``, which expires after 3
seconds and works once. The subcommands only read or write the local store, so
they are answered in the acknowledgement itself, privately (ephemeral), except
``export``: its acknowledgement says the file is coming (or why not), and a lazy
listener uploads it (three Web API calls, too slow for the 3 seconds).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import UserInputError
from bot.handlers import export, policy, scope, stats
from bot.handlers.recipient_paste import parse_text
from bot.handlers.send_loop import quota_use
from bot.records import Campaign, MessageState
from bot.slack import Services, accounts, report, views
from bot.slack.answers import answering, tell_privately
from bot.slack.status import status_data

log = logging.getLogger(__name__)

COMMAND = "/sendmail"
RECENT = 10
STATS_DAYS = 7


def parse(text: str) -> tuple[str, str]:
    """``status 12`` → (``status``, ``12``); the bare command is ``("", "")``."""
    word, _, rest = text.strip().partition(" ")
    return word.lower(), rest.strip()


def quota_data(services: Services) -> views.QuotaData:
    settings, use = services.settings, quota_use(services.deps)
    return views.QuotaData(
        transport=settings.mail_transport,
        sent_24h=use.sent_in_day,
        daily_limit=use.daily_limit,
        units_last_minute=use.units_in_window,
        units_per_minute=settings.gmail_quota_units_per_minute,
    )


def campaign_lines(services: Services, team: str, limit: int = RECENT) -> list[views.CampaignLine]:
    """Workspace ``team``'s newest campaigns (no other workspace's, nor the CLI's)."""
    store = services.deps.store
    return [
        views.CampaignLine(
            campaign_id=row.id,
            template=row.template,
            status=row.status,
            requested_by=row.requested_by,
            total=row.total,
            sent=store.outbox.counts(row.id)[MessageState.SENT],
            created_at=row.created_at,
        )
        for row in store.campaigns.recent(limit=limit, team=team)
    ]


def _campaign_id(rest: str, verb: str) -> int:
    """``12`` or ``#12`` as a campaign number; ``UserInputError`` says what to type."""
    try:
        return int(rest.lstrip("#"))
    except ValueError:
        raise UserInputError(
            f"`{views.escape(rest)}` is not a campaign number; try `/sendmail {verb} 12`.",
            field="campaign",
        ) from None


def _campaign_row(services: Services, campaign_id: int, team: str) -> Campaign:
    """The campaign typed, as workspace ``team`` sees it (another's: no such)."""
    return scope.campaign_of(services.deps.store, campaign_id, team)


def _status(services: Services, rest: str, team: str) -> tuple[str, list[dict[str, Any]]]:
    if not rest:
        text = "*Recent campaigns*\n" + views.campaign_lines(campaign_lines(services, team))
        return text, [views.section(text)]
    campaign_id = _campaign_id(rest, "status")
    _campaign_row(services, campaign_id, team)
    text, blocks = views.status_message(
        status_data(
            services.deps,
            campaign_id,
            delivery_known=services.settings.bounce_scan,
            active=services.runner.is_active(campaign_id),
        )
    )
    return text, [b for b in blocks if b["type"] != "actions"]


def _stats(services: Services, rest: str, team: str) -> tuple[str, list[dict[str, Any]]]:
    """Delivery and bounce rates: one campaign's whole life, or the last days (of
    workspace ``team``'s campaigns)."""
    store, settings = services.deps.store, services.settings
    known = settings.bounce_scan
    note = views.delivery_note(settings.mail_transport, known)
    if rest:
        campaign_id = _campaign_id(rest, "stats")
        _campaign_row(services, campaign_id, team)
        one = stats.stats(store, campaign_id=campaign_id, bounces_known=known, team=team)
        return views.campaign_delivery(one, alert=stats.bounce_alert(one), note=note)
    rows = stats.campaign_stats(store, days=STATS_DAYS, bounces_known=known, team=team)
    return views.delivery_report(
        stats.stats(store, days=STATS_DAYS, bounces_known=known, team=team),
        rows,
        flagged=[
            s.campaign_id for s in rows if s.campaign_id is not None and stats.bounce_alert(s)
        ],
        note=note,
    )


def _address(rest: str, verb: str) -> str:
    found = parse_text(rest, max_recipients=1)
    if len(found.recipients) != 1 or found.rejected:
        raise UserInputError(f"Give one email address: `/sendmail {verb} ann@example.com`.")
    return found.recipients[0].email


def _export_answer(
    services: Services, rest: str, user: str, team: str
) -> tuple[str, list[dict[str, Any]]]:
    """Whether the export may go ahead: the campaign exists and is this person's
    (or they are an admin). The file itself follows from ``share_export``."""
    campaign_id = _campaign_id(rest, "export")
    row = _campaign_row(services, campaign_id, team)
    if not export.may_export(row, user, services.settings.admin_users):
        raise UserInputError(
            f"Only <@{row.requested_by}>, who started campaign #{campaign_id}, and the "
            "admins may export its results: they list people's addresses."
        )
    text = (
        f"Preparing the results of campaign #{campaign_id} as a CSV file; "
        "it appears in this conversation in a moment."
    )
    return text, [views.section(text)]


def share_export(
    services: Services,
    client: WebClient,
    command: dict[str, Any],
    correlation_id: str,
    team: str,
) -> None:
    """Upload the results CSV into the conversation the command was typed in (a
    campaign of workspace ``team`` only)."""
    user, channel = command["user_id"], command.get("channel_id", "")
    _, rest = parse(command.get("text", ""))
    try:
        campaign_id = _campaign_id(rest, "export")
        result = export.export_campaign(
            services.deps.store,
            campaign_id,
            actor=user,
            admins=services.settings.admin_users,
            team=team,
        )
    except UserInputError:
        return  # the acknowledgement already said why
    try:
        client.files_upload_v2(
            channel=channel,
            filename=result.filename,
            content=result.data,
            title=f"Campaign #{campaign_id} results",
            initial_comment=f"Results of campaign #{campaign_id}: {result.rows:,} recipient(s), "
            f"exported by <@{user}>.",
        )
    except SlackApiError as exc:
        report(exc, correlation_id, "uploading an export")
        text = (
            f"Slack did not take the file ({exc.response.get('error')}). Invite me to this "
            "channel (/invite @mailbolt) or run the command in a direct message with me, "
            f"or run `python -m bot export {campaign_id}`. (ref {correlation_id})"
        )
        tell_privately(client, channel, user, text, correlation_id)


def answer(
    services: Services, word: str, rest: str, user: str, team: str
) -> tuple[str, list[dict]]:
    """The private answer to a subcommand of a person of workspace ``team``, as
    (text, blocks): only that workspace's data."""
    if word == "help":
        return views.HELP, views.help_blocks()
    store = services.deps.store
    if word == "status":
        return _status(services, rest, team)
    if word == "stats":
        return _stats(services, rest, team)
    if word == "export":
        return _export_answer(services, rest, user, team)
    if word == "quota":
        text = views.quota_text(quota_data(services))
        return text, [views.section(text)]
    if word == "scheduled":
        from bot.slack.schedule import scheduled_answer

        return scheduled_answer(services, user, team)
    if word == "accounts":
        text = accounts_answer(services, user, team)
        return text, [views.section(text)]
    if word == "templates":
        blocks = views.templates_blocks(services.deps.catalogue.for_team(team).list())
        return "Templates", blocks
    if word == "unsubscribe":
        email, added = policy.unsubscribe(
            store, _address(rest, word), actor=f"slack:{user}", team=team
        )
        text = (
            f"{email} will get no more marketing email."
            if added
            else f"{email} had already unsubscribed."
        )
        return text, [views.section(text)]
    if word == "resubscribe":
        email, removed = policy.resubscribe(
            store, _address(rest, word), actor=f"slack:{user}", team=team
        )
        text = (
            f"{email} may get marketing email again. Do this only when they asked for it."
            if removed
            else f"{email} was not unsubscribed."
        )
        return text, [views.section(text)]
    text = f"I don't know `/sendmail {views.escape(word)}`.\n\n{views.HELP}"
    return text, [views.section(text)]


def accounts_answer(services: Services, user: str, team: str) -> str:
    return accounts.accounts_text(services, user, team)


def _opens_form(services: Services, word: str, team: str) -> bool:
    """The bare command, or the name of a template of workspace ``team`` to start
    from it, opens the form."""
    if not word:
        return True
    return word in {t.name for t in services.deps.catalogue.for_team(team).list()}


def reply(
    services: Services, text: str, user: str, correlation_id: str, team: str = ""
) -> dict[str, Any] | None:
    """The acknowledgement's private answer to a person of workspace ``team``; None
    when the form opens instead."""
    word, rest = parse(text)

    def answered() -> tuple[str, list[dict[str, Any]]] | None:
        return (
            None if _opens_form(services, word, team) else answer(services, word, rest, user, team)
        )

    result = answering(
        correlation_id, f"/sendmail {word}", answered, lambda text: (text, [views.section(text)])
    )
    if result is None:
        return None
    text, blocks = result
    return {
        "response_type": "ephemeral",
        "text": views.clip(text, views.MAX_MESSAGE_TEXT),
        "blocks": blocks,
    }


def form_view(
    services: Services, template: str, channel: str, user: str = "", team: str = ""
) -> dict[str, Any]:
    """The compose form, starting from ``template`` if one was named; its From menu
    lists the accounts ``user`` of workspace ``team`` may send from."""
    default = services.settings.status_channels.for_team(team)
    form = views.ComposeForm(template=template, channel=default or channel)
    return views.compose_view(
        services.deps.catalogue.for_team(team).list(),
        form=form,
        metadata=views.compose_metadata(channel),
        senders=accounts.menu(services, user, team) if user else (),
    )


def register(app: App, services: Services) -> None:
    """``/sendmail``: a private answer, or an empty one and then the compose form."""

    def command_ack(ack: Ack, command: dict, context: BoltContext) -> None:
        answer = reply(
            services,
            command.get("text", ""),
            command["user_id"],
            context.get("correlation_id", ""),
            context.team_id or "",
        )
        ack(**(answer or {}))

    def open_form(command: dict, client: WebClient, context: BoltContext) -> None:
        word, _ = parse(command.get("text", ""))
        team = context.team_id or ""
        if not _opens_form(services, word, team):
            return
        channel = command.get("channel_id", "")
        try:
            client.views_open(
                trigger_id=command["trigger_id"],
                view=form_view(services, word, channel, command["user_id"], team),
            )
        except SlackApiError as exc:  # the trigger lasts 3 s and works once
            correlation_id = context.get("correlation_id", "")
            report(exc, correlation_id, "views.open")
            text = (
                f"Slack did not let me open the form in time ({exc.response.get('error')}). "
                f"Please run /sendmail again. (ref {correlation_id})"
            )
            tell_privately(client, channel, command["user_id"], text, correlation_id)
            return
        # The preview shows "Send at" in the person's time zone; reading their
        # profile now, off the 3-second path, lets a preview checked inside the
        # answer to Slack find it without a call to Slack.
        with contextlib.suppress(SlackApiError, UserInputError):
            services.lookups.users([command["user_id"]])

    def export_file(command: dict, client: WebClient, context: BoltContext) -> None:
        if parse(command.get("text", ""))[0] == "export":
            share_export(
                services, client, command, context.get("correlation_id", ""), context.team_id or ""
            )

    app.command(COMMAND)(ack=command_ack, lazy=[open_form, export_file])
