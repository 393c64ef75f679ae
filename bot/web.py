"""The HTTP server of ``python -m bot serve``: one WSGI app served by waitress.

Routes:
- ``POST /slack/events``: Slack's commands, interactions and events (HTTP mode),
  through Bolt's WSGI adapter, which checks each request's signature.
- ``GET /healthz``: a small JSON answer for load balancers and uptime checks.
- ``/unsubscribe/...``: the one-click unsubscribe endpoint, handed on untouched
  (full path) to ``bot.web_unsubscribe.make_unsubscribe_app`` when that module
  is installed.

waitress rather than Bolt's ``app.start()``: that one is ``http.server``, meant
for development only; waitress is a production server with no C dependencies.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
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
LOOP_TIMEOUT = 0.2  # seconds: how quickly stop() is noticed


def unsubscribe_app(settings: Settings, store: StoreParts) -> WSGIApplication | None:
    """The compliance endpoint's WSGI app, or None while its module is not there."""
    try:
        from bot.web_unsubscribe import make_unsubscribe_app
    except ModuleNotFoundError as exc:
        if exc.name != "bot.web_unsubscribe":
            raise
        log.warning("bot/web_unsubscribe.py is missing: /unsubscribe/ answers 404")
        return None
    return make_unsubscribe_app(settings, store)


def _reply(start_response: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status,
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


def make_wsgi_app(
    settings: Settings,
    store: StoreParts,
    bolt_app: App | None,
    *,
    health: Callable[[], dict[str, Any]] | None = None,
) -> WSGIApplication:
    """Route the three kinds of request; ``bolt_app`` is None in Socket Mode."""
    slack = None
    if bolt_app is not None:
        from slack_bolt.adapter.wsgi import SlackRequestHandler

        slack = SlackRequestHandler(bolt_app, path=SLACK_PATH)
    unsubscribe = unsubscribe_app(settings, store)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == SLACK_PATH and slack is not None:
            if method != "POST":
                return _reply(start_response, "405 Method Not Allowed", {"error": "use POST"})
            return slack(environ, start_response)
        if path == HEALTH_PATH and method in ("GET", "HEAD"):
            body = {
                "ok": True,
                "transport": settings.mail_transport,
                **(health() if health else {}),
            }
            return _reply(start_response, "200 OK", body)
        if path.startswith(UNSUBSCRIBE_PREFIX) and unsubscribe is not None:
            return unsubscribe(environ, start_response)
        return _reply(start_response, "404 Not Found", {"error": "not found"})

    return app


class WebServer:
    """waitress on ``host:port`` (port 0 picks a free one), run in this thread or another."""

    def __init__(self, app: WSGIApplication, host: str, port: int, *, threads: int = 8):
        self._map: dict[int, Any] = {}  # waitress's socket map, ours so stop() can empty it
        self.server = waitress.create_server(
            app, map=self._map, host=host, port=port, threads=threads
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
