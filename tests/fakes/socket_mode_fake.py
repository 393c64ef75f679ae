"""A loopback Slack Socket Mode endpoint, plugged into ``SlackFake``.

In Socket Mode the app dials out: it calls ``apps.connections.open`` with its
app-level token (``xapp-``), gets a ``wss://`` URL with a one-time ticket, opens a
WebSocket there, and Slack pushes each request down it as an *envelope*
``{"envelope_id", "type", "payload", "accepts_response_payload"}``; the app answers
``{"envelope_id", "payload"?}``, and for a view submission the ``response_action``
travels in that payload. Nothing is signed: the connection itself is the proof.

``SocketModeFake`` is that endpoint on ``127.0.0.1:<free port>``, speaking as much
RFC 6455 as slack_sdk's built-in client (the one Bolt's ``SocketModeHandler``
uses) needs, with the standard library only: the HTTP/1.1 upgrade and
``Sec-WebSocket-Accept``, unfragmented text frames, ping/pong and close. It is
strict where a server must be: client frames have to be masked and unfragmented,
and each connection needs a fresh ticket from ``apps.connections.open``;
anything else is noted in ``problems``. Like Slack, it greets a connection with
``hello``, marks events with ``retry_attempt`` (0 the first time), and can ask
the app to reconnect (``disconnect``).

So the HTTP-mode tests' platform helpers work unchanged, it also becomes the
``SlackFake``'s ``app_url``: ``SlackFake.command``, ``submit_view``, ``click`` and
``event`` post their usual requests to a small bridge, which turns each into the
envelope Slack would push (``slash_commands``, ``interactive``, ``events_api``;
``X-Slack-Retry-Num`` becomes ``retry_attempt``), waits for the app's
acknowledgement, and answers with its payload, so ``SlackFake`` applies a
``response_action`` to its views as it does in HTTP mode.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.slack_fake import SlackFake

APP_TOKEN = "xapp-1-A0FAKE-1-fake-app-token"
APP_ID = "A0FAKE"
#: RFC 6455 §1.3: appended to the client's key to prove the server read it.
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
#: What the client sends: no binary frames, no fragments (continuation frames).
CLIENT_OPCODES = (OP_TEXT, OP_CLOSE, OP_PING, OP_PONG)
#: Slack retries an unacknowledged envelope after 3 s; a test machine may be slow,
#: so the bridge waits longer before it calls an envelope unanswered.
ACK_SECONDS = 15.0
#: The bridge's answer names the envelope it became (a fake's header, not Slack's).
ENVELOPE_HEADER = "X-Fake-Envelope-Id"
MAX_HEADER_LINE = 8192


def _frame(opcode: int, payload: bytes) -> bytes:
    """One unfragmented, unmasked frame: what a server sends (RFC 6455 §5.2)."""
    first = 0x80 | opcode
    if len(payload) < 126:
        head = struct.pack("!BB", first, len(payload))
    elif len(payload) < 1 << 16:
        head = struct.pack("!BBH", first, 126, len(payload))
    else:
        head = struct.pack("!BBQ", first, 127, len(payload))
    return head + payload


def _unmask(data: bytes, mask: bytes) -> bytes:
    key = (mask * (len(data) // 4 + 1))[: len(data)]
    value = int.from_bytes(data, "big") ^ int.from_bytes(key, "big")
    return value.to_bytes(len(data), "big")


def _accept(key: str) -> str:
    digest = hashlib.sha1((key + WS_GUID).encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


def _upgrade_problem(request_line: str, headers: dict[str, str]) -> str:
    """Why this is not a WebSocket upgrade RFC 6455 §4.1 allows ("" when it is)."""
    method, _, rest = request_line.partition(" ")
    if method != "GET" or not rest.endswith(" HTTP/1.1"):
        return f"{request_line!r}: an upgrade is a GET over HTTP/1.1"
    if headers.get("upgrade", "").lower() != "websocket":
        return "no 'Upgrade: websocket' header"
    if "upgrade" not in headers.get("connection", "").lower():
        return "no 'Connection: Upgrade' header"
    if headers.get("sec-websocket-version") != "13":
        return "Sec-WebSocket-Version must be 13"
    try:
        key_ok = len(base64.b64decode(headers.get("sec-websocket-key", ""), validate=True)) == 16
    except ValueError:
        key_ok = False
    return "" if key_ok else "Sec-WebSocket-Key must be 16 random bytes in base64"


def _accepts_response(kind: str, payload: dict[str, Any]) -> bool:
    """Whether Slack reads a payload in the acknowledgement of this envelope."""
    if kind == "slash_commands":
        return True
    return kind == "interactive" and payload.get("type") in ("view_submission", "block_suggestion")


class Connection:
    """One accepted WebSocket: the upgrade, then the client's frames, in its own thread."""

    def __init__(self, fake: SocketModeFake, sock: socket.socket):
        self.fake = fake
        self.sock = sock
        self.rfile = sock.makefile("rb")
        self.ticket = ""
        self.open = False
        self.pings: list[bytes] = []  # the client's pings, each answered with a pong
        self._send_lock = threading.Lock()
        self._close_sent = False
        self.thread = threading.Thread(target=self._serve, name="socket-mode-fake", daemon=True)

    def send(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(_frame(opcode, payload))

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(OP_TEXT, json.dumps(message).encode())

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the client's close frame or EOF ends it."""
        if not self._close_sent:
            self._close_sent = True
            self.send(OP_CLOSE, struct.pack("!H", code) + reason.encode())

    def _serve(self) -> None:
        try:
            if self._upgrade():
                self.open = True
                self.fake._connected(self)
                self._read_frames()
        except (OSError, ValueError):
            pass  # the client went away (it closes without a close frame)
        finally:
            self.open = False
            self.rfile.close()
            self.sock.close()
            self.fake._changed()

    def _upgrade(self) -> bool:
        request_line = self.rfile.readline(MAX_HEADER_LINE).decode("latin-1").strip()
        headers: dict[str, str] = {}
        while line := self.rfile.readline(MAX_HEADER_LINE).decode("latin-1").strip():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        target = request_line.split(" ")[1] if request_line.count(" ") >= 2 else ""
        self.ticket = (parse_qs(urlparse(target).query).get("ticket") or [""])[0]
        problem = _upgrade_problem(request_line, headers)
        if not problem and not self.fake._take_ticket(self.ticket):
            problem = f"ticket {self.ticket!r} was not issued by apps.connections.open, or is used"
        if problem:
            self.fake._problem(f"WebSocket upgrade refused: {problem}")
            self.sock.sendall(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            return False
        self.sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {_accept(headers['sec-websocket-key'])}\r\n\r\n".encode()
        )
        return True

    def _exact(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            raise ConnectionError("the client closed the connection mid-frame")
        return data

    def _read_frames(self) -> None:
        while head := self.rfile.read(2):
            if len(head) < 2:
                return
            fin, reserved, opcode = head[0] & 0x80, head[0] & 0x70, head[0] & 0x0F
            masked, length = head[1] & 0x80, head[1] & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._exact(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._exact(8))
            mask = self._exact(4) if masked else b""
            data = self._exact(length)
            if not masked or reserved or not fin or opcode not in CLIENT_OPCODES:
                what = "unmasked" if not masked else f"unexpected (byte 0 {head[0]:#04x})"
                self.fake._problem(f"the client sent an {what} frame (RFC 6455 §5)")
                self.close(1002, "protocol error")
                return
            data = _unmask(data, mask)
            if opcode == OP_TEXT:
                self.fake._received(data)
            elif opcode == OP_PING:
                self.pings.append(data)
                self.send(OP_PONG, data)
            elif opcode == OP_PONG:
                self.fake._ponged(data)
            else:  # close: answer it unless it answers ours, and stop reading
                if not self._close_sent:
                    self.close(struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1000)
                return


class SocketModeFake:
    """Slack's Socket Mode endpoint for the app, and the bridge that feeds it."""

    def __init__(self, slack: SlackFake, *, app_token: str = APP_TOKEN):
        self.slack = slack
        self.app_token = app_token
        self.problems: list[str] = []
        self.connections: list[Connection] = []
        self.envelopes: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self.pongs: list[bytes] = []
        self._tickets: dict[str, bool] = {}  # ticket → used
        self._cond = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True)
        self._bridge = ThreadingHTTPServer(("127.0.0.1", 0), self._bridge_class())
        self._bridge.daemon_threads = True
        self._bridging = threading.Thread(target=self._bridge.serve_forever, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> SocketModeFake:
        self._accepting.start()
        self._bridging.start()
        self.slack.app_token = self.app_token
        self.slack.socket_url = self.issue_url
        host, port = self._bridge.server_address[:2]
        self.slack.app_url = f"http://{host}:{port}/"
        return self

    def __exit__(self, *exc: object) -> None:
        self.slack.socket_url = None
        self._bridge.shutdown()
        self._bridge.server_close()
        self._listener.close()
        for connection in self.live():
            with contextlib.suppress(OSError):  # the client may be gone already
                connection.close(1001, "going away")
                connection.sock.shutdown(socket.SHUT_RDWR)
            connection.thread.join(5)

    def issue_url(self) -> str:
        """What ``apps.connections.open`` answers: this endpoint with a fresh ticket."""
        ticket = uuid.uuid4().hex
        with self._cond:
            self._tickets[ticket] = False
        host, port = self._listener.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket={ticket}&app_id={APP_ID}"

    # -- the platform's side ---------------------------------------------------------------

    def live(self) -> list[Connection]:
        with self._cond:
            return [c for c in self.connections if c.open]

    def wait_connected(self, count: int = 1, timeout: float = 30.0) -> Connection:
        """The newest open connection, once ``count`` have been opened in all."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: len(self.connections) >= count and self.connections[-1].open, timeout
            ):
                raise AssertionError(f"the app did not open WebSocket connection #{count}")
            return self.connections[-1]

    def deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> str:
        """Push an envelope down the newest connection; returns its ``envelope_id``."""
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": _accepts_response(kind, payload),
        }
        if kind == "events_api" or retry_attempt is not None:
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        connections = self.live()
        if not connections:
            raise AssertionError("the app has no open Socket Mode connection")
        with self._cond:
            self.envelopes[envelope_id] = envelope
        connections[-1].send_json(envelope)
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = ACK_SECONDS) -> dict[str, Any] | None:
        """The app's acknowledgement of an envelope, or None if none came in time."""
        with self._cond:
            self._cond.wait_for(lambda: envelope_id in self.acks, timeout)
            return self.acks.get(envelope_id)

    def ping(self, payload: bytes) -> None:
        """A ping from the server; the client must answer with the same payload."""
        self.live()[-1].send(OP_PING, payload)

    def request_reconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's ``disconnect`` message: the app should open a new connection."""
        self.live()[-1].send_json(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-socket-mode"}}
        )

    # -- called from connection threads -----------------------------------------------------

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            connection = Connection(self, sock)
            with self._cond:
                self.connections.append(connection)
            connection.thread.start()

    def _take_ticket(self, ticket: str) -> bool:
        with self._cond:
            if self._tickets.get(ticket) is not False:
                return False
            self._tickets[ticket] = True
            return True

    def _connected(self, connection: Connection) -> None:
        connection.send_json(
            {
                "type": "hello",
                "num_connections": len(self.live()),
                "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 18060},
                "connection_info": {"app_id": APP_ID},
            }
        )
        self._changed()

    def _received(self, text: bytes) -> None:
        """A text frame from the app: it can only be an acknowledgement."""
        try:
            message = json.loads(text)
        except ValueError:  # not JSON, or not UTF-8 as a text frame must be
            message = {}
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        with self._cond:
            envelope = self.envelopes.get(envelope_id or "")
            if envelope is None:
                self.problems.append(f"the app sent something that acknowledges nothing: {text!r}")
            elif envelope_id in self.acks:
                self.problems.append(f"envelope {envelope_id} was acknowledged twice")
            else:
                if "payload" in message and not envelope["accepts_response_payload"]:
                    self.problems.append(
                        f"a payload in the acknowledgement of a {envelope['type']} envelope, "
                        "which takes none"
                    )
                self.acks[envelope_id] = message
            self._cond.notify_all()

    def _ponged(self, data: bytes) -> None:
        with self._cond:
            self.pongs.append(data)
            self._cond.notify_all()

    def _problem(self, text: str) -> None:
        with self._cond:
            self.problems.append(text)

    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- the bridge: SlackFake's HTTP deliveries → envelopes ------------------------------------

    def _bridge_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Bridge(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                kind, payload = _envelope_content(self.headers.get("Content-Type") or "", raw)
                retry = self.headers.get("X-Slack-Retry-Num")
                envelope_id = fake.deliver(
                    kind,
                    payload,
                    retry_attempt=int(retry) if retry else None,
                    retry_reason=self.headers.get("X-Slack-Retry-Reason"),
                )
                ack = fake.wait_ack(envelope_id)
                if ack is None:
                    fake._problem(f"envelope {envelope_id} ({kind}) was never acknowledged")
                    status, body = 504, b""
                else:
                    status = 200
                    body = json.dumps(ack["payload"]).encode() if ack.get("payload") else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header(ENVELOPE_HEADER, envelope_id)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Bridge


def _envelope_content(content_type: str, raw: bytes) -> tuple[str, dict[str, Any]]:
    """An HTTP-mode delivery as (envelope type, payload): the same data, unwrapped."""
    if content_type.startswith("application/json"):
        return "events_api", json.loads(raw)
    form = {
        name: values[0] for name, values in parse_qs(raw.decode(), keep_blank_values=True).items()
    }
    if "payload" in form:
        return "interactive", json.loads(form["payload"])
    return "slash_commands", form
