"""The outbox: messages, their moves (``records.TRANSITIONS``) and the daily count."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from bot.ports import Outbox, StoreParts
from bot.records import FINAL_STATES, TRANSITIONS, MessageState, Transition, may_move
from tests.store_contract.conftest import GMAIL, START, Clock, new_campaign

Q, SG, ST, F, SK, D, U = (
    MessageState.QUEUED,
    MessageState.SENDING,
    MessageState.SENT,
    MessageState.FAILED,
    MessageState.SKIPPED,
    MessageState.DEFERRED,
    MessageState.UNCERTAIN,
)

#: The outbox call that moves a message to each state.
MOVES: dict[MessageState, Callable[[Outbox, int], Transition]] = {
    SG: lambda o, i: (
        Transition(True, SG) if o.claim(i, GMAIL) else Transition(False, o.state_of(i))
    ),
    ST: lambda o, i: o.mark_sent(i, "gm-1"),
    F: lambda o, i: o.mark_failed(i, "refused"),
    D: lambda o, i: o.mark_deferred(i, START + 60, "the daily limit"),
    U: lambda o, i: o.mark_uncertain(i, "lost response"),
    SK: lambda o, i: o.mark_skipped(i, "cancelled"),
    Q: lambda o, i: o.requeue(i, "not sent", from_states=TRANSITIONS[Q]),
}


def test_the_table_names_every_state_and_keeps_sent_final():
    assert set(TRANSITIONS) == set(MessageState)
    assert all(not may_move(ST, to) for to in MessageState)
    assert {ST, F, SK} == FINAL_STATES


@pytest.mark.parametrize("to", list(MessageState), ids=str)
@pytest.mark.parametrize("start", list(MessageState), ids=str)
def test_a_move_happens_exactly_when_the_table_allows_it(
    store: StoreParts, start: MessageState, to: MessageState
):
    campaign_id = new_campaign(store, start)
    (row,) = store.outbox.messages(campaign_id)
    outcome = MOVES[to](store.outbox, row.id)
    allowed = may_move(start, to)
    assert outcome == Transition(allowed, to if allowed else start)
    assert store.outbox.state_of(row.id) == (to if allowed else start)


def test_a_refused_move_changes_nothing(store: StoreParts, clock: Clock):
    campaign_id = new_campaign(store, Q)
    (row,) = store.outbox.messages(campaign_id)
    assert store.outbox.claim(row.id, GMAIL)
    assert store.outbox.mark_sent(row.id, "gm-1").changed
    clock.advance(5)
    assert store.outbox.mark_failed(row.id, "late") == Transition(False, ST)
    (after,) = store.outbox.messages(campaign_id)
    assert (after.state, after.last_error, after.provider_id, after.updated_at) == (
        ST,
        None,
        "gm-1",
        START,
    )
    assert store.outbox.mark_sent(row.id + 1000, "x") == Transition(False, None)


def test_requeue_is_from_sending_unless_told_and_never_outside_the_table(store: StoreParts):
    campaign_id = new_campaign(store, U, F)
    uncertain, failed = store.outbox.messages(campaign_id)
    assert not store.outbox.requeue(uncertain.id, "retry").changed  # default: from sending only
    assert store.outbox.requeue(uncertain.id, None, from_states=(U,)).changed
    assert not store.outbox.requeue(failed.id, None, from_states=(U,)).changed
    with pytest.raises(ValueError, match="sent"):
        store.outbox.requeue(failed.id, None, from_states=(ST, F))
    assert store.outbox.state_of(failed.id) == F


def test_a_claim_counts_the_attempt_and_stamps_the_time(store: StoreParts, clock: Clock):
    campaign_id = new_campaign(store, Q)
    (row,) = store.outbox.messages(campaign_id)
    clock.advance(7)
    assert store.outbox.claim(row.id, GMAIL)
    assert not store.outbox.claim(row.id, GMAIL)
    clock.advance(3)
    assert store.outbox.mark_sent(row.id, "gm-1") == Transition(True, ST)
    (sent,) = store.outbox.messages(campaign_id)
    assert (sent.attempts, sent.claimed_at, sent.sent_at, sent.provider_id) == (
        1,
        START + 7,
        START + 10,
        "gm-1",
    )


def test_only_one_thread_claims_a_message(store: StoreParts):
    campaign_id = new_campaign(store, Q)
    (row,) = store.outbox.messages(campaign_id)
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        wins.append(store.outbox.claim(row.id, GMAIL))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1


def test_recover_in_flight_makes_sending_uncertain(store: StoreParts):
    first = new_campaign(store, SG, Q, prefix="a-")
    second = new_campaign(store, SG, prefix="b-")
    assert store.outbox.recover_in_flight(first) == 1
    assert store.outbox.counts(first)[U] == 1 and store.outbox.counts(second)[SG] == 1
    assert store.outbox.recover_in_flight() == 1
    assert store.outbox.counts(second)[U] == 1
    (row,) = store.outbox.messages(second)
    assert row.last_error == "the process stopped while this message was being sent"
    assert store.campaigns.unfinished() == [first, second]


def test_daily_count_includes_uncertain_and_in_flight_by_claim_time(
    store: StoreParts, clock: Clock
):
    campaign_id = new_campaign(store, Q, Q, Q, F)
    a, b, c, _ = store.outbox.messages(campaign_id)
    store.outbox.claim(a.id, GMAIL)
    store.outbox.mark_sent(a.id, "x")
    clock.advance(100)
    store.outbox.claim(b.id, GMAIL)
    clock.advance(100)
    store.outbox.mark_uncertain(b.id, "lost")  # counts from its claim, not this update
    store.outbox.claim(c.id, GMAIL)
    assert store.outbox.sent_since(START, GMAIL) == 3
    assert store.outbox.sent_since(START + 1, GMAIL) == 2
    assert store.outbox.sent_since(START + 101, GMAIL) == 1
    assert store.outbox.oldest_sent_since(START, GMAIL) == START
    assert store.outbox.oldest_sent_since(START + 1, GMAIL) == START + 100
    assert store.outbox.oldest_sent_since(START + 1000, GMAIL) is None


def test_counts_name_every_state(store: StoreParts):
    campaign_id = new_campaign(store, Q, Q, F)
    assert store.outbox.counts(campaign_id) == {
        Q: 2,
        SG: 0,
        ST: 0,
        F: 1,
        SK: 0,
        D: 0,
        U: 0,
    }
    assert store.outbox.counts(campaign_id)["queued"] == 2  # the keys are the stored strings


def test_ready_messages_are_queued_and_due_deferred_in_list_order(store: StoreParts, clock: Clock):
    campaign_id = new_campaign(store, D, Q, D, F, Q)
    rows = store.outbox.messages(campaign_id)
    store.outbox.mark_deferred(rows[0].id, START + 50, "limit")
    store.outbox.mark_deferred(rows[2].id, START + 10, "limit")
    assert [r.position for r in store.outbox.ready_messages(campaign_id)] == [1, 4]
    assert [r.position for r in store.outbox.ready_messages(campaign_id, START + 10)] == [1, 2, 4]
    clock.advance(50)
    assert [r.position for r in store.outbox.ready_messages(campaign_id)] == [0, 1, 2, 4]
    assert store.outbox.deferred_until(campaign_id) == START + 10
    assert store.outbox.deferred_until(new_campaign(store, Q, prefix="x-")) is None


def test_messages_filter_by_state_and_limit(store: StoreParts):
    campaign_id = new_campaign(store, F, Q, F, F)
    failed = store.outbox.messages(campaign_id, [F], limit=2)
    assert [(r.position, r.state) for r in failed] == [(0, F), (2, F)]
    assert store.outbox.messages(campaign_id, []) == []


def test_find_by_message_id(store: StoreParts):
    campaign_id = new_campaign(store, Q, Q, prefix="m")
    second = store.outbox.messages(campaign_id)[1]
    assert store.outbox.find_by_message_id(second.message_id) == second
    assert store.outbox.find_by_message_id("<nobody@x>") is None


def test_delivery_counts_follow_recorded_bounces(store: StoreParts, clock: Clock):
    def send_all(campaign_id: int) -> None:
        for row in store.outbox.messages(campaign_id):
            store.outbox.claim(row.id, GMAIL)
            store.outbox.mark_sent(row.id, f"gm-{row.id}")

    old = new_campaign(store, Q, Q, prefix="old-")
    send_all(old)
    clock.advance(1000)
    new = new_campaign(store, Q, Q, Q, prefix="new-")
    send_all(new)
    a, b, _ = store.outbox.messages(new)
    store.suppressions.record_bounce("r1", kind="hard", message_row_id=a.id, email=a.email)
    store.suppressions.record_bounce("r2", kind="soft", message_row_id=b.id, email=b.email)
    counts = store.outbox.delivery_counts(campaign_id=new)
    assert (counts.sent, counts.hard, counts.soft) == (3, 1, 1)
    since = store.outbox.delivery_counts(since=START + 1000)
    assert (since.sent, since.hard, since.soft) == (3, 1, 1)
    total = store.outbox.delivery_counts()
    assert (total.sent, total.hard, total.soft) == (5, 1, 1)
    rows = store.outbox.delivery_by_campaign(START)
    assert [(r.campaign_id, r.template, r.sent, r.hard, r.soft) for r in rows] == [
        (new, "welcome", 3, 1, 1),
        (old, "welcome", 2, 0, 0),
    ]
    assert [r.campaign_id for r in store.outbox.delivery_by_campaign(START + 1000)] == [new]
