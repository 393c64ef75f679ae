"""The two pages of "Connect your Gmail" (Google's web-server flow), as a WSGI app.

- ``GET /oauth/google/start?state=…``: the App Home button's link. It sets a
  random cookie in this browser, ties the state to it (once), and sends the
  browser on to Google's consent screen. A second opening of the same link, in
  any browser, is refused: a link copied from someone's App Home is worth nothing.
- ``GET /oauth/google/callback?state=…&code=…``: where Google sends the browser
  back. The state must be unused, unexpired, and tied to this browser's cookie;
  only then is the code exchanged (with the PKCE verifier kept sealed) and the
  grant stored, sealed. Any failure stores nothing and says why.

Pages are plain HTML: escaped text, no scripts, nothing secret (no token, no
code, no state), never cached, no referrer (the callback URL carries the code),
and a link back to Slack. The rules live in ``bot.handlers.senders``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable
from html import escape
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIEnvironment

from bot.errors import AuthError, MailboltError, UserInputError
from bot.handlers import senders
from bot.ports import GrantFlow, Sealer, SenderAccounts
from bot.records import SenderAccount

log = logging.getLogger(__name__)

START_PATH = "/oauth/google/start"
CALLBACK_PATH = "/oauth/google/callback"
COOKIE = "mailbolt_oauth"
MAX_QUERY = 4096

_HEADERS = [
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
]
_STYLE = (
    "body{margin:0;background:#f3f4f6;color:#111827;font:16px/1.5 -apple-system,"
    "BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}"
    "main{max-width:30rem;margin:12vh auto;padding:2rem;background:#fff;"
    "border:1px solid #e5e7eb;border-radius:8px}h1{font-size:1.375rem;margin:0 0 1rem}"
)


class OAuthPages:
    """The start and callback routes. ``senders_of`` returns the store's part (read on
    each request); ``on_connected`` hears of each account connected (the server
    resumes that account's paused campaigns)."""

    def __init__(
        self,
        senders_of: Callable[[], SenderAccounts],
        flow: Callable[[], GrantFlow],
        seal: Callable[[], Sealer],
        *,
        secure_cookie: bool,
        on_connected: Callable[[SenderAccount], object] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self._senders = senders_of
        self._flow = flow
        self._seal = seal
        self._secure = secure_cookie
        self._on_connected = on_connected
        self._clock = clock

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _page(start_response, "405 Method Not Allowed", "Not allowed", "Use GET.")
        raw = environ.get("QUERY_STRING", "")[:MAX_QUERY]
        query = {k: v[0] for k, v in parse_qs(raw).items()}
        cookie = _cookie(environ)
        if environ.get("PATH_INFO") == START_PATH:
            return self._start(start_response, query.get("state", ""), cookie)
        return self._callback(start_response, query, cookie)

    def _start(self, start_response: StartResponse, state: str, cookie: str) -> Iterable[bytes]:
        cookie = cookie or secrets.token_urlsafe(32)
        try:
            url = senders.open_link(
                self._senders(), self._flow(), self._seal(), state, cookie, self._clock()
            )
        except MailboltError as exc:
            return _failed(start_response, exc)
        flags = "; Secure" if self._secure else ""
        set_cookie = (
            f"{COOKIE}={cookie}; Path=/oauth/google; Max-Age={int(senders.STATE_TTL_SECONDS)}; "
            f"HttpOnly; SameSite=Lax{flags}"
        )
        start_response(
            "302 Found",
            [("Location", url), ("Set-Cookie", set_cookie), ("Content-Length", "0"), *_HEADERS],
        )
        return [b""]

    def _callback(
        self, start_response: StartResponse, query: dict[str, str], cookie: str
    ) -> Iterable[bytes]:
        try:
            connected = senders.finish_connect(
                self._senders(),
                self._flow(),
                self._seal(),
                state=query.get("state", ""),
                code=query.get("code", ""),
                error=query.get("error", ""),
                cookie=cookie,
                now=self._clock(),
            )
        except MailboltError as exc:
            return _failed(start_response, exc)
        account = connected.account
        log.info("connected the Gmail account %s for %s", account.address, account.owner)
        if self._on_connected is not None:
            try:
                self._on_connected(account)
            except Exception:  # the grant is stored; resuming is a bonus
                log.exception("resuming the campaigns of %s failed", account.address)
        again = "again " if connected.replaced else ""
        body = (
            f"<p>mailbolt can {again}send as <strong>{escape(account.address)}</strong>. "
            "Choose it under <em>From</em> when you compose in Slack. Campaigns it paused "
            "continue now.</p>"
            f'<p><a href="{escape(_slack_link(account.team))}">Back to Slack</a></p>'
        )
        return _page(start_response, "200 OK", "Gmail connected", body, raw=True)


def _failed(start_response: StartResponse, exc: MailboltError) -> Iterable[bytes]:
    if not isinstance(exc, UserInputError | AuthError):
        log.warning("connecting Gmail failed: %s", exc)
    body = f'<p>{escape(str(exc))}</p><p><a href="{escape(_slack_link(""))}">Back to Slack</a></p>'
    return _page(start_response, "400 Bad Request", "Gmail not connected", body, raw=True)


def _slack_link(team: str) -> str:
    return f"slack://open?team={team}" if team.isalnum() and team else "slack://open"


def _cookie(environ: WSGIEnvironment) -> str:
    try:
        jar = SimpleCookie(environ.get("HTTP_COOKIE", ""))
    except CookieError:
        return ""
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else ""


def _page(
    start_response: StartResponse, status: str, title: str, body: str, *, raw: bool = False
) -> Iterable[bytes]:
    content = body if raw else f"<p>{escape(body)}</p>"
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{content}</main></body></html>\n"
    ).encode()
    start_response(
        status,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(page))),
            *_HEADERS,
        ],
    )
    return [page]
