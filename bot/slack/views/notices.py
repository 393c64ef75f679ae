"""Short answers and notices: one-message modals, ``/sendmail help``, ``templates``,
``quota``, ``status`` (the list) and ``stats`` (delivery and bounce rates).

Owns: the words of every private answer to a ``/sendmail`` subcommand, and the
delivery line the status message and App Home reuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.handlers.stats import BOUNCE_ALERT_RATE, DeliveryStats
from bot.models import TemplateInfo
from bot.slack.views.blocks import context, escape, modal, progress_bar, section, when, who


def notice_view(title: str, text: str) -> dict[str, Any]:
    """A one-message modal, e.g. for a problem that cannot be shown on a field."""
    return modal(title, [section(text)])


HELP = (
    "*`/sendmail`* opens the form to send a template to a list of people.\n"
    "*`/sendmail status [id]`* recent campaigns, or one campaign's counts\n"
    "*`/sendmail scheduled`* your campaigns that start later (admins: everyone's)\n"
    "*`/sendmail quota`* how much of today's sending limit is used\n"
    "*`/sendmail templates`* the templates you can choose from\n"
    "*`/sendmail accounts`* the Gmail accounts you may send from\n"
    "*`/sendmail stats [id]`* delivery and bounce rates: the last 7 days, or one campaign\n"
    "*`/sendmail export id`* a campaign's results as a CSV file, posted here\n"
    "*`/sendmail unsubscribe ADDRESS`* stop marketing mail to an address\n"
    "*`/sendmail resubscribe ADDRESS`* undo that, when the person asked for it\n"
    "*`/sendmail help`* this message"
)


def help_blocks() -> list[dict[str, Any]]:
    return [section(HELP)]


def templates_blocks(templates: Iterable[TemplateInfo]) -> list[dict[str, Any]]:
    lines = [
        f"• *{t.name}* ({t.category}) — {escape(t.description)}"
        + (f"\n   needs {', '.join(f'`{v}`' for v in t.required)}" if t.required else "")
        for t in templates
    ]
    return [section("*Templates*\n" + ("\n".join(lines) or "_none_"))]


@dataclass
class QuotaData:
    """Today's use of the sending limits."""

    transport: str
    sent_24h: int
    daily_limit: int | None
    units_last_minute: int
    units_per_minute: int


def quota_text(q: QuotaData) -> str:
    if q.daily_limit is None:
        return (
            f"Sent in the last 24 hours: *{q.sent_24h:,}*. The {q.transport} transport has "
            "no daily limit (GMAIL_DAILY_SEND_LIMIT applies when MAIL_TRANSPORT=gmail)."
        )
    left = max(0, q.daily_limit - q.sent_24h)
    return (
        f"Sent in the last 24 hours: *{q.sent_24h:,}* of {q.daily_limit:,} "
        f"(GMAIL_DAILY_SEND_LIMIT); *{left:,}* left.\n"
        f"{progress_bar(min(q.sent_24h, q.daily_limit), q.daily_limit)}\n"
        f"Gmail API units in the last minute: {q.units_last_minute:,} of "
        f"{q.units_per_minute:,}."
    )


@dataclass
class CampaignLine:
    campaign_id: int
    template: str
    status: str
    requested_by: str
    total: int
    sent: int
    created_at: float


def campaign_lines(campaigns: Sequence[CampaignLine]) -> str:
    if not campaigns:
        return "_No campaigns yet._"
    return "\n".join(
        f"• *#{c.campaign_id}* {escape(c.template)} — {c.status}, {c.sent:,}/{c.total:,} sent, "
        f"by {who(c.requested_by)} {when(c.created_at)}"
        for c in campaigns
    )


STATS_CAMPAIGNS = 15  # lines in /sendmail stats; the CLI lists them all


def delivery_line(s: DeliveryStats) -> str:
    """``sent *40* · delivered *39* (97.5%) · bounced *1* (2.5%: 1 hard, 0 soft)``."""
    if not s.sent:
        return "no mail sent"
    line = f"sent *{s.sent:,}* · delivered *{s.delivered:,}* ({s.delivery_rate:.1%})"
    if not s.bounces_known:
        return line + " · bounces not tracked"
    return (
        f"{line} · bounced *{s.bounced:,}* ({s.bounce_rate:.1%}: "
        f"{s.hard_bounces:,} hard, {s.soft_bounces:,} soft)"
    )


def delivery_note(transport: str, bounces_known: bool) -> str:
    """What "delivered" means with this set-up, so nobody reads more into it."""
    if transport == "sandbox":
        return (
            ':test_tube: Sandbox mode: "delivered" means written to the outbox as an .eml '
            "file; nobody receives these messages, so none can bounce."
        )
    if not bounces_known:
        return (
            'Bounce scanning is off, so "delivered" means accepted by Gmail, not that the '
            "message reached an inbox. To count bounces, an admin sets BOUNCE_SCAN=on, runs "
            "`python -m bot auth` to allow reading bounce reports, and restarts mailbolt."
        )
    return (
        '"Delivered" means sent with no bounce report back yet; reports can take hours '
        "to arrive, so recent rates may still rise."
    )


def delivery_report(
    total: DeliveryStats,
    campaigns: Sequence[DeliveryStats],
    *,
    flagged: Iterable[int],
    note: str,
) -> tuple[str, list[dict[str, Any]]]:
    """``/sendmail stats``: the window's totals and each campaign that sent in it."""
    marked = set(flagged)
    lines = [
        f"• {':warning: ' if s.campaign_id in marked else ''}*#{s.campaign_id}* "
        f"{escape(s.template)} — {delivery_line(s)}"
        for s in campaigns[:STATS_CAMPAIGNS]
    ]
    if len(campaigns) > STATS_CAMPAIGNS:
        lines.append(
            f"…and {len(campaigns) - STATS_CAMPAIGNS:,} more: `python -m bot stats` lists them all."
        )
    title = f"Delivery, {total.scope.lower()}"
    text = f"*{title}*\n{delivery_line(total)}"
    blocks = [
        section(text),
        section("*By campaign* (messages sent in this window)\n" + "\n".join(lines))
        if lines
        else section("_No mail was sent in this window._"),
    ]
    if marked:
        blocks.append(
            context(
                f":warning: more than {BOUNCE_ALERT_RATE:.0%} bounced; "
                "`/sendmail stats ID` says what to do."
            )
        )
    blocks.append(context(note))
    return text, blocks


def campaign_delivery(
    s: DeliveryStats, *, alert: str | None, note: str
) -> tuple[str, list[dict[str, Any]]]:
    """``/sendmail stats ID``: one campaign, all its messages."""
    text = f"*Delivery of campaign #{s.campaign_id}* ({escape(s.template)})\n{delivery_line(s)}"
    blocks = [section(text)]
    if alert:
        blocks.append(section(f":warning: {escape(alert)}"))
    blocks.append(context(note))
    return text, blocks
