"""The one-click unsubscribe endpoint (RFC 8058), as a small WSGI application.

- ``GET`` shows a confirmation page and changes nothing: mail scanners and link
  previewers fetch every link in a message, and must not unsubscribe anyone.
- ``POST`` records the unsubscribe. Gmail and Yahoo send it themselves when a
  reader clicks their "Unsubscribe" button (body ``List-Unsubscribe=One-Click``);
  a person sends it with the page's button. The signed token is the only
  credential, so the body is not required. Repeating it is harmless.
- A malformed, forged or tampered token gets a plain 400 and no hint why.

Pages are tiny, self-contained (no scripts, no external resources), never cached,
and leak no referrer. The address is shown masked: the page may end up in a
screenshot or on a shared screen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from html import escape
from pathlib import Path
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from bot.config import Settings
from bot.errors import UserInputError
from bot.handlers.scope import link_team
from bot.handlers.unsubscribe import load_secret, read_token
from bot.ports import StoreParts

log = logging.getLogger(__name__)

PREFIX = "/unsubscribe/"
MAX_TOKEN = 512
MAX_BODY = 4096

_SECURITY_HEADERS = [
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    ),
]

_STYLE = """
body{margin:0;background:#f3f4f6;color:#111827;
font:16px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:28rem;margin:12vh auto;padding:2rem;background:#fff;
border:1px solid #e5e7eb;border-radius:8px}
h1{font-size:1.375rem;margin:0 0 1rem}
p{margin:0 0 1rem}
button{font:inherit;font-weight:600;color:#fff;background:#1d4ed8;border:0;
border-radius:6px;padding:.75rem 1.25rem;cursor:pointer;max-width:100%}
button:hover{background:#1e40af}
button:focus-visible{outline:3px solid #93c5fd;outline-offset:2px}
.muted{color:#4b5563;font-size:.875rem;margin-top:1rem}
""".strip()


def mask_address(email: str) -> str:
    """``b…@example.com``: enough for the owner to recognise, little for anyone else."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}…@{domain}" if local else "…"


class UnsubscribeApp:
    """``GET``/``HEAD``/``POST /unsubscribe/<token>``; see the module docstring."""

    def __init__(self, secret: bytes, store: StoreParts, sender_name: str):
        self.secret = secret
        self.store = store
        self.sender_name = sender_name

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        status, content_type, body, extra = self._handle(method, environ)
        start_response(
            status,
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                *_SECURITY_HEADERS,
                *extra,
            ],
        )
        return [] if method == "HEAD" else [body]

    def _handle(self, method: str, environ: WSGIEnvironment) -> _Response:
        if method not in ("GET", "HEAD", "POST"):
            return _plain(
                "405 Method Not Allowed", "Use GET or POST.", ("Allow", "GET, HEAD, POST")
            )
        token = self._token(str(environ.get("PATH_INFO", "")))
        try:
            if len(token) > MAX_TOKEN:
                raise UserInputError("This unsubscribe link is too long.", field="token")
            email, campaign_id = read_token(self.secret, token)
        except UserInputError:
            return _plain(
                "400 Bad Request",
                "This unsubscribe link is not valid. Copy the whole link from the email, "
                "or reply to the email and ask to be removed.",
            )
        if method != "POST":
            return self._confirm(email, campaign_id)
        if not self._drain(environ):
            return _plain("413 Content Too Large", "Request too large.")
        return self._unsubscribe(email, campaign_id)

    @staticmethod
    def _token(path: str) -> str:
        """The token, whether the server passed the full path or stripped the prefix."""
        return path[len(PREFIX) :] if path.startswith(PREFIX) else path.lstrip("/")

    @staticmethod
    def _drain(environ: WSGIEnvironment) -> bool:
        """Read (and ignore) a small body; False if it is larger than any real one."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            return False
        if length > 0:
            environ["wsgi.input"].read(length)
        return True

    def _confirm(self, email: str, campaign_id: int) -> _Response:
        shown = escape(mask_address(email))
        sender = escape(self.sender_name)
        team = link_team(self.store, campaign_id) or None
        if self.store.suppressions.unsubscribed_among([email], team):
            return _html(
                "You’re already unsubscribed",
                f"<p>{shown} receives no marketing email from {sender}.</p>",
            )
        return _html(
            f"Unsubscribe from {self.sender_name}",
            f"<p>Stop marketing email to {shown}? One click is enough.</p>"
            '<form method="post">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            f'<button type="submit">Unsubscribe {shown}</button></form>'
            '<p class="muted">Messages you asked for, such as receipts or password '
            "resets, may still arrive.</p>",
        )

    def _unsubscribe(self, email: str, campaign_id: int) -> _Response:
        # For the workspace whose campaign sent the link (every one, for a link of
        # the CLI's or of a campaign that is gone).
        added = self.store.suppressions.add_unsubscribe(
            email,
            source="one-click",
            campaign_id=campaign_id,
            team=link_team(self.store, campaign_id),
        )
        if added:
            log.info("unsubscribe recorded (campaign %s)", campaign_id)
        title = "You’re unsubscribed" if added else "You’re already unsubscribed"
        return _html(
            title,
            f"<p>{escape(mask_address(email))} will receive no more marketing email from "
            f"{escape(self.sender_name)}.</p>",
        )


_Response = tuple[str, str, bytes, tuple[tuple[str, str], ...]]


def _html(title: str, body_html: str) -> _Response:
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body_html}</main></body></html>\n"
    )
    return "200 OK", "text/html; charset=utf-8", page.encode(), ()


def _plain(status: str, text: str, *extra: tuple[str, str]) -> _Response:
    return status, "text/plain; charset=utf-8", (text + "\n").encode(), extra


def make_unsubscribe_app(
    settings: Settings, store: StoreParts, secret: bytes | None = None
) -> WSGIApplication:
    """The WSGI app ``bot/web.py`` mounts for paths under ``/unsubscribe/``.

    It uses the same key as the links in sent mail (``UNSUBSCRIBE_SECRET``, or
    the key generated next to the database), so links keep working across restarts.
    """
    if secret is None:
        secret = load_secret(settings.unsubscribe_secret, Path(settings.database_path).parent)
    return UnsubscribeApp(secret, store, settings.from_name)
