"""Shared fixtures: every test gets its own data folder and SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Settings
from bot.store import Store
from tests.fakes.gmail_fake import FakeGmail

ROOT = Path(__file__).resolve().parent.parent

#: ``pg_server`` and ``pg_url``: a real PostgreSQL for the tests that need one.
pytest_plugins = ["tests.pg_server"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Built-in defaults, with every file under ``tmp_path``."""
    return Settings.defaults(
        database_path=tmp_path / "data" / "sendmail.db",
        sandbox_outbox=tmp_path / "data" / "outbox",
        templates_dir=ROOT / "templates",
        postal_address="Mailbolt Inc., 1 Harbour Street, Bristol BS1 4QA, UK",
        from_name="Mailbolt Team",
        sender_address="team@mailbolt.example",
    )


@pytest.fixture
def store(settings: Settings) -> Store:
    s = Store(settings.database_path)
    yield s
    s.close()


@pytest.fixture
def gmail_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGmail]:
    """The loopback Gmail API, with the environment the real client libraries read
    (its URLs and the CA that signs its TLS certificate)."""
    with FakeGmail(email_address="team@mailbolt.example") as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server
