"""Delivery and bounce rates, per campaign and over the last days.

"Delivered" means "sent and no bounce report came back". That is only as good
as the bounce scan: with ``BOUNCE_SCAN=off`` nothing ever bounces here, so the
surfaces say so next to the numbers (``DeliveryStats.bounces_known``).

The 5 % alert: a bounce rate of more than a few percent is the usual sign of a
bought or stale list, and mailbox providers throttle or spam-folder senders
whose mail keeps bouncing. Hard-bounced addresses are already suppressed; the
alert tells a person to clean the list they used.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.handlers import scope
from bot.handlers.quota import DAY_SECONDS
from bot.ports import StoreParts

BOUNCE_ALERT_RATE = 0.05


@dataclass(frozen=True)
class DeliveryStats:
    """Counts for one scope: a campaign, or everything sent in the last ``days``."""

    scope: str
    sent: int
    hard_bounces: int
    soft_bounces: int
    campaign_id: int | None = None
    template: str = ""
    bounces_known: bool = True

    @property
    def bounced(self) -> int:
        return self.hard_bounces + self.soft_bounces

    @property
    def delivered(self) -> int:
        return self.sent - self.bounced

    @property
    def delivery_rate(self) -> float:
        """Share of sent messages not bounced, 0.0–1.0 (1.0 when nothing was sent)."""
        return self.delivered / self.sent if self.sent else 1.0

    @property
    def bounce_rate(self) -> float:
        return self.bounced / self.sent if self.sent else 0.0

    def summary(self) -> str:
        """One line for a status message, App Home or the CLI."""
        line = (
            f"{self.scope}: {self.sent:,} sent, {self.delivered:,} delivered "
            f"({self.delivery_rate:.1%}), {self.bounced:,} bounced ({self.bounce_rate:.1%}: "
            f"{self.hard_bounces:,} hard, {self.soft_bounces:,} soft)"
        )
        return line if self.bounces_known else line + " (bounce scanning is off)"


def stats(
    store: StoreParts,
    *,
    campaign_id: int | None = None,
    days: int = 7,
    bounces_known: bool = True,
    team: str | None = None,
) -> DeliveryStats:
    """One campaign's whole life, or every message sent in the last ``days``: of
    workspace ``team``'s campaigns only (None: every workspace's)."""
    if campaign_id is not None:
        campaign = store.campaigns.get(campaign_id)
        if campaign is not None and not scope.sees_campaign(campaign, team):
            raise scope.no_such_campaign(campaign_id)
        counts = store.outbox.delivery_counts(campaign_id=campaign_id)
        return DeliveryStats(
            f"Campaign {campaign_id}",
            counts.sent,
            counts.hard,
            counts.soft,
            campaign_id=campaign_id,
            template=campaign.template if campaign else "",
            bounces_known=bounces_known,
        )
    counts = store.outbox.delivery_counts(since=store.clock() - days * DAY_SECONDS, team=team)
    return DeliveryStats(
        f"Last {days} day{'s' if days != 1 else ''}",
        counts.sent,
        counts.hard,
        counts.soft,
        bounces_known=bounces_known,
    )


def campaign_stats(
    store: StoreParts, *, days: int = 7, bounces_known: bool = True, team: str | None = None
) -> list[DeliveryStats]:
    """Each campaign that sent mail in the last ``days``, newest first.

    Counts cover the messages sent inside the window, so a campaign that started
    earlier is shown with its recent part only. Of workspace ``team`` only (None:
    every workspace).
    """
    return [
        DeliveryStats(
            f"Campaign {row.campaign_id}",
            row.sent,
            row.hard,
            row.soft,
            campaign_id=row.campaign_id,
            template=row.template,
            bounces_known=bounces_known,
        )
        for row in store.outbox.delivery_by_campaign(store.clock() - days * DAY_SECONDS, team=team)
    ]


def bounce_alert(stats: DeliveryStats, threshold: float = BOUNCE_ALERT_RATE) -> str | None:
    """A warning for the status channel when the bounce rate passes ``threshold``."""
    if not stats.sent or stats.bounce_rate <= threshold:
        return None
    what = f"{stats.scope} ({stats.template})" if stats.template else stats.scope
    return (
        f"{what}: {stats.bounced:,} of {stats.sent:,} messages bounced "
        f"({stats.bounce_rate:.1%}; {stats.hard_bounces:,} hard, {stats.soft_bounces:,} soft), "
        f"above {threshold:.0%}. Hard-bounced addresses will get no more mail; clean the "
        "recipient list before the next campaign, as mailbox providers throttle or "
        "spam-folder senders with high bounce rates."
    )
