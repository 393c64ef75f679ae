"""Campaigns: created atomically with their messages, once per idempotency key."""

from __future__ import annotations

import pytest

from bot.ports import StoreParts
from bot.records import Campaign, CampaignStatus, MessageState, NewMessage
from tests.store_contract.conftest import START, Backend, Clock, new_campaign

Q, SG, ST, F, SK, D, U = (
    MessageState.QUEUED,
    MessageState.SENDING,
    MessageState.SENT,
    MessageState.FAILED,
    MessageState.SKIPPED,
    MessageState.DEFERRED,
    MessageState.UNCERTAIN,
)


def test_create_records_the_campaign_and_every_message(store: StoreParts):
    campaign_id, created = store.campaigns.create(
        requested_by="U1",
        template="welcome",
        category="marketing",
        subject="Hello",
        common_vars={"team": "Acme"},
        team="T1",
        status_channel="C1",
        correlation_id="r-1",
        messages=[
            NewMessage("ann@example.com", "<a@x>", name="Ann", variables={"plan": "pro"}),
            NewMessage("bob@example.com", "<b@x>", state=SK, last_error="has unsubscribed"),
        ],
    )
    assert created
    found = store.campaigns.get(campaign_id)
    assert found == Campaign(
        id=campaign_id,
        created_at=START,
        requested_by="U1",
        template="welcome",
        category="marketing",
        subject="Hello",
        common_vars={"team": "Acme"},
        status=CampaignStatus.RUNNING,
        total=2,
        team="T1",
        status_channel="C1",
        correlation_id="r-1",
    )
    ann, bob = store.outbox.messages(campaign_id)
    assert (ann.email, ann.name, ann.variables, ann.state, ann.position) == (
        "ann@example.com",
        "Ann",
        {"plan": "pro"},
        Q,
        0,
    )
    assert (bob.state, bob.last_error, bob.position, bob.attempts) == (
        SK,
        "has unsubscribed",
        1,
        0,
    )
    assert store.outbox.counts(campaign_id) == {**dict.fromkeys(MessageState, 0), Q: 1, SK: 1}
    entry = store.audit.recent()[0]
    assert (entry.actor, entry.action, entry.detail["total"]) == ("U1", "campaign.created", 2)


def test_a_failed_create_leaves_nothing(store: StoreParts, backend: Backend):
    with pytest.raises(backend.integrity_error):  # a Message-ID is unique
        store.campaigns.create(
            requested_by="U1",
            template="t",
            category="transactional",
            subject="",
            common_vars={},
            messages=[NewMessage("a@x.com", "<same@x>"), NewMessage("b@x.com", "<same@x>")],
        )
    assert store.campaigns.recent() == []
    assert store.outbox.find_by_message_id("<same@x>") is None
    assert store.audit.recent() == []


def test_an_idempotency_key_returns_the_first_campaign(store: StoreParts):
    first = new_campaign(store, key="view-9")
    again = store.campaigns.create(
        requested_by="U2",
        template="t",
        category="transactional",
        subject="",
        common_vars={},
        messages=[NewMessage("z@example.com", "<z@x>")],
        idempotency_key="view-9",
    )
    assert again == (first, False)
    assert len(store.campaigns.recent()) == 1
    assert store.outbox.find_by_message_id("<z@x>") is None


def test_recent_is_newest_first_and_limited(store: StoreParts):
    ids = [new_campaign(store, prefix=f"c{i}-") for i in range(3)]
    assert [c.id for c in store.campaigns.recent()] == ids[::-1]
    assert [c.id for c in store.campaigns.recent(limit=2)] == ids[:0:-1]
    assert store.campaigns.get(max(ids) + 1) is None


def test_update_changes_only_the_columns_given(store: StoreParts, clock: Clock):
    campaign_id = new_campaign(store)
    store.campaigns.update(
        campaign_id, status=CampaignStatus.PAUSED, paused_reason="auth", started_at=START + 1
    )
    store.campaigns.update(campaign_id, status_ts="123.456")
    found = store.campaigns.get(campaign_id)
    assert found is not None
    assert (found.status, found.paused_reason, found.started_at, found.status_ts) == (
        CampaignStatus.PAUSED,
        "auth",
        START + 1,
        "123.456",
    )
    store.campaigns.update(campaign_id, paused_reason=None, status_ts=None)
    found = store.campaigns.get(campaign_id)
    assert found is not None
    assert (found.status, found.paused_reason, found.status_ts) == (
        CampaignStatus.PAUSED,
        None,
        None,
    )


def test_unfinished_campaigns_have_work_or_doubt_left(store: StoreParts):
    done = new_campaign(store, ST, F, SK, prefix="done-")
    work = {state: new_campaign(store, ST, state, prefix=f"{state}-") for state in (Q, D, SG, U)}
    cancelled = new_campaign(store, Q, prefix="cancelled-")
    store.campaigns.update(cancelled, status=CampaignStatus.CANCELLED)
    completed_with_doubt = work[U]
    store.campaigns.update(completed_with_doubt, status=CampaignStatus.COMPLETED)
    unfinished = store.campaigns.unfinished()
    assert unfinished == sorted(work.values())
    assert done not in unfinished and cancelled not in unfinished


def test_due_campaigns_are_running_with_queued_or_due_deferred_mail(
    store: StoreParts, clock: Clock
):
    queued = new_campaign(store, Q, prefix="q-")
    later = new_campaign(store, Q, prefix="later-")
    (row,) = store.outbox.messages(later)
    store.outbox.mark_deferred(row.id, START + 3600, "the daily limit")
    paused = new_campaign(store, Q, prefix="paused-")
    store.campaigns.update(paused, status=CampaignStatus.PAUSED)
    assert store.campaigns.due(START) == [queued]
    assert store.campaigns.due(START + 3600) == [queued, later]
