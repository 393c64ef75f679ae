"""Two sender accounts side by side: each at its own Gmail ceiling, in one run.

Issue 10: two people sending at once from their own accounts each get their own
account's full rate. Here two linked accounts (grants sealed in the database,
exactly as ``accounts link`` stores them) each send a campaign through the
loopback Gmail fake, which keeps a separate quota per Google account
(``--units`` a minute each; ``messages.send`` costs 100). Both campaigns are
started together on the server's ``Runner`` with ``Wiring.deps_for``: one lane,
one transport and one pacer per account, as ``python -m bot serve`` runs them.

Rate per account is measured on the fake's side, from that account's acceptance
timestamps: ``(n - 1) / (last accept - first accept)``. Numbers, not
assertions: the target is >= 0.95 of each account's ceiling, with zero 429s.

Defaults: 30,000 units a minute per account (5 sends/s, twice Gmail's highest
per-user quota of 15,000) and 330 messages each, so each run crosses the
fake's sliding minute. The fake and both senders share one Python process: on
a small machine, ``--units 150000`` (25 sends/s each) measures this process's
CPU, not the pacing (about 25 sends/s in total on 2 busy cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.handlers import campaign, preflight  # noqa: E402
from bot.handlers.quota import SEND_UNITS  # noqa: E402
from bot.handlers.recipient_csv import parse_csv  # noqa: E402
from bot.records import GrantClient, SenderAccount, SenderKind  # noqa: E402
from bot.runner import Runner  # noqa: E402
from bot.wiring import Wiring  # noqa: E402
from tests.fakes.gmail_fake import SEND_SCOPE, FakeGmail  # noqa: E402

ACCOUNTS = ("alice@acme.example", "bob@acme.example")


def link(wiring: Wiring, fake: FakeGmail, address: str) -> None:
    """What ``accounts link`` leaves in the database: a shared account, grant sealed."""
    grant = fake.grant([SEND_SCOPE], email=address)
    wiring.senders.save(
        SenderAccount(
            address=address,
            kind=SenderKind.SHARED,
            client=GrantClient.INSTALLED,
            name=address.split("@")[0],
            everyone=True,
            scopes=frozenset({SEND_SCOPE}),
            sealed_grant=wiring.seal.seal(grant["refresh_token"]),
        ),
        actor="bench",
        action="account.linked",
    )


def record(wiring: Wiring, address: str, n: int) -> int:
    deps = wiring.deps_for(address)
    rows = "".join(f"{address.split('@')[0]}{i:04d}@example.com,P {i}\r\n" for i in range(n))
    request = campaign.CampaignRequest(
        "welcome",
        parse_csv(("email,name\r\n" + rows).encode(), max_recipients=n),
        "bench",
        common_vars={"team": "Acme", "start_url": "https://acme.example/start"},
    )
    campaign_id, _ = preflight.record(preflight.preflight(request, deps), deps)
    return campaign_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=330, help="messages per account")
    parser.add_argument("--units", type=int, default=30_000, help="quota units/min per account")
    parser.add_argument("--latency", type=int, default=200, help="provider latency in ms")
    args = parser.parse_args()
    ceiling = args.units / SEND_UNITS / 60
    fake = FakeGmail(units_per_minute=args.units, latency_ms=args.latency).start()
    try:
        os.environ.update(fake.env())  # the CA that httplib2 must trust
        with tempfile.TemporaryDirectory() as tmp:
            client = Path(tmp) / "credentials.json"
            client.write_text(json.dumps(fake.client_secrets()))
            settings = Settings.defaults(
                mail_transport="gmail",
                database_path=Path(tmp) / "bench.db",
                templates_dir=ROOT / "templates",
                sender_address="default@acme.example",
                google_client_secrets_file=client,
                gmail_token_file=Path(tmp) / "no-token.json",
                gmail_api_url=fake.api_url,
                google_token_uri=fake.token_uri,
                gmail_quota_units_per_minute=args.units,
                gmail_daily_send_limit=100_000,
            )
            wiring = Wiring(settings)
            for address in ACCOUNTS:
                link(wiring, fake, address)
            ids = [record(wiring, address, args.messages) for address in ACCOUNTS]
            runner = Runner(wiring.default_deps(), deps_for=wiring.deps_for)
            runner.open(resume=False)
            start = time.perf_counter()
            for campaign_id in ids:
                runner.start(campaign_id)
            runner.wait_idle(3600)
            elapsed = time.perf_counter() - start
            runner.close()
            wiring.store.close()
        report(fake, args, ceiling, elapsed)
    finally:
        fake.stop()


def report(fake: FakeGmail, args: argparse.Namespace, ceiling: float, elapsed: float) -> None:
    table = Table(
        title=f"Two accounts at once: {args.units:,} units/min each = {ceiling:g} sends/s each, "
        f"{args.latency} ms latency"
    )
    for column in ("account", "accepted", "sends/s", "of its ceiling", "429s"):
        table.add_column(column, justify="left" if column == "account" else "right")
    ratios = []
    for address in ACCOUNTS:
        accepted = sorted(m.internal_date for m in fake.sent_by(address))
        span = (accepted[-1] - accepted[0]) / 1000 if len(accepted) > 1 else 0.0
        rate = (len(accepted) - 1) / span if span else 0.0
        ratios.append(rate / ceiling)
        table.add_row(
            address,
            f"{len(accepted)}/{args.messages}",
            f"{rate:.2f}",
            f"{rate / ceiling:.3f}",
            str(fake.too_many_by_user[address]),
        )
    console = Console(highlight=False, width=150)
    console.print(table)
    console.print(
        f"both finished in {elapsed:.1f} s; each ran at "
        + " and ".join(f"{r:.3f}" for r in ratios)
        + " of its own ceiling (target >= 0.95, 0 quota errors)"
    )
    console.print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
