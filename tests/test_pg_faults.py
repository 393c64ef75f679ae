"""Faults of the PostgreSQL server become one ``StorageError`` naming the database
(never its password); the store carries on once the fault is gone."""

from __future__ import annotations

import psycopg
import pytest

from bot.errors import StorageError
from bot.records import MessageState, NewMessage
from bot.store_pg.store import PgStore


def _campaign(store: PgStore) -> int:
    campaign_id, _ = store.campaigns.create(
        requested_by="U1",
        template="welcome",
        category="transactional",
        subject="",
        common_vars={},
        messages=[NewMessage(f"p{i}@example.com", f"<p{i}@x>") for i in range(3)],
    )
    return campaign_id


def test_a_lost_connection_is_one_error_and_the_next_call_reconnects(pg_url):
    store = PgStore(pg_url)
    try:
        campaign_id = _campaign(store)
        (row,) = store.database.query("select pg_backend_pid() as pid")
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(%s)", [row["pid"]])
        with pytest.raises(StorageError) as lost:
            store.outbox.counts(campaign_id)
        message = str(lost.value)
        assert "\n" not in message
        assert message.startswith(f"Cannot use the database {store.name}: ")
        assert "send --resume" in message
        # The fault is gone: the next call opens a new session, nothing was lost.
        assert store.outbox.counts(campaign_id)[MessageState.QUEUED] == 3
        first = store.outbox.messages(campaign_id)[0]
        assert store.outbox.claim(first.id, "me@example.com")
    finally:
        store.close()


def test_a_row_held_by_another_program_longer_than_the_busy_time_is_a_fault(pg_url):
    store = PgStore(pg_url, busy_seconds=0.2)
    try:
        campaign_id = _campaign(store)
        first = store.outbox.messages(campaign_id)[0]
        with psycopg.connect(pg_url) as other:  # a transaction that keeps the row locked
            other.execute("select * from messages where id = %s for update", [first.id])
            with pytest.raises(StorageError, match="locked by another program"):
                store.outbox.claim(first.id, "me@example.com")
            other.rollback()
        assert store.outbox.claim(first.id, "me@example.com")
        assert store.outbox.state_of(first.id) == MessageState.SENDING
    finally:
        store.close()


def test_the_password_never_shows_in_a_fault(pg_server):
    url = pg_server.url.replace("postgresql://mailbolt@", "postgresql://mailbolt:Hunter2-pw@")
    url = url.replace("/postgres?", "/missing_db?")
    with pytest.raises(StorageError) as refused:
        PgStore(url)
    assert "Hunter2-pw" not in str(refused.value)
    assert "postgresql://mailbolt:***@/missing_db?" in str(refused.value)
    assert "the database does not exist" in str(refused.value)


def test_a_bug_stays_a_bug(pg_url):
    """A wrong query is the program's fault: not dressed up as the machine's."""
    store = PgStore(pg_url)
    try:
        with pytest.raises(psycopg.errors.UndefinedTable):
            store.database.query("select * from no_such_table")
        assert store.campaigns.recent() == []  # and the session is still usable
    finally:
        store.close()
