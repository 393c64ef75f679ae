"""Two workers and one account's rolling daily limit (issue 12): together they
send no more than the limit, and the rest of the campaign waits, deferred to
when the account's day frees up."""

from __future__ import annotations

import signal
import time

from bot.handlers.workers import WAITING_FOR_IN_FLIGHT
from bot.store_pg.store import PgStore
from tests.fakes.gmail_fake import FakeGmail
from tests.test_workers_sigkill import (
    ACCOUNTS,
    UNITS_PER_MINUTE,
    link_accounts,
    record_campaigns,
    start_worker,
    worker_env,
)

LIMIT = 7


def logs(folder) -> str:
    return "\n".join(p.read_text()[-2000:] for p in sorted(folder.glob("worker-*.log")))


def test_workers_together_keep_to_the_daily_limit(tmp_path, pg_url):
    with FakeGmail(units_per_minute=UNITS_PER_MINUTE) as gmail:
        store = PgStore(pg_url)
        link_accounts(store, gmail)
        first = record_campaigns(store, per_account=12, accounts=ACCOUNTS[:1])[0]
        env = {
            **worker_env(tmp_path, pg_url, gmail),
            "GMAIL_DAILY_SEND_LIMIT": str(LIMIT),
            "WORKER_LEASE_SECONDS": "120",  # no claim expires, however busy the machine
        }
        workers = [start_worker(tmp_path, env, n) for n in range(2)]
        try:
            deadline = time.monotonic() + 120
            while store.outbox.counts(first)["deferred"] != 12 - LIMIT:
                assert all(w.poll() is None for w in workers), "a worker stopped"
                assert time.monotonic() < deadline, (store.outbox.counts(first), logs(tmp_path))
                time.sleep(0.1)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(30)
        counts = store.outbox.counts(first)
        assert counts["sent"] == LIMIT and counts["sending"] == 0
        assert len(gmail.sent) == LIMIT and gmail.too_many_requests == 0
        assert set(gmail.accepted_by_message_id.values()) == {1}
        deferred = store.outbox.messages(first, ["deferred"])
        assert {m.last_error for m in deferred} == {"the daily sending limit is reached"}
        assert min(m.not_before or 0 for m in deferred) > time.time() + 23 * 3600
        assert store.campaigns.get(first).status == "running"  # resumes when due
        store.close()


def test_claims_in_flight_elsewhere_do_not_cut_the_day_short(tmp_path, pg_url):
    """Another worker holds two claims of the account (in flight, as the test
    holds them here). Counting them as sent would defer this worker's message for
    a day; whether it fits depends on their outcome, so it waits for them. They
    turn out not sent, and the day is used to its limit, not beyond."""
    limit = 3
    with FakeGmail(units_per_minute=UNITS_PER_MINUTE) as gmail:
        store = PgStore(pg_url)
        link_accounts(store, gmail)
        first = record_campaigns(store, per_account=6, accounts=ACCOUNTS[:1])[0]
        held = store.outbox.claim_ready(ACCOUNTS[0], 2)
        assert len(held) == 2
        env = {
            **worker_env(tmp_path, pg_url, gmail),
            "GMAIL_DAILY_SEND_LIMIT": str(limit),
            "WORKER_LEASE_SECONDS": "600",  # the held claims stay live throughout
        }
        worker = start_worker(tmp_path, env, 0)
        try:
            # One fits beside the two in flight; the next would not if they were sent.
            wait_until(lambda: store.outbox.counts(first)["sent"] == 1, worker, tmp_path)
            wait_until(
                lambda: any(
                    m.last_error == WAITING_FOR_IN_FLIGHT
                    for m in store.outbox.messages(first, ["queued"])
                ),
                worker,
                tmp_path,
            )
            assert store.outbox.counts(first)["deferred"] == 0
            for message in held:  # the other worker's sends certainly failed to go out
                store.outbox.requeue(message.id, "connection refused")
            wait_until(
                lambda: store.outbox.counts(first)["deferred"] == 6 - limit, worker, tmp_path
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        counts = store.outbox.counts(first)
        assert counts["sent"] == limit and counts["sending"] == 0
        assert len(gmail.sent) == limit and set(gmail.accepted_by_message_id.values()) == {1}
        store.close()


def wait_until(check, worker, folder, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert worker.poll() is None, logs(folder)
        assert time.monotonic() < deadline, logs(folder)
        time.sleep(0.05)
