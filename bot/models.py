"""Plain records that flow one way: edge → handlers → ports.

They carry no behaviour beyond convenience properties, so every layer can build
and inspect them without importing another layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Category = Literal["transactional", "marketing"]


@dataclass(frozen=True)
class Recipient:
    """One validated, normalized address and the variables for its message."""

    email: str
    name: str = ""
    variables: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    line: int = 0
    source: str = "paste"

    @property
    def label(self) -> str:
        """How error messages name this recipient: ``line 4 (bob@example.com)``."""
        return f"line {self.line} ({self.email})" if self.line else self.email


@dataclass(frozen=True)
class Rejected:
    """An input line that did not become a recipient, and why."""

    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        shown = self.text if len(self.text) <= 60 else self.text[:57] + "…"
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{shown!r} {self.reason}"


@dataclass
class RecipientList:
    """Result of parsing one input: who gets mail, and what was dropped."""

    recipients: list[Recipient] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    duplicates: list[Rejected] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    def extend(self, other: RecipientList) -> RecipientList:
        """Merge another list (e.g. pasted + CSV + Slack people), deduplicating."""
        seen = {r.email.lower(): r for r in self.recipients}
        merged = RecipientList(
            list(self.recipients),
            self.rejected + other.rejected,
            self.duplicates + other.duplicates,
            self.columns + [c for c in other.columns if c not in self.columns],
        )
        for r in other.recipients:
            first = seen.get(r.email.lower())
            if first is not None:
                where = f"line {first.line} ({first.source})" if first.line else first.source
                merged.duplicates.append(Rejected(r.line, r.email, f"is a duplicate of {where}"))
            else:
                seen[r.email.lower()] = r
                merged.recipients.append(r)
        return merged


@dataclass(frozen=True)
class TemplateInfo:
    """Catalogue metadata of one template (see templates/catalogue.toml)."""

    name: str
    description: str
    category: Category
    subject: str
    required: tuple[str, ...]
    html: str
    text: str | None = None


@dataclass(frozen=True)
class RenderedMessage:
    """The personalized parts of one message, before MIME encoding."""

    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class OutgoingMessage:
    """One encoded message handed to a transport (exactly one recipient)."""

    row_id: int
    campaign_id: int
    recipient: str
    message_id: str
    raw: bytes
