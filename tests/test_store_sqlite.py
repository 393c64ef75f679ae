"""What only the SQLite store promises: its file settings and its migrations.

Everything a store part promises is in tests/store_contract/ (run for every back-end).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.records import CampaignStatus, MessageState, Unsubscribe
from bot.store import MIGRATIONS, Store
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
