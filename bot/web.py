"""The HTTP server of ``python -m bot serve``: one WSGI app served by waitress.

Routes:
- ``POST /slack/events``: Slack's commands, interactions and events (HTTP mode),
  handed to Bolt only once the body is known to be small, signed and parsable
  (``SlackEndpoint``).
- ``GET /slack/install`` and ``/slack/oauth_redirect``: "Add to Slack" (many
  workspaces only), handed to Bolt's OAuth flow (``InstallPages``). Slack does
  not sign these GETs: the state cookie and the single-use state protect them.
- ``GET /healthz``: a small JSON answer for load balancers and uptime checks.
- ``GET /oauth/google/start`` and ``/oauth/google/callback``: "Connect your
  Gmail" (``bot.web_oauth``), when the server was given its pages.
- ``/unsubscribe/...``: the one-click unsubscribe endpoint, handed on untouched
  (full path) to ``bot.web_unsubscribe.make_unsubscribe_app`` when that module
  is installed.

waitress rather than Bolt's ``app.start()``: that one is ``http.server``, meant
for development only; waitress is a production server with no C dependencies.

Nothing unsigned costs memory, a 500 or more than one short log line: waitress
refuses a body over ``MAX_REQUEST_BODY`` (413) while it arrives, before any of
it is buffered or handed on, whether the client declares the length or sends it
chunked; the Slack route reads at most that much and checks the signature over
the raw bytes before anything parses them (Bolt's own adapter parses first, and
logs unsigned bodies whole at INFO).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import waitress
from waitress import wasyncore

from bot.config import Settings
from bot.ports import StoreParts

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from slack_bolt import App

log = logging.getLogger(__name__)

SLACK_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
UNSUBSCRIBE_PREFIX = "/unsubscribe/"
OAUTH_PATHS = ("/oauth/google/start", "/oauth/google/callback")
LOOP_TIMEOUT = 0.2  # seconds: how quickly stop() is noticed
#: The largest body any route accepts. Slack's largest is a view submission: the
#: whole view (at most 250 kB of JSON) plus its state, URL-encoded (up to 3x).
MAX_REQUEST_BODY = 2 * 1024 * 1024
#: Slack's rule: a signature older (or newer) than five minutes is a replay.
SIGNATURE_MAX_AGE = 300
#: What parsing a payload that is not one raises: bad UTF-8 or JSON (ValueErrors),
#: JSON nested too deep, or valid JSON of a shape Bolt's extractors trip over.
_SHAPE_ERRORS = (ValueError, RecursionError, TypeError, AttributeError, KeyError, IndexError)


def unsubscribe_app(
    settings: Settings, store: StoreParts, secret: bytes | None = None
) -> WSGIApplication | None:
    """The compliance endpoint's WSGI app, or None while its module is not there."""
    try:
        from bot.web_unsubscribe import make_unsubscribe_app
    except ModuleNotFoundError as exc:
        if exc.name != "bot.web_unsubscribe":
            raise
        log.warning("bot/web_unsubscribe.py is missing: /unsubscribe/ answers 404")
        return None
    return make_unsubscribe_app(settings, store, secret)


def _reply(start_response: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status,
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


def read_body(environ: WSGIEnvironment, limit: int) -> bytes | None:
    """The request body, or None when it is (or claims to be) longer than ``limit``.

    Never reads more than ``limit`` bytes, whatever the headers say.
    """
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length < 0 or length > limit:
        return None
    data = environ["wsgi.input"].read(length) if length else b""
    return bytes(data[:limit])


def signature_problem(
    secret: str, body: bytes, timestamp: str, signature: str, now: float
) -> str | None:
    """Why a request is not signed by Slack (a few words), or None when it is.

    Computed over the raw bytes, so a body that is not even UTF-8 is refused
    here rather than failing in a decoder.
    """
    if not timestamp or not signature:
        return "no signature"
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return "malformed timestamp"
    if abs(now - int(timestamp)) > SIGNATURE_MAX_AGE:
        return "stale timestamp"
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("latin-1", "replace")):
        return "bad signature"
    return None


def _headers(environ: WSGIEnvironment) -> dict[str, str]:
    headers = {
        key[5:].lower().replace("_", "-"): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.lower().replace("_", "-")] = str(environ[key])
    return headers


class SlackEndpoint:
    """``POST /slack/events`` in front of Bolt: size, then signature, then shape.

    Each refusal is a 4xx with a fixed body and one short log line that never
    quotes the request.
    """

    def __init__(self, bolt_app: App, signing_secret: str, *, limit: int = MAX_REQUEST_BODY):
        self.bolt_app = bolt_app
        self.secret = signing_secret
        self.limit = limit

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        from slack_bolt import BoltRequest

        body = read_body(environ, self.limit)
        if body is None:
            return self._refuse(environ, start_response, 413, "body too large")
        headers = _headers(environ)
        problem = signature_problem(
            self.secret,
            body,
            headers.get("x-slack-request-timestamp", ""),
            headers.get("x-slack-signature", ""),
            time.time(),
        )
        if problem:
            return self._refuse(environ, start_response, 401, problem)
        try:
            request = BoltRequest(
                body=body.decode("utf-8"),
                query=str(environ.get("QUERY_STRING", "")),
                headers={**headers},  # Bolt's type: values may also be lists
            )
            if not isinstance(request.body, dict):
                raise TypeError("not a JSON object")
        except _SHAPE_ERRORS:
            return self._refuse(environ, start_response, 400, "signed, but not a Slack payload")
        response = self.bolt_app.dispatch(request)
        data = response.body.encode("utf-8")
        out = [(name, value) for name, values in response.headers.items() for value in values]
        out = [(n, v) for n, v in out if n.lower() != "content-length"]
        start_response(_status(response.status), [*out, ("Content-Length", str(len(data)))])
        return [data]

    @staticmethod
    def _refuse(
        environ: WSGIEnvironment, start_response: StartResponse, status: int, why: str
    ) -> Iterable[bytes]:
        log.info("refused a request to %s from %s: %s", SLACK_PATH, environ.get("REMOTE_ADDR"), why)
        error = {401: "invalid request", 413: "request too large"}.get(status, "bad request")
        return _reply(start_response, _status(status), {"error": error})


class InstallPages:
    """``GET /slack/install`` and ``/slack/oauth_redirect`` in front of Bolt's OAuth flow.

    Nothing here reads a body (a GET has none worth reading); the query and the
    cookie are all the flow needs.
    """

    def __init__(self, bolt_app: App):
        self.flow = bolt_app.oauth_flow
        assert self.flow is not None
        self.paths = (self.flow.install_path, self.flow.redirect_uri_path)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        from slack_bolt import BoltRequest

        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", {"error": "use GET"})
        request = BoltRequest(
            body="", query=str(environ.get("QUERY_STRING", "")), headers={**_headers(environ)}
        )
        assert self.flow is not None
        if environ.get("PATH_INFO") == self.flow.install_path:
            response = self.flow.handle_installation(request)
        else:
            response = self.flow.handle_callback(request)
        data = response.body.encode("utf-8")
        out = [(name, value) for name, values in response.headers.items() for value in values]
        out = [(n, v) for n, v in out if n.lower() != "content-length"]
        start_response(_status(response.status), [*out, ("Content-Length", str(len(data)))])
        return [data]


def _status(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


def make_wsgi_app(
    settings: Settings,
    store: StoreParts,
    bolt_app: App | None,
    *,
    health: Callable[[], dict[str, Any]] | None = None,
    unsubscribe_secret: bytes | None = None,
    oauth: WSGIApplication | None = None,
) -> WSGIApplication:
    """Route the three kinds of request; ``bolt_app`` is None in Socket Mode.

    ``unsubscribe_secret``: the key the composition root loaded (read from the
    settings' key file when None)."""
    slack = None
    install = None
    if bolt_app is not None:
        slack = SlackEndpoint(bolt_app, settings.slack_signing_secret)
    if bolt_app is not None and bolt_app.oauth_flow is not None:
        install = InstallPages(bolt_app)
    unsubscribe = unsubscribe_app(settings, store, unsubscribe_secret)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == SLACK_PATH and slack is not None:
            if method != "POST":
                return _reply(start_response, "405 Method Not Allowed", {"error": "use POST"})
            return slack(environ, start_response)
        if install is not None and path in install.paths:
            return install(environ, start_response)
        if path == HEALTH_PATH and method in ("GET", "HEAD"):
            body = {
                "ok": True,
                "transport": settings.mail_transport,
                **(health() if health else {}),
            }
            return _reply(start_response, "200 OK", body)
        if path in OAUTH_PATHS and oauth is not None:
            return oauth(environ, start_response)
        if path.startswith(UNSUBSCRIBE_PREFIX) and unsubscribe is not None:
            return unsubscribe(environ, start_response)
        return _reply(start_response, "404 Not Found", {"error": "not found"})

    return app


class WebServer:
    """waitress on ``host:port`` (port 0 picks a free one), run in this thread or another."""

    def __init__(self, app: WSGIApplication, host: str, port: int, *, threads: int = 8):
        self._map: dict[int, Any] = {}  # waitress's socket map, ours so stop() can empty it
        self.server = waitress.create_server(
            app,
            map=self._map,
            host=host,
            port=port,
            threads=threads,
            # waitress refuses a body of this size or more while it arrives (413)
            max_request_body_size=MAX_REQUEST_BODY + 1,
        )
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    @property
    def url(self) -> str:
        return f"http://{self.server.effective_host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until ``stop()`` (from another thread) or Ctrl+C; then close every socket.

        waitress's own ``run()`` has no stop signal, and closing its sockets from
        another thread pulls them out from under its ``select`` (EBADF); so the
        loop turns here, a short poll at a time, and closes in its own thread.
        """
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=LOOP_TIMEOUT, map=self._map, use_poll=True, count=1)
        finally:
            wasyncore.close_all(self._map)
            self.server.task_dispatcher.shutdown()
            self._stopped.set()

    def start(self) -> WebServer:
        self._thread = threading.Thread(target=self.serve_forever, name="web", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._stopped.wait(timeout)
