"""Socket Mode after a reconnect: how soon is a request acknowledged, and is any lost?

Slack asks a Socket Mode app to reconnect (a ``disconnect`` message) every few
hours, and gives every request 3 seconds to be acknowledged. This drives Bolt's
Socket Mode handlers against the loopback Socket Mode fake: after each
``disconnect`` it waits a given offset, delivers a ``/sendmail`` envelope on the
newest open connection and times the acknowledgement. It also reports the
acknowledgement latency with no reconnect, how many ``apps.connections.open``
calls each reconnect costs, and how long the handler takes to close.

Compared: slack_sdk's built-in client (what ``serve`` uses) as is and with its
read-related options changed, and, when the ``websocket-client`` package is
installed, Bolt's adapter for it. Numbers, not assertions:
``python bench/socket_mode_reconnect.py``.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slack_bolt import Ack, App  # noqa: E402
from slack_bolt.adapter.socket_mode import SocketModeHandler  # noqa: E402
from slack_bolt.adapter.socket_mode.base_handler import BaseSocketModeHandler  # noqa: E402
from slack_sdk import WebClient  # noqa: E402

from tests.fakes.slack_fake import SlackFake  # noqa: E402
from tests.fakes.socket_mode_fake import APP_TOKEN, SocketModeFake  # noqa: E402

#: Seconds after Slack's ``disconnect`` at which a request arrives.
OFFSETS = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0)
SLACK_DEADLINE = 3.0
#: Longer than any stall measured; an envelope still unanswered then never will be.
GIVE_UP_SECONDS = 10.0
LABEL = 38

Handler = Callable[[App], BaseSocketModeHandler]


def candidates() -> list[tuple[str, Handler]]:
    found: list[tuple[str, Handler]] = [
        ("built-in (serve)", lambda app: SocketModeHandler(app, APP_TOKEN)),
        (
            "built-in, ping 1 s, 16 KiB, 20 workers",
            lambda app: SocketModeHandler(
                app, APP_TOKEN, ping_interval=1, receive_buffer_size=16384, concurrency=20
            ),
        ),
    ]
    try:
        from slack_bolt.adapter.socket_mode.websocket_client import (
            SocketModeHandler as WebSocketClientHandler,
        )
    except ImportError:
        print("(websocket-client is not installed: pip install websocket-client to compare it)")
    else:
        found.append(("websocket-client", lambda app: WebSocketClientHandler(app, APP_TOKEN)))
    return found


def command() -> dict[str, Any]:
    return {
        "command": "/sendmail",
        "text": "",
        "user_id": "U0BENCH",
        "team_id": "T0BENCH",
        "channel_id": "C0BENCH",
        "trigger_id": "1.2.bench",
        "response_url": "https://hooks.slack.invalid/commands/1",
        "api_app_id": "A0FAKE",
    }


def ack_now(endpoint: SocketModeFake) -> str:
    """Deliver one envelope now; its acknowledgement latency, or what went wrong."""
    try:
        envelope_id = endpoint.deliver("slash_commands", command())
    except AssertionError:
        return "no connection"
    sent = time.perf_counter()
    if endpoint.wait_ack(envelope_id, GIVE_UP_SECONDS) is None:
        return "never acked"
    seconds = time.perf_counter() - sent
    return f"{seconds * 1000:.0f} ms" + (" LATE" if seconds > SLACK_DEADLINE else "")


def settle(endpoint: SocketModeFake, count: int) -> None:
    """Wait for the new connection and for the old one to be gone."""
    endpoint.wait_connected(count)
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while len(endpoint.live()) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)


def measure(make: Handler) -> tuple[float, list[str], float, float]:
    """(steady ack ms, result per offset, opens per reconnect, close seconds)."""
    with SlackFake() as slack, SocketModeFake(slack) as endpoint:
        client = WebClient(token=slack.bot_token, base_url=slack.api_url)
        app = App(client=client, token_verification_enabled=False, signing_secret="")

        @app.command("/sendmail")
        def sendmail(ack: Ack) -> None:
            ack()

        handler = make(app)
        handler.connect()
        settle(endpoint, 1)
        steady = []
        for _ in range(5):
            envelope_id = endpoint.deliver("slash_commands", command())
            sent = time.perf_counter()
            endpoint.wait_ack(envelope_id, GIVE_UP_SECONDS)
            steady.append((time.perf_counter() - sent) * 1000)
        opened = len(slack.calls_to("apps.connections.open"))
        results = []
        for offset in OFFSETS:
            count = len(endpoint.connections) + 1
            endpoint.request_reconnect()
            time.sleep(offset)
            results.append(ack_now(endpoint))
            settle(endpoint, count)
        per_reconnect = (len(slack.calls_to("apps.connections.open")) - opened) / len(OFFSETS)
        started = time.perf_counter()
        handler.close()
        return statistics.median(steady), results, per_reconnect, time.perf_counter() - started


def main() -> int:
    logging.disable(logging.CRITICAL)  # the clients log each failed acknowledgement at length
    rows = [(name, *measure(make)) for name, make in candidates()]
    names = [name for name, *_ in rows]
    width = max(len(name) for name in names) + 2
    print(
        "\nAcknowledgement of a request arriving some seconds after Slack's disconnect"
        f" (LATE: over Slack's {SLACK_DEADLINE:.0f} s)\n"
    )
    print(f"{'':<{LABEL}}" + "".join(f"{name:>{width}}" for name in names))
    for i, offset in enumerate(OFFSETS):
        print(f"{f'{offset:.2f} s after':<{LABEL}}" + "".join(f"{r[2][i]:>{width}}" for r in rows))
    print()
    for label, index, unit in (
        ("ack with no reconnect (median)", 1, " ms"),
        ("apps.connections.open per reconnect", 3, ""),
        ("close()", 4, " s"),
    ):
        print(f"{label:<{LABEL}}" + "".join(f"{f'{r[index]:.2f}{unit}':>{width}}" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
