"""Signed unsubscribe tokens.

A token is ``v1.<campaign>.<address, base64url>.<HMAC-SHA256 tag, truncated>``.
It names only its own address, so a forwarded link reveals nothing about other
recipients, and without the secret nobody can mint one for another address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from bot.errors import UserInputError

_TAG_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_secret(configured: str, data_dir: Path) -> bytes:
    """The HMAC key: ``UNSUBSCRIBE_SECRET``, else one generated once into ``data_dir``.

    The generated file is created with mode 0600 so only the service account can
    read it; losing it only invalidates links already sent.
    """
    if configured:
        return configured.encode("utf-8")
    path = data_dir / "unsubscribe.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_bytes().strip()


def _tag(secret: bytes, campaign_id: int, email: str) -> str:
    msg = f"v1|{campaign_id}|{email.strip().lower()}".encode()
    return _b64(hmac.new(secret, msg, hashlib.sha256).digest()[:_TAG_BYTES])


def make_token(secret: bytes, email: str, campaign_id: int) -> str:
    address = _b64(email.strip().lower().encode("utf-8"))
    return f"v1.{campaign_id}.{address}.{_tag(secret, campaign_id, email)}"


def read_token(secret: bytes, token: str) -> tuple[str, int]:
    """(address, campaign id) from a valid token; UserInputError otherwise."""
    try:
        version, campaign, address, tag = token.split(".")
        campaign_id = int(campaign)
        email = _unb64(address).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserInputError("This unsubscribe link is malformed.", field="token") from exc
    if version != "v1" or not hmac.compare_digest(tag, _tag(secret, campaign_id, email)):
        raise UserInputError("This unsubscribe link is not valid.", field="token")
    return email, campaign_id


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"
