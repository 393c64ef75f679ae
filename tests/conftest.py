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


# The longest tests (5–30 s of waiting on subprocesses and paced fakes). Under
# xdist each worker is handed one contiguous block of the collection and idle
# workers steal from the ends of the others' blocks; a long test that happens to
# sit late in a block starts late and keeps the whole run waiting for it. Putting
# one at the head of each block starts them all first. Speed only: order is free.
# (test_ctrl_c_stops_following_not_sending is long too, but mostly asleep, and it
# is timing-sensitive: it is left where it is.)
_LONGEST = (
    "test_gmail_e2e.py::test_sigkill_three_times",
    "test_gmail_e2e.py::test_paced_at_the_quota",
    "test_crash.py::test_sigkill_and_resume",
    "test_trust_faults.py::test_a_database_locked_in_the_middle",
    "test_slack_stats.py::test_serve_scans_for_bounces",
    "test_gmail_e2e.py::test_a_revoked_grant_pauses",
    # Last, so the pairs of long tests running side by side stay as they were (the
    # paced-at-the-quota test is sensitive to a busy machine).
    "test_workers_sigkill.py::test_three_workers",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workers = getattr(config, "workerinput", {}).get("workercount")
    if not workers or len(items) < 2 * workers:
        return
    longest = [i for i in items if any(name in i.nodeid for name in _LONGEST)]
    rest = [i for i in items if i not in longest]
    order: list[pytest.Item] = []
    size = len(items) // workers  # xdist's first split: equal contiguous blocks
    for block in range(workers):
        order += longest[block::workers]
        take = size - len(longest[block::workers]) if block < workers - 1 else len(rest)
        order += rest[:take]
        rest = rest[take:]
    items[:] = order
