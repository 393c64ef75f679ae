"""Socket Mode end to end: the real ``serve()`` with ``SLACK_APP_TOKEN`` set, Bolt's
``SocketModeHandler`` and slack_sdk's built-in WebSocket client, against a loopback
Socket Mode endpoint and the loopback Web API, down to .eml files in the outbox.

Every request reaches the app as an envelope on the WebSocket, and every answer
is the app's acknowledgement of it; no signing secret is configured anywhere.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.cli.serve_cmds import check_slack, serve, startup_problems
from bot.config import Settings
from bot.slack import views
from bot.slack.app import ListenerExecutor, build_client
from bot.web import WebServer
from tests.conftest import ROOT
from tests.fakes.slack_fake import SlackFake, compose_values, wait_for
from tests.fakes.socket_mode_fake import APP_TOKEN, ENVELOPE_HEADER, SocketModeFake

OWNER, STRANGER = "U0OWNER", "U0STRANGER"
STATUS = "C0STATUS"
VARS = "team=Acme\nstart_url=https://acme.example/start"


# One server for the module: stopping slack_sdk's client takes about 3 s (its reader
# thread sits in a recv() with a 3 s timeout that closing the socket does not cut
# short), so the tests share it and look only at what they themselves caused.


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        fake.add_user(OWNER, "owner@acme.example", "Olive Owner")
        fake.add_user(STRANGER, "stranger@acme.example", "Sam Stranger")
        yield fake


@pytest.fixture(scope="module")
def socket_mode(slack: SlackFake) -> Iterator[SocketModeFake]:
    with SocketModeFake(slack) as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def nothing_refused(slack: SlackFake, socket_mode: SocketModeFake) -> Iterator[None]:
    yield
    assert slack.problems == [], "Slack would have refused something we sent"
    assert socket_mode.problems == [], "the WebSocket conversation broke a rule"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, slack: SlackFake) -> Settings:
    """Settings as ``python -m bot serve`` reads them: an app token, no signing secret."""
    data = tmp_path_factory.mktemp("socket-mode")
    environ = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "ALLOWED_SLACK_USERS": OWNER,
        "MAIL_TRANSPORT": "sandbox",
        "DATABASE_PATH": str(data / "sendmail.db"),
        "SANDBOX_OUTBOX": str(data / "outbox"),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        "FROM_NAME": "Mailbolt Team",
        "SENDER_ADDRESS": "team@mailbolt.example",
        "POSTAL_ADDRESS": "Mailbolt Inc., 1 Harbour Street, Bristol BS1 4QA, UK",
    }
    return Settings.load(environ=environ, env_file=None)


@dataclass
class Served:
    settings: Settings
    web: WebServer
    listeners: ListenerExecutor

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until every listener started so far has finished: Bolt submits a
        request's lazy listeners before it acknowledges the envelope."""
        assert self.listeners.wait_idle(timeout), "listeners still running after the deadline"

    def eml_files(self) -> list[Path]:
        return sorted(Path(self.settings.sandbox_outbox).glob("*.eml"))


@pytest.fixture(scope="module")
def served(settings: Settings, slack: SlackFake, socket_mode: SocketModeFake) -> Iterator[Served]:
    """``serve()`` in a thread, once its start-up checks pass, until ``web.stop()``."""
    assert settings.slack_signing_secret == ""
    assert startup_problems(settings) == ([], [])
    client = build_client(settings)
    assert check_slack(client) == []
    ready: list[WebServer] = []
    started = threading.Event()
    listeners = ListenerExecutor()

    def on_ready(web: WebServer) -> None:
        ready.append(web)
        started.set()

    with pytest.MonkeyPatch.context() as env:
        env.delenv("SLACK_SIGNING_SECRET", raising=False)  # Bolt would fall back to it
        thread = threading.Thread(
            target=serve,
            args=(settings, client, "127.0.0.1", 0),
            kwargs={"ready": on_ready, "listener_executor": listeners},
            daemon=True,
        )
        thread.start()
        assert started.wait(30), "serve() never became ready"
        socket_mode.wait_connected()
        try:
            yield Served(settings, ready[0], listeners)
        finally:
            ready[0].stop()
            thread.join(30)
    assert not thread.is_alive(), "serve() did not stop"
    assert not socket_mode.live(), "the WebSocket stayed open after serve() returned"


def envelope_of(reply: Any, socket_mode: SocketModeFake) -> tuple[dict, dict]:
    """(the envelope an HTTP-style delivery became, the app's acknowledgement of it)."""
    envelope_id = reply.headers[ENVELOPE_HEADER.lower()]
    return socket_mode.envelopes[envelope_id], socket_mode.acks[envelope_id]


def views_opened(slack: SlackFake, trigger: str) -> list[Any]:
    return [c for c in slack.calls_to("views.open") if c.args.get("trigger_id") == trigger]


def open_compose(slack: SlackFake, user: str = OWNER) -> dict[str, Any]:
    """Type /sendmail and wait for the form it opens (the user's newest view)."""
    _, trigger = slack.command("", user=user)
    wait_for(lambda: views_opened(slack, trigger), "views.open")
    return slack.top_view(user)


def post(url: str) -> int:
    request = urllib.request.Request(url, data=b"command=%2Fsendmail", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# -- the connection -----------------------------------------------------------------------


def test_connects_with_the_app_token_and_answers_pings(slack, socket_mode, served):
    opened = slack.calls_to("apps.connections.open")
    assert opened and all(c.status == 200 and not c.error for c in opened)
    tickets = [c.ticket for c in socket_mode.connections]
    assert len(set(tickets)) == len(tickets) == len(opened)  # one fresh ticket each
    connection = socket_mode.wait_connected(len(opened))
    wait_for(lambda: connection.pings, "the client's first ping")
    socket_mode.ping(b"are-you-there")
    wait_for(lambda: b"are-you-there" in socket_mode.pongs, "the client's pong")

    with urllib.request.urlopen(f"{served.web.url}/healthz", timeout=10) as response:
        assert json.loads(response.read())["slack"] == "socket_mode"
    assert post(f"{served.web.url}/slack/events") == 404  # no unsigned way in over HTTP


def test_reconnects_when_slack_asks_and_keeps_working(slack, socket_mode, served):
    before = len(socket_mode.connections)
    socket_mode.request_reconnect()
    socket_mode.wait_connected(count=before + 1)
    assert len(slack.calls_to("apps.connections.open")) == before + 1
    wait_for(lambda: len(socket_mode.live()) == 1, "the old connection to be closed")
    assert open_compose(slack)["callback_id"] == views.CB_COMPOSE


# -- /sendmail, the form, the preview, the send ------------------------------------------------


def test_sendmail_is_acknowledged_in_its_envelope_and_opens_the_form(slack, socket_mode, served):
    reply, trigger = slack.command("", user=OWNER)
    assert reply.status == 200 and reply.body == b""
    envelope, ack = envelope_of(reply, socket_mode)
    assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"]
    assert envelope["payload"]["trigger_id"] == trigger
    assert ack == {"envelope_id": envelope["envelope_id"]}  # an empty acknowledgement
    opened = wait_for(lambda: views_opened(slack, trigger), "views.open")
    assert [(c.status, c.error) for c in opened] == [(200, "")]
    assert slack.top_view(OWNER)["callback_id"] == views.CB_COMPOSE


def test_from_a_bad_line_to_delivered_messages(slack, socket_mode, served):
    compose = open_compose(slack)
    bad = slack.submit_view(
        compose["id"],
        compose_values(paste="ann@example.com\nbob@", variables=VARS, channel=STATUS),
        user=OWNER,
    )
    envelope, ack = envelope_of(bad, socket_mode)
    assert envelope["type"] == "interactive"
    assert envelope["payload"]["type"] == "view_submission"
    assert ack["payload"]["response_action"] == "errors"
    assert set(ack["payload"]["errors"]) == {views.B_RECIPIENTS}
    assert "line 2: 'bob@'" in ack["payload"]["errors"][views.B_RECIPIENTS]

    good = slack.submit_view(
        compose["id"],
        compose_values(
            paste="ann@example.com, Bob Brown <bob@example.com>", variables=VARS, channel=STATUS
        ),
        user=OWNER,
    )
    _, ack = envelope_of(good, socket_mode)
    assert ack["payload"]["response_action"] == "update"
    preview = slack.views[compose["id"]]  # the same modal, now showing the preview
    assert preview["callback_id"] == views.CB_PREVIEW
    assert "*Will send:* 2" in json.dumps(preview["blocks"])

    start = slack.submit_view(preview["id"], {}, user=OWNER)
    _, ack = envelope_of(start, socket_mode)
    assert ack["payload"]["response_action"] == "update"
    assert "Starting" in json.dumps(ack["payload"]["view"]["blocks"])
    files = wait_for(lambda: len(served.eml_files()) == 2 and served.eml_files(), "2 .eml files")
    assert all(b"Subject: Welcome to Acme" in f.read_bytes() for f in files)
    done = wait_for(
        lambda: next((m for m in slack.messages_in(STATUS) if "finished" in m["text"]), None),
        "the status message to say finished",
    )
    assert "sent *2*" in json.dumps(done["blocks"])
    assert done["edits"] >= 1  # posted when the campaign started, then updated


# -- who may send, and Slack's retries ---------------------------------------------------------


def test_someone_not_allowed_gets_a_private_refusal_and_no_form(slack, socket_mode, served):
    reply, trigger = slack.command("", user=STRANGER)
    _, ack = envelope_of(reply, socket_mode)
    assert ack["payload"]["response_type"] == "ephemeral"
    assert "ALLOWED_SLACK_USERS" in ack["payload"]["text"] and STRANGER in ack["payload"]["text"]
    served.settle()
    assert not views_opened(slack, trigger)


def test_a_retried_command_envelope_does_nothing_twice(slack, socket_mode, served):
    open_compose(slack)
    retry, trigger = slack.command("", user=OWNER, retry_num=1)
    envelope, ack = envelope_of(retry, socket_mode)
    assert envelope["retry_attempt"] == 1
    assert ack == {"envelope_id": envelope["envelope_id"]}
    served.settle()
    assert not views_opened(slack, trigger)


def test_an_event_is_handled_once_though_every_event_envelope_has_a_retry_attempt(
    slack, socket_mode, served
):
    opened = {"type": "app_home_opened", "user": OWNER, "channel": "D0OWNER", "tab": "home"}
    first = slack.event(opened)
    envelope, ack = envelope_of(first, socket_mode)
    assert (envelope["type"], envelope["retry_attempt"]) == ("events_api", 0)
    assert ack == {"envelope_id": envelope["envelope_id"]}
    wait_for(lambda: slack.home.get(OWNER), "the Home tab")
    published = len(slack.calls_to("views.publish"))

    retry = slack.event(opened, retry_num=1)
    assert envelope_of(retry, socket_mode)[0]["retry_attempt"] == 1
    served.settle()
    assert len(slack.calls_to("views.publish")) == published
