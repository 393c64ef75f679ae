"""What only the SQLite store promises: its file settings and its migrations.

Everything a store part promises is in tests/store_contract/ (run for every back-end).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.errors import StorageError
from bot.records import (
    LEGACY_ACCOUNT,
    SANDBOX_ACCOUNT,
    CampaignStatus,
    MessageState,
    NewMessage,
    Unsubscribe,
)
from bot.store import MIGRATIONS, Store
from bot.store.db import DATABASE_REMEDY
from tests.conftest import ROOT

OLD_DATABASES = ROOT / "tests" / "data"


def load(dump: str, path: Path) -> Path:
    """A database file written by the old ``bot/store.py`` (see tests/data/*.sql)."""
    conn = sqlite3.connect(path)
    conn.executescript((OLD_DATABASES / dump).read_text(encoding="utf-8"))
    conn.close()
    return path


def schema(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "select name, sql from sqlite_master where sql is not null order by name"
    ).fetchall()
    conn.close()
    return rows


def test_schema_is_versioned_and_migrations_run_once(tmp_path: Path):
    path = tmp_path / "s.db"
    first = Store(path)
    assert first.schema_version == len(MIGRATIONS)
    first.campaigns.create(
        requested_by="U1",
        template="welcome",
        category="transactional",
        subject="",
        common_vars={},
        messages=[],
    )
    first.close()
    again = Store(path)
    assert again.schema_version == len(MIGRATIONS)
    assert len(again.campaigns.recent()) == 1
    again.close()


def test_every_write_is_durable_before_the_next_step(tmp_path: Path):
    """WAL with synchronous=FULL: a committed state change survives a power cut."""
    store = Store(tmp_path / "s.db")
    db = store.database.db
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert db.execute("pragma synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("pragma foreign_keys").fetchone()[0] == 1
    store.close()


@pytest.mark.parametrize("dump", ["store_v2.sql", "store_v2_with_drafts.sql"])
def test_a_database_from_the_old_store_migrates_to_the_same_schema(tmp_path: Path, dump: str):
    fresh = tmp_path / "fresh.db"
    Store(fresh).close()
    old = load(dump, tmp_path / "old.db")
    store = Store(old)
    assert store.schema_version == len(MIGRATIONS)
    store.close()
    assert schema(old) == schema(fresh)


@pytest.mark.parametrize("dump", ["store_v2.sql", "store_v2_with_drafts.sql"])
def test_the_old_store_s_data_reads_as_records(tmp_path: Path, dump: str):
    store = Store(load(dump, tmp_path / "old.db"))
    (campaign,) = store.campaigns.recent()
    assert (campaign.status, campaign.common_vars, campaign.total, campaign.status_ts) == (
        CampaignStatus.RUNNING,
        {"team": "Acme"},
        3,
        "111.222",
    )
    ann, bob, cy = store.outbox.messages(campaign.id)
    assert (ann.state, ann.provider_id, ann.bounce, ann.variables) == (
        MessageState.SENT,
        "gm-1",
        "hard",
        {"plan": "pro"},
    )
    assert (bob.state, bob.claimed_at) == (MessageState.SENDING, 1_700_000_020.0)
    assert (cy.state, cy.last_error) == (MessageState.SKIPPED, "has unsubscribed")
    assert store.suppressions.unsubscribes() == [
        Unsubscribe("cy@example.com", "one-click", campaign.id, 1_700_000_020.0)
    ]
    assert store.suppressions.hard_bounced_among(["ann@example.com"]) == {"ann@example.com"}
    assert store.campaigns.unfinished() == [campaign.id]
    assert store.outbox.recover_in_flight() == 1
    assert [e.action for e in store.audit.recent()][-1] == "campaign.created"
    store.close()


def test_drafts_saved_before_the_migration_are_still_there(tmp_path: Path):
    store = Store(
        load("store_v2_with_drafts.sql", tmp_path / "old.db"), clock=lambda: 1_700_000_100.0
    )
    draft = store.drafts.get("k1")
    assert draft is not None and (draft.user, draft.data) == (
        "U1",
        {"form": {"template": "welcome"}},
    )
    store.close()


def test_drafts_work_on_a_database_that_never_had_them(tmp_path: Path):
    store = Store(load("store_v2.sql", tmp_path / "old.db"))
    store.drafts.save("k2", "U2", {"n": 1})
    draft = store.drafts.get("k2")
    assert draft is not None and draft.data == {"n": 1}
    store.close()


def test_old_rows_get_their_account_when_migrated(tmp_path: Path):
    """Migration 4: a campaign the sandbox sent (a ``sandbox:`` provider id) becomes
    the sandbox's with all its messages; what cannot be told apart stays legacy and
    counts against any Gmail account, never the sandbox."""
    gmail_db = Store(load("store_v2.sql", tmp_path / "gmail.db"))
    (campaign,) = gmail_db.campaigns.recent()
    assert campaign.account == LEGACY_ACCOUNT
    assert {m.account for m in gmail_db.outbox.messages(campaign.id)} == {LEGACY_ACCOUNT}
    assert gmail_db.outbox.sent_since(0, "me@example.com") == 2  # sent + in flight
    assert gmail_db.outbox.sent_since(0, SANDBOX_ACCOUNT) == 0
    gmail_db.close()

    path = load("store_v2.sql", tmp_path / "sandbox.db")
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("update messages set provider_id = 'sandbox:1.eml' where id = 1")
    conn.close()
    sandbox_db = Store(path)
    (campaign,) = sandbox_db.campaigns.recent()
    assert campaign.account == SANDBOX_ACCOUNT
    assert {m.account for m in sandbox_db.outbox.messages(campaign.id)} == {SANDBOX_ACCOUNT}
    assert sandbox_db.outbox.sent_since(0, SANDBOX_ACCOUNT) == 2
    assert sandbox_db.outbox.sent_since(0, "me@example.com") == 0
    sandbox_db.close()


# -- faults of the machine become one readable StorageError ---------------------


def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100, encoding="utf-8")
    with pytest.raises(StorageError) as caught:
        Store(path)
    assert caught.value.path == str(path)
    assert f"Cannot use the database {path}" in str(caught.value)
    assert "not a mailbolt database" in str(caught.value)
    assert DATABASE_REMEDY in str(caught.value)


def test_a_folder_that_cannot_be_made_is_a_storage_error(tmp_path: Path):
    (tmp_path / "data").write_text("a file where the folder should be", encoding="utf-8")
    path = tmp_path / "data" / "mailbolt.db"
    with pytest.raises(StorageError) as caught:
        Store(path)
    assert f"Cannot create the folder for the database {path}" in str(caught.value)
    assert caught.value.path == str(path)


def test_a_full_disk_is_a_storage_error_and_records_nothing(tmp_path: Path):
    store = Store(tmp_path / "s.db")
    # SQLite's own size cap stands in for a full disk: the same SQLITE_FULL error.
    pages = store.database.db.execute("pragma page_count").fetchone()[0]
    store.database.db.execute(f"pragma max_page_count = {pages}")
    with pytest.raises(StorageError) as caught:
        store.campaigns.create(
            requested_by="U1",
            template="welcome",
            category="transactional",
            subject="",
            common_vars={},
            messages=[
                NewMessage(f"p{i}@example.com", f"<p{i}@x>", variables={"pad": "x" * 500})
                for i in range(200)
            ],
        )
    assert "the disk is full" in str(caught.value)
    assert store.campaigns.recent() == []  # the transaction was rolled back whole
    store.close()


def test_a_bug_is_not_dressed_up_as_a_storage_error(tmp_path: Path):
    """A broken constraint is the program's fault: it stays the database's own error."""
    store = Store(tmp_path / "s.db")
    twice = [NewMessage("a@example.com", "<same@x>"), NewMessage("b@example.com", "<same@x>")]
    with pytest.raises(sqlite3.IntegrityError):
        store.campaigns.create(
            requested_by="U1",
            template="welcome",
            category="transactional",
            subject="",
            common_vars={},
            messages=twice,
        )
    store.close()
