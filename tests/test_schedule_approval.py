"""Send later and approval together (issue 11): an approved scheduled campaign
keeps its time; an approval that comes after the time sends at once. The real
Bolt app and the Slack fake; time moves through the use cases' wall clock."""

from __future__ import annotations

import pytest

from bot.records import CampaignStatus
from bot.slack.views import approval as approval_views
from tests.fakes.slack_fake import SlackFake, running_mailbolt, wait_for
from tests.test_schedule_slack import PASTE, Ahead, block_text, paris_in, when_values, words
from tests.test_slack_flow import to_preview

OWNER, APPROVER = "U0OWNER", "U0APPROVER"
APPROVALS = "C0APPROVALS"


@pytest.fixture
def fake():
    with SlackFake() as slack:
        slack.add_user(OWNER, "owner@acme.example", "Olive Owner", tz="Europe/Paris")
        slack.add_user(APPROVER, "approver@acme.example", "Alma Approver", tz="UTC")
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


@pytest.fixture
def approving(settings):
    return settings.replace(
        allowed_slack_users=f"{OWNER},{APPROVER}",
        approval_required="always",
        approvers=APPROVER,
        approval_channel=APPROVALS,
    )


def schedule_for_approval(fake: SlackFake, minutes: float) -> tuple[dict, str]:
    """Preview, pick a time ``minutes`` ahead, submit: the approval request posted."""
    moment = paris_in(minutes)
    preview = to_preview(fake, OWNER, paste=PASTE)
    assert preview["submit"]["text"] == "Request approval"
    reply = fake.submit_view(preview["id"], when_values(moment), user=OWNER)
    told = block_text(reply.json["view"]["blocks"])
    assert "Sent for approval" in told, told
    assert f"Once approved it starts at {words(moment, 'Europe/Paris')}" in told
    request = wait_for(
        lambda: next((m for m in fake.messages_in(APPROVALS) if not m["thread_ts"]), None),
        "the approval request",
    )
    return request, words(moment, "Europe/Paris")


def approve(fake: SlackFake, request: dict) -> None:
    fake.click(approval_views.A_APPROVE, user=APPROVER, message=(request["channel"], request["ts"]))


def test_an_approved_scheduled_campaign_keeps_its_time(approving, fake):
    clock = Ahead()
    with running_mailbolt(approving, fake, clock=clock) as mailbolt:
        request, _ = schedule_for_approval(fake, 30)
        store = mailbolt.deps.store
        [campaign] = store.campaigns.recent()
        assert campaign.status == CampaignStatus.AWAITING_APPROVAL
        assert campaign.scheduled_at is not None

        approve(fake, request)
        wait_for(
            lambda: store.campaigns.get(campaign.id).status == CampaignStatus.SCHEDULED,
            "the approved campaign to wait for its time",
        )
        assert mailbolt.runner.start_scheduled() == []  # not before its time
        assert mailbolt.eml_files() == []

        clock.seconds = 32 * 60  # its time comes
        wait_for(lambda: len(mailbolt.eml_files()) == 2, "both messages at the time")
        mailbolt.runner.wait_idle(30)
        assert store.campaigns.get(campaign.id).status == CampaignStatus.COMPLETED


def test_an_approval_after_the_time_sends_at_once(approving, fake):
    clock = Ahead()
    with running_mailbolt(approving, fake, clock=clock) as mailbolt:
        request, _ = schedule_for_approval(fake, 2)
        store = mailbolt.deps.store
        [campaign] = store.campaigns.recent()
        clock.seconds = 10 * 60  # the approvers were slow: the time has passed
        assert mailbolt.runner.start_scheduled() == []  # awaiting approval: nothing starts
        assert mailbolt.eml_files() == []

        approve(fake, request)
        wait_for(lambda: len(mailbolt.eml_files()) == 2, "both messages, right after approval")
        mailbolt.runner.wait_idle(30)
        assert store.campaigns.get(campaign.id).status == CampaignStatus.COMPLETED
        actions = [e.action for e in store.audit.recent(100, campaign_id=campaign.id)]
        assert "approval.approved" in actions and "campaign.schedule_started" in actions
