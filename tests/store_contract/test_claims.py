"""Claims for many workers: ready messages taken in batches, never by two
workers, and the claims of a worker that died recovered after their lease."""

from __future__ import annotations

import threading
from collections import Counter

from bot.ports import StoreParts
from bot.records import CampaignStatus, MessageState
from tests.store_contract.conftest import GMAIL, START, Backend, Clock, new_campaign

Q, SG, ST, D, U = (
    MessageState.QUEUED,
    MessageState.SENDING,
    MessageState.SENT,
    MessageState.DEFERRED,
    MessageState.UNCERTAIN,
)
OTHER = "other@example.com"


def test_a_claim_takes_ready_messages_in_order_and_moves_them(store: StoreParts, clock: Clock):
    first = new_campaign(store, Q, ST, Q, D, prefix="a-")
    second = new_campaign(store, Q, Q, prefix="b-")
    later = store.outbox.messages(first)[3]
    store.outbox.mark_deferred(later.id, START + 60, "the daily limit")
    clock.advance(5)
    claimed = store.outbox.claim_ready(GMAIL, 3)
    assert [(m.campaign_id, m.position) for m in claimed] == [(first, 0), (first, 2), (second, 0)]
    assert {(m.state, m.attempts, m.claimed_at) for m in claimed} == {(SG, 1, START + 5)}
    assert [m.state for m in store.outbox.messages(first)] == [SG, ST, SG, D]
    assert [m.position for m in store.outbox.claim_ready(GMAIL, 10)] == [1]
    assert store.outbox.claim_ready(GMAIL, 10) == []
    clock.advance(60)  # the deferred one falls due
    assert [m.id for m in store.outbox.claim_ready(GMAIL, 10)] == [later.id]


def test_a_claim_keeps_to_its_account_and_to_running_campaigns(store: StoreParts):
    mine = new_campaign(store, Q, prefix="mine-")
    new_campaign(store, Q, prefix="other-", account=OTHER)
    for status in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED, CampaignStatus.COMPLETED):
        store.campaigns.update(new_campaign(store, Q, prefix=f"{status}-"), status=status)
    only = new_campaign(store, Q, Q, prefix="only-")
    assert [m.campaign_id for m in store.outbox.claim_ready(GMAIL, 10, campaign_id=only)] == [
        only,
        only,
    ]
    assert [m.campaign_id for m in store.outbox.claim_ready(GMAIL, 10)] == [mine]
    assert [m.account for m in store.outbox.claim_ready(OTHER, 10)] == [OTHER]


def test_workers_claiming_at_once_never_share_a_message(
    store: StoreParts, backend: Backend, clock: Clock
):
    """Eight workers, each with its own connection, drain 400 messages together."""
    campaign_ids = [new_campaign(store, *[Q] * 100, prefix=f"c{i}-") for i in range(4)]
    workers = [backend.reopen(store, clock) for _ in range(8)]
    taken: list[list[int]] = [[] for _ in workers]
    barrier = threading.Barrier(len(workers))

    def work(n: int) -> None:
        barrier.wait()
        while batch := workers[n].outbox.claim_ready(GMAIL, 7):
            taken[n].extend(m.id for m in batch)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for worker in workers:
        worker.close()
    claims = Counter(i for ids in taken for i in ids)
    assert len(claims) == 400 and max(claims.values()) == 1
    assert all(store.outbox.counts(c)[SG] == 100 for c in campaign_ids)


def test_expired_claims_become_uncertain_and_fresh_ones_stay(store: StoreParts, clock: Clock):
    campaign_id = new_campaign(store, Q, Q, Q)
    dead = store.outbox.claim_ready(GMAIL, 2)
    clock.advance(50)
    (alive,) = store.outbox.claim_ready(GMAIL, 1)
    assert store.outbox.recover_expired(lease_seconds=60) == 0
    clock.advance(11)
    assert store.outbox.recover_expired(lease_seconds=60) == 2
    states = {m.id: m.state for m in store.outbox.messages(campaign_id)}
    assert states == {dead[0].id: U, dead[1].id: U, alive.id: SG}
    last_error = store.outbox.messages(campaign_id)[0].last_error
    assert last_error == "the worker sending this message stopped (its claim expired)"
    # From here it is a crash like any other: uncertain, still counted for the day.
    assert store.outbox.sent_since(START, GMAIL) == 3
    # Left out only when asked for what is settled: the live claim, not the doubts.
    assert store.outbox.sent_since(START, GMAIL, in_flight=False) == 2
    assert store.campaigns.unfinished() == [campaign_id]
