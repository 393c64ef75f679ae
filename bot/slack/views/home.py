"""App Home: recent campaigns, today's sending and delivery, the templates, and
the setup's health, as one ``home`` view.

Owns: the Home tab's layout; its parts are the same answers as ``/sendmail``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.handlers.stats import DeliveryStats
from bot.models import TemplateInfo
from bot.slack.views.blocks import context, escape, header, section
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


def home_view(data: HomeData) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [header("Mailbolt")]
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
    return {"type": "home", "blocks": blocks[:100]}
