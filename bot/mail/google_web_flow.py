"""Google's web-server OAuth flow with PKCE: "Connect your Gmail" from Slack.

Why it looks like this (facts: /work/shared/reference, section H):
- A new ``Flow`` is built for each step. The one that finishes has no verifier
  of its own, and without one Google answers ``invalid_grant: Missing code
  verifier``; so the verifier made when the link was created is passed back in
  (kept sealed with the state, ``bot.handlers.senders``).
- The state is checked by mailbolt before this module is called (single use,
  bound to the Slack user, workspace and browser), so ``fetch_token(code=…)``,
  which checks no state, is right here.
- Scopes are the same few as ``python -m bot auth`` asks for; fewer granted
  (the person unticked sending) is refused with words, not with oauthlib's
  ``Warning``.
- The redirect URI is ``PUBLIC_BASE_URL/oauth/google/callback`` exactly: Google
  compares it character for character with the one registered for the client.
- Revoking posts the refresh token to the revoke endpoint next to the token
  endpoint (``…/token`` → ``…/revoke``). Google then ends mailbolt's whole
  authorization for that Google account, so a grant that is merely not kept
  (refused after the exchange) is not revoked: that would end another one.
- Token values never reach a log line (the token libraries are quietened).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.errors import AuthError
from bot.mail.google_auth import (
    _TOKEN_LOGGING_LIBRARIES,
    SEND_SCOPE,
    _quiet,
    ca_certs,
    email_from_id_token,
    requested_scopes,
)
from bot.ports import Grant

CALLBACK_PATH = "/oauth/google/callback"
START_PATH = "/oauth/google/start"
DEFAULT_REVOKE_URI = "https://oauth2.googleapis.com/revoke"


def callback_url(settings: Settings) -> str:
    """Where Google sends the browser back (register exactly this in Google Cloud)."""
    return settings.public_base_url.rstrip("/") + CALLBACK_PATH


def client_config(settings: Settings, path: Path, kind: str) -> dict[str, Any]:
    """The OAuth client file's inner object, with the token endpoint overridden
    (``GOOGLE_TOKEN_URI``); ``AuthError`` naming the setting when unusable."""
    setting = "GOOGLE_WEB_CLIENT_SECRETS_FILE" if kind == "web" else "GOOGLE_CLIENT_SECRETS_FILE"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        inner = dict(data.get("web") or data.get("installed") or {})
        inner["client_id"] and inner["client_secret"]
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise AuthError(
            f"The OAuth client file {path} ({setting}) is missing or unusable ({exc}). In "
            "Google Cloud console, create an OAuth client of type "
            + ("Web application" if kind == "web" else "Desktop app")
            + ", download its JSON and save it there."
        ) from exc
    if settings.google_token_uri:
        inner["token_uri"] = settings.google_token_uri
    inner.setdefault("token_uri", "https://oauth2.googleapis.com/token")
    inner.setdefault("auth_uri", "https://accounts.google.com/o/oauth2/auth")
    return inner


def revoke_uri(token_uri: str) -> str:
    """Google's revoke endpoint sits next to its token endpoint."""
    if not token_uri:
        return DEFAULT_REVOKE_URI
    return token_uri.rsplit("/", 1)[0] + "/revoke"


class GoogleWebFlow:
    """``bot.ports.GrantFlow`` on google-auth-oauthlib's ``Flow``."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def _flow(self, code_verifier: str) -> Any:
        from google_auth_oauthlib.flow import Flow

        config = client_config(self.settings, self.settings.google_web_client_secrets_file, "web")
        return Flow.from_client_config(
            {"web": config},
            scopes=list(requested_scopes(self.settings)),
            redirect_uri=callback_url(self.settings),
            code_verifier=code_verifier,
            autogenerate_code_verifier=False,
        )

    def authorization_url(self, state: str, code_verifier: str) -> str:
        if not self.settings.public_base_url:
            raise AuthError(
                "PUBLIC_BASE_URL is not set, so Google has nowhere to send you back. An admin "
                "sets it to this server's public https address."
            )
        url, _ = self._flow(code_verifier).authorization_url(state=state, prompt="consent")
        return str(url)

    def exchange(self, code: str, code_verifier: str) -> Grant:
        from oauthlib.oauth2.rfc6749.errors import OAuth2Error

        flow = self._flow(code_verifier)
        try:
            with _quiet(_TOKEN_LOGGING_LIBRARIES):
                token = flow.fetch_token(code=code)
        except Warning as exc:  # oauthlib: other scopes granted than asked for
            if getattr(exc, "token", None) is None:
                raise _not_allowed_to_send() from exc
            token = dict(exc.token)  # type: ignore[attr-defined]  # checked below: sending too
        except OAuth2Error as exc:
            raise AuthError(
                f"Google did not accept the sign-in ({exc.error}). Nothing was connected; "
                "try 'Connect your Gmail' again."
            ) from exc
        except OSError as exc:
            raise AuthError(
                f"Could not reach Google to finish the sign-in ({exc}). Try again."
            ) from exc
        scope = token.get("scope") or ()
        scopes = frozenset(scope.split() if isinstance(scope, str) else scope)
        if SEND_SCOPE not in scopes:
            # Not revoked: Google revokes the app's whole authorization for that
            # account, which would also end a grant connected earlier. A token that
            # cannot send is kept nowhere and is harmless.
            raise _not_allowed_to_send()
        refresh_token = str(token.get("refresh_token") or "")
        if not refresh_token:
            raise AuthError(
                "Google returned no refresh token. Remove mailbolt at "
                "https://myaccount.google.com/permissions and connect again."
            )
        address = email_from_id_token(token.get("id_token"))
        if not address:
            raise AuthError("Google did not say which address signed in; connect again.")
        return Grant(address=address, refresh_token=refresh_token, scopes=scopes)

    def revoke(self, refresh_token: str) -> None:
        """Revoke at Google; ``AuthError`` if Google could not be reached or refused."""
        token_uri = self.settings.google_token_uri or "https://oauth2.googleapis.com/token"
        data = urllib.parse.urlencode({"token": refresh_token}).encode()
        request = urllib.request.Request(  # noqa: S310 - an https endpoint from settings
            revoke_uri(token_uri),
            data=data,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        import ssl

        context = ssl.create_default_context(cafile=ca_certs())
        try:
            with urllib.request.urlopen(request, timeout=30, context=context):  # noqa: S310
                return
        except urllib.error.HTTPError as exc:
            if exc.code == 400:  # already revoked or expired: the outcome wanted
                return
            raise AuthError(f"Google refused to revoke the grant (HTTP {exc.code}).") from exc
        except OSError as exc:
            raise AuthError(f"Could not reach Google to revoke the grant ({exc}).") from exc


def _not_allowed_to_send() -> AuthError:
    return AuthError(
        "Google granted fewer permissions than sending needs (gmail.send was not allowed). "
        "Nothing was connected; click 'Connect your Gmail' again and tick every box."
    )
