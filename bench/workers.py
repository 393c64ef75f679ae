"""Workers at scale (issue 12): send rate by account count, and the outbox's claim rate.

Part 1, pacing shared by workers: three real ``python -m bot worker`` processes on
one PostgreSQL send campaigns of 1, 2 and 3 sender accounts through the loopback
Gmail fake, which keeps a quota per Google account (``--units`` a minute each;
``messages.send`` costs 100). Total rate is measured on the fake's side from the
acceptance timestamps, ``(n - 1) / (last - first)``, and compared with the
accounts' ceilings together: the target is >= 0.9 x accounts x one account's
ceiling, with zero 429s (the pacer's own schedule allows 60/62 = 0.968).

Part 2, how far the store itself scales: ``--claimers`` processes (8 by default)
each claim one message at a time from one shared outbox on PostgreSQL and mark it
sent, with no provider and no pacing: what ``claim_ready`` (``for update skip
locked``) and the settling write cost when nothing else does. Shown next to one
process alone, so the ratio says how claims scale with processes on this machine.

Numbers, not assertions. On a 2-core machine the fake, PostgreSQL and the
workers share the cores: part 1's default of 10 sends/s per account stays well
inside that; part 2 is CPU-bound by design.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bot.handlers.compose import Envelope  # noqa: E402
from bot.mail.google_auth import SEND_SCOPE  # noqa: E402
from bot.mail.grant_seal import GrantSeal  # noqa: E402
from bot.records import GrantClient, NewMessage, SenderAccount, SenderKind  # noqa: E402
from bot.store_pg.store import PgStore  # noqa: E402
from tests.fakes.gmail_fake import FakeGmail  # noqa: E402
from tests.pg_server import LocalCluster, PgServer, find_bindir  # noqa: E402

GRANT_KEY = "bench-grant-key-" + "x" * 32
WORKERS = 3


def _link(store: PgStore, fake: FakeGmail, address: str) -> None:
    grant = fake.grant([SEND_SCOPE], email=address)
    store.senders.save(
        SenderAccount(
            address=address,
            kind=SenderKind.SHARED,
            client=GrantClient.WEB,
            name=address.split("@")[0],
            everyone=True,
            scopes=frozenset({SEND_SCOPE}),
            sealed_grant=GrantSeal(GRANT_KEY.encode()).seal(grant["refresh_token"]),
        ),
        actor="bench",
        action="account.connected",
    )


def _campaign(store: PgStore, account: str, n: int, tag: str) -> int:
    envelope = Envelope("Bench", account)
    campaign_id, _ = store.campaigns.create(
        requested_by="bench",
        template="welcome",
        category="transactional",
        subject="",
        common_vars={"team": "Acme", "start_url": "https://acme.example/start"},
        messages=[
            NewMessage(
                email=f"{tag}{i:05d}@example.com",
                message_id=envelope.new_message_id(),
            )
            for i in range(n)
        ],
        account=account,
    )
    return campaign_id


def _worker_env(folder: Path, url: str, fake: FakeGmail, units: int) -> dict[str, str]:
    web_client = folder / "web_client.json"
    web_client.write_text(json.dumps({"web": fake.client_secrets()["installed"]}))
    return {
        **fake.env(),
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": url,
        "DATABASE_PATH": str(folder / "data" / "sendmail.db"),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        "MAIL_TRANSPORT": "gmail",
        "GOOGLE_WEB_CLIENT_SECRETS_FILE": str(web_client),
        "GMAIL_TOKEN_FILE": str(folder / "no-token.json"),
        "GRANT_KEY": GRANT_KEY,
        "GMAIL_QUOTA_UNITS_PER_MINUTE": str(units),
        "GMAIL_DAILY_SEND_LIMIT": "100000",
        "WORKER_SENDS_PER_ACCOUNT": "3",
    }


def accounts_run(server: PgServer, accounts: int, per_account: int, units: int) -> dict:
    """Three workers, ``accounts`` campaigns of ``per_account`` messages each."""
    url = server.fresh_url()
    folder = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    addresses = [f"a{i}@acme.example" for i in range(accounts)]
    with FakeGmail(units_per_minute=units) as fake:
        store = PgStore(url)
        for address in addresses:
            _link(store, fake, address)
        ids = [_campaign(store, a, per_account, f"r{i}-") for i, a in enumerate(addresses)]
        env = _worker_env(folder, url, fake, units)
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "bot", "worker"],
                cwd=folder,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(WORKERS)
        ]
        try:
            deadline = time.monotonic() + 30 + 2 * per_account * 100 * 60 / units

            def finished() -> bool:
                return all(store.campaigns.get(c).status == "completed" for c in ids)  # type: ignore[union-attr]

            while not finished() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(60)
        done = finished()
        store.close()
        times = sorted(m.internal_date / 1000 for m in fake.sent)
        too_many = fake.too_many_requests
    server.drop(url)
    ceiling = units / 100 / 60
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {
        "accounts": accounts,
        "sent": len(times),
        "completed": done,
        "rate": rate,
        "ratio": rate / (accounts * ceiling),
        "429s": too_many,
    }


def _claimer(url: str, account: str, start: float, out: multiprocessing.Queue) -> None:
    store = PgStore(url)
    while time.time() < start:
        time.sleep(0.001)
    claimed = 0
    while rows := store.outbox.claim_ready(account, 1):
        store.outbox.mark_sent(rows[0].id, f"bench-{rows[0].id}")
        claimed += 1
    out.put((claimed, time.time()))
    store.close()


def claim_run(server: PgServer, processes: int, messages: int) -> dict:
    """``processes`` claimers empty one outbox of ``messages``: claims a second."""
    url = server.fresh_url()
    store = PgStore(url)
    account = "a0@acme.example"
    for i in range(0, messages, 5000):
        _campaign(store, account, min(5000, messages - i), f"c{i}-")
    store.close()
    out: multiprocessing.Queue = multiprocessing.Queue()
    start = time.time() + 1.0  # every process connected before the clock starts
    procs = [
        multiprocessing.Process(target=_claimer, args=(url, account, start, out))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    server.drop(url)
    total = sum(n for n, _ in results)
    elapsed = max(t for _, t in results) - start
    return {"processes": processes, "claimed": total, "rate": total / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=60_000, help="quota a minute per account")
    parser.add_argument("--messages", type=int, default=300, help="messages per account")
    parser.add_argument("--claimers", type=int, default=8)
    parser.add_argument("--claims", type=int, default=20_000, help="messages in the outbox")
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL's server programs are needed (see tests/pg_server.py).")
    cluster = LocalCluster(bindir)
    cluster.start()
    console = Console()
    try:
        server = PgServer(cluster.url)
        table = Table(title=f"{WORKERS} workers, {args.units:,} units/min per account")
        for column in ("accounts", "sent", "sends/s", "x ceiling", "429s", "completed"):
            table.add_column(column, justify="right")
        for accounts in (1, 2, 3):
            r = accounts_run(server, accounts, args.messages, args.units)
            table.add_row(
                str(accounts),
                str(r["sent"]),
                f"{r['rate']:.1f}",
                f"{r['ratio']:.3f}",
                str(r["429s"]),
                "yes" if r["completed"] else "NO",
            )
        console.print(table)
        claims = Table(title="Outbox claims on PostgreSQL, no provider, no pacing")
        for column in ("processes", "claimed", "claims/s", "x one process"):
            claims.add_column(column, justify="right")
        one = claim_run(server, 1, args.claims // 4)
        many = claim_run(server, args.claimers, args.claims)
        for r in (one, many):
            claims.add_row(
                str(r["processes"]),
                str(r["claimed"]),
                f"{r['rate']:.0f}",
                f"{r['rate'] / one['rate']:.2f}",
            )
        console.print(claims)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
