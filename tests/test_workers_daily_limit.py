"""Two workers and one account's rolling daily limit (issue 12): together they
send no more than the limit, and the rest of the campaign waits, deferred to
when the account's day frees up."""

from __future__ import annotations

import signal
import time

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
