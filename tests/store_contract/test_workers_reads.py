"""What the workers read to find their work (issue 12): which accounts have
ready messages, and which running campaigns have nothing left in flight."""

from __future__ import annotations

from bot.ports import StoreParts
from bot.records import CampaignStatus, MessageState
from tests.store_contract.conftest import GMAIL, START, Clock, new_campaign

Q, ST, D = MessageState.QUEUED, MessageState.SENT, MessageState.DEFERRED
OTHER = "other@example.com"


def test_ready_accounts_are_those_a_claim_would_serve(store: StoreParts, clock: Clock):
    assert store.outbox.ready_accounts() == []
    new_campaign(store, Q, prefix="a-")
    waiting = new_campaign(store, Q, prefix="b-", account=OTHER)
    row = store.outbox.messages(waiting)[0]
    store.outbox.mark_deferred(row.id, START + 60, "the daily limit")
    paused = new_campaign(store, Q, prefix="c-", account="third@example.com")
    store.campaigns.update(paused, status=CampaignStatus.PAUSED)
    assert store.outbox.ready_accounts() == [GMAIL]
    clock.advance(61)
    assert store.outbox.ready_accounts() == [GMAIL, OTHER]
    store.outbox.claim_ready(GMAIL, 10)
    assert store.outbox.ready_accounts() == [OTHER]


def test_drained_campaigns_have_nothing_queued_deferred_or_in_flight(store: StoreParts):
    done = new_campaign(store, ST, ST, prefix="a-")
    busy = new_campaign(store, ST, Q, prefix="b-")
    later = new_campaign(store, ST, Q, prefix="c-")
    row = store.outbox.messages(later)[1]
    store.outbox.mark_deferred(row.id, START + 60, "the daily limit")
    finished = new_campaign(store, ST, prefix="d-")
    store.campaigns.update(finished, status=CampaignStatus.COMPLETED)
    assert store.campaigns.drained() == [done]
    [claimed] = store.outbox.claim_ready(GMAIL, 10)
    assert claimed.campaign_id == busy
    assert store.campaigns.drained() == [done]  # in flight is not drained
    store.outbox.mark_sent(claimed.id, "gmail-1")
    assert store.campaigns.drained() == [done, busy]


def test_deferring_the_rest_leaves_a_message_just_claimed_alone(store: StoreParts):
    campaign = new_campaign(store, Q, Q, prefix="a-")
    first, second = store.outbox.messages(campaign)
    [claimed] = store.outbox.claim_ready(GMAIL, 1)
    assert claimed.id == first.id
    for row in (first, second):  # what a worker listed as queued a moment ago
        store.outbox.mark_deferred(row.id, START + 60, "the daily limit", from_states=(Q,))
    assert [m.state for m in store.outbox.messages(campaign)] == [MessageState.SENDING, D]
