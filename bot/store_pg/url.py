"""Database URLs: which back-end one selects, and how to show one without its password."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")
HIDDEN = "***"


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` is a ``postgresql://`` (or ``postgres://``) URL."""
    return urlsplit(url.strip()).scheme.lower() in SCHEMES


def password_of(url: str) -> str:
    """The password written in ``url`` (in the user part or as ``?password=``), or ''."""
    try:
        parts = urlsplit(url)
        if parts.password:
            return parts.password
        query = dict(parse_qsl(parts.query))
    except ValueError:
        return ""
    return query.get("password", "")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: safe for logs, errors and ``config``.

    Takes libpq's ``key=value`` form too (``password=…`` is hidden there as well).
    """
    if "://" not in url:
        return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", rf"\g<1>{HIDDEN}", url)
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.split(':', 1)[0]}:{HIDDEN}@{host}"
        query = [
            (k, HIDDEN if k == "password" else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        return urlunsplit(
            (parts.scheme, netloc, parts.path, urlencode(query, safe="/:"), parts.fragment)
        )
    except ValueError:
        return f"{url.split('://', 1)[0]}://{HIDDEN}"
