"""Upgrading to per-workspace data (migration 10) keeps every suppression, and one
recorded before the upgrade holds in every workspace: nobody who unsubscribed or
bounced before gets mail after. Both back-ends, from a database one migration
short of it."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import sqlite_utils

from bot.store import Store
from bot.store.schema import MIGRATIONS, SCHEMA_VERSION_KEY, _migration_workspaces
from bot.store_pg import schema as pg_schema
from bot.store_pg.store import PgStore

BEFORE = MIGRATIONS.index(_migration_workspaces)  # how many ran before it


def _check(store) -> None:
    s = store.suppressions
    for team in ("T0AAA", "T0BBB", None):
        assert s.unsubscribed_among(["ann@example.com"], team) == {"ann@example.com"}
        assert s.hard_bounced_among(["bob@example.com"], team) == {"bob@example.com"}
    (kept,) = s.unsubscribes()
    assert (kept.email, kept.source, kept.campaign_id, kept.team) == (
        "ann@example.com",
        "one-click",
        7,
        "",
    )
    # The wider key: a workspace may now record its own row for the same address.
    assert not s.add_unsubscribe("ann@example.com", "slack:U1", team="T0AAA")
    assert s.remove_unsubscribe("ann@example.com", "cli")
    assert s.add_unsubscribe("ann@example.com", "slack:U1", team="T0AAA")
    assert s.add_unsubscribe("ann@example.com", "slack:U2", team="T0BBB")


def test_sqlite_keeps_old_suppressions_for_every_workspace(tmp_path: Path):
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    db.table("meta").create({"key": str, "value": str}, pk="key")
    for migration in MIGRATIONS[:BEFORE]:
        migration(db)
    db.table("meta").upsert({"key": SCHEMA_VERSION_KEY, "value": str(BEFORE)}, pk="key")
    db.execute(
        "insert into unsubscribes (email, source, campaign_id, created_at) "
        "values ('ann@example.com', 'one-click', 7, 1.0)"
    )
    db.execute(
        "insert into bounces (email, kind, provider_id, created_at) "
        "values ('bob@example.com', 'hard', 'g1', 1.0)"
    )
    db.conn.commit()
    db.close()
    store = Store(path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        _check(store)
    finally:
        store.close()


def test_postgres_keeps_old_suppressions_for_every_workspace(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "create table schema_migrations "
            "(version integer primary key, applied_at double precision not null)"
        )
        for number, statements in enumerate(pg_schema.MIGRATIONS[:BEFORE], start=1):
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "insert into schema_migrations (version, applied_at) values (%s, %s)",
                [number, time.time()],
            )
        conn.execute(
            "insert into unsubscribes (email, source, campaign_id, created_at) "
            "values ('ann@example.com', 'one-click', 7, 1.0)"
        )
        conn.execute(
            "insert into bounces (email, kind, provider_id, created_at) "
            "values ('bob@example.com', 'hard', 'g1', 1.0)"
        )
    store = PgStore(pg_url)
    try:
        assert store.schema_version == len(pg_schema.MIGRATIONS)
        _check(store)
    finally:
        store.close()
