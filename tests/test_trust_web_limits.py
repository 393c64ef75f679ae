"""Nothing unsigned or malformed costs memory, a 500 or a log line with its body.

Everything goes through the real server (waitress on a free port, the real Bolt
app behind it) over real sockets, including requests no HTTP library would send.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import select
import socket
import time
from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest

from bot.web import MAX_REQUEST_BODY
from tests.fakes.slack_fake import SlackFake, running_mailbolt

MARKER = "SECRET-BODY-MARKER"
CHUNK = 64 * 1024


@pytest.fixture
def fake() -> Iterator[SlackFake]:
    with SlackFake() as slack:
        yield slack


@pytest.fixture
def mailbolt(settings, fake):
    with running_mailbolt(settings.replace(allowed_slack_users="U0OWNER"), fake) as running:
        yield running


@pytest.fixture
def logs(caplog):
    """Every log line at debug level, from every thread of the server."""
    caplog.set_level(logging.DEBUG)
    return caplog


def address(mailbolt) -> tuple[str, int]:
    return "127.0.0.1", mailbolt.server.port


def request(
    mailbolt, method: str, path: str, body: bytes = b"", headers: dict | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*address(mailbolt), timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def signed_headers(secret: str, body: bytes, content_type: str) -> dict[str, str]:
    """Slack's signature over the raw bytes (whatever they are)."""
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": "v0=" + digest.hexdigest(),
    }


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def read_answer(sock: socket.socket) -> bytes:
    """Whatever the server sent before closing (or the first 64 kB of it)."""
    data = b""
    sock.settimeout(30)
    while len(data) < 65536:
        try:
            part = sock.recv(65536)
        except ConnectionResetError:
            break
        if not part:
            break
        data += part
        if b"\r\n\r\n" in data:
            break
    return data


# -- size --------------------------------------------------------------------------


def test_a_huge_declared_body_is_refused_before_it_is_sent(mailbolt, logs):
    """413 arrives while the client has sent only the headers of its 400 MB."""
    with socket.create_connection(address(mailbolt), timeout=30) as sock:
        sock.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 400000000\r\n\r\n" + MARKER.encode()
        )
        answer = read_answer(sock)
    assert status_of(answer) == 413
    assert MARKER not in logs.text


def test_a_huge_chunked_body_is_cut_off_at_the_limit(mailbolt, logs):
    """No length given: the server stops reading soon after the limit, long before the end."""
    sent = 0
    planned = 40 * MAX_REQUEST_BODY
    chunk = (MARKER * (CHUNK // len(MARKER) + 1))[:CHUNK].encode()
    with socket.create_connection(address(mailbolt), timeout=30) as sock:
        sock.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        while sent < planned:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        answer = read_answer(sock)
    assert sent < planned, "the server read the whole body"
    assert answer == b"" or status_of(answer) == 413
    assert MARKER not in logs.text


def test_a_body_just_under_the_limit_is_read_and_then_refused_unsigned(mailbolt):
    body = b"x" * MAX_REQUEST_BODY
    status, _ = request(mailbolt, "POST", "/slack/events", body)
    assert status == 401


# -- signatures and shapes ---------------------------------------------------------------


UNSIGNED = [
    urlencode({"payload": "{not json " + MARKER}).encode(),
    urlencode({"payload": json.dumps([MARKER])}).encode(),
    b"payload=%ZZ" + MARKER.encode(),
    b"\xff\xfe" + MARKER.encode(),
    json.dumps({"type": "event_callback", "event": MARKER}).encode(),
]


@pytest.mark.parametrize("body", UNSIGNED)
def test_unsigned_bodies_get_401_and_one_short_line(mailbolt, logs, body):
    status, answer = request(
        mailbolt,
        "POST",
        "/slack/events",
        body,
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 401 and MARKER.encode() not in answer
    assert MARKER not in logs.text
    refused = [r for r in logs.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and len(refused[0].getMessage()) < 200


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": "9" * 40, "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=é"},
    ],
)
def test_garbage_signature_headers_get_401(mailbolt, headers):
    status, _ = request(mailbolt, "POST", "/slack/events", b"payload=%7B%7D", headers)
    assert status == 401


SIGNED_MALFORMED = [
    (urlencode({"payload": "{not json"}).encode(), "application/x-www-form-urlencoded"),
    (urlencode({"payload": "[1, 2]"}).encode(), "application/x-www-form-urlencoded"),
    (urlencode({"payload": '"text"'}).encode(), "application/x-www-form-urlencoded"),
    (
        urlencode({"payload": json.dumps({"type": "block_actions", "user": 5})}).encode(),
        "application/x-www-form-urlencoded",
    ),
    (b"\xff\xfe\xfd", "application/x-www-form-urlencoded"),
    (b"{broken", "application/json"),
    (b"[]", "application/json"),
    (b"[" * 200_000, "application/json"),
    (b"payload=" + b"%5B" * 200_000, "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize(("body", "content_type"), SIGNED_MALFORMED)
def test_signed_but_malformed_bodies_get_400_not_500(mailbolt, fake, logs, body, content_type):
    headers = signed_headers(fake.signing_secret, body, content_type)
    status, _ = request(mailbolt, "POST", "/slack/events", body, headers)
    assert status == 400
    assert "Traceback" not in logs.text


# -- the unsubscribe endpoint ---------------------------------------------------------------


TOKENS = [
    "",
    "x",
    "v1.1.YW5u.tag",
    "v1.١٢.YW5uQGV4YW1wbGUuY29t.AAAAAAAAAAAAAAAAAAAAAA",
    "v1.1_0.YW5uQGV4YW1wbGUuY29t.AAAAAAAAAAAAAAAAAAAAAA",
    "v1.99999999999999999999999999.YW5uQGV4YW1wbGUuY29t.AAAAAAAAAAAAAAAAAAAAAA",
    "v1.1.YW5uQGV4YW1wbGUuY29t." + "é" * 22,
    "v1.1.YW5uQGV4YW1wbGUuY29t.%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9",
    "v1.1.%FF%FE%00.AAAAAAAAAAAAAAAAAAAAAA",
    "v1.1.4pyT.AAAAAAAAAAAAAAAAAAAAAA",
    "%00%0d%0aSet-Cookie:%20x=1",
    "a/b/../../c",
    "🙂" * 50,
    "v1." * 5000,
    "A" * 100_000,
]


@pytest.mark.parametrize("token", TOKENS, ids=range(len(TOKENS)))
def test_no_token_shape_gets_a_500(mailbolt, logs, token):
    path = "/unsubscribe/" + quote(token, safe="%/.")
    for method, body, headers in [
        ("GET", b"", {}),
        ("HEAD", b"", {}),
        (
            "POST",
            b"List-Unsubscribe=One-Click",
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
    ]:
        status, _ = request(mailbolt, method, path, body, headers)
        assert 400 <= status < 500, (method, token[:40], status)
    assert "Traceback" not in logs.text
    assert mailbolt.deps.store.suppressions.unsubscribed_among(["ann@example.com"]) == set()
