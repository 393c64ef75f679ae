"""Every table and index the store has, as numbered migrations, in one place.

A database remembers the last migration it ran (``meta.schema_version``); opening
it runs the ones after that, each in its own transaction with the version bump,
so a crash mid-migration leaves the previous version intact.

Append new migrations; never edit or renumber one that has shipped: databases in
the field have run it already.

PostgreSQL (``bot.store_pg.schema``) runs the same numbered steps in its own SQL
and records them in ``schema_migrations``. A new migration N here gets its twin
there: append a tuple of statements to that ``MIGRATIONS`` creating the same
tables and columns (``add_column(name, str)`` is ``alter table … add column name
text``; ``float`` is ``double precision``; ``int`` is ``bigint``).
``tests/test_pg_schema.py`` fails until both back-ends have the same migrations
and columns, and the store contract tests run every part on both.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from bot.records import LEGACY_ACCOUNT, SANDBOX_ACCOUNT

SCHEMA_VERSION_KEY = "schema_version"


def _migration_1(db: sqlite_utils.Database) -> None:
    """Campaigns, messages, unsubscribes, bounces, the quota log and the audit log."""
    db.table("campaigns").create(
        {
            "id": int,
            "created_at": float,
            "requested_by": str,
            "team": str,
            "template": str,
            "category": str,
            "subject": str,
            "common_vars": str,
            "status": str,
            "total": int,
            "paused_reason": str,
            "started_at": float,
            "finished_at": float,
            "idempotency_key": str,
            "status_channel": str,
            "status_ts": str,
            "correlation_id": str,
        },
        pk="id",
        not_null={"created_at", "requested_by", "template", "status"},
    )
    db.table("campaigns").create_index(["idempotency_key"], unique=True)
    db.table("campaigns").create_index(["status"])
    db.table("messages").create(
        {
            "id": int,
            "campaign_id": int,
            "position": int,
            "email": str,
            "name": str,
            "variables": str,
            "state": str,
            "attempts": int,
            "last_error": str,
            "provider_id": str,
            "message_id": str,
            "not_before": float,
            "created_at": float,
            "updated_at": float,
            "sent_at": float,
            "bounce": str,
        },
        pk="id",
        foreign_keys=[("campaign_id", "campaigns", "id")],
        not_null={"campaign_id", "email", "state", "message_id"},
        defaults={"attempts": 0},
    )
    db.table("messages").create_index(["campaign_id", "state"])
    db.table("messages").create_index(["message_id"], unique=True)
    db.table("messages").create_index(["sent_at"])
    db.table("messages").create_index(["email"])
    db.table("unsubscribes").create(
        {"email": str, "source": str, "campaign_id": int, "created_at": float},
        pk="email",
    )
    db.table("bounces").create(
        {
            "id": int,
            "message_row_id": int,
            "email": str,
            "kind": str,
            "status": str,
            "diagnostic": str,
            "provider_id": str,
            "created_at": float,
        },
        pk="id",
    )
    db.table("bounces").create_index(["provider_id"], unique=True)
    db.table("bounces").create_index(["email"])
    db.table("quota_log").create({"at": float, "units": int, "method": str})
    db.table("quota_log").create_index(["at"])
    db.table("audit").create(
        {"id": int, "at": float, "actor": str, "action": str, "detail": str}, pk="id"
    )


def _migration_2(db: sqlite_utils.Database) -> None:
    """When a message was claimed for sending: crash recovery must know how recent
    an in-flight send is, and ``updated_at`` is overwritten by later transitions."""
    db.table("messages").add_column("claimed_at", float)


def _migration_3(db: sqlite_utils.Database) -> None:
    """Slack drafts (what a preview needs to start its campaign).

    Before this migration the table was created on first use, so a database from
    then may have it already: hence ``if not exists``, with the same columns.
    """
    db.execute(
        "create table if not exists slack_drafts "
        "(key text primary key, user text not null, created_at float not null, "
        "data text not null)"
    )


def _migration_4(db: sqlite_utils.Database) -> None:
    """The sending account on campaigns, messages and quota use; test sends.

    Quota and the daily limit belong to the account that sent (the sandbox, or a
    Gmail address), so every count filters by it. Existing rows: a message the
    sandbox sent says so in its provider id (``sandbox:…``), and a campaign with
    one such message was a sandbox campaign, so its other messages were too. The
    rest cannot be told apart and stay ``LEGACY_ACCOUNT``, which counts against
    any Gmail account. Old quota-log rows are legacy as well; only the last
    minute of them is ever read.

    ``prior_claimed_at``: a message re-sent after an uncertain attempt may have
    gone out twice, and both attempts count against the day.
    """
    db.table("campaigns").add_column("account", str, not_null_default=LEGACY_ACCOUNT)
    db.table("messages").add_column("account", str, not_null_default=LEGACY_ACCOUNT)
    db.table("messages").add_column("prior_claimed_at", float)
    db.table("quota_log").add_column("account", str, not_null_default=LEGACY_ACCOUNT)
    db.execute(
        "update campaigns set account = ? where id in "
        "(select campaign_id from messages where provider_id like 'sandbox:%')",
        [SANDBOX_ACCOUNT],
    )
    db.execute(
        "update messages set account = ? where provider_id like 'sandbox:%' or "
        "campaign_id in (select id from campaigns where account = ?)",
        [SANDBOX_ACCOUNT, SANDBOX_ACCOUNT],
    )
    db.table("messages").create_index(["account", "sent_at"])
    db.table("quota_log").create_index(["account", "at"])
    db.table("test_sends").create(
        {
            "id": int,
            "at": float,
            "account": str,
            "requested_by": str,
            "email": str,
            "template": str,
            "subject": str,
            "message_id": str,
            "state": str,
            "provider_id": str,
            "last_error": str,
            "reference": str,
        },
        pk="id",
        not_null={"at", "account", "email", "state", "message_id"},
    )
    db.table("test_sends").create_index(["account", "at"])


def _migration_5(db: sqlite_utils.Database) -> None:
    """Sender accounts: the Gmail accounts mail goes out from, who may use each, and
    the "Connect your Gmail" flows under way.

    ``sealed_grant`` holds the refresh token encrypted by the caller; the key is
    never in the database. Access rows name Slack users (``user``) and user groups
    (``group``); ``everyone`` opens a shared account to all who may send.
    ``if not exists``: new tables only, so running it on a database rewound to an
    older version (a test, a restored backup's meta) finds them and goes on.
    """
    db.execute(
        "create table if not exists sender_accounts ("
        "address text primary key, kind text not null, client text not null, "
        "name text not null default '', owner text not null default '', "
        "team text not null default '', scopes text not null default '', "
        "status text not null, status_reason text not null default '', "
        "everyone integer not null default 0, sealed_grant text not null default '', "
        "created_at float not null, updated_at float not null)"
    )
    db.execute(
        "create table if not exists sender_access ("
        "address text not null references sender_accounts(address) on delete cascade, "
        "kind text not null, slack_id text not null, primary key (address, kind, slack_id))"
    )
    db.execute(
        "create table if not exists oauth_states ("
        "state text primary key, user text not null, team text not null, "
        "sealed_verifier text not null, browser text not null default '', "
        "created_at float not null)"
    )


def _migration_schedule(db: sqlite_utils.Database) -> None:
    """ "Send later" (migration 6): when a scheduled campaign starts
    (``scheduled_at``, seconds since the epoch, UTC) and the IANA zone the person
    gave it in (``schedule_zone``, to show the time back as they said it).

    Additive only: two columns with defaults and an index for the due check.
    """
    columns = {c.name for c in db.table("campaigns").columns}
    if "scheduled_at" not in columns:
        db.table("campaigns").add_column("scheduled_at", float)
    if "schedule_zone" not in columns:
        db.table("campaigns").add_column("schedule_zone", str, not_null_default="")
    db.execute(
        "create index if not exists idx_campaigns_status_scheduled_at "
        "on campaigns (status, scheduled_at)"
    )


def _migration_approvals(db: sqlite_utils.Database) -> None:
    """Approval by a second person (migration 7): one request per
    campaign that needs it, who asked, who decided what and why, and where the
    request message is. Additive only: a new table, created if missing."""
    db.execute(
        "create table if not exists approvals ("
        "campaign_id integer primary key references campaigns(id), "
        "requested_by text not null, requested_at float not null, digest text not null, "
        "reason text not null default '', decision text not null, "
        "decided_by text not null default '', decided_at float, "
        "note text not null default '', channel text not null default '', "
        "ts text not null default '')"
    )


def _migration_workers(db: sqlite_utils.Database) -> None:
    """Pacing shared by every worker (migration 8): per sender account, the
    earliest time its next call may start (``pacing``) and the calls booked in the
    last quota window (``pacing_log``), so workers on many machines together keep
    to one account's quota; and an index of the messages ready to claim. Additive
    only: new tables and an index, ``if not exists``.
    """
    db.execute(
        "create table if not exists pacing ("
        "account text primary key, next_at float not null default 0)"
    )
    db.execute(
        "create table if not exists pacing_log ("
        "account text not null, slot float not null, units integer not null)"
    )
    db.execute("create index if not exists pacing_log_account_slot on pacing_log (account, slot)")
    db.execute(_READY_INDEX)


def _migration_workspaces(db: sqlite_utils.Database) -> None:
    """Everything a Slack workspace owns says which (migration 10; issue 12).

    Suppressions become per workspace: ``unsubscribes`` is keyed by (``team``,
    ``email``) instead of ``email`` alone, and ``bounces`` say the team of the
    account whose mailbox reported them. A row with team ``''`` applies to every
    workspace: rows from before this migration keep it, so nobody who unsubscribed
    or bounced before the upgrade gets mail after it. The audit log, test sends and
    Slack drafts get the team they were written for (``''`` for the CLI and the
    rows from before). Approvals, messages and schedules follow their campaign.

    Additive: every row is kept. SQLite cannot change a primary key in place, so
    ``unsubscribes`` is copied into a new table with the wider key.
    """
    if "team" not in {c.name for c in db.table("unsubscribes").columns}:
        db.execute(
            "create table unsubscribes_by_team (team text not null default '', "
            "email text not null, source text, campaign_id integer, created_at float, "
            "primary key (team, email))"
        )
        db.execute(
            "insert into unsubscribes_by_team (team, email, source, campaign_id, created_at) "
            "select '', email, source, campaign_id, created_at from unsubscribes"
        )
        db.execute("drop table unsubscribes")
        db.execute("alter table unsubscribes_by_team rename to unsubscribes")
    db.execute("create index if not exists unsubscribes_email on unsubscribes (email)")
    for table in ("bounces", "audit", "test_sends", "slack_drafts"):
        if "team" not in {c.name for c in db.table(table).columns}:
            db.table(table).add_column("team", str, not_null_default="")
    db.execute("create index if not exists audit_team on audit (team, id)")
    db.execute("create index if not exists campaigns_team on campaigns (team, id)")


#: The messages a claim may take, per account in claiming order: a claim reads the
#: first unlocked one instead of sorting every queued message of a campaign (2.8 ms a
#: claim at 5,000 queued). ``Outbox.claim_ready`` repeats the predicate literally.
_READY_INDEX = (
    "create index if not exists messages_ready on messages (account, campaign_id, position) "
    "where state in ('queued', 'deferred')"
)


def _migration_installations(db: sqlite_utils.Database) -> None:
    """Many workspaces (migration 9): one row per Slack workspace mailbolt is
    installed in through "Add to Slack", its bot token sealed with the grant key
    (``sealed_bot_token``), and the OAuth states issued by ``/slack/install``
    (used once, then deleted). Additive only: new tables, ``if not exists``.
    """
    db.execute(
        "create table if not exists slack_installations ("
        "team text primary key, enterprise text not null default '', "
        "sealed_bot_token text not null, bot_user text not null default '', "
        "bot_id text not null default '', scopes text not null default '', "
        "installer text not null default '', app_id text not null default '', "
        "team_name text not null default '', "
        "installed_at float not null, updated_at float not null)"
    )
    db.execute(
        "create table if not exists slack_oauth_states ("
        "state text primary key, created_at float not null)"
    )


# Append new migrations here (the next is number 11), and its twin to
# bot/store_pg/schema.py; never edit one that has shipped.
MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_schedule,
    _migration_approvals,
    _migration_workers,
    _migration_installations,
    _migration_workspaces,
)


def version(db: sqlite_utils.Database) -> int:
    """The number of migrations this database has run (0 for a new file)."""
    if "meta" not in db.table_names():
        return 0
    row = db.execute("select value from meta where key = ?", [SCHEMA_VERSION_KEY]).fetchone()
    return int(row[0]) if row else 0


def migrate(db: sqlite_utils.Database) -> None:
    """Run the migrations this database has not run yet, each in one transaction."""
    if "meta" not in db.table_names():
        db.table("meta").create({"key": str, "value": str}, pk="key")
    start = version(db)
    for number, migration in enumerate(MIGRATIONS[start:], start=start + 1):
        with db.atomic():
            migration(db)
            db.table("meta").upsert({"key": SCHEMA_VERSION_KEY, "value": str(number)}, pk="key")
