"""Both back-ends run the same numbered migrations to the same tables and columns,
so a part written once (``bot/store/sql.py``) finds what it needs on either."""

from __future__ import annotations

import threading

import psycopg

from bot.store import MIGRATIONS as SQLITE_MIGRATIONS
from bot.store import Store
from bot.store_pg.schema import MIGRATIONS as PG_MIGRATIONS
from bot.store_pg.store import PgStore

#: Where each back-end records its version, and PostgreSQL's key for the one
#: SQLite table keyed by its hidden rowid.
BOOKKEEPING = {"meta", "schema_migrations"}
PG_ONLY = {("quota_log", "id")}


def sqlite_columns(store: Store) -> set[tuple[str, str]]:
    db = store.database.db
    return {
        (table, column.name)
        for table in db.table_names()
        if table not in BOOKKEEPING
        for column in db.table(table).columns
    }


def pg_columns(url: str) -> set[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = current_schema()"
        ).fetchall()
    return {(t, c) for t, c in rows if t not in BOOKKEEPING}


def test_every_migration_has_a_postgres_twin(tmp_path, pg_url):
    assert len(PG_MIGRATIONS) == len(SQLITE_MIGRATIONS), (
        "a SQLite migration has no PostgreSQL twin: append one to bot/store_pg/schema.py"
    )
    sqlite = Store(tmp_path / "s.db")
    pg = PgStore(pg_url)
    try:
        assert pg.schema_version == sqlite.schema_version == len(SQLITE_MIGRATIONS)
        assert pg_columns(pg_url) - PG_ONLY == sqlite_columns(sqlite)
    finally:
        sqlite.close()
        pg.close()


def test_opening_again_runs_nothing_and_keeps_the_data(pg_url):
    first = PgStore(pg_url)
    first.audit.record("cli", "campaign.dry_run", recipients=1)
    first.close()
    again = PgStore(pg_url)
    try:
        assert [e.action for e in again.audit.recent()] == ["campaign.dry_run"]
        with psycopg.connect(pg_url) as conn:
            versions = [v for (v,) in conn.execute("select version from schema_migrations")]
        assert versions == list(range(1, len(PG_MIGRATIONS) + 1))
    finally:
        again.close()


def test_many_processes_opening_a_new_database_migrate_it_once(pg_url):
    """Workers starting together: the migration lock lets one migrate, the rest wait."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_store() -> None:
        barrier.wait()
        try:
            PgStore(pg_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        (count,) = conn.execute("select count(*) from schema_migrations").fetchone()
    assert count == len(PG_MIGRATIONS)
