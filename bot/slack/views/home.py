"""App Home: recent campaigns, today's sending and delivery, the templates, and
the setup's health, as one ``home`` view.

Owns: the Home tab's layout; its parts are the same answers as ``/sendmail``'s.
The audit section is drawn only when ``HomeData.audit`` is given, which the
listener does for admins alone (``ADMIN_SLACK_USERS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.handlers.audit_log import AuditLine
from bot.handlers.stats import DeliveryStats
from bot.models import TemplateInfo
from bot.slack.views.blocks import (
    A_CONNECT_GMAIL,
    MAX_SECTION_CHARS,
    clip,
    context,
    escape,
    header,
    section,
    when,
    who,
)
from bot.slack.views.notices import (
    CampaignLine,
    QuotaData,
    campaign_lines,
    delivery_line,
    delivery_note,
    quota_text,
    templates_blocks,
)


@dataclass
class HomeData:
    campaigns: Sequence[CampaignLine]
    quota: QuotaData
    delivery: DeliveryStats
    templates: Sequence[TemplateInfo]
    health: Sequence[tuple[bool, str]]
    sandbox_outbox: str = ""
    #: The person's sender accounts (``bot.slack.accounts.HomeAccounts``); None: sandbox.
    accounts: Any = None
    #: What just happened (a disconnect), shown on top.
    note: str = ""
    #: The newest audit entries; None for everyone but admins (the section is not drawn).
    audit: Sequence[AuditLine] | None = None
    #: Upcoming scheduled campaigns, in words (the person's own; an admin's: all).
    scheduled: str = ""


def home_view(data: HomeData) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [header("Mailbolt")]
    if data.note:
        blocks.append(section(f":information_source: {escape(data.note)}"))
    if data.quota.transport == "sandbox":
        blocks.append(
            section(
                ":test_tube: *Sandbox mode.* Messages are written as .eml files to "
                f"`{escape(data.sandbox_outbox)}`; nobody receives them. An admin sets "
                "MAIL_TRANSPORT=gmail to send for real."
            )
        )
    blocks += [
        section("Type `/sendmail` in any channel to send a template; `/sendmail help` for more."),
        {"type": "divider"},
        *accounts_blocks(data.accounts),
        *(
            [section(clip(f"*Scheduled*\n{data.scheduled}", MAX_SECTION_CHARS))]
            if data.scheduled
            else []
        ),
        section("*Recent campaigns*\n" + campaign_lines(data.campaigns)),
        {"type": "divider"},
        section("*Today's sending*\n" + quota_text(data.quota)),
        section(f"*Delivery, {data.delivery.scope.lower()}*\n{delivery_line(data.delivery)}"),
        context(delivery_note(data.quota.transport, data.delivery.bounces_known)),
        {"type": "divider"},
        *templates_blocks(data.templates),
        {"type": "divider"},
        section(
            "*Setup*\n"
            + "\n".join(
                f"{':white_check_mark:' if ok else ':warning:'} {text}" for ok, text in data.health
            )
        ),
    ]
    if data.audit is not None:
        blocks += [{"type": "divider"}, *audit_blocks(data.audit)]
    return {"type": "home", "blocks": blocks[:100]}


def _scheduled_blocks(lines: str) -> list[dict[str, Any]]:
    """Upcoming scheduled campaigns, when there are any."""
    return [section(clip(f"*Scheduled*\n{lines}", MAX_SECTION_CHARS))] if lines else []


def accounts_blocks(panel: Any) -> list[dict[str, Any]]:
    """Your sender accounts: what you may send from, Disconnect for your own, and
    "Connect your Gmail" (a link to this server, which sends you on to Google)."""
    if panel is None:
        return []
    from bot.slack.views.blocks import A_DISCONNECT_GMAIL, button

    lines = [
        f"• {escape(label)}: {escape(budget)}" for _address, label, budget, _mine in panel.usable
    ] or ["• none yet"]
    lines += [
        f"• :warning: {escape(address)}: Google no longer accepts its authorization; "
        "connect it again."
        for address in panel.revoked
    ]
    blocks: list[dict[str, Any]] = [section("*Your sender accounts*\n" + "\n".join(lines))]
    elements: list[dict[str, Any]] = []
    if panel.connect_url:
        connect = button("Connect your Gmail", A_CONNECT_GMAIL, "connect", "primary")
        connect["url"] = panel.connect_url
        elements.append(connect)
    for address, _label, _budget, mine in panel.usable:
        if mine and len(elements) < 5:
            elements.append(
                button(f"Disconnect {address}"[:75], A_DISCONNECT_GMAIL, address, "danger")
            )
    if elements:
        blocks.append({"type": "actions", "block_id": "sender_accounts", "elements": elements})
    if panel.note:
        blocks.append(context(escape(panel.note)))
    blocks.append({"type": "divider"})
    return blocks


def audit_blocks(lines: Sequence[AuditLine]) -> list[dict[str, Any]]:
    """The admins' audit section: who did what, newest first."""
    shown = [
        f"• {when(line.at)} {who(line.actor.removeprefix('slack:'))}: {escape(line.what)}"
        for line in lines
    ]
    text = "*Audit (admins only)*\n" + ("\n".join(shown) or "_nothing yet_")
    return [
        section(clip(text, MAX_SECTION_CHARS)),
        context("All of it, filtered by campaign or time: `python -m bot audit --help`."),
    ]
