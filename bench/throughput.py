"""Throughput benchmark: mailbolt's Gmail engine against a naive sequential loop.

The loopback Gmail fake (``tests/fakes/gmail_fake.py``) answers every call after
a fixed latency and enforces 150,000 quota units a minute: ``messages.send``
costs 100, so the ceiling is 25 sends a second. Runs of 500 messages, each
against a fresh fake:

- mailbolt at each provider latency of ``--latency`` (default 50, 200, 1000 and
  2000 ms): ``build_deps`` with ``MAIL_TRANSPORT=gmail`` settings pointing at
  the fake, then ``preflight.preflight``, ``record`` and ``run``: the CLI's path,
  in process. The worker pool must keep the quota busy however slow Gmail is;
- naive, at 200 ms: one ``messages().send(...).execute()`` after another, as in
  Google's quickstart;
- mailbolt again at 200 ms with 10 % injected 5xx answers (500 and 503);
- mailbolt at 200 ms with a 2 MB PDF attached to every message (``--attachment-messages``
  of them, default 200): about 2.7 MB per raw message after base64, so the run
  measures encoding and moving the bytes, not only waiting for Gmail.
  ``--attachment-only`` runs just this case.

A run longer than a minute (``--messages 2000 --naive 100``) also crosses the
fake's sliding quota window, which is where pacing mistakes show up as 429s.

Rate is measured on the fake's side, from its acceptance timestamps:
``(n - 1) / (last accept - first accept)``, because a paced sender starts its
first call at once and then one per interval. The wall-clock rate
``n / elapsed`` (elapsed includes start-up and the last response) is shown too.
Numbers, not assertions: run ``make bench``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import google_auth_httplib2  # noqa: E402
import httplib2  # noqa: E402
from google.oauth2.credentials import Credentials  # noqa: E402
from googleapiclient.discovery import build  # noqa: E402
from googleapiclient.errors import HttpError  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.handlers import attachments, campaign, preflight, send_loop  # noqa: E402
from bot.handlers.compose import Envelope, build_message  # noqa: E402
from bot.handlers.quota import SEND_UNITS  # noqa: E402
from bot.handlers.recipient_csv import parse_csv  # noqa: E402
from bot.models import RenderedMessage  # noqa: E402
from bot.wiring import build_deps  # noqa: E402
from tests.fakes.gmail_fake import SEND_SCOPE, FakeGmail  # noqa: E402

LATENCY_MS = 200
UNITS_PER_MINUTE = 150_000
CEILING = UNITS_PER_MINUTE / SEND_UNITS / 60  # sends per second
SENDER = "team@mailbolt.example"
FAULTS = {"500": 0.05, "503": 0.05}
ATTACHMENT_RUN = "mailbolt, 2 MB attachment"
ATTACHMENT_BYTES = 2_000_000


@dataclass
class Outcome:
    """One run, as seen by the fake (the only honest witness of what was sent)."""

    name: str
    wanted: int
    accepted: int
    requests: int
    too_many: int
    lost: int
    duplicates: int
    first_to_last: float  # seconds between the first and the last acceptance
    elapsed: float
    latency_ms: int = LATENCY_MS

    @property
    def rate(self) -> float:
        return (self.accepted - 1) / self.first_to_last if self.first_to_last > 0 else 0.0

    @property
    def wall_rate(self) -> float:
        return self.accepted / self.elapsed


def addresses(n: int) -> list[str]:
    return [f"person{i:04d}@example.com" for i in range(n)]


def fresh_fake(latency_ms: int = LATENCY_MS) -> FakeGmail:
    return FakeGmail(
        email_address=SENDER, units_per_minute=UNITS_PER_MINUTE, latency_ms=latency_ms
    ).start()


def outcome(name: str, fake: FakeGmail, wanted: list[str], elapsed: float) -> Outcome:
    per_address = Counter(a for m in fake.sent for a in m.addresses("To"))
    accepted_at = sorted(m.internal_date for m in fake.sent)
    return Outcome(
        name=name,
        wanted=len(wanted),
        accepted=len(fake.sent),
        requests=fake.requests_by_path["/gmail/v1/users/me/messages/send"]
        + fake.requests_by_path["/upload/gmail/v1/users/me/messages/send"],
        too_many=fake.too_many_requests,
        lost=sum(1 for a in wanted if per_address[a] == 0),
        duplicates=sum(c - 1 for c in per_address.values() if c > 1),
        first_to_last=(accepted_at[-1] - accepted_at[0]) / 1000 if accepted_at else 0.0,
        elapsed=elapsed,
        latency_ms=fake.latency_ms,
    )


def run_mailbolt(
    name: str,
    n: int,
    faults: dict[str, float] | None,
    latency_ms: int = LATENCY_MS,
    attachment: bytes | None = None,
) -> Outcome:
    """The engine exactly as ``python -m bot send`` drives it, minus the subprocess."""
    fake = fresh_fake(latency_ms)
    if faults:
        fake.chaos(faults, seed=1)
    try:
        os.environ.update(fake.env())  # the CA that httplib2 must trust
        with tempfile.TemporaryDirectory() as tmp:
            token_file = Path(tmp) / "token.json"
            token_file.write_text(json.dumps(fake.grant([SEND_SCOPE])))
            token_file.chmod(0o600)
            settings = Settings.defaults(
                mail_transport="gmail",
                database_path=Path(tmp) / "bench.db",
                templates_dir=ROOT / "templates",
                sender_address=SENDER,
                gmail_token_file=token_file,
                gmail_api_url=fake.api_url,
                google_token_uri=fake.token_uri,
                gmail_quota_units_per_minute=UNITS_PER_MINUTE,
                gmail_daily_send_limit=100_000,
            )
            wanted = addresses(n)
            csv = "email,name\r\n" + "".join(f"{a},Person {i}\r\n" for i, a in enumerate(wanted))
            deps = build_deps(settings)
            files = None
            if attachment is not None:
                files = attachments.AttachmentSet()
                files.add(attachments.attachment("brochure.pdf", attachment))
            request = campaign.CampaignRequest(
                "welcome",
                parse_csv(csv.encode(), max_recipients=n),
                "bench",
                common_vars={"team": "Acme", "start_url": "https://acme.example/start"},
                attachments=files,
            )
            plan = preflight.preflight(request, deps)
            campaign_id, _ = preflight.record(plan, deps)
            start = time.perf_counter()
            result = send_loop.run(campaign_id, deps)
            elapsed = time.perf_counter() - start
            deps.store.close()
        if result.counts["sent"] != n:
            print(f"{name}: the store says {result.counts}", file=sys.stderr)
        return outcome(name, fake, wanted, elapsed)
    finally:
        fake.stop()


def run_naive(n: int) -> Outcome:
    """Google's quickstart in a loop: build one service, then send and wait, n times."""
    fake = fresh_fake()
    try:
        info = fake.grant([SEND_SCOPE])
        http = google_auth_httplib2.AuthorizedHttp(
            Credentials(info["token"]), http=httplib2.Http(ca_certs=str(fake.ca_file))
        )
        service = build(
            "gmail",
            "v1",
            http=http,
            static_discovery=True,
            client_options={"api_endpoint": fake.api_url},
        )
        wanted = addresses(n)
        start = time.perf_counter()
        for address in wanted:
            message = EmailMessage()
            message["From"] = SENDER
            message["To"] = address
            message["Subject"] = "Welcome to Acme"
            message["Message-ID"] = make_msgid(domain="naive.example")
            message.set_content("Hello, and welcome.\n")
            raw = base64.urlsafe_b64encode(message.as_bytes()).decode()
            try:
                service.users().messages().send(userId="me", body={"raw": raw}).execute()
            except HttpError as exc:  # the quickstart prints and moves on
                print(f"naive: {address}: {exc.status_code}", file=sys.stderr)
        elapsed = time.perf_counter() - start
        return outcome("naive sequential loop", fake, wanted, elapsed)
    finally:
        fake.stop()


def sender_cost_ms() -> tuple[float, float]:
    """Median ms to build one message with the 2 MB file (its part already encoded,
    as in a campaign) and to base64url it for ``messages.send``."""
    item = attachments.attachment("brochure.pdf", b"%PDF-1.7\n" + os.urandom(ATTACHMENT_BYTES))
    envelope = Envelope("Acme", SENDER)
    rendered = RenderedMessage("Welcome", "<p>Hello</p>" * 200, "Hello\n" * 200)
    builds, encodes = [], []
    for _ in range(9):
        start = time.perf_counter()
        raw = build_message(
            envelope,
            to_address="a@example.com",
            to_name="A",
            rendered=rendered,
            message_id="<bench@mailbolt.example>",
            attachments=[item.part],
        )
        middle = time.perf_counter()
        base64.urlsafe_b64encode(raw)
        builds.append(middle - start)
        encodes.append(time.perf_counter() - middle)
    return sorted(builds)[4] * 1000, sorted(encodes)[4] * 1000


def report(results: list[Outcome], load: tuple[float, ...]) -> None:
    table = Table(title=f"Gmail fake: {UNITS_PER_MINUTE:,} units/min = {CEILING:g} sends/s ceiling")
    for column in (
        "run",
        "latency ms",
        "accepted",
        "sends/s",
        "of ceiling",
        "sends/s (wall)",
        "requests",
        "429s",
        "lost",
        "duplicates",
        "elapsed s",
    ):
        table.add_column(column, justify="left" if column == "run" else "right")
    for r in results:
        table.add_row(
            r.name,
            str(r.latency_ms),
            f"{r.accepted}/{r.wanted}",
            f"{r.rate:.2f}",
            f"{r.rate / CEILING:.3f}",
            f"{r.wall_rate:.2f}",
            str(r.requests),
            str(r.too_many),
            str(r.lost),
            str(r.duplicates),
            f"{r.elapsed:.1f}",
        )
    console = Console(highlight=False, width=150)
    console.print(table)
    console.print(
        "sends/s = (accepted - 1) / (last acceptance - first acceptance), on the fake's clock; "
        "wall = accepted / elapsed."
    )
    engine = next((r for r in results if r.name == "mailbolt" and r.latency_ms == LATENCY_MS), None)
    naive = next((r for r in results if r.name == "naive sequential loop"), None)
    if engine and naive:
        console.print(f"mailbolt / naive at {LATENCY_MS} ms: {engine.rate / naive.rate:.1f}x")
    sweep = [r for r in results if r.name == "mailbolt"]
    if sweep:
        worst = min(sweep, key=lambda r: r.rate)
        console.print(
            f"lowest share of the ceiling over the latency sweep: {worst.rate / CEILING:.3f} "
            f"(at {worst.latency_ms} ms)"
        )
    for r in results:
        if r.name == ATTACHMENT_RUN:
            build_ms, encode_ms = sender_cost_ms()
            console.print(
                f"with a 2 MB attachment: {r.rate / CEILING:.3f} of the ceiling; mailbolt's own "
                f"cost per message: {build_ms:.1f} ms to build it, {encode_ms:.1f} ms of "
                "base64url for the API (the rest is moving and parsing 2.7 MB per message)"
            )
    console.print(
        "targets: >= 0.95 of the ceiling, 0 quota errors in steady state, 0 lost, 0 duplicates"
    )
    console.print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in load))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500, help="messages per run")
    parser.add_argument(
        "--naive",
        type=int,
        metavar="N",
        help="messages for the naive loop (default: 100; it needs ~0.25 s each)",
    )
    parser.add_argument(
        "--latency",
        default="50,200,1000,2000",
        help="provider latencies in ms for the mailbolt runs, comma-separated",
    )
    parser.add_argument(
        "--attachment-messages",
        type=int,
        default=200,
        help="messages for the 2 MB attachment run (default 200)",
    )
    parser.add_argument(
        "--attachment-only", action="store_true", help="run only the attachment case"
    )
    args = parser.parse_args()
    latencies = [int(x) for x in args.latency.split(",") if x.strip()]
    print(f"load average at the start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    pdf = b"%PDF-1.7\n" + os.urandom(ATTACHMENT_BYTES - 9)  # random: compresses like a PDF
    with_file = run_mailbolt(ATTACHMENT_RUN, args.attachment_messages, None, attachment=pdf)
    if args.attachment_only:
        report([with_file], os.getloadavg())
        return
    results = [run_mailbolt("mailbolt", args.messages, None, ms) for ms in latencies]
    if LATENCY_MS not in latencies:
        results.append(run_mailbolt("mailbolt", args.messages, None, LATENCY_MS))
    results += [
        run_naive(args.naive or min(args.messages, 100)),
        run_mailbolt("mailbolt, 10 % 5xx injected", args.messages, FAULTS),
        with_file,
    ]
    report(results, os.getloadavg())


if __name__ == "__main__":
    main()
