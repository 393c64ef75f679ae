"""Errors are values a person can read.

Every error carries a message written for the person who caused or can fix it.
The edges (CLI, Slack) turn them into exit codes, inline modal errors and log
lines; the core never formats them for a specific surface.
"""

from __future__ import annotations


class MailboltError(Exception):
    """Base class: ``str(err)`` is always fit to show to a person."""


class ConfigError(MailboltError):
    """A setting is missing or invalid; ``problems`` lists one line per setting."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Configuration problems:\n" + "\n".join(f"  - {p}" for p in problems))


class UserInputError(MailboltError):
    """Bad input from a person: nothing was sent or recorded.

    ``field`` names the form field or CLI option; ``line`` the 1-based input line.
    ``details`` may hold several per-line problems for the same field.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        line: int | None = None,
        details: list[str] | None = None,
    ):
        self.field = field
        self.line = line
        self.details = details or []
        super().__init__(message)


class TemplateError(UserInputError):
    """A template is unknown, broken, or cannot render for a recipient."""


class PolicyError(UserInputError):
    """A rule (anti-spam, sensitive data, permission) forbids this campaign."""


class AuthError(MailboltError):
    """The mail provider rejected our credentials; an admin must act.

    Sending pauses: no message is marked failed because of this.
    """


class SendError(MailboltError):
    """Base for errors raised by a transport for one message."""


class TransientSendError(SendError):
    """Worth retrying after a pause (429, 5xx, connection refused before sending)."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(message)


class PermanentSendError(SendError):
    """Retrying will not help (invalid recipient, 400, 403)."""


class QuotaDeferred(SendError):
    """The account's daily sending limit is reached: defer, never fail.

    ``resume_after`` is a UNIX timestamp when sending may be tried again, if known.
    """

    def __init__(self, message: str, *, resume_after: float | None = None):
        self.resume_after = resume_after
        super().__init__(message)


class UncertainSendError(SendError):
    """The request may have reached the provider but we saw no answer.

    Re-sending blindly could duplicate the message, so it is held as ``uncertain``.
    """
