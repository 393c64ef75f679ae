"""A loopback Gmail API and Google OAuth server that the real client libraries talk to.

Why it exists: googleapiclient, google-auth and httplib2 have behaviours that
only show up on a real socket (httplib2 silently re-sending a request whose
response was lost, upload URLs keeping ``https``, 401 → refresh → retry).
Mocking the client would hide exactly those, so tests point the real client at
this server instead.

How it is wired:
- It speaks **TLS only**, on one port. Media-upload URLs keep ``https://`` even
  when ``api_endpoint`` is ``http://…`` (the client swaps only host and port), so
  a plain-HTTP fake could not serve uploads. A throwaway CA from ``trustme``
  signs a certificate for ``127.0.0.1``/``localhost``; its PEM is written to
  ``ca_file``. ``env()`` returns the variables that make the code under test
  trust it: ``HTTPLIB2_CA_CERTS`` (read by mailbolt when it builds each
  ``httplib2.Http``) and ``REQUESTS_CA_BUNDLE`` (requests, used by the OAuth
  installed-app flow), plus ``GMAIL_API_URL`` and ``GOOGLE_TOKEN_URI``.
- Which scopes each method accepts is read from the discovery document bundled
  with googleapiclient, so a ``gmail.send``-only token gets the same 403 from
  ``getProfile`` or ``messages.list`` as from Google.
- Quota: units per user over a sliding minute (429 ``rateLimitExceeded`` with
  ``Retry-After``), a rolling-24-hour sending cap answered like Gmail's
  (429 "User-rate limit exceeded.  Retry after <time> (Mail sending)"), and an
  optional concurrency cap. Each Google account (the ``email`` of its grants)
  has its own quota and day, as at Google; ``user_units_per_minute`` gives one
  user another ceiling.
- Several people: the consent screen signs in as ``login_hint`` (else
  ``email_address``), so two Slack users can each connect their own account.
  The web-server flow is served too: any redirect URI in ``web_redirect_uris``,
  PKCE checked at the token exchange, and ``POST /revoke``.
- Faults are queued per method (``send``, ``list``, ``get``, ``profile``,
  ``token`` or ``any``) and consumed one per request; ``chaos()`` adds seeded
  random faults to sends. "Accepted then response lost" records the message and
  closes the socket unanswered, which is what a duplicate-send test needs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.policy
import email.utils
import hashlib
import json
import random
import re
import secrets
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import googleapiclient
import trustme

from bot.handlers.quota import GET_UNITS, LIST_UNITS, PROFILE_UNITS, SEND_UNITS

SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"
READONLY_SCOPE = "https://www.googleapis.com/auth/gmail.readonly"
METADATA_SCOPE = "https://www.googleapis.com/auth/gmail.metadata"
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"

METHOD_UNITS = {"send": SEND_UNITS, "list": LIST_UNITS, "get": GET_UNITS, "profile": PROFILE_UNITS}
DAY = 86_400.0
MINUTE = 60.0

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_API_PATH = re.compile(r"^/(?P<upload>upload/)?gmail/v1/users/(?P<user>[^/]+)/(?P<rest>.+)$")


def google_error(code: int, reason: str, message: str) -> dict[str, Any]:
    """An error body shaped like Google's JSON APIs (what ``HttpError`` parses)."""
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": _STATUS_NAMES.get(code, "UNKNOWN"),
        }
    }


#: Ready-made errors for ``fail_next(preset=...)`` and ``chaos()``.
PRESETS: dict[str, tuple[int, str, str]] = {
    "400": (400, "invalidArgument", "Invalid To header"),
    "403": (403, "forbidden", "Forbidden"),
    "429": (429, "rateLimitExceeded", "Too many concurrent requests for user."),
    "500": (500, "backendError", "Internal error encountered."),
    "503": (503, "backendError", "The service is currently unavailable."),
}


def _method_scopes() -> dict[str, frozenset[str]]:
    """Scopes each method accepts, from the discovery document the client ships."""
    path = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "gmail.v1.json"
    users = json.loads(path.read_text())["resources"]["users"]
    messages = users["resources"]["messages"]["methods"]
    return {
        "send": frozenset(messages["send"]["scopes"]),
        "list": frozenset(messages["list"]["scopes"]),
        "get": frozenset(messages["get"]["scopes"]),
        "profile": frozenset(users["methods"]["getProfile"]["scopes"]),
    }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _bare_id(message_id: str) -> str:
    return message_id.strip().strip("<>").strip()


@dataclass
class StoredMessage:
    """One message in the fake mailbox (sent through the API or injected)."""

    id: str
    thread_id: str
    raw: bytes
    message: EmailMessage
    label_ids: list[str]
    internal_date: int  # milliseconds since the epoch, like Gmail
    #: The Google account whose grant sent it ("" for injected messages).
    account: str = ""

    @property
    def message_id(self) -> str:
        return _bare_id(str(self.message.get("Message-ID", "")))

    def addresses(self, *headers: str) -> list[str]:
        values = [str(v) for h in headers for v in self.message.get_all(h, [])]
        return [addr.lower() for _, addr in email.utils.getaddresses(values) if addr]


@dataclass
class Fault:
    """One injected misbehaviour, consumed by the next matching request.

    ``kind``: ``status`` (answer ``status``/``body``/``headers``), ``reset`` (RST
    right after reading the request headers: nothing recorded), ``drop`` (record
    the message, then close without answering; ``rst`` chooses RST over FIN),
    ``stall`` (record, wait ``seconds``, then answer).
    """

    kind: str
    method: str = "send"
    status: int = 0
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    rst: bool = False


@dataclass
class _Grant:
    refresh_token: str
    scopes: frozenset[str]
    email: str = ""
    revoked: bool = False


@dataclass
class _Code:
    grant: _Grant
    redirect_uri: str
    challenge: str | None


class _Done(Exception):
    """The connection was deliberately closed; the handler must not answer."""


class FakeGmail:
    """The fake server. Use as a context manager or call ``start()``/``stop()``."""

    def __init__(
        self,
        *,
        email_address: str = "sender@example.com",
        client_id: str = "fake-client.apps.googleusercontent.com",
        client_secret: str = "fake-client-secret",  # noqa: S107 - a test fixture
        units_per_minute: int = 6000,
        daily_send_limit: int | None = None,
        max_concurrent: int | None = None,
        token_lifetime: int = 3600,
        latency_ms: int = 0,
        idle_timeout: float = 30.0,
        clock: Any = time.time,
        workdir: Path | None = None,
    ):
        self.email_address = email_address
        self.client_id = client_id
        self.client_secret = client_secret
        self.units_per_minute = units_per_minute
        self.daily_send_limit = daily_send_limit
        self.max_concurrent = max_concurrent
        self.token_lifetime = token_lifetime
        self.latency_ms = latency_ms
        #: While this is an unset Event, every send waits for it before Gmail
        #: records it: a send "still being processed" for as long as a test wants.
        self.hold_sends: threading.Event | None = None
        #: Seconds a keep-alive connection may sit idle before the server closes it.
        self.idle_timeout = idle_timeout
        self.clock = clock
        #: Scopes the simulated user ticks on the consent screen (None: all asked).
        self.consent_scopes: set[str] | None = None
        self.deny_consent = False
        #: Redirect URIs registered for the web client ("Connect your Gmail").
        self.web_redirect_uris: set[str] = set()
        #: Per-user ceilings that differ from ``units_per_minute``.
        self.user_units_per_minute: dict[str, int] = {}
        #: Refresh tokens revoked through ``POST /revoke``.
        self.revoked_by_request: list[str] = []
        self.too_many_by_user: Counter[str] = Counter()

        self.messages: dict[str, StoredMessage] = {}
        self.sent: list[StoredMessage] = []
        self.accepted_by_message_id: Counter[str] = Counter()
        self.requests_by_path: Counter[str] = Counter()
        self.too_many_requests = 0
        self.connections_closed = 0

        self._lock = threading.RLock()
        self._scopes = _method_scopes()
        self._grants: dict[str, _Grant] = {}
        self._access: dict[str, tuple[_Grant, float]] = {}
        self._codes: dict[str, _Code] = {}
        self._issued: list[str] = [client_secret]
        self._faults: list[Fault] = []
        self._connection_resets = 0
        self._chaos: list[tuple[str, float]] = []
        self._rng = random.Random(0)
        self._units: dict[str, deque[tuple[float, int]]] = {}
        self._sends: dict[str, deque[float]] = {}
        self._in_flight = 0
        self._history = 1000
        self._connections: set[socket.socket] = set()

        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="gmail-fake-")) if workdir is None else workdir
        ca = trustme.CA()
        self.ca_file = self.workdir / "fake-google-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._server = _Server(self, context)
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FakeGmail:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        with self._lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> FakeGmail:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    @property
    def token_uri(self) -> str:
        return f"{self.api_url}token"

    @property
    def auth_uri(self) -> str:
        return f"{self.api_url}o/oauth2/auth"

    def env(self) -> dict[str, str]:
        """Environment for code under test: endpoints plus trust in the fake CA."""
        return {
            "GMAIL_API_URL": self.api_url,
            "GOOGLE_TOKEN_URI": self.token_uri,
            "HTTPLIB2_CA_CERTS": str(self.ca_file),
            "REQUESTS_CA_BUNDLE": str(self.ca_file),
        }

    def client_secrets(self) -> dict[str, Any]:
        """The ``credentials.json`` a "Desktop app" OAuth client would download."""
        return {
            "installed": {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "auth_uri": self.auth_uri,
                "token_uri": self.token_uri,
                "redirect_uris": ["http://localhost"],
            }
        }

    # -- grants and tokens -------------------------------------------------

    def grant(
        self,
        scopes: Iterable[str] = (SEND_SCOPE,),
        *,
        expires_in: float | None = None,
        email: str | None = None,
    ) -> dict[str, Any]:
        """A fresh grant as authorized-user info (the content of a token file)."""
        with self._lock:
            grant = self._new_grant(frozenset(scopes), email or self.email_address)
            token, expires_at = self._issue(grant, expires_in)
        expiry = datetime.fromtimestamp(expires_at, UTC).replace(tzinfo=None)
        return {
            "token": token,
            "refresh_token": grant.refresh_token,
            "token_uri": self.token_uri,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scopes": sorted(grant.scopes),
            "expiry": expiry.isoformat() + "Z",
            "account": grant.email,
        }

    def revoke(self, refresh_token: str | None = None, *, email: str | None = None) -> None:
        """Revoke one grant, every grant of ``email``, or all: refreshes then get
        ``invalid_grant`` and access tokens stop working."""
        with self._lock:
            for grant in self._grants.values():
                if email is not None:
                    if grant.email == email:
                        grant.revoked = True
                elif refresh_token in (None, grant.refresh_token):
                    grant.revoked = True

    def sent_by(self, email: str) -> list[StoredMessage]:
        """The messages sent with ``email``'s grants."""
        with self._lock:
            return [m for m in self.sent if m.account == email]

    def expire_access_tokens(self) -> None:
        """Make every issued access token invalid server-side (the client won't know)."""
        with self._lock:
            self._access.clear()

    def issued_tokens(self) -> list[str]:
        """Every secret this server has handed out (for no-secrets-in-logs tests)."""
        with self._lock:
            return list(self._issued)

    def _new_grant(self, scopes: frozenset[str], email: str) -> _Grant:
        grant = _Grant("1//fake-refresh-" + secrets.token_urlsafe(24), scopes, email)
        self._grants[grant.refresh_token] = grant
        self._issued.append(grant.refresh_token)
        return grant

    def _issue(self, grant: _Grant, expires_in: float | None = None) -> tuple[str, float]:
        token = "ya29.fake-access-" + secrets.token_urlsafe(24)
        self._issued.append(token)
        expires_at = self.clock() + (self.token_lifetime if expires_in is None else expires_in)
        self._access[token] = (grant, expires_at)
        return token, expires_at

    def _id_token(self, email: str) -> str:
        now = int(self.clock())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": self.client_id,
            "sub": str(int(hashlib.sha256(email.encode()).hexdigest()[:15], 16)),
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }
        header = {"alg": "RS256", "kid": "fake", "typ": "JWT"}
        return ".".join(
            [_b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode()), "c2ln"]
        )

    # -- faults ------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def fail_next(
        self,
        status: int | None = None,
        *,
        preset: str | None = None,
        reason: str = "backendError",
        message: str = "Injected failure.",
        retry_after: float | None = None,
        method: str = "send",
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching requests with a Google-shaped error."""
        if preset is not None:
            status, reason, message = PRESETS[preset]
        assert status is not None, "give a status or a preset"
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        for _ in range(times):
            self.inject(
                Fault(
                    "status",
                    method,
                    status=status,
                    body=google_error(status, reason, message),
                    headers=headers,
                )
            )

    def drop_next_response(self, *, method: str = "send", rst: bool = False) -> None:
        """Accept and record the next request, then close the socket unanswered."""
        self.inject(Fault("drop", method, rst=rst))

    def reset_next_request(self, *, method: str = "send") -> None:
        """Reset the connection after reading the request headers; record nothing."""
        self.inject(Fault("reset", method))

    def stall_next(self, seconds: float, *, method: str = "send") -> None:
        """Accept and record the next request but answer only after ``seconds``."""
        self.inject(Fault("stall", method, seconds=seconds))

    def reset_next_connection(self, times: int = 1) -> None:
        """Reset the next new TCP connection before the TLS handshake."""
        with self._lock:
            self._connection_resets += times

    def chaos(self, rates: Mapping[str, float], seed: int = 0) -> None:
        """Random faults on sends: ``{"500": 0.05, "drop": 0.01, "reset": 0.01, ...}``."""
        for name in rates:
            assert name in PRESETS or name in ("drop", "reset"), name
        with self._lock:
            self._chaos = list(rates.items())
            self._rng = random.Random(seed)

    def _take_fault(self, method: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.method in (method, "any"):
                    return self._faults.pop(i)
            if method != "send":
                return None
            for name, rate in self._chaos:
                if self._rng.random() < rate:
                    if name in ("drop", "reset"):
                        return Fault(name, method)
                    status, reason, message = PRESETS[name]
                    return Fault("status", method, status, google_error(status, reason, message))
            return None

    def _take_connection_reset(self) -> bool:
        with self._lock:
            if self._connection_resets:
                self._connection_resets -= 1
                return True
            return False

    # -- mailbox -----------------------------------------------------------

    def add_message(
        self, raw: bytes, label_ids: Iterable[str] = ("INBOX", "UNREAD"), *, at: float | None = None
    ) -> str:
        """Put any message in the mailbox (for bounce scanning and the like)."""
        with self._lock:
            return self._store(raw, list(label_ids), self.clock() if at is None else at).id

    def bounce(self, sent: StoredMessage, recipient: str, status: str = "5.1.1") -> str:
        """Deliver a DSN (RFC 3464) for ``sent`` to the inbox, as mailer-daemon does."""
        boundary = "00000000000000fake" + secrets.token_hex(4)
        headers = sent.raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("utf-8", "replace")
        dsn = (
            f"From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n"
            f"To: {self.email_address}\r\n"
            f"Subject: Delivery Status Notification (Failure)\r\n"
            f"Message-ID: <{secrets.token_hex(8)}@mx.google.com>\r\n"
            f"Date: {email.utils.formatdate()}\r\n"
            f"MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; boundary="{boundary}"; '
            f"report-type=delivery-status\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
            f"Address not found: your message wasn't delivered to {recipient}.\r\n"
            f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; googlemail.com\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; 550 {status} The email account does not exist.\r\n"
            f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"{headers}\r\n"
            f"--{boundary}--\r\n"
        )
        return self.add_message(dsn.encode())

    def _store(
        self, raw: bytes, label_ids: list[str], at: float, account: str = ""
    ) -> StoredMessage:
        parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        msg_id = secrets.token_hex(8)
        stored = StoredMessage(msg_id, msg_id, raw, parsed, label_ids, int(at * 1000), account)
        self.messages[msg_id] = stored
        self._history += 1
        return stored

    # -- request handling --------------------------------------------------

    def _handle(self, handler: _Handler, verb: str) -> None:
        url = urlsplit(handler.path)
        query = parse_qs(url.query, keep_blank_values=True)
        with self._lock:
            self.requests_by_path[url.path] += 1
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        hold = self.hold_sends
        if hold is not None and url.path.endswith("/messages/send"):
            hold.wait(60)
        if verb == "POST" and url.path == "/token":
            fault = self._take_fault("token")
            self._before_body(handler, fault)
            self._token(handler, fault)
            return
        if verb == "GET" and url.path == "/o/oauth2/auth":
            self._authorize(handler, query)
            return
        if verb == "POST" and url.path == "/revoke":
            self._revoke_request(handler)
            return
        match = _API_PATH.match(url.path)
        method, item = self._route(verb, match)
        if method is None or match is None:
            handler.read_body()
            handler.send_json(404, google_error(404, "notFound", "Not Found"))
            return
        fault = self._take_fault(method)
        self._before_body(handler, fault)
        body = handler.read_body()
        status, payload, headers = self._api(handler, method, item, match, query, body, fault)
        if status == 429:
            with self._lock:
                self.too_many_by_user[self._user_of(handler)] += 1
        if fault is not None and fault.kind == "drop":
            handler.abort(rst=fault.rst)
        handler.send_json(status, payload, headers)

    def _before_body(self, handler: _Handler, fault: Fault | None) -> None:
        if fault is not None and fault.kind == "reset":
            handler.abort(rst=True)

    @staticmethod
    def _route(verb: str, match: re.Match[str] | None) -> tuple[str | None, str | None]:
        if match is None:
            return None, None
        rest, upload = match["rest"], bool(match["upload"])
        if verb == "POST" and rest == "messages/send":
            return "send", None
        if upload:
            return None, None
        if verb == "GET" and rest == "messages":
            return "list", None
        if verb == "GET" and rest == "profile":
            return "profile", None
        if verb == "GET" and rest.startswith("messages/") and rest.count("/") == 1:
            return "get", rest.split("/", 1)[1]
        return None, None

    def _api(
        self,
        handler: _Handler,
        method: str,
        item: str | None,
        match: re.Match[str],
        query: dict[str, list[str]],
        body: bytes,
        fault: Fault | None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        auth = handler.headers.get("Authorization", "")
        with self._lock:
            token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
            grant, expires_at = self._access.get(token, (None, 0.0))
            if grant is None or grant.revoked or expires_at <= self.clock():
                return self._unauthorized()
            if unquote(match["user"]) not in ("me", grant.email):
                return (
                    403,
                    google_error(403, "forbidden", f"Delegation denied for {match['user']}"),
                    {},
                )
            if not grant.scopes & self._scopes[method]:
                return self._insufficient_scope()
            metadata_only = not (grant.scopes & (self._scopes[method] - {METADATA_SCOPE}))
        if fault is not None and fault.kind == "status":
            return self._count(fault.status), fault.body or {}, fault.headers
        with self._lock:
            if self.max_concurrent is not None and self._in_flight >= self.max_concurrent:
                return self._too_many(
                    google_error(429, "rateLimitExceeded", "Too many concurrent requests for user.")
                )
            limited = self._charge(method, grant.email)
            if limited is not None:
                return limited
            self._in_flight += 1
        try:
            if method == "send":
                answer = self._send(handler, match, query, body, grant.email)
            elif method == "list":
                answer = self._list(query, metadata_only)
            elif method == "get":
                answer = self._get(item or "", query, metadata_only)
            else:
                answer = 200, self._profile(), {}
            if fault is not None and fault.kind == "stall":
                time.sleep(fault.seconds)  # still counted as in flight
            return answer
        finally:
            with self._lock:
                self._in_flight -= 1

    def _count(self, status: int) -> int:
        if status == 429:
            with self._lock:
                self.too_many_requests += 1
        return status

    def _too_many(
        self, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        return self._count(429), body, headers or {}

    @staticmethod
    def _unauthorized() -> tuple[int, dict[str, Any], dict[str, str]]:
        body = google_error(
            401,
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
        )
        body["error"]["errors"][0].update(location="Authorization", locationType="header")
        return 401, body, {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}

    @staticmethod
    def _insufficient_scope() -> tuple[int, dict[str, Any], dict[str, str]]:
        body = google_error(
            403, "insufficientPermissions", "Request had insufficient authentication scopes."
        )
        body["error"]["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": {"service": "gmail.googleapis.com", "method": "caribou.api.proto"},
            }
        ]
        headers = {
            "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
            'error="insufficient_scope"'
        }
        return 403, body, headers

    def _charge(self, method: str, user: str) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """Spend ``user``'s quota units (and a daily send) or say why not. Caller holds
        the lock."""
        now = self.clock()
        sends = self._sends.setdefault(user, deque())
        units = self._units.setdefault(user, deque())
        ceiling = self.user_units_per_minute.get(user, self.units_per_minute)
        if method == "send" and self.daily_send_limit is not None:
            while sends and sends[0] <= now - DAY:
                sends.popleft()
            if len(sends) >= self.daily_send_limit:
                resume = datetime.fromtimestamp(sends[0] + DAY, UTC)
                when = resume.strftime("%Y-%m-%dT%H:%M:%S.") + f"{resume.microsecond // 1000:03d}Z"
                message = f"User-rate limit exceeded.  Retry after {when} (Mail sending)"
                return self._too_many(google_error(429, "rateLimitExceeded", message))
        cost = METHOD_UNITS[method]
        while units and units[0][0] < now - MINUTE:
            units.popleft()
        used = sum(spent for _, spent in units)
        if used + cost > ceiling:
            freed, wait = 0, 1.0
            for at, spent in units:
                freed += spent
                if used - freed + cost <= ceiling:
                    wait = max(1.0, at + MINUTE - now)
                    break
            message = (
                "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per "
                "user' of service 'gmail.googleapis.com' for consumer 'project_number:0'."
            )
            return self._too_many(
                google_error(429, "rateLimitExceeded", message),
                {"Retry-After": str(int(wait + 0.999))},
            )
        units.append((now, cost))
        if method == "send":
            sends.append(now)
        return None

    def _send(
        self,
        handler: _Handler,
        match: re.Match[str],
        query: dict[str, list[str]],
        body: bytes,
        user: str = "",
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            raw = self._raw_from_request(handler, bool(match["upload"]), query, body)
        except ValueError as exc:
            return 400, google_error(400, "invalidArgument", str(exc)), {}
        parsed = BytesParser(policy=email.policy.default).parsebytes(raw, headersonly=True)
        values = [str(v) for h in ("To", "Cc", "Bcc") for v in parsed.get_all(h, [])]
        recipients = [addr for _, addr in email.utils.getaddresses(values)]
        if not recipients:
            return 400, google_error(400, "invalidArgument", "Recipient address required"), {}
        if any(
            "@" not in addr or addr.startswith("@") or addr.endswith("@") for addr in recipients
        ):
            return 400, google_error(400, "invalidArgument", "Invalid To header"), {}
        with self._lock:
            stored = self._store(raw, ["SENT"], self.clock(), user)
            self.sent.append(stored)
            self.accepted_by_message_id[stored.message_id] += 1
        return 200, {"id": stored.id, "threadId": stored.thread_id, "labelIds": ["SENT"]}, {}

    @staticmethod
    def _raw_from_request(
        handler: _Handler, upload: bool, query: dict[str, list[str]], body: bytes
    ) -> bytes:
        if not upload:
            try:
                return _b64url_decode(json.loads(body)["raw"])
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                raise ValueError(f"Invalid value for ByteString: {exc}") from exc
        kind = query.get("uploadType", [""])[0]
        if kind == "media":
            return body
        if kind == "multipart":
            return _multipart_media(body, handler.headers.get("Content-Type", ""))
        raise ValueError(f"Unsupported uploadType {kind!r}")

    def _list(
        self, query: dict[str, list[str]], metadata_only: bool
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        q = query.get("q", [""])[0]
        if q and metadata_only:
            return (
                403,
                google_error(403, "forbidden", "Metadata scope does not support 'q' parameter"),
                {},
            )
        try:
            terms = _parse_query(q)
        except ValueError as exc:
            return 400, google_error(400, "invalidArgument", str(exc)), {}
        include_spam_trash = query.get("includeSpamTrash", ["false"])[0] == "true"
        labels = set(query.get("labelIds", []))
        limit = min(int(query.get("maxResults", ["100"])[0]), 500)
        offset = int(query.get("pageToken", ["0"])[0] or 0)
        with self._lock:
            now = self.clock()
            found = [
                m
                for m in sorted(self.messages.values(), key=lambda m: -m.internal_date)
                if (include_spam_trash or not {"SPAM", "TRASH"} & set(m.label_ids))
                and labels <= set(m.label_ids)
                and all(_matches(m, k, v, now) for k, v in terms)
            ]
        page = found[offset : offset + limit]
        result: dict[str, Any] = {"resultSizeEstimate": len(found)}
        if page:
            result["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if offset + limit < len(found):
            result["nextPageToken"] = str(offset + limit)
        return 200, result, {}

    def _get(
        self, item: str, query: dict[str, list[str]], metadata_only: bool
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        fmt = query.get("format", ["full"])[0]
        if metadata_only and fmt in ("full", "raw"):
            message = f"Metadata scope doesn't allow format {fmt.upper()}"
            return 403, google_error(403, "forbidden", message), {}
        with self._lock:
            stored = self.messages.get(item)
        if stored is None:
            return 404, google_error(404, "notFound", "Requested entity was not found."), {}
        result: dict[str, Any] = {
            "id": stored.id,
            "threadId": stored.thread_id,
            "labelIds": stored.label_ids,
            "historyId": str(self._history),
            "internalDate": str(stored.internal_date),
            "sizeEstimate": len(stored.raw),
        }
        if fmt == "minimal":
            return 200, result, {}
        result["snippet"] = _snippet(stored.message)
        if fmt == "raw":
            result["raw"] = base64.urlsafe_b64encode(stored.raw).decode("ascii")
        elif fmt == "metadata":
            wanted = {h.lower() for h in query.get("metadataHeaders", [])}
            headers = [
                {"name": k, "value": str(v)}
                for k, v in stored.message.items()
                if not wanted or k.lower() in wanted
            ]
            result["payload"] = {"mimeType": stored.message.get_content_type(), "headers": headers}
        else:
            result["payload"] = _payload(stored.message, "")
        return 200, result, {}

    def _profile(self) -> dict[str, Any]:
        with self._lock:
            return {
                "emailAddress": self.email_address,
                "messagesTotal": len(self.messages),
                "threadsTotal": len({m.thread_id for m in self.messages.values()}),
                "historyId": str(self._history),
            }

    # -- OAuth -------------------------------------------------------------

    def _authorize(self, handler: _Handler, query: dict[str, list[str]]) -> None:
        """The consent screen, already clicked through: redirect back with a code."""
        arg = {k: v[0] for k, v in query.items()}
        redirect = arg.get("redirect_uri", "")
        loopback = redirect.startswith(("http://localhost", "http://127.0.0.1"))
        if arg.get("client_id") != self.client_id or not (
            loopback or redirect in self.web_redirect_uris
        ):
            handler.send_json(400, {"error": "invalid_request"})
            return
        back = {"state": arg.get("state", "")}
        if self.deny_consent:
            back["error"] = "access_denied"
        else:
            asked = set(arg.get("scope", "").split())
            granted = asked if self.consent_scopes is None else asked & self.consent_scopes
            with self._lock:
                code = "4/fake-code-" + secrets.token_urlsafe(16)
                self._issued.append(code)
                grant = self._new_grant(
                    frozenset(granted), arg.get("login_hint") or self.email_address
                )
                self._codes[code] = _Code(grant, redirect, arg.get("code_challenge"))
            back.update(code=code, scope=" ".join(sorted(granted)))
        handler.send_response(302)
        handler.send_header("Location", f"{redirect}?{urlencode(back)}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _token(self, handler: _Handler, fault: Fault | None) -> None:
        form = {k: v[0] for k, v in parse_qs(handler.read_body().decode()).items()}
        if fault is not None and fault.kind == "status":
            handler.send_json(fault.status, fault.body or {}, fault.headers)
            return
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = handler.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            pair = base64.b64decode(basic[6:]).decode()
            client_id, _, client_secret = (unquote(p) for p in pair.partition(":"))
        if client_id != self.client_id or client_secret != self.client_secret:
            error = {
                "error": "invalid_client",
                "error_description": "The OAuth client was not found.",
            }
            handler.send_json(401, error)
            return
        kind = form.get("grant_type")
        with self._lock:
            if kind == "refresh_token":
                status, payload = self._refresh(form)
            elif kind == "authorization_code":
                status, payload = self._exchange(form)
            else:
                status, payload = 400, {"error": "unsupported_grant_type"}
        handler.send_json(status, payload, {"Cache-Control": "no-store"})

    def _refresh(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = self._grants.get(form.get("refresh_token", ""))
        if grant is None or grant.revoked:
            return 400, {
                "error": "invalid_grant",
                "error_description": "Token has been expired or revoked.",
            }
        asked = set(form.get("scope", "").split())
        if not asked <= grant.scopes:
            return 400, {
                "error": "invalid_scope",
                "error_description": "Some requested scopes were invalid.",
            }
        return 200, self._token_response(grant, with_refresh=False)

    def _exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        code = self._codes.pop(form.get("code", ""), None)
        bad = {"error": "invalid_grant", "error_description": "Bad Request"}
        if code is None or code.redirect_uri != form.get("redirect_uri"):
            return 400, bad
        if code.challenge is not None:
            verifier = form.get("code_verifier", "")
            if _b64url(hashlib.sha256(verifier.encode()).digest()) != code.challenge:
                return 400, bad
        return 200, self._token_response(code.grant, with_refresh=True)

    def _token_response(self, grant: _Grant, *, with_refresh: bool) -> dict[str, Any]:
        token, expires_at = self._issue(grant)
        payload: dict[str, Any] = {
            "access_token": token,
            "expires_in": int(expires_at - self.clock()),
            "scope": " ".join(sorted(grant.scopes)),
            "token_type": "Bearer",
        }
        if with_refresh:
            payload["refresh_token"] = grant.refresh_token
        if "openid" in grant.scopes:
            payload["id_token"] = self._id_token(grant.email)
        return payload

    def _revoke_request(self, handler: _Handler) -> None:
        """``POST /revoke`` with ``token=`` (a refresh or an access token)."""
        form = {k: v[0] for k, v in parse_qs(handler.read_body().decode()).items()}
        token = form.get("token", "")
        with self._lock:
            grant = self._grants.get(token) or self._access.get(token, (None, 0.0))[0]
            if grant is None:
                handler.send_json(400, {"error": "invalid_token"})
                return
            grant.revoked = True
            self.revoked_by_request.append(grant.refresh_token)
        handler.send_json(200, {})

    def _user_of(self, handler: _Handler) -> str:
        auth = handler.headers.get("Authorization", "")
        grant = self._access.get(auth.removeprefix("Bearer ").strip(), (None, 0.0))[0]
        return grant.email if grant is not None else ""

    # -- connection bookkeeping -------------------------------------------

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)
                self.connections_closed += 1


def _multipart_media(body: bytes, content_type: str) -> bytes:
    """The second part (the message) of a ``multipart/related`` upload."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if found is None:
        raise ValueError("multipart upload without a boundary")
    sections = body.split(b"--" + found.group(1).encode())[1:-1]
    if len(sections) != 2:
        raise ValueError("a multipart upload needs exactly a metadata part and a media part")
    section = sections[1]
    split = re.search(rb"\r?\n\r?\n", section)
    if split is None:
        raise ValueError("a multipart section without headers")
    content = section[split.end() :]
    return content.removesuffix(b"\n").removesuffix(b"\r")


_QUERY_KEYS = ("rfc822msgid", "from", "to", "in", "label", "subject", "newer_than")


def _parse_query(q: str) -> list[tuple[str, str]]:
    """The subset of Gmail search mailbolt uses: an AND of ``key:value`` terms."""
    terms = []
    for term in q.split():
        key, _, value = term.partition(":")
        value = value.strip('"').lower()
        if key not in _QUERY_KEYS or not value:
            raise ValueError(f"Invalid query term {term!r}")
        if key == "newer_than" and not re.fullmatch(r"\d+[dmy]", value):
            raise ValueError(f"Invalid query term {term!r}")
        terms.append((key, value))
    return terms


def _matches(m: StoredMessage, key: str, value: str, now: float) -> bool:
    if key == "rfc822msgid":
        return m.message_id.lower() == _bare_id(value)
    if key == "from":
        return any(value in a for a in m.addresses("From"))
    if key == "to":
        return any(value in a for a in m.addresses("To", "Cc", "Bcc"))
    if key in ("in", "label"):
        return value.upper() in m.label_ids
    if key == "subject":
        return value in str(m.message.get("Subject", "")).lower()
    span = int(value[:-1]) * {"d": 1, "m": 31, "y": 366}[value[-1]] * DAY
    return m.internal_date >= (now - span) * 1000


def _snippet(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    text = part.get_content() if part is not None else ""
    return " ".join(str(text).split())[:100]


def _payload(part: EmailMessage, part_id: str) -> dict[str, Any]:
    """A MIME part the way ``messages.get(format="full")`` presents it."""
    result: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": [{"name": k, "value": str(v)} for k, v in part.items()],
    }
    if part.get_content_maintype() == "multipart":
        children = part.get_payload()
        assert isinstance(children, list)
        result["body"] = {"size": 0}
        result["parts"] = [
            _payload(child, f"{part_id}.{i}" if part_id else str(i))
            for i, child in enumerate(children)
        ]
        return result
    data = part.get_payload(decode=True)
    if data is None:  # message/* parts: a list of header blocks or messages
        inner = part.get_payload()
        blocks = inner if isinstance(inner, list) else [inner]
        data = b"\r\n".join(
            b.as_bytes() if hasattr(b, "as_bytes") else str(b).encode() for b in blocks
        )
    result["body"] = {"size": len(data), "data": _b64url(data)}
    return result


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        self.timeout = self.server.fake.idle_timeout
        super().setup()
        self.server.fake._track(self.connection, add=True)
        self.connection.do_handshake()  # type: ignore[attr-defined]

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def do_GET(self) -> None:
        self._run("GET")

    def do_POST(self) -> None:
        self._run("POST")

    def _run(self, verb: str) -> None:
        try:
            self.server.fake._handle(self, verb)
        except _Done:
            self.close_connection = True

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(
        self, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def abort(self, *, rst: bool) -> None:
        """Close the connection without a response (RST or FIN) and stop handling."""
        conn = self.connection
        if rst:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            conn.shutdown(socket.SHUT_RDWR)
        self.rfile.close()  # release the makefile reference so close() really closes
        conn.close()
        raise _Done


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeGmail, context: ssl.SSLContext):
        self.fake = fake
        self.context = context
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.fake._take_connection_reset():
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            raise OSError("injected: connection reset before the TLS handshake")
        # The handshake runs on the handler's thread, so a slow client never
        # blocks the accept loop.
        return self.context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-request are part of the tests; stay quiet."""
