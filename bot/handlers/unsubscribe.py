"""Signed unsubscribe tokens.

A token is ``v1.<campaign>.<address, base64url>.<HMAC-SHA256 tag, truncated>``.
It names only its own address, so a forwarded link reveals nothing about other
recipients, and without the secret nobody can mint one for another address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path

from bot.errors import ConfigError, UserInputError
from bot.private_files import key_file

_TAG_BYTES = 16
KEY_FILE = "unsubscribe.key"
#: HMAC-SHA256 keys shorter than this are refused (RFC 2104 recommends at least the
#: hash's output length).
MIN_SECRET_BYTES = 32
_TOKEN = re.compile(r"v1\.([0-9]{1,18})\.([A-Za-z0-9_-]{1,400})\.([A-Za-z0-9_-]{22})\Z")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_secret(configured: str, data_dir: Path) -> bytes:
    """The HMAC key: ``UNSUBSCRIBE_SECRET``, else one generated once into ``data_dir``.

    The generated file appears complete or not at all (``create_private``), so
    processes starting together all read the same key. A key shorter than
    ``MIN_SECRET_BYTES`` (an empty file, a typed-in word) is refused with a
    ``ConfigError``: tokens signed with it could be forged. Losing the file only
    invalidates links already sent.
    """
    if configured:
        key = configured.encode("utf-8")
        if len(key) < MIN_SECRET_BYTES:
            raise ConfigError(
                [
                    f"UNSUBSCRIBE_SECRET is {len(key)} bytes long; it must be at least "
                    f"{MIN_SECRET_BYTES}, or anyone could forge unsubscribe links. Generate one "
                    "with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`, or "
                    f"leave it empty to have mailbolt keep one in {data_dir / KEY_FILE}."
                ]
            )
        return key
    path = data_dir / KEY_FILE
    try:
        key = key_file(path)
    except OSError as exc:
        raise ConfigError(
            [
                f"Cannot create or read the unsubscribe key {path} ({exc.strerror or exc}). "
                "Make the folder writable for mailbolt, or set UNSUBSCRIBE_SECRET."
            ]
        ) from exc
    if len(key) < MIN_SECRET_BYTES:
        what = "empty" if not key else f"only {len(key)} bytes long"
        raise ConfigError(
            [
                f"The unsubscribe key {path} is {what}; it must hold at least "
                f"{MIN_SECRET_BYTES} bytes, or anyone could forge unsubscribe links. Restore it "
                "from a backup, or delete it so mailbolt generates a new one (links in mail "
                "already sent then stop working)."
            ]
        )
    return key


def _tag(secret: bytes, campaign_id: int, email: str) -> str:
    msg = f"v1|{campaign_id}|{email.strip().lower()}".encode()
    return _b64(hmac.new(secret, msg, hashlib.sha256).digest()[:_TAG_BYTES])


def make_token(secret: bytes, email: str, campaign_id: int) -> str:
    address = _b64(email.strip().lower().encode("utf-8"))
    return f"v1.{campaign_id}.{address}.{_tag(secret, campaign_id, email)}"


def read_token(secret: bytes, token: str) -> tuple[str, int]:
    """(address, campaign id) from a valid token; UserInputError for anything else.

    The shape is checked first with one anchored pattern (ASCII digits and
    base64url only), so no odd input (non-ASCII digits, a huge number, a
    non-ASCII tag that ``hmac.compare_digest`` would choke on) gets further.
    """
    match = _TOKEN.match(token)
    if match is None:
        raise UserInputError("This unsubscribe link is malformed.", field="token")
    campaign, address, tag = match.groups()
    campaign_id = int(campaign)
    try:
        email = _unb64(address).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserInputError("This unsubscribe link is malformed.", field="token") from exc
    if not hmac.compare_digest(tag, _tag(secret, campaign_id, email)):
        raise UserInputError("This unsubscribe link is not valid.", field="token")
    return email, campaign_id


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"
