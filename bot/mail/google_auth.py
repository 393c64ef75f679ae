"""The Gmail grant: asking for it, storing it privately, and keeping it fresh.

Why it looks like this:
- Scopes are the fewest that work. ``gmail.send`` can send but not read, so a
  leaked token cannot read the mailbox. The sending address comes from the
  OpenID ``id_token`` (``openid`` + ``userinfo.email``, which Google lists as
  non-sensitive), because ``getProfile`` would need a Gmail read scope.
  ``gmail.readonly`` (restricted) is asked for only when a feature that reads
  mail is switched on, and ``requested_scopes`` says which one.
- The token file holds a long-lived refresh token: it is written atomically
  (a 0600 temp file, fsync, rename), so a crash never leaves it half written or
  briefly readable by others, and a group/world-readable file is repaired with a
  warning, or refused when it can't be.
- ``Credentials.from_authorized_user_file`` ignores the file's ``token_uri``
  and ``with_token_uri`` drops the expiry (which makes the first call go out
  with a stale token and bounce off a 401), so the override keeps the expiry.
- ``invalid_grant`` becomes an ``AuthError`` that says exactly what to run; apps
  whose consent screen is in "Testing" status get refresh tokens that expire
  after 7 days, which is the usual reason.
- Token values never reach a log line or an error message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import google.auth.jwt
import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.auth.transport import Request
from google.oauth2.credentials import Credentials

from bot.config import Settings
from bot.errors import AuthError, TransientSendError
from bot.ports import Grant
from bot.private_files import write_private

log = logging.getLogger(__name__)

SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"
READONLY_SCOPE = "https://www.googleapis.com/auth/gmail.readonly"
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
OPENID_SCOPE = "openid"

#: Scopes that allow ``messages.list(q=…)`` and ``messages.get(format=raw|full)``.
#: ``gmail.metadata`` does not: it forbids ``q`` and the full formats.
READ_SCOPES = frozenset(
    {READONLY_SCOPE, "https://www.googleapis.com/auth/gmail.modify", "https://mail.google.com/"}
)

AUTH_COMMAND = "python -m bot auth"
HTTP_TIMEOUT_S = 30.0
_FLOW_TIMEOUT_S = 600


def requested_scopes(settings: Settings) -> dict[str, str]:
    """The scopes ``python -m bot auth`` asks for, each with the reason it is needed."""
    scopes = {
        SEND_SCOPE: "send the campaign's messages (sensitive; cannot read mail)",
        OPENID_SCOPE: "sign-in, so Google returns who authorized (non-sensitive)",
        EMAIL_SCOPE: "learn the sending address for the From header (non-sensitive)",
    }
    reasons = []
    if settings.gmail_reconcile:
        reasons.append("GMAIL_RECONCILE=on: look up messages whose send result was lost")
    if settings.bounce_scan:
        reasons.append("BOUNCE_SCAN=on: read bounce reports in the inbox")
    if reasons:
        scopes[READONLY_SCOPE] = "; ".join(reasons) + " (restricted)"
    return scopes


def granted_scopes(credentials: Credentials) -> frozenset[str]:
    """What Google actually granted (after a refresh), else what the file records."""
    return frozenset(credentials.granted_scopes or credentials.scopes or ())


def has_read_scope(scopes: frozenset[str]) -> bool:
    return bool(scopes & READ_SCOPES)


def ca_certs() -> str | None:
    """``HTTPLIB2_CA_CERTS``, read at call time.

    httplib2 reads it only once, at import; reading it here lets a corporate TLS
    proxy's CA (or the test fake's) be set after import.
    """
    return os.environ.get("HTTPLIB2_CA_CERTS") or None


def token_request() -> Request:
    """A google-auth transport for token refreshes, with our timeout and CA."""
    return google_auth_httplib2.Request(httplib2.Http(timeout=HTTP_TIMEOUT_S, ca_certs=ca_certs()))


# -- the token file ---------------------------------------------------------


def save_credentials(path: Path, credentials: Credentials, *, account: str = "") -> None:
    """Write the grant atomically with mode 0600, recording the granted scopes."""
    data = json.loads(credentials.to_json())
    data["scopes"] = sorted(granted_scopes(credentials))
    data["account"] = account or credentials.account or data.get("account", "")
    write_private(Path(path), (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def _ensure_private(path: Path) -> None:
    """Repair a token file others can read, or refuse to use it."""
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return
    advice = (
        "If other accounts on this machine could read it, revoke mailbolt's access at "
        f"https://myaccount.google.com/permissions and run `{AUTH_COMMAND}` again."
    )
    try:
        os.chmod(path, 0o600)
    except OSError as exc:
        raise AuthError(
            f"The Gmail token file {path} is readable by other users (mode {mode:04o}) and "
            f"could not be made private ({exc.strerror}). Run `chmod 600 {path}`. {advice}"
        ) from exc
    log.warning(
        "The Gmail token file %s was readable by other users (mode %04o); changed it to 0600. %s",
        path,
        mode,
        advice,
    )


def _missing_grant(path: Path) -> AuthError:
    return AuthError(
        f"No Gmail authorization found at {path} (GMAIL_TOKEN_FILE). Run `{AUTH_COMMAND}` "
        "to sign in with the account that sends the mail."
    )


def load_credentials(settings: Settings, *, refresh: bool = True) -> Credentials:
    """The stored grant; refreshed (and saved) first when the access token is stale."""
    path = Path(settings.gmail_token_file)
    if not path.is_file():
        raise _missing_grant(path)
    _ensure_private(path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        credentials = Credentials.from_authorized_user_info(info)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise AuthError(
            f"{path} is not a usable Gmail token file ({exc}). Run `{AUTH_COMMAND}` to "
            "create it again."
        ) from exc
    if settings.google_token_uri:
        expiry = credentials.expiry
        credentials = credentials.with_token_uri(settings.google_token_uri)
        credentials.expiry = expiry
    if refresh and not credentials.valid:
        refresh_credentials(credentials, token_request())
        save_credentials(path, credentials)
    return credentials


# -- refreshing -------------------------------------------------------------


def refresh_credentials(credentials: Credentials, request: Request) -> None:
    """Get a new access token; errors become ``AuthError`` or ``TransientSendError``."""
    try:
        credentials.refresh(request)
    except RefreshError as exc:
        raise auth_error(exc) from exc
    except TransportError as exc:
        raise TransientSendError(
            f"Could not reach Google's token endpoint to refresh the Gmail access token "
            f"({exc}). Nothing was sent."
        ) from exc
    log.info("Refreshed the Gmail access token (valid until %s UTC).", credentials.expiry)


def auth_error(exc: RefreshError) -> AuthError:
    """A refresh failure explained for the person who must fix it."""
    details = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
    code = details.get("error", "")
    description = details.get("error_description", "")
    if code == "invalid_grant":
        return AuthError(
            f"Google refused the saved Gmail authorization (invalid_grant: {description}). "
            f"Run `{AUTH_COMMAND}` to sign in again. If the OAuth consent screen of your "
            'Google Cloud project is in "Testing" status, Google expires its refresh tokens '
            "after 7 days: publish the app (or make it Internal in Google Workspace) to stop "
            "this from recurring."
        )
    reason = f"{code}: {description}" if code else "the token endpoint refused the refresh"
    return AuthError(
        f"Could not refresh the Gmail access token ({reason}). Check GOOGLE_CLIENT_SECRETS_FILE "
        f"and run `{AUTH_COMMAND}` again."
    )


# -- the consent flow -------------------------------------------------------

#: requests-oauthlib logs the whole token response (refresh token included) at DEBUG,
#: and the flow logs the redirect carrying the authorization code at INFO.
_TOKEN_LOGGING_LIBRARIES = ("requests_oauthlib", "oauthlib", "google_auth_oauthlib")

_PROMPT = (
    "Open this URL in a browser signed in as the Gmail account that will send:\n\n{url}\n\n"
    "On a remote server, first forward the port from the URL's redirect_uri "
    "(ssh -L PORT:localhost:PORT), or authorize on your workstation and copy the token file."
)


def run_auth_flow(settings: Settings, *, open_browser: bool, port: int = 0) -> dict[str, Any]:
    """Ask Google for a grant in the browser and store it; return ``check_auth``'s summary.

    Uses the loopback redirect (``run_local_server``): the out-of-band console
    flow was removed from google-auth-oauthlib 1.0 after Google blocked it.
    """
    credentials = consent(settings, open_browser=open_browser, port=port)
    account = email_from_id_token(credentials.id_token)
    save_credentials(Path(settings.gmail_token_file), credentials, account=account)
    log.info("Saved the Gmail authorization for %s to %s.", account, settings.gmail_token_file)
    return summary(settings, credentials)


def link_grant(settings: Settings, *, open_browser: bool, port: int = 0) -> Grant:
    """``accounts link``: the same consent as ``auth``, for a shared account whose
    grant the database keeps (sealed) instead of a token file."""
    credentials = consent(settings, open_browser=open_browser, port=port)
    address = email_from_id_token(credentials.id_token)
    if not address:
        raise AuthError("Google did not say which address signed in; run the command again.")
    return Grant(
        address=address,
        refresh_token=str(credentials.refresh_token),
        scopes=granted_scopes(credentials),
    )


def consent(settings: Settings, *, open_browser: bool, port: int = 0) -> Credentials:
    """The installed-app consent in a browser, checked: every scope asked for, and a
    refresh token. Nothing is stored here."""
    from google_auth_oauthlib.flow import InstalledAppFlow, WSGITimeoutError
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error

    secrets_file = Path(settings.google_client_secrets_file)
    if not secrets_file.is_file():
        raise AuthError(
            f"OAuth client file {secrets_file} not found (GOOGLE_CLIENT_SECRETS_FILE). In Google "
            'Cloud console, create an OAuth client of type "Desktop app", download its JSON '
            "and save it there."
        )
    wanted = requested_scopes(settings)
    try:
        flow = InstalledAppFlow.from_client_secrets_file(str(secrets_file), scopes=list(wanted))
    except ValueError as exc:
        raise AuthError(
            f"{secrets_file} is not an OAuth client of type Desktop app ({exc})."
        ) from exc
    if settings.google_token_uri:
        flow.client_config["token_uri"] = settings.google_token_uri
    try:
        with _quiet(_TOKEN_LOGGING_LIBRARIES):
            credentials = flow.run_local_server(
                host="localhost",
                port=port,
                open_browser=open_browser,
                authorization_prompt_message=_PROMPT,
                timeout_seconds=_FLOW_TIMEOUT_S,
                prompt="consent",  # Google returns a refresh token only on consent
            )
    except Warning as exc:  # oauthlib raises Warning when fewer scopes are granted
        if not str(exc).startswith("Scope has changed"):
            raise
        old = set(getattr(exc, "old_scope", ()) or ())
        new = set(getattr(exc, "new_scope", ()) or ())
        raise _missing_scopes(old - new, wanted) from exc
    except WSGITimeoutError as exc:
        raise AuthError(
            f"No answer from the browser within {_FLOW_TIMEOUT_S // 60} minutes; run "
            f"`{AUTH_COMMAND}` again."
        ) from exc
    except OAuth2Error as exc:
        raise AuthError(
            f"Google did not grant access ({exc.error}). Run `{AUTH_COMMAND}` again and allow "
            "every permission listed."
        ) from exc
    missing = set(wanted) - granted_scopes(credentials)
    if missing:
        raise _missing_scopes(missing, wanted)
    if not credentials.refresh_token:
        raise AuthError(
            f"Google returned no refresh token. Remove mailbolt at "
            f"https://myaccount.google.com/permissions and run `{AUTH_COMMAND}` again."
        )
    return credentials


@contextlib.contextmanager
def _quiet(names: tuple[str, ...]) -> Iterator[None]:
    """Raise these loggers to WARNING for a moment: below that they print secrets."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _missing_scopes(missing: set[str], wanted: dict[str, str]) -> AuthError:
    listed = "; ".join(f"{scope} ({wanted.get(scope, 'required')})" for scope in sorted(missing))
    return AuthError(
        f"Google granted fewer permissions than mailbolt needs; missing: {listed}. Run "
        f"`{AUTH_COMMAND}` again and tick every box on the consent screen (or switch off the "
        "setting that needs the missing permission)."
    )


def email_from_id_token(id_token: str | None) -> str:
    """The verified email claim of an OpenID ``id_token``, or ``""``.

    The signature is not checked: the token came straight from Google's token
    endpoint over TLS, which OpenID Connect Core (3.1.3.7) accepts in its place.
    """
    if not id_token:
        return ""
    try:
        claims = google.auth.jwt.decode(id_token, verify=False)
    except ValueError:
        return ""
    if claims.get("email_verified") is False:
        return ""
    return str(claims.get("email", ""))


# -- inspection -------------------------------------------------------------


def summary(settings: Settings, credentials: Credentials) -> dict[str, Any]:
    """Account, scopes, expiry and what is missing, for ``auth`` and ``auth --check``."""
    scopes = granted_scopes(credentials)
    expiry = credentials.expiry.replace(tzinfo=UTC) if credentials.expiry else None
    return {
        "account": credentials.account or email_from_id_token(credentials.id_token),
        "scopes": sorted(scopes),
        "expiry": expiry,
        "token_file": str(settings.gmail_token_file),
        "can_send": SEND_SCOPE in scopes,
        "can_read": has_read_scope(scopes),
        "missing": sorted(set(requested_scopes(settings)) - scopes),
    }


def check_auth(settings: Settings) -> dict[str, Any]:
    """Prove the stored grant still works: refresh it now, save it, and summarise it."""
    credentials = load_credentials(settings, refresh=False)
    refresh_credentials(credentials, token_request())
    save_credentials(Path(settings.gmail_token_file), credentials)
    return summary(settings, credentials)


def authorized_address(settings: Settings) -> str:
    """The address recorded at ``auth`` time (no network call)."""
    path = Path(settings.gmail_token_file)
    if not path.is_file():
        raise _missing_grant(path)
    _ensure_private(path)
    try:
        account = json.loads(path.read_text(encoding="utf-8")).get("account", "")
    except (OSError, ValueError, AttributeError) as exc:
        raise AuthError(f"{path} is not a usable Gmail token file ({exc}).") from exc
    if not account:
        raise AuthError(
            f"{path} does not record which address it sends from. Set SENDER_ADDRESS, or run "
            f"`{AUTH_COMMAND}` again."
        )
    return str(account)
