"""``python -m bot worker``: one of any number of sending processes on PostgreSQL.

A worker answers no Slack request and serves no web page: it claims ready
messages from the shared outbox and sends them (``bot.handlers.workers``). Start
as many as you like, on as many machines; ``python -m bot serve --no-send``
answers Slack beside them. SQLite stays single-sender (``serve`` or ``send``), so
a worker without ``DATABASE_URL`` is refused.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
from types import FrameType

from bot.cli.console import make_console
from bot.config import Settings
from bot.errors import UserInputError
from bot.store_pg.url import redact_url
from bot.wiring import ROLE_WORKER, Wiring, sender_lock

err = make_console(stderr=True)

NEEDS_POSTGRES = (
    "`python -m bot worker` needs DATABASE_URL (PostgreSQL): workers share the outbox "
    "and each account's pacing through it. With the SQLite file, one process sends: "
    "`python -m bot serve` or `python -m bot send`."
)


def shared_key_warnings(settings: Settings) -> list[str]:
    """Keys that must be the same on every machine but would be made per machine."""
    warnings = []
    if not settings.unsubscribe_secret:
        warnings.append(
            "UNSUBSCRIBE_SECRET is not set: this worker signs unsubscribe links with a key "
            "file beside DATABASE_PATH. Unless every worker and `serve` share that folder, "
            "set the same UNSUBSCRIBE_SECRET on each, or links will be refused."
        )
    if settings.mail_transport == "gmail" and not settings.grant_key:
        warnings.append(
            "GRANT_KEY is not set: sender accounts' grants are opened with a key file beside "
            "DATABASE_PATH. Unless every worker and `serve` share that folder, set the same "
            "GRANT_KEY on each."
        )
    return warnings


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.database_url:
        raise UserInputError(NEEDS_POSTGRES)
    for line in shared_key_warnings(settings):
        err.print(f"[yellow]warning:[/] {line}", soft_wrap=True, highlight=False)
    from bot.handlers.workers import Worker

    lock = sender_lock(settings, role=ROLE_WORKER)
    lock.acquire()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        wiring = Wiring(settings)
        deps = wiring.deps(sending=False)  # accounts' own grants are read per account
        wiring.use_default_deps(deps)
        worker = Worker(
            deps,
            deps_for=wiring.deps_for,
            lease_seconds=settings.worker_lease_seconds,
            sends_per_account=settings.worker_sends_per_account,
            stop=stop,
        )
        err.print(
            f"mailbolt worker {os.getpid()}@{socket.gethostname()} is sending from "
            f"{redact_url(settings.database_url)} (transport: {settings.mail_transport}). "
            "Stop with Ctrl+C; sends under way finish first.",
            soft_wrap=True,
        )
        worker.run()
    finally:
        lock.release()
    err.print("Worker stopped. Other workers go on; its unsent messages stay queued.")
    return 0
