"""Scheduled campaigns: recorded waiting for their time, released exactly once."""

from __future__ import annotations

from bot.ports import StoreParts
from bot.records import CampaignStatus, MessageState, NewMessage
from tests.store_contract.conftest import START, Backend, Clock

AT = START + 3600.0


def _scheduled(store: StoreParts, at: float, *, by: str = "U1", key: str = "s") -> int:
    campaign_id, created = store.campaigns.create(
        requested_by=by,
        template="welcome",
        category="transactional",
        subject="",
        common_vars={},
        idempotency_key=key,
        scheduled_at=at,
        schedule_zone="Europe/Paris",
        messages=[NewMessage(email=f"{key}@example.com", message_id=f"<{key}@x>")],
    )
    assert created
    return campaign_id


def test_a_scheduled_campaign_keeps_its_time_and_zone_and_is_no_work_yet(store: StoreParts):
    campaign_id = _scheduled(store, AT)
    row = store.campaigns.get(campaign_id)
    assert row is not None
    assert (row.status, row.scheduled_at, row.schedule_zone) == (
        CampaignStatus.SCHEDULED,
        AT,
        "Europe/Paris",
    )
    # Its messages are queued, but nothing may resume or start it before its time.
    assert store.campaigns.unfinished() == []
    assert store.campaigns.due(AT + 10) == []
    assert store.outbox.counts(campaign_id)[MessageState.QUEUED] == 1


def test_scheduled_lists_soonest_first_and_per_person(store: StoreParts):
    later = _scheduled(store, AT + 60, by="U1", key="later")
    sooner = _scheduled(store, AT, by="U2", key="sooner")
    assert [c.id for c in store.campaigns.scheduled()] == [sooner, later]
    assert [c.id for c in store.campaigns.scheduled("U1")] == [later]
    assert store.campaigns.scheduled_due(AT - 1) == []
    assert store.campaigns.scheduled_due(AT) == [sooner]
    assert store.campaigns.scheduled_due(AT + 60) == [sooner, later]


def test_release_is_conditional_so_only_one_writer_wins(
    store: StoreParts, backend: Backend, clock: Clock
):
    campaign_id = _scheduled(store, AT)
    other = backend.reopen(store, clock)
    try:
        assert store.campaigns.update_if(
            campaign_id, CampaignStatus.SCHEDULED, status=CampaignStatus.RUNNING
        )
        assert not other.campaigns.update_if(
            campaign_id, CampaignStatus.SCHEDULED, status=CampaignStatus.CANCELLED
        )
    finally:
        other.close()
    row = store.campaigns.get(campaign_id)
    assert row is not None and row.status == CampaignStatus.RUNNING
    assert store.campaigns.scheduled() == []
    assert store.campaigns.unfinished() == [campaign_id]


def test_a_move_changes_the_time_only_while_still_scheduled(store: StoreParts):
    campaign_id = _scheduled(store, AT)
    assert store.campaigns.update_if(
        campaign_id, CampaignStatus.SCHEDULED, scheduled_at=AT + 120, schedule_zone="UTC"
    )
    row = store.campaigns.get(campaign_id)
    assert row is not None and (row.scheduled_at, row.schedule_zone) == (AT + 120, "UTC")
