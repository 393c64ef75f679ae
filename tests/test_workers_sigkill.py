"""Three real ``python -m bot worker`` processes, three sender accounts, PostgreSQL
and the Gmail fake: 3,000 messages, one worker SIGKILLed mid-run and another
started in its place (issue 12).

Promises checked: none lost, none sent twice (the grants can read Sent, so the
dead worker's claims are settled exactly once their lease expires), every
account at or under its quota in every minute, and Gmail never answered 429.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bot.handlers.compose import Envelope
from bot.mail.google_auth import EMAIL_SCOPE, OPENID_SCOPE, READONLY_SCOPE, SEND_SCOPE
from bot.mail.grant_seal import GrantSeal
from bot.records import GrantClient, NewMessage, SenderAccount, SenderKind
from bot.store_pg.store import PgStore
from tests.conftest import ROOT
from tests.fakes.gmail_fake import FakeGmail

ACCOUNTS = ("ann@acme.example", "ben@acme.example", "cat@acme.example")
PER_ACCOUNT = 1000
#: 20 sends a second per account: 3,000 messages in about a minute.
UNITS_PER_MINUTE = 120_000
GRANT_KEY = "k" * 40
#: Short, so the dead worker's claims are settled within the test, and still twice
#: what a send takes on a busy machine (a live worker starts none after half of it).
LEASE_SECONDS = 20


def worker_env(tmp_path: Path, pg_url: str, gmail: FakeGmail) -> dict[str, str]:
    web_client = tmp_path / "web_client.json"
    if not web_client.exists():
        web_client.write_text(json.dumps({"web": gmail.client_secrets()["installed"]}))
    return {
        **gmail.env(),
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": pg_url,
        "DATABASE_PATH": str(tmp_path / "data" / "sendmail.db"),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        "MAIL_TRANSPORT": "gmail",
        "GOOGLE_WEB_CLIENT_SECRETS_FILE": str(web_client),
        "GMAIL_TOKEN_FILE": str(tmp_path / "no-token.json"),
        "GRANT_KEY": GRANT_KEY,
        "GMAIL_QUOTA_UNITS_PER_MINUTE": str(UNITS_PER_MINUTE),
        "GMAIL_DAILY_SEND_LIMIT": "5000",
        "GMAIL_RECONCILE": "on",
        "GMAIL_RECONCILE_GRACE_SECONDS": "2",
        "WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
        "WORKER_SENDS_PER_ACCOUNT": "3",
        "POSTAL_ADDRESS": "Acme Ltd, 1 Harbour Street, Bristol BS1 4QA, UK",
    }


def start_worker(tmp_path: Path, env: dict[str, str], n: int) -> subprocess.Popen:
    log = (tmp_path / f"worker-{n}.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "worker"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def link_accounts(store: PgStore, gmail: FakeGmail) -> None:
    """Each account connected as through "Connect your Gmail", with a read scope."""
    seal = GrantSeal(GRANT_KEY.encode())
    scopes = frozenset({SEND_SCOPE, READONLY_SCOPE, OPENID_SCOPE, EMAIL_SCOPE})
    for address in ACCOUNTS:
        grant = gmail.grant(sorted(scopes), email=address)
        account = SenderAccount(
            address=address,
            kind=SenderKind.SHARED,
            client=GrantClient.WEB,
            name=address.split("@")[0],
            scopes=scopes,
            everyone=True,
            sealed_grant=seal.seal(grant["refresh_token"]),
        )
        store.senders.save(account, actor="test", action="account.connected")


def record_campaigns(
    store: PgStore, per_account: int = PER_ACCOUNT, accounts: tuple[str, ...] = ACCOUNTS
) -> list[int]:
    ids = []
    for address in accounts:
        envelope = Envelope("Acme", address)
        who = address.split("@")[0]
        messages = [
            NewMessage(
                email=f"{who}{i:04d}@example.com",
                name=f"P{i}",
                message_id=envelope.new_message_id(),
            )
            for i in range(per_account)
        ]
        campaign_id, _ = store.campaigns.create(
            requested_by="U0ADMIN",
            template="welcome",
            category="transactional",
            subject="",
            common_vars={"team": "Acme", "start_url": "https://acme.example/start"},
            messages=messages,
            account=address,
        )
        ids.append(campaign_id)
    return ids


def most_in_a_minute(times_ms: list[int]) -> int:
    """The most sends inside any 60-second window, closed at both ends."""
    times = sorted(times_ms)
    most, start = 0, 0
    for end, at in enumerate(times):
        while times[start] < at - 60_000:
            start += 1
        most = max(most, end - start + 1)
    return most


def wait_until(condition, what: str, seconds: float, workers: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        dead = [w.args for w in workers if w.poll() not in (None, -signal.SIGKILL)]
        assert not dead, f"a worker exited early: {dead}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.timeout(300)
def test_three_workers_one_killed_send_everything_once_within_quota(tmp_path, pg_url):
    with FakeGmail(units_per_minute=UNITS_PER_MINUTE) as gmail:
        store = PgStore(pg_url)
        link_accounts(store, gmail)
        campaigns = record_campaigns(store)
        env = worker_env(tmp_path, pg_url, gmail)
        workers = [start_worker(tmp_path, env, n) for n in range(3)]
        try:
            wait_until(lambda: len(gmail.sent) >= 900, "the first 900 sends", 120, workers)
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait()
            workers.append(start_worker(tmp_path, env, 3))

            def all_done() -> bool:
                return all(store.campaigns.get(c).status == "completed" for c in campaigns)

            wait_until(all_done, "every campaign to complete", 240, workers)
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(30)
        logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("worker-*.log")))

        for campaign_id in campaigns:
            counts = store.outbox.counts(campaign_id)
            assert counts["sent"] == PER_ACCOUNT, (counts, logs[-3000:])
            assert counts["uncertain"] == counts["failed"] == counts["queued"] == 0
        # None lost, none twice: each Message-ID reached Gmail exactly once.
        assert len(gmail.sent) == len(ACCOUNTS) * PER_ACCOUNT
        assert set(gmail.accepted_by_message_id.values()) == {1}
        recipients = Counter(addr for m in gmail.sent for addr in m.addresses("To"))
        assert len(recipients) == len(ACCOUNTS) * PER_ACCOUNT
        # Every account paced to its own quota, all workers together.
        assert gmail.too_many_requests == 0
        ceiling = UNITS_PER_MINUTE // 100
        for address in ACCOUNTS:
            sent = gmail.sent_by(address)
            assert len(sent) == PER_ACCOUNT
            assert most_in_a_minute([m.internal_date for m in sent]) <= ceiling
        # The killed worker's claims went through uncertain → reconcile, not resent blindly.
        assert workers[0].returncode == -signal.SIGKILL
        store.close()
