"""The Gmail API transport: one HTTP attempt per ``send()``, outcome classified.

Why it looks like this:
- **No hidden re-sends.** httplib2 re-sends a request by itself when the
  connection closes before the response arrives, and it does so even with
  ``httplib2.RETRIES = 1``: its ``BadStatusLine``/``RemoteDisconnected`` branch
  retries once "regardless of the number of RETRIES set". For ``messages.send``
  that is a duplicate email nobody knows about. ``NoResendHttp`` plugs in
  connection classes (httplib2's public ``connection_type`` hook) whose
  ``getresponse()`` and response ``read()`` turn any failure after the request
  was written into ``ResponseLost``, an exception httplib2's retry loop does not
  catch. The send then surfaces as ``UncertainSendError``. A failure while
  connecting or writing means Gmail never had the whole request:
  ``TransientSendError``, safe to retry.
- Keep-alive connections are reused, but one the server has already closed or
  spoken on is replaced before writing, so an idle close is not mistaken for a
  lost response.
- Retrying is the campaign loop's job: ``execute(num_retries=0)`` always (its
  own retries ignore ``Retry-After`` and repeat sends). The one exception is a
  401: the access token is refreshed and that call repeated once, because a 401
  means Gmail did not accept the message.
- httplib2 is not thread-safe: each thread gets its own ``Http`` and service.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import io
import json
import logging
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest, MediaIoBaseUpload

from bot.config import Settings
from bot.errors import (
    AuthError,
    MailboltError,
    PermanentSendError,
    QuotaDeferred,
    TransientSendError,
    UncertainSendError,
)
from bot.mail.google_auth import (
    AUTH_COMMAND,
    HTTP_TIMEOUT_S,
    auth_error,
    ca_certs,
    email_from_id_token,
    granted_scopes,
    has_read_scope,
    load_credentials,
    refresh_credentials,
    save_credentials,
    token_request,
)
from bot.mail.pacing import SLOW_SEND_LATENCY_S, workers_needed
from bot.models import OutgoingMessage
from bot.ports import MAX_MESSAGE_BYTES  # Gmail's own limit, also checked in preflight
from bot.timefmt import utc_minute

log = logging.getLogger(__name__)

#: Above this, the raw message goes through the upload endpoint instead of JSON.
SIMPLE_SEND_LIMIT = 5 * 1024 * 1024

_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
_SCOPE_REASONS = {"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"}
_RETRY_AT = re.compile(r"Retry after (\d{4}-\d\d-\d\dT[0-9:.]+Z)")


# -- HTTP that never re-sends -----------------------------------------------


class ResponseLost(httplib2.HttpLib2Error):
    """The request was written but no complete response came back.

    Not an ``OSError`` or ``HTTPException``, so httplib2's retry loop lets it
    through; an ``HttpLib2Error``, so google-auth reports it during a token
    refresh as a ``TransportError`` like any network failure.
    """


class _GuardedResponse(http.client.HTTPResponse):
    def read(self, amt: int | None = None) -> bytes:
        try:
            return super().read(amt)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ResponseLost(f"the response was cut off ({_describe(exc)})") from exc


class _NoResendMixin:
    """For httplib2's connection classes: fail instead of silently re-sending."""

    response_class = _GuardedResponse

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        sock = self.sock  # type: ignore[attr-defined]
        if sock is not None and _peer_closed(sock):
            self.close()  # type: ignore[attr-defined]
        super().request(method, url, *args, **kwargs)  # type: ignore[misc]

    def getresponse(self) -> http.client.HTTPResponse:
        try:
            return super().getresponse()  # type: ignore[misc]
        except (OSError, http.client.HTTPException) as exc:
            self.close()  # type: ignore[attr-defined]
            raise ResponseLost(
                f"no response after the request was sent ({_describe(exc)})"
            ) from exc


class _NoResendHTTPConnection(_NoResendMixin, httplib2.HTTPConnectionWithTimeout):
    pass


class _NoResendHTTPSConnection(_NoResendMixin, httplib2.HTTPSConnectionWithTimeout):
    pass


class NoResendHttp(httplib2.Http):
    """An ``httplib2.Http`` that makes exactly one attempt per request."""

    def request(  # type: ignore[override]
        self,
        uri: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        redirections: int = httplib2.DEFAULT_MAX_REDIRECTS,
        connection_type: type | None = None,
    ) -> tuple[httplib2.Response, bytes]:
        if connection_type is None:
            secure = uri.lower().startswith("https:")
            connection_type = _NoResendHTTPSConnection if secure else _NoResendHTTPConnection
        return super().request(uri, method, body, headers, redirections, connection_type)


def _peer_closed(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable was closed (or spoken on) by the server."""
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(timeout=0))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- error classification ---------------------------------------------------


def _error_fields(content: bytes) -> tuple[str, set[str]]:
    """(message, reasons) from a Google JSON error body; tolerant of anything else."""
    try:
        error = json.loads(content.decode("utf-8")).get("error", {})
    except (ValueError, UnicodeDecodeError, AttributeError):
        return "", set()
    if not isinstance(error, dict):
        return str(error), set()
    reasons = {str(e.get("reason", "")) for e in error.get("errors", []) if isinstance(e, dict)}
    reasons |= {str(d.get("reason", "")) for d in error.get("details", []) if isinstance(d, dict)}
    return str(error.get("message", "")), reasons - {""}


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def _resume_time(message: str) -> float | None:
    """The time in Gmail's "Retry after 2026-11-26T10:00:00.000Z" message, as a timestamp."""
    found = _RETRY_AT.search(message)
    if found is None:
        return None
    try:
        return datetime.fromisoformat(found.group(1).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def classify_http_error(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    sending: bool,
    now: float | None = None,
) -> MailboltError:
    """Turn one Gmail error response into the ``bot.errors`` value the caller acts on.

    ``sending``: the request was ``messages.send`` (a gateway timeout there may
    have delivered the message, so it is uncertain rather than retryable).
    """
    now = time.time() if now is None else now
    message, reasons = _error_fields(content)
    said = f"{status} {', '.join(sorted(reasons)) or 'error'}: {message or 'no details'}"
    if status in (403, 429) and ("(Mail sending)" in message or "dailyLimitExceeded" in reasons):
        resume = _resume_time(message)
        when = (
            f"after {utc_minute(resume)}" if resume else "when the rolling 24-hour window frees up"
        )
        return QuotaDeferred(
            f"The Gmail account's daily sending limit is reached ({said}); sending can "
            f"resume {when}.",
            resume_after=resume,
        )
    if status == 504 and sending:
        return UncertainSendError(
            f"Gmail's gateway timed out ({said}); the message may still have been sent, so it "
            "is held as uncertain instead of being sent again."
        )
    retry_after = _retry_after(headers.get("retry-after"), now)
    if status in (429, 500, 502, 503, 504) or (status == 403 and reasons & _RATE_REASONS):
        return TransientSendError(
            f"Gmail asked to slow down or had a temporary problem ({said}).",
            retry_after=retry_after,
        )
    if status == 401:
        return AuthError(
            f"Gmail rejected the access token even after refreshing it ({said}). Run "
            f"`{AUTH_COMMAND}` to sign in again."
        )
    if status == 403 and reasons & _SCOPE_REASONS:
        return AuthError(
            f"The Gmail authorization lacks a needed permission ({said}). Run "
            f"`{AUTH_COMMAND}` and allow every permission on the consent screen."
        )
    if status == 400:
        hint = " Check the recipient's address." if "To header" in message else ""
        return PermanentSendError(f"Gmail rejected the message as invalid ({said}).{hint}")
    return PermanentSendError(f"Gmail refused the message ({said}).")


# -- the transport ----------------------------------------------------------


class GmailTransport:
    """``bot.ports.Transport`` over the Gmail API (``users.messages.send``)."""

    name = "gmail"

    def __init__(
        self,
        credentials: Credentials,
        *,
        token_file: Path | None = None,
        api_url: str = "",
        sender: str = "",
        max_in_flight: int = 1,
        timeout: float = HTTP_TIMEOUT_S,
    ):
        self.max_in_flight = max_in_flight
        self._credentials = credentials
        self._token_file = token_file
        self._api_url = api_url
        self._sender = sender
        self._timeout = timeout
        self._local = threading.local()
        self._refresh_lock = threading.Lock()
        self._saved_token = credentials.token

    # -- Transport --

    def send(self, message: OutgoingMessage) -> str:
        """Send once; return Gmail's message id or raise a ``bot.errors`` type."""
        size = len(message.raw)
        if size > MAX_MESSAGE_BYTES:
            raise PermanentSendError(
                f"The message to {message.recipient} is {size / 1_048_576:.1f} MiB; Gmail "
                f"accepts at most 35 MiB ({MAX_MESSAGE_BYTES:,} bytes) including attachments."
            )
        messages = self._service().users().messages()
        if size > SIMPLE_SEND_LIMIT:
            media = MediaIoBaseUpload(
                io.BytesIO(message.raw), mimetype="message/rfc822", resumable=False
            )
            request = messages.send(userId="me", media_body=media)
        else:
            raw = base64.urlsafe_b64encode(message.raw).decode("ascii")
            request = messages.send(userId="me", body={"raw": raw})
        result = self._execute(request, sending=True, what=f"the message to {message.recipient}")
        return str(result["id"])

    def find_sent(self, message_id: str) -> str | None:
        """Gmail's id of the message with this Message-ID, or ``None`` if there is none.

        Needs a read scope (``GMAIL_RECONCILE=on``); costs ``LIST_UNITS``.
        """
        if not self.can_read:
            raise NotImplementedError(
                "The Gmail authorization cannot read mail, so sent messages can't be looked up "
                f"by Message-ID. Set GMAIL_RECONCILE=on and run `{AUTH_COMMAND}` to allow it."
            )
        bare = message_id.strip().strip("<>")
        page = self.read(
            lambda service: (
                service.users()
                .messages()
                .list(userId="me", q=f"rfc822msgid:{bare}", includeSpamTrash=True, maxResults=10)
            ),
            what="the lookup",
        )
        found = page.get("messages") or []
        return str(found[0]["id"]) if found else None

    def read(self, make_request: Callable[[Any], HttpRequest], *, what: str) -> dict[str, Any]:
        """Run one read call built from this thread's service (bounce scans, lookups).

        Reads share the send path's thread-local connection, token refresh and
        saving, and error classification, so there is one place for all three.
        """
        return self._execute(make_request(self._service()), sending=False, what=what)

    # -- helpers --

    @property
    def can_read(self) -> bool:
        return has_read_scope(granted_scopes(self._credentials))

    def sender_address(self) -> str:
        """SENDER_ADDRESS if set, else the address recorded when the grant was made."""
        address = (
            self._sender
            or self._credentials.account
            or email_from_id_token(self._credentials.id_token)
        )
        if not address:
            raise AuthError(
                "The sending address is unknown. Set SENDER_ADDRESS, or run "
                f"`{AUTH_COMMAND}` again so it is recorded."
            )
        return address

    def _service(self) -> Any:
        service = getattr(self._local, "service", None)
        if service is None:
            authed = google_auth_httplib2.AuthorizedHttp(
                self._credentials,
                http=NoResendHttp(timeout=self._timeout, ca_certs=ca_certs()),
                max_refresh_attempts=1,
            )
            options = {"api_endpoint": self._api_url} if self._api_url else None
            service = build(
                "gmail",
                "v1",
                http=authed,
                static_discovery=True,  # the bundled discovery doc: no network call
                cache_discovery=False,
                client_options=options,
            )
            self._local.http = authed
            self._local.service = service
        return service

    def _discard_connection(self) -> None:
        """After a network failure, start the thread's next call on a fresh connection."""
        http = getattr(self._local, "http", None)
        if http is not None:
            http.close()
        self._local.http = self._local.service = None

    def _ensure_fresh(self) -> None:
        if self._credentials.valid:
            return
        with self._refresh_lock:
            if not self._credentials.valid:
                refresh_credentials(self._credentials, token_request())

    def _persist_refresh(self) -> None:
        """Save a refreshed token so the next process does not refresh again."""
        if self._token_file is None or self._credentials.token == self._saved_token:
            return
        with self._refresh_lock:
            token = self._credentials.token
            if token == self._saved_token:
                return
            try:
                save_credentials(self._token_file, self._credentials)
            except OSError as exc:
                log.warning("Could not save the refreshed Gmail token: %s", exc)
            else:
                self._saved_token = token

    def _execute(self, request: HttpRequest, *, sending: bool, what: str) -> dict[str, Any]:
        try:
            self._ensure_fresh()
            return request.execute(num_retries=0)
        except HttpError as exc:
            raise classify_http_error(
                exc.status_code, exc.resp, exc.content or b"", sending=sending
            ) from exc
        except RefreshError as exc:
            raise auth_error(exc) from exc
        except TransportError as exc:
            raise TransientSendError(
                f"Could not reach Google's token endpoint ({exc}); {what} was not sent."
            ) from exc
        except ResponseLost as exc:
            self._discard_connection()
            if sending:
                raise UncertainSendError(
                    f"Gmail may have accepted {what}, but {exc}. It is held as uncertain "
                    "instead of being sent again."
                ) from exc
            raise TransientSendError(f"Gmail did not answer {what}: {exc}.") from exc
        except (OSError, httplib2.HttpLib2Error, http.client.HTTPException) as exc:
            self._discard_connection()
            raise TransientSendError(
                f"Could not reach Gmail ({_describe(exc)}); {what} was not sent."
            ) from exc
        finally:
            self._persist_refresh()


def build_transport(settings: Settings) -> GmailTransport:
    """The Gmail transport for these settings; ``AuthError`` when there is no grant yet.

    The token is not refreshed here: a refresh that fails for a network reason is
    then reported per message as retryable, not as a start-up crash.
    """
    credentials = load_credentials(settings, refresh=False)
    return GmailTransport(
        credentials,
        token_file=Path(settings.gmail_token_file),
        api_url=settings.gmail_api_url,
        sender=settings.sender_address,
        max_in_flight=workers_needed(settings.gmail_quota_units_per_minute, SLOW_SEND_LATENCY_S),
    )


def build_account_transport(
    settings: Settings, *, address: str, refresh_token: str, scopes: frozenset[str], web: bool
) -> GmailTransport:
    """The Gmail transport of one sender account, from its (unsealed) refresh token.

    The access token lives in memory only; nothing is written back, because the
    refresh token (the only lasting secret) does not change on a refresh.
    ``web``: the grant came from the web client ("Connect your Gmail"), else
    from the Desktop client (``accounts link``); a refresh must use that client.
    """
    from bot.mail.google_web_flow import client_config

    path = settings.google_web_client_secrets_file if web else settings.google_client_secrets_file
    config = client_config(settings, path, "web" if web else "installed")
    credentials = Credentials(
        token=None,
        refresh_token=refresh_token,
        token_uri=config["token_uri"],
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        scopes=sorted(scopes),
        account=address,
    )
    return GmailTransport(
        credentials,
        api_url=settings.gmail_api_url,
        sender=address,
        max_in_flight=workers_needed(settings.gmail_quota_units_per_minute, SLOW_SEND_LATENCY_S),
    )
