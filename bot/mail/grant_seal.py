"""Grants at rest: every refresh token the database keeps is encrypted first.

Why it looks like this:
- Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) rather than hand-made
  AES: it authenticates as well as encrypts, so a tampered or foreign value is
  refused, never decrypted into garbage that is then sent to Google.
- The key is kept like the unsubscribe key: ``GRANT_KEY``, else a file
  ``grant.key`` beside the database, created once, atomically, mode 0600
  (``bot.private_files.create_private``). A copy of the database alone therefore
  holds no usable grant. Keys shorter than 32 bytes are refused.
- The Fernet key is SHA-256 of the configured key, so any long enough secret
  works (Fernet itself wants exactly 32 url-safe-base64 bytes).
- Losing the key loses the grants, nothing else: each person reconnects.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from bot.errors import AuthError, ConfigError
from bot.private_files import key_file

KEY_FILE = "grant.key"
MIN_KEY_BYTES = 32


class GrantSeal:
    """``bot.ports.Sealer`` with Fernet."""

    def __init__(self, key: bytes, *, where: str = "GRANT_KEY"):
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(
                [
                    f"{where} is {len(key)} bytes long; it must be at least {MIN_KEY_BYTES}, "
                    "or the Gmail grants it protects could be guessed. Generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
                ]
            )
        self._fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(key).digest()))
        self._where = where

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError, UnicodeError) as exc:
            raise AuthError(
                f"A stored Gmail grant cannot be decrypted with the key in {self._where} (the "
                "key changed or the value was altered). The account must be connected again."
            ) from exc


def load_seal(configured: str, data_dir: Path) -> GrantSeal:
    """``GRANT_KEY`` if set, else the key file beside the database (created once)."""
    if configured:
        return GrantSeal(configured.encode("utf-8"))
    path = data_dir / KEY_FILE
    try:
        key = key_file(path)
    except OSError as exc:
        raise ConfigError(
            [f"Cannot create or read the grant key {path}: {exc.strerror}. Set GRANT_KEY instead."]
        ) from exc
    return GrantSeal(key, where=str(path))
