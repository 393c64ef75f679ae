"""Quota use and daily counts belong to the account that sent (issue 8, item 8).

A sandbox run writes .eml files and reaches no Gmail account, so it must not use
up Gmail's per-minute quota or its rolling daily limit. Each test drives the real
CLI in a subprocess; Gmail is the loopback fake.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bot.store import Store
from tests.test_gmail_e2e import SENDER, Mailbolt, text


def sandbox_send(mailbolt: Mailbolt, n: int) -> None:
    """``python -m bot send`` of ``n`` recipients through the sandbox, same database."""
    mailbolt.recipients(n)
    mailbolt.settings["MAIL_TRANSPORT"] = "sandbox"
    mailbolt.settings["SANDBOX_OUTBOX"] = str(mailbolt.folder / "outbox")
    try:
        done = mailbolt.run("send")
    finally:
        del mailbolt.settings["MAIL_TRANSPORT"]
    assert done.returncode == 0, text(done)
    assert len(list((mailbolt.folder / "outbox").glob("*.eml"))) == n


def test_a_sandbox_run_does_not_count_against_gmail(tmp_path: Path, gmail_fake) -> None:
    mailbolt = Mailbolt(tmp_path, gmail_fake, GMAIL_DAILY_SEND_LIMIT="20")
    mailbolt.grant()
    sandbox_send(mailbolt, 30)  # more than Gmail's whole day here

    quota = text(mailbolt.run("quota"))
    assert "units in the last minute 0 of" in quota, quota
    assert "sent in the last 24 h 0 of 20" in quota, quota
    assert f"account {SENDER}" in quota

    mailbolt.recipients(3)
    sent = mailbolt.run("send")
    assert sent.returncode == 0, text(sent)
    assert "deferred" not in text(sent)
    assert len(gmail_fake.sent) == 3

    quota = text(mailbolt.run("quota"))
    assert "units in the last minute 300 of" in quota, quota
    assert "sent in the last 24 h 3 of 20" in quota, quota


def test_old_rows_are_given_their_account(tmp_path: Path, gmail_fake) -> None:
    """A database from before accounts: the sandbox's sends are recognised by their
    provider id; what cannot be told apart still counts against Gmail."""
    mailbolt = Mailbolt(tmp_path, gmail_fake, GMAIL_DAILY_SEND_LIMIT="20")
    mailbolt.grant()
    sandbox_send(mailbolt, 4)
    mailbolt.recipients(2)
    assert mailbolt.run("send").returncode == 0  # two real Gmail sends
    # Back to the schema before migration 4: no accounts anywhere.
    db = sqlite3.connect(mailbolt.database)
    with db:
        db.execute("drop index idx_messages_account_sent_at")
        db.execute("drop index idx_quota_log_account_at")
        db.execute("drop index messages_ready")  # the workers' migration indexes account
        for table in ("campaigns", "messages", "quota_log"):
            db.execute(f"alter table {table} drop column account")
        db.execute("alter table messages drop column prior_claimed_at")
        db.execute("drop table test_sends")
        db.execute("update meta set value = '3' where key = 'schema_version'")
    db.close()

    store = Store(mailbolt.database)
    try:
        now = time.time()
        assert store.outbox.sent_since(now - 3600, "sandbox") == 4
        assert store.outbox.sent_since(now - 3600, SENDER) == 2
        assert store.campaigns.get(1).account == "sandbox"
    finally:
        store.close()
    quota = text(mailbolt.run("quota"))
    assert "sent in the last 24 h 2 of 20" in quota, quota
