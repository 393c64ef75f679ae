"""Send-loop cost per message: does it stay flat as campaigns grow?

The send loop's own work per message (suppression check, render, claim, commit,
quota log, progress) must not depend on how many messages the campaign holds.
Before counts were kept incrementally, every message re-counted the whole
campaign for progress: 0.16 ms at 2k rows, 7.2 ms at 100k.

Each size runs one campaign through ``send_loop.run`` with a progress callback
(as the CLI and the Slack runner attach one) and a transport that accepts
instantly, so only mailbolt's CPU is measured: ``time.process_time`` per
message. The database lives in ``/dev/shm`` when it exists, so fsync latency
does not hide the CPU cost. Also shown: what one full re-count costs at each
size, the work the loop no longer does per message.

Target: CPU per message at the largest size within 1.2x of the smallest.
Numbers, not assertions: run ``make bench`` (or this file with ``--sizes``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.handlers import send_loop  # noqa: E402
from bot.models import OutgoingMessage  # noqa: E402
from bot.records import NewMessage  # noqa: E402
from bot.wiring import build_deps  # noqa: E402


class InstantTransport:
    """Accepts every message at once: the provider costs nothing here."""

    name = "instant"
    max_in_flight = 4

    def send(self, message: OutgoingMessage) -> str:
        return f"id-{message.row_id}"

    def find_sent(self, message_id: str) -> str | None:
        raise NotImplementedError


def one_size(n: int, folder: Path) -> tuple[float, float]:
    """CPU seconds per message for an ``n``-message campaign, and one re-count's cost."""
    settings = Settings.defaults(
        database_path=folder / f"cost-{n}.db",
        sandbox_outbox=folder / "outbox",
        templates_dir=ROOT / "templates",
        postal_address="Mailbolt Inc., 1 Harbour Street, Bristol",
        sender_address="team@mailbolt.example",
    )
    deps = dataclasses.replace(build_deps(settings), transport=InstantTransport)
    rows = (
        NewMessage(
            email=f"person{i:06d}@example.com",
            name=f"Person {i}",
            variables={"team": "Acme", "start_url": "https://acme.example/start"},
            message_id=deps.envelope.new_message_id(),
        )
        for i in range(n)
    )
    campaign_id, _ = deps.store.campaigns.create(
        requested_by="bench",
        template="welcome",
        category="transactional",
        subject="",
        common_vars={},
        messages=rows,
    )
    seen = 0

    def progress(counts: dict[str, int]) -> None:
        nonlocal seen
        seen = counts["sent"]

    start = time.process_time()
    result = send_loop.run(campaign_id, deps, progress=progress)
    cpu = time.process_time() - start
    if result.counts["sent"] != n or seen > n:
        print(f"{n}: unexpected counts {result.counts} (progress saw {seen})", file=sys.stderr)
    recount_start = time.perf_counter()
    for _ in range(5):
        deps.store.outbox.counts(campaign_id)
    recount = (time.perf_counter() - recount_start) / 5
    deps.store.close()
    return cpu / n, recount


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,100000", help="campaign sizes, comma-separated")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    print(f"load average at the start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results: list[tuple[int, float, float]] = []
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        for n in sizes:
            per_message, recount = one_size(n, Path(tmp))
            results.append((n, per_message, recount))
    print(f"{'messages':>10} {'CPU ms/message':>15} {'one re-count ms':>16}")
    for n, per_message, recount in results:
        print(f"{n:>10,} {per_message * 1000:>15.3f} {recount * 1000:>16.2f}")
    small, large = results[0], results[-1]
    print(
        f"CPU per message at {large[0]:,} / at {small[0]:,}: {large[1] / small[1]:.2f}x "
        "(target <= 1.2x)"
    )
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
