"""Unsubscribes and bounce reports: who must not get mail, compared case-insensitively."""

from __future__ import annotations

from bot.ports import StoreParts
from bot.records import MessageState, Unsubscribe
from tests.store_contract.conftest import START, Clock, new_campaign


def test_unsubscribes_are_case_insensitive_and_audited(store: StoreParts, clock: Clock):
    assert store.suppressions.add_unsubscribe("Ann@Example.com ", "one-click", campaign_id=7)
    assert not store.suppressions.add_unsubscribe("ann@example.com", "slack:U1")
    assert store.suppressions.unsubscribed_among(["ANN@example.com", "bo@example.com"]) == {
        "ann@example.com"
    }
    assert store.suppressions.unsubscribes() == [
        Unsubscribe("ann@example.com", "one-click", 7, START)
    ]
    clock.advance(1)
    assert store.suppressions.remove_unsubscribe("ann@EXAMPLE.com", "U1")
    assert not store.suppressions.remove_unsubscribe("ann@example.com", "U1")
    assert store.suppressions.unsubscribed_among(["ann@example.com"]) == set()
    entries = store.audit.recent()
    assert [(e.actor, e.action, e.detail) for e in entries] == [
        ("U1", "unsubscribe.removed", {"email": "ann@example.com"}),
        ("one-click", "unsubscribe.added", {"email": "ann@example.com"}),
    ]


def test_unsubscribes_are_listed_oldest_first(store: StoreParts, clock: Clock):
    for address in ("c@example.com", "a@example.com", "b@example.com"):
        store.suppressions.add_unsubscribe(address, "cli")
        clock.advance(1)
    assert [u.email for u in store.suppressions.unsubscribes()] == [
        "c@example.com",
        "a@example.com",
        "b@example.com",
    ]


def test_lookups_of_many_addresses_find_every_one(store: StoreParts):
    """More addresses than one SQL statement may carry (SQLite: 999)."""
    wanted = [f"Person{i}@Example.com" for i in range(2500)]
    for address in wanted[::500]:
        store.suppressions.add_unsubscribe(address, "cli")
    found = store.suppressions.unsubscribed_among(wanted)
    assert found == {a.lower() for a in wanted[::500]}


def test_a_bounce_is_recorded_once_and_never_downgraded(store: StoreParts):
    campaign_id = new_campaign(store, MessageState.SENT)
    (row,) = store.outbox.messages(campaign_id)
    assert store.suppressions.record_bounce(
        "g1", kind="hard", message_row_id=row.id, email="Bob@Example.com", status="5.1.1"
    )
    assert not store.suppressions.record_bounce(
        "g1", kind="soft", message_row_id=row.id, email="bob@example.com"
    )
    assert store.suppressions.record_bounce(
        "g2", kind="soft", message_row_id=row.id, email="bob@example.com"
    )
    assert store.outbox.messages(campaign_id)[0].bounce == "hard"
    assert store.suppressions.hard_bounced_among(["BOB@example.com", "ann@example.com"]) == {
        "bob@example.com"
    }
    entry = store.audit.recent()[0]
    assert (entry.actor, entry.action, entry.detail["kind"]) == (
        "bounce-scan",
        "bounce.recorded",
        "soft",
    )


def test_unmatched_and_soft_reports_do_not_suppress(store: StoreParts):
    assert store.suppressions.record_bounce("g3", kind="unmatched")
    assert store.suppressions.record_bounce("g4", kind="soft", email="full@example.com")
    assert store.suppressions.hard_bounced_among(["full@example.com", ""]) == set()
    assert store.suppressions.known_bounce_reports(["g3", "g4", "g9"]) == {"g3", "g4"}
    assert store.audit.recent() == []  # only reports about our messages are audited


def test_known_reports_are_found_among_many(store: StoreParts):
    ids = [f"g{i}" for i in range(1200)]
    for provider_id in ids[::300]:
        store.suppressions.record_bounce(provider_id, kind="unmatched")
    assert store.suppressions.known_bounce_reports(ids) == set(ids[::300])
