"""The SQLite store on a real temporary file."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from bot.store import MIGRATIONS, SENDING, Store


def campaign(store: Store, n: int = 2, key: str | None = None) -> int:
    cid, _ = store.campaigns.create(
        requested_by="U1",
        template="welcome",
        category="transactional",
        subject="",
        common_vars={"team": "Acme"},
        idempotency_key=key,
        messages=[{"email": f"p{i}@example.com", "message_id": f"<{key}{i}@x>"} for i in range(n)],
    )
    return cid


def test_schema_is_versioned_and_migrations_run_once(tmp_path):
    path = tmp_path / "s.db"
    first = Store(path)
    assert first.schema_version == len(MIGRATIONS)
    campaign(first)
    first.close()
    again = Store(path)
    assert again.schema_version == len(MIGRATIONS)
    assert len(again.campaigns()) == 1
    assert again.db.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_create_is_atomic_and_counts_are_complete(store):
    cid = campaign(store, 3)
    assert store.campaigns.get(cid).total == 3
    assert store.campaigns.get(cid).common_vars == {"team": "Acme"}
    counts = store.outbox.counts(cid)
    assert counts["queued"] == 3 and sum(counts.values()) == 3
    assert store.audit.recent()[0].action == "campaign.created"


def test_failed_create_leaves_nothing(store):
    with pytest.raises(sqlite3.IntegrityError):  # message_id is unique
        store.campaigns.create(
            requested_by="U1",
            template="t",
            category="transactional",
            subject="",
            common_vars={},
            messages=[
                {"email": "a@x.com", "message_id": "<same@x>"},
                {"email": "b@x.com", "message_id": "<same@x>"},
            ],
        )
    assert store.campaigns.recent() == []
    assert store.db["messages"].count == 0


def test_transitions_are_conditional(store):
    cid = campaign(store, 1)
    (row,) = store.outbox.messages(cid)
    assert store.outbox.claim(row.id)
    assert not store.outbox.claim(row.id)
    assert store.outbox.mark_sent(row.id, "gm-1").changed
    assert not store.outbox.mark_failed(row.id, "late").changed  # sent is final
    assert store.outbox.messages(cid)[0].state == "sent"
    assert store.outbox.messages(cid)[0].attempts == 1


def test_only_one_thread_claims_a_message(store):
    cid = campaign(store, 1)
    (row,) = store.outbox.messages(cid)
    wins = []
    barrier = threading.Barrier(8)

    def grab():
        barrier.wait()
        wins.append(store.outbox.claim(row.id))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1


def test_recover_in_flight_marks_uncertain(store):
    cid = campaign(store, 2)
    rows = store.outbox.messages(cid)
    store.outbox.claim(rows[0].id)
    assert store.outbox.counts(cid)[SENDING] == 1
    assert store.outbox.recover_in_flight() == 1
    assert store.outbox.counts(cid)["uncertain"] == 1
    assert store.campaigns.unfinished() == [cid]


def test_sent_since_counts_uncertain_and_in_flight(store):
    now = [1000.0]
    store.clock = lambda: now[0]
    cid = campaign(store, 3)
    a, b, c = store.outbox.messages(cid)
    store.outbox.claim(a.id)
    store.outbox.mark_sent(a.id, "x")
    store.outbox.claim(b.id)
    store.outbox.mark_uncertain(b.id, "lost")
    store.outbox.claim(c.id)
    assert store.outbox.sent_since(0) == 3
    now[0] = 1000.0 + 86400
    assert store.outbox.sent_since(now[0] - 86400 + 1) == 0
    assert store.outbox.oldest_sent_since(0) == 1000.0


def test_idempotency_key(store):
    first = campaign(store, 2, key="view-9")
    assert store.campaigns.create(
        requested_by="U1",
        template="t",
        category="transactional",
        subject="",
        common_vars={},
        messages=[],
        idempotency_key="view-9",
    ) == (first, False)


def test_unsubscribes_are_case_insensitive_and_audited(store):
    assert store.suppressions.add_unsubscribe("Ann@Example.com", "one-click")
    assert not store.suppressions.add_unsubscribe("ann@example.com", "slack:U1")
    assert store.suppressions.unsubscribed_among(["ANN@example.com", "bo@example.com"]) == {
        "ann@example.com"
    }
    assert store.suppressions.remove_unsubscribe("ann@EXAMPLE.com", "U1")
    assert store.suppressions.unsubscribed_among(["ann@example.com"]) == set()
    actions = [r.action for r in store.audit.recent()]
    assert actions[:2] == ["unsubscribe.removed", "unsubscribe.added"]


def test_quota_log(store):
    store.quota.record_units(100, "messages.send", at=10.0)
    store.quota.record_units(5, "messages.list", at=70.0)
    assert store.quota.units_since(0) == 105
    assert store.quota.units_since(60) == 5
