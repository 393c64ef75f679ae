"""Errors are values a person can read.

Every error carries a message written for the person who caused or can fix it.
The edges (CLI, Slack) turn them into exit codes, inline modal errors and log
lines; the core never formats them for a specific surface.
"""

from __future__ import annotations

import enum
import errno


class MailboltError(Exception):
    """Base class: ``str(err)`` is always fit to show to a person."""


class ConfigError(MailboltError):
    """A setting is missing or invalid; ``problems`` lists one line per setting."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Configuration problems:\n" + "\n".join(f"  - {p}" for p in problems))


class Remedy(enum.Enum):
    """A way out the person has, named by each edge in its own terms.

    The message stays neutral ("skip the invalid addresses"); the CLI says
    ``--skip-invalid``, Slack names the checkbox. ``remedy_arg`` carries the
    detail, e.g. the variable's name for ``SET_VARIABLE``.
    """

    SKIP_INVALID = "skip_invalid"
    SET_VARIABLE = "set_variable"


class UserInputError(MailboltError):
    """Bad input from a person: nothing was sent or recorded.

    ``field`` names the form field or CLI option; ``line`` the 1-based input line.
    ``details`` may hold several per-line problems for the same field.
    ``remedy`` names a way out that each edge phrases for itself.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        line: int | None = None,
        details: list[str] | None = None,
        remedy: Remedy | None = None,
        remedy_arg: str = "",
    ):
        self.field = field
        self.line = line
        self.details = details or []
        self.remedy = remedy
        self.remedy_arg = remedy_arg
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


class StorageError(MailboltError):
    """The database cannot be opened, read or written (full disk, read-only, locked).

    A fault of the machine, not of the campaign: every state change already
    committed stays true, so ``send --resume`` continues once the fault is fixed.
    ``path`` names the database file.
    """

    def __init__(self, message: str, *, path: str = ""):
        self.path = path
        super().__init__(message)


class LocalFault(SendError):
    """This machine cannot do its part of a send (outbox unwritable, disk full).

    The message certainly did not leave, and the next one would fail the same
    way: the campaign pauses (nothing is marked failed) until a person fixes it.
    """


_OS_FAULTS = {
    errno.ENOSPC: "no space left on the disk",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file is too large (a file size limit, or the disk is full)",
    errno.EROFS: "the disk is mounted read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted (permissions, or an immutable file)",
    errno.ENOTDIR: "a file is in the way where a folder should be",
    errno.EEXIST: "a file is in the way where a folder should be",
    errno.EISDIR: "a folder is in the way where a file should be",
    errno.ENOENT: "the folder does not exist",
    errno.EIO: "the disk reported an input/output error",
}


def describe_os_error(exc: OSError) -> str:
    """What an ``OSError`` means for a person, in words rather than an errno."""
    return _OS_FAULTS.get(exc.errno or 0, exc.strerror or str(exc))
