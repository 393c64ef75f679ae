"""Settings: one frozen object read from the environment and an optional ``.env``.

Every setting is declared once in ``SPECS`` (name, default, parser, whether it is
a secret, and a line of help). The README's table, ``.env.example`` and
``python -m bot config`` are all derived from that list, so they cannot drift.
Validation collects every bad value before failing, so a person fixes them all
in one go instead of one per restart.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bot.channels import CHANNEL_PREFIXES, WITH_DMS, ChannelMap
from bot.errors import ConfigError
from bot.handlers.quota import SEND_UNITS
from bot.handlers.unsubscribe import MIN_SECRET_BYTES


def _whole(low: int, high: int) -> Callable[[str], int]:
    """A whole number in ``low..high``, refused in words a person reads."""
    allowed = f"must be a whole number from {low:,} to {high:,}"

    def parse(raw: str) -> int:
        text = raw.strip().replace("_", "")
        if not text.lstrip("+-").isdigit():
            raise ValueError(allowed)
        value = int(text)
        if not low <= value <= high:
            raise ValueError(allowed)
        return value

    setattr(parse, "allowed", f"{low:,}–{high:,}")  # noqa: B010 - read by Spec.allowed
    return parse


def _seconds(low: float, high: float) -> Callable[[str], float]:
    """A number of seconds in ``low..high`` (fractions allowed)."""
    allowed = f"must be a number of seconds from {low:g} to {high:g}"

    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(allowed) from None
        if not low <= value <= high:  # also refuses nan and inf
            raise ValueError(allowed)
        return value

    setattr(parse, "allowed", f"{low:g}–{high:g} s")  # noqa: B010 - read by Spec.allowed
    return parse


def _transport(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("sandbox", "gmail"):
        raise ValueError("must be 'sandbox' or 'gmail'")
    return value


def _on_off(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be 'on' or 'off' (also accepted: yes/no, true/false, 1/0)")


def _url(raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http(s) URL such as https://mail.example.com")
    return value


def _database_url(raw: str) -> str:
    """Empty (SQLite at DATABASE_PATH), or a PostgreSQL URL."""
    value = _text(raw)
    if not value:
        return ""
    from bot.store_pg.url import is_postgres_url  # stdlib only: no psycopg here

    allowed = (
        "must be a PostgreSQL URL such as postgresql://mailbolt:secret@db.example.com:5432/"
        "mailbolt, or empty to use the SQLite file DATABASE_PATH"
    )
    try:
        parsed = urlparse(value)
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(allowed) from None
    if not is_postgres_url(value):
        raise ValueError(allowed)
    return value


def _redact_url(text: str) -> str:
    from bot.store_pg.url import redact_url

    return redact_url(text)


def _address(raw: str) -> str:
    """Empty, or one plain address such as team@example.com."""
    value = _text(raw)
    if value and (
        value.count("@") != 1
        or " " in value
        or value.startswith("@")
        or "." not in value.rpartition("@")[2]
    ):
        raise ValueError("must be an email address such as team@example.com, or empty")
    return value


def _user_ids(raw: str) -> str:
    """Comma-separated Slack user IDs (U…/W…), or ``*``."""
    value = _text(raw)
    ids = [u.strip() for u in value.split(",") if u.strip()]
    if ids == ["*"]:
        return value
    bad = [u for u in ids if not (u[:1] in ("U", "W") and u[1:].isalnum() and u.isupper())]
    if bad:
        raise ValueError(
            "must be Slack user IDs such as U012AB3CD separated by commas, or '*' "
            f"(not {', '.join(bad[:3])})"
        )
    return value


def _admin_ids(raw: str) -> str:
    """Comma-separated Slack user IDs; ``*`` is refused: admins are named one by one."""
    value = _user_ids(raw)
    if value.strip() == "*":
        raise ValueError("must name admins by their Slack user IDs; '*' is not allowed here")
    return value


#: ``APPROVAL_REQUIRED``'s values: which campaigns a second person must approve.
APPROVAL_MODES = ("never", "marketing", "always")


def _approval_mode(raw: str) -> str:
    value = raw.strip().lower()
    if value not in APPROVAL_MODES:
        raise ValueError("must be 'never', 'marketing' or 'always'")
    return value


def _approver_ids(raw: str) -> str:
    """Comma-separated Slack user IDs (U…/W…) and user group IDs (S…)."""
    value = _text(raw)
    ids = [u.strip() for u in value.split(",") if u.strip()]
    bad = [u for u in ids if not (u[:1] in ("U", "W", "S") and u[1:].isalnum() and u.isupper())]
    if bad:
        raise ValueError(
            "must be Slack user IDs (U012AB3CD) or user group IDs (S012AB3CD) separated "
            f"by commas (not {', '.join(bad[:3])})"
        )
    return ",".join(ids)


def _channels(prefixes: tuple[str, ...]) -> Callable[[str], str]:
    """Empty, one channel ID for every workspace, or ``TEAM:CHANNEL`` pairs (with at
    most one bare ID, the default): see ``bot.channels``. The normalized text."""

    def parse(raw: str) -> str:
        return str(ChannelMap.parse(_text(raw), prefixes))

    allowed = "a channel ID (C…), or TEAM:CHANNEL pairs separated by commas, or empty"
    setattr(parse, "allowed", allowed)  # noqa: B010 - read by Spec.allowed
    return parse


_approval_channels = _channels(CHANNEL_PREFIXES)
_status_channels = _channels(WITH_DMS)


def approval_problems(values: Mapping[str, Any]) -> dict[str, str]:
    """Approval is required but cannot be asked for: the setting to fix → why.

    Never a silent send: a policy nobody can satisfy stops ``serve``, ``send`` and
    ``config`` with this, instead of sending unapproved or waiting forever.
    """
    required = values.get("APPROVAL_REQUIRED", "never") != "never" or bool(
        values.get("APPROVAL_MIN_RECIPIENTS", 0)
    )
    if not required:
        return {}
    problems = {}
    if not values.get("APPROVERS"):
        problems["APPROVERS"] = (
            "must name who approves (Slack user IDs U… or a user group S…) while "
            "APPROVAL_REQUIRED or APPROVAL_MIN_RECIPIENTS asks for approval"
        )
    if not values.get("APPROVAL_CHANNEL"):
        problems["APPROVAL_CHANNEL"] = (
            "must be the channel ID where approval requests are posted while "
            "APPROVAL_REQUIRED or APPROVAL_MIN_RECIPIENTS asks for approval"
        )
    return problems


def _text(raw: str) -> str:
    value = raw.strip()
    if "\r" in value or "\n" in value:
        raise ValueError("must be a single line")
    return value


def _secret_key(raw: str) -> str:
    """Empty (generate one), or a key long enough that tokens cannot be guessed."""
    value = _text(raw)
    if value and len(value.encode("utf-8")) < MIN_SECRET_BYTES:
        raise ValueError(
            f"is {len(value.encode('utf-8'))} bytes; use at least {MIN_SECRET_BYTES} "
            "(for example: python -c 'import secrets; print(secrets.token_hex(32))'), "
            "or leave it empty to have one generated"
        )
    return value


def _path(raw: str) -> Path:
    value = _text(raw)
    if not value:
        raise ValueError("must be a file or folder path, not empty")
    return Path(value)


_ALLOWED = {
    "_transport": "`sandbox`, `gmail`",
    "_on_off": "`on`, `off`",
    "_url": "http(s) URL, or empty",
    "_address": "an email address, or empty",
    "_user_ids": "Slack user IDs (U…), comma-separated, or `*`",
    "_admin_ids": "Slack user IDs (U…), comma-separated, or empty",
    "_text": "one line",
    "_path": "a path",
    "_secret_key": f"empty, or at least {MIN_SECRET_BYTES} bytes",
    "_database_url": "`postgresql://…` URL, or empty (SQLite)",
    "_approval_mode": "`never`, `marketing`, `always`",
    "_approver_ids": "Slack user IDs (U…) and user group IDs (S…), comma-separated",
}


@dataclass(frozen=True)
class Spec:
    """How one environment variable becomes one ``Settings`` field."""

    env: str
    default: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False
    #: How a value is shown when it is not secret as a whole but holds a secret
    #: (a database URL's password): ``config``, errors and logs show this instead.
    redact: Callable[[str], str] | None = None

    def show(self, text: str) -> str:
        """``text`` as a person may see it: masked if secret, redacted if it holds one."""
        if self.secret and text:
            return mask(text)
        return self.redact(text) if self.redact and text else text

    @property
    def allowed(self) -> str:
        """What values are accepted, in a few words (the README table and ``config``)."""
        return getattr(self.parse, "allowed", "") or _ALLOWED.get(self.parse.__name__, "")

    @property
    def field(self) -> str:
        return self.env.lower()


SPECS: tuple[Spec, ...] = (
    # Core
    Spec(
        "MAIL_TRANSPORT",
        "sandbox",
        _transport,
        "'sandbox' writes .eml files to SANDBOX_OUTBOX; 'gmail' sends through the Gmail API.",
    ),
    Spec(
        "DATABASE_PATH",
        "data/sendmail.db",
        _path,
        "SQLite file with campaigns, messages, unsubscribes and the audit log.",
    ),
    Spec(
        "DATABASE_BUSY_SECONDS",
        "30",
        _seconds(0, 600),
        "How long to wait for a database another program has locked before giving up "
        "with an error.",
    ),
    Spec(
        "DATABASE_URL",
        "",
        _database_url,
        "PostgreSQL instead of SQLite (postgresql://user:password@host:5432/database), so "
        "several processes and machines can share one store. Empty: the SQLite file "
        "DATABASE_PATH. Shown without its password.",
        redact=_redact_url,
    ),
    Spec(
        "WORKER_LEASE_SECONDS",
        "600",
        _seconds(10, 86_400),
        "How long a `python -m bot worker`'s claim on a message lasts. A worker that "
        "stopped (killed, machine lost) has its claims settled by the others after this "
        "(uncertain, then looked up in Sent); a live worker stops retrying a send well "
        "before it. Keep it above GMAIL_RECONCILE_GRACE_SECONDS.",
    ),
    Spec(
        "WORKER_SENDS_PER_ACCOUNT",
        "8",
        _whole(1, 256),
        "Sends one worker keeps in flight per sender account (its threads). All workers "
        "together share each account's quota, so add workers for slow networks, not speed.",
    ),
    Spec("SANDBOX_OUTBOX", "data/outbox", _path, "Folder the sandbox transport writes into."),
    Spec("TEMPLATES_DIR", "templates", _path, "Folder holding the template catalogue."),
    Spec("FROM_NAME", "Mailbolt", _text, "Display name on the From header."),
    Spec(
        "SENDER_ADDRESS",
        "",
        _address,
        "The Gmail account's address. Learned from the OAuth grant when empty "
        "(sandbox: sandbox@mailbolt.invalid).",
    ),
    Spec("REPLY_TO", "", _address, "Optional Reply-To address."),
    Spec(
        "POSTAL_ADDRESS",
        "",
        _text,
        "Your physical postal address; required by anti-spam law in marketing mail.",
    ),
    Spec(
        "MAX_RECIPIENTS_PER_CAMPAIGN",
        "2000",
        _whole(1, 100_000),
        "Refuse campaigns larger than this.",
    ),
    Spec(
        "CHECK_DELIVERABILITY",
        "off",
        _on_off,
        "Look up each recipient domain's MX/A records (cached, 3 s timeout).",
    ),
    # Gmail
    Spec(
        "GOOGLE_CLIENT_SECRETS_FILE",
        "data/credentials.json",
        _path,
        "OAuth client (Desktop app) downloaded from Google Cloud console.",
    ),
    Spec(
        "GMAIL_TOKEN_FILE",
        "data/token.json",
        _path,
        "Where `python -m bot auth` stores the grant (mode 0600).",
    ),
    Spec("GMAIL_API_URL", "", _url, "Override the Gmail API endpoint (regional/private, tests)."),
    Spec("GOOGLE_TOKEN_URI", "", _url, "Override Google's OAuth token endpoint (tests)."),
    Spec(
        "GMAIL_QUOTA_UNITS_PER_MINUTE",
        "6000",
        _whole(SEND_UNITS, 100_000_000),  # below one send a minute nothing could ever go
        "Per-user Gmail API quota; messages.send costs 100 units. Older projects: 15000.",
    ),
    Spec(
        "GMAIL_DAILY_SEND_LIMIT",
        "500",
        _whole(1, 100_000),
        "Recipients per rolling 24 h (Gmail: 500 consumer, 2000 Workspace).",
    ),
    Spec(
        "GMAIL_RECONCILE",
        "off",
        _on_off,
        "Ask for gmail.readonly to check Sent for uncertain messages by Message-ID.",
    ),
    Spec(
        "GMAIL_RECONCILE_GRACE_SECONDS",
        "60",
        _seconds(0, 3600),
        "After a crash, how long a send may still be processed by Gmail before a "
        "Sent search that misses it counts as 'not sent'.",
    ),
    # Slack
    Spec(
        "SLACK_BOT_TOKEN", "", _text, "Bot token (xoxb-...) from OAuth & Permissions.", secret=True
    ),
    Spec("SLACK_SIGNING_SECRET", "", _text, "Signing secret from Basic Information.", secret=True),
    Spec(
        "SLACK_APP_TOKEN",
        "",
        _text,
        "App-level token (xapp-..., connections:write); enables Socket Mode.",
        secret=True,
    ),
    Spec("SLACK_API_URL", "", _url, "Slack Web API base URL (GovSlack, tests)."),
    Spec(
        "SLACK_CLIENT_ID",
        "",
        _text,
        "Client ID from Basic Information; with SLACK_CLIENT_SECRET, mailbolt installs "
        "into many workspaces through /slack/install (needs PUBLIC_BASE_URL).",
    ),
    Spec(
        "SLACK_CLIENT_SECRET",
        "",
        _text,
        "Client secret from Basic Information (many workspaces).",
        secret=True,
    ),
    Spec(
        "SLACK_OAUTH_AUTHORIZE_URL",
        "https://slack.com/oauth/v2/authorize",
        _url,
        "Where /slack/install sends the browser to consent (tests point it at a fake).",
    ),
    Spec("PORT", "3000", _whole(1, 65_535), "HTTP port of `python -m bot serve`."),
    Spec(
        "STATUS_CHANNEL",
        "",
        _status_channels,
        "Channel ID for campaign status messages and warnings; with many workspaces, "
        "TEAM:CHANNEL pairs (T0AAA:C0123ABCD,T0BBB:C0456EFGH), one bare ID the default.",
    ),
    Spec(
        "ALLOWED_SLACK_USERS",
        "",
        _user_ids,
        "Comma-separated Slack user IDs allowed to send, or '*'. Empty: nobody.",
    ),
    Spec(
        "ADMIN_SLACK_USERS",
        "",
        _admin_ids,
        "Comma-separated Slack user IDs of admins: they see the audit log in App Home, "
        "may export any campaign, and manage every sender account (`/sendmail "
        "accounts`). Empty: nobody.",
    ),
    # Compliance
    Spec(
        "PUBLIC_BASE_URL",
        "",
        _url,
        "Public https URL of this server, for one-click unsubscribe links; required "
        "for marketing mail through Gmail.",
    ),
    Spec(
        "UNSUBSCRIBE_SECRET",
        "",
        _secret_key,
        "HMAC key for unsubscribe links; generated into data/ when empty.",
        secret=True,
    ),
    Spec(
        "BOUNCE_SCAN",
        "off",
        _on_off,
        "Poll the mailbox for bounces (asks for the gmail.readonly scope).",
    ),
    # Approval
    Spec(
        "APPROVAL_REQUIRED",
        "never",
        _approval_mode,
        "Which campaigns a second person must approve before anything is sent: never, "
        "marketing (marketing templates) or always.",
    ),
    Spec(
        "APPROVAL_MIN_RECIPIENTS",
        "0",
        _whole(0, 1_000_000),
        "Campaigns to at least this many recipients need approval too; 0: no such rule.",
    ),
    Spec(
        "APPROVERS",
        "",
        _approver_ids,
        "Who may approve: comma-separated Slack user IDs and user group IDs (S…); they "
        "must also be in ALLOWED_SLACK_USERS. Nobody approves their own campaign.",
    ),
    Spec(
        "APPROVAL_CHANNEL",
        "",
        _approval_channels,
        "Channel ID where approval requests are posted (invite the app there); with many "
        "workspaces, TEAM:CHANNEL pairs, one bare ID the default for those not named.",
    ),
    # Sender accounts
    Spec(
        "GOOGLE_WEB_CLIENT_SECRETS_FILE",
        "data/web_client.json",
        _path,
        'OAuth client (Web application) for "Connect your Gmail" in Slack; its '
        "authorized redirect URI is PUBLIC_BASE_URL/oauth/google/callback.",
    ),
    Spec(
        "GRANT_KEY",
        "",
        _secret_key,
        "Key that encrypts the Gmail grants kept in the database; generated into "
        "data/grant.key when empty. Losing it means everyone reconnects.",
        secret=True,
    ),
)


@dataclass(frozen=True)
class Reading:
    """One setting as read: where from, its value, or what is wrong with it."""

    spec: Spec
    raw: str
    is_default: bool
    value: Any = None
    problem: str = ""

    @property
    def shown(self) -> str:
        """The value as a person should see it: secrets masked, booleans as on/off."""
        if self.problem:
            text = self.raw
        elif isinstance(self.value, bool):
            text = "on" if self.value else "off"
        else:
            text = str(self.value)
        return self.spec.show(text)

    @property
    def problem_line(self) -> str:
        """``NAME='value': what is allowed`` (a secret's value is never echoed)."""
        shown = "(hidden)" if self.spec.secret else repr(self.spec.show(self.raw))
        return f"{self.spec.env}={shown}: {self.problem}"


def read_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> list[Reading]:
    """Every setting read and checked, good or bad: ``config`` shows all of them."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values

        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    readings = []
    for spec in SPECS:
        raw = values.get(spec.env, spec.default)
        is_default = spec.env not in values
        try:
            readings.append(Reading(spec, raw, is_default, spec.parse(raw)))
        except ValueError as exc:
            readings.append(Reading(spec, raw, is_default, problem=str(exc)))
    parsed = {r.spec.env: r.value for r in readings if not r.problem}
    wrong = approval_problems(parsed)
    return [
        Reading(r.spec, r.raw, r.is_default, problem=wrong[r.spec.env])
        if r.spec.env in wrong and not r.problem
        else r
        for r in readings
    ]


@dataclass(frozen=True)
class Settings:
    """Effective configuration. Build with ``Settings.load()``."""

    mail_transport: str
    database_path: Path
    database_busy_seconds: float
    database_url: str
    worker_lease_seconds: float
    worker_sends_per_account: int
    sandbox_outbox: Path
    templates_dir: Path
    from_name: str
    sender_address: str
    reply_to: str
    postal_address: str
    max_recipients_per_campaign: int
    check_deliverability: bool
    google_client_secrets_file: Path
    gmail_token_file: Path
    gmail_api_url: str
    google_token_uri: str
    gmail_quota_units_per_minute: int
    gmail_daily_send_limit: int
    gmail_reconcile: bool
    gmail_reconcile_grace_seconds: float
    slack_bot_token: str
    slack_signing_secret: str
    slack_app_token: str
    slack_api_url: str
    slack_client_id: str
    slack_client_secret: str
    slack_oauth_authorize_url: str
    port: int
    status_channel: str
    allowed_slack_users: str
    admin_slack_users: str
    public_base_url: str
    unsubscribe_secret: str
    bounce_scan: bool
    approval_required: str
    approval_min_recipients: int
    approvers: str
    approval_channel: str
    google_web_client_secrets_file: Path
    grant_key: str

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
    ) -> Settings:
        """Read ``environ`` (default ``os.environ``) over ``env_file``; raise ConfigError."""
        readings = read_settings(environ, env_file)
        problems = [r.problem_line for r in readings if r.problem]
        if problems:
            raise ConfigError(problems)
        return cls(**{r.spec.field: r.value for r in readings})

    @classmethod
    def defaults(cls, **overrides: Any) -> Settings:
        """Settings from the built-in defaults only (tests, benchmarks)."""
        settings = cls.load(environ={}, env_file=None)
        return settings.replace(**overrides) if overrides else settings

    def replace(self, **changes: Any) -> Settings:
        from dataclasses import replace

        return replace(self, **changes)

    @property
    def many_workspaces(self) -> bool:
        """Whether mailbolt is installed per workspace through OAuth (client ID and
        secret both set) rather than with the one ``SLACK_BOT_TOKEN``."""
        return bool(self.slack_client_id and self.slack_client_secret)

    def workspaces_problem(self) -> str | None:
        """Why the many-workspaces settings cannot work together, or None."""
        if bool(self.slack_client_id) != bool(self.slack_client_secret):
            given, missing = (
                ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET")
                if self.slack_client_id
                else ("SLACK_CLIENT_SECRET", "SLACK_CLIENT_ID")
            )
            return (
                f"{given} is set but {missing} is not: set both to install into many "
                "workspaces, or neither to use SLACK_BOT_TOKEN alone."
            )
        if self.many_workspaces and not self.public_base_url:
            return (
                "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET need PUBLIC_BASE_URL: Slack sends "
                "the browser back to PUBLIC_BASE_URL/slack/oauth_redirect after an install."
            )
        return None

    @property
    def approval_channels(self) -> ChannelMap:
        """APPROVAL_CHANNEL: where each workspace's approval requests are posted."""
        return ChannelMap.parse(self.approval_channel)

    @property
    def status_channels(self) -> ChannelMap:
        """STATUS_CHANNEL: each workspace's channel for status messages and warnings."""
        return ChannelMap.parse(self.status_channel, WITH_DMS)

    @property
    def allowed_users(self) -> frozenset[str]:
        """Slack user IDs allowed to send; ``{'*'}`` means everyone."""
        return frozenset(u.strip() for u in self.allowed_slack_users.split(",") if u.strip())

    @property
    def admin_users(self) -> frozenset[str]:
        """Slack user IDs of admins (audit log, any campaign's export, shared accounts)."""
        return frozenset(u.strip() for u in self.admin_slack_users.split(",") if u.strip())

    @property
    def approver_ids(self) -> frozenset[str]:
        """Slack user IDs and user group IDs (S…) that may approve campaigns."""
        return frozenset(u for u in self.approvers.split(",") if u)

    def masked(self) -> list[tuple[str, str, bool]]:
        """(name, shown value, is_default) for every setting, secrets masked."""
        rows = []
        for spec, fld in zip(SPECS, fields(self), strict=True):
            value = getattr(self, fld.name)
            shown = str(value)
            if isinstance(value, bool):
                shown = "on" if value else "off"
            shown = spec.show(shown)
            is_default = shown == str(spec.parse(spec.default)) or (
                isinstance(value, bool) and value == spec.parse(spec.default)
            )
            rows.append((spec.env, shown, is_default))
        return rows


def env_example() -> str:
    """The text of ``.env.example``: every setting, its help, and its default."""
    lines = [
        "# mailbolt settings. Copy to .env and fill in what you need;",
        "# environment variables win over this file. Secrets: keep .env mode 0600.",
        "",
    ]
    for spec in SPECS:
        lines.append(f"# {spec.help}")
        lines.append(f"{'' if spec.default or spec.secret else '# '}{spec.env}={spec.default}")
        lines.append("")
    return "\n".join(lines)


def mask(secret: str) -> str:
    """Show only a secret's kind prefix, e.g. ``xoxb-…(57 chars)``."""
    prefix = secret.split("-", 1)[0] + "-" if secret[:4] in ("xoxb", "xapp", "xoxp") else ""
    return f"{prefix}…({len(secret)} chars)"
