"""The operator's CLI and many workspaces (issue 12): it sees every workspace's
data, filters with ``--team T``, shows a workspace column when a list spans
several, and files unsubscribes and campaigns under a workspace when asked. The
real CLI in a subprocess."""

from __future__ import annotations

from pathlib import Path

from bot.store import Store
from tests.test_cli import run
from tests.test_scope_handlers import TA, TB
from tests.test_trust_cli import send


def _store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data" / "sendmail.db")


def test_status_and_audit_show_every_workspace_and_filter_by_one(tmp_path):
    assert send(tmp_path, "--team", TA).returncode == 0
    assert send(tmp_path, "--team", TB).returncode == 0
    store = _store(tmp_path)
    try:
        assert [c.team for c in store.campaigns.recent()] == [TB, TA]
    finally:
        store.close()
    everything = run(tmp_path, "status")
    assert everything.returncode == 0
    assert "workspace" in everything.stdout and TA in everything.stdout and TB in everything.stdout
    only_a = run(tmp_path, "status", "--team", TA)
    assert only_a.returncode == 0 and TB not in only_a.stdout
    assert "workspace" not in only_a.stdout  # one workspace: no column
    refused = run(tmp_path, "status", "2", "--team", TA)
    assert refused.returncode == 2 and "There is no campaign #2." in refused.stderr
    audit = run(tmp_path, "audit", "--team", TB)
    assert audit.returncode == 0 and "campaign #2" in audit.stdout
    assert "campaign #1" not in audit.stdout
    assert "workspace" in run(tmp_path, "audit").stdout


def test_unsubscribes_add_takes_a_workspace_and_defaults_to_every_one(tmp_path):
    assert run(tmp_path, "unsubscribes", "add", "ann@example.com", "--team", TA).returncode == 0
    assert run(tmp_path, "unsubscribes", "add", "bob@example.com").returncode == 0
    store = _store(tmp_path)
    try:
        s = store.suppressions
        assert s.unsubscribed_among(["ann@example.com", "bob@example.com"], TB) == {
            "bob@example.com"
        }
        assert s.unsubscribed_among(["ann@example.com"], TA) == {"ann@example.com"}
    finally:
        store.close()
    listed = run(tmp_path, "unsubscribes", "list")
    assert "workspace" in listed.stdout and TA in listed.stdout and "(every)" in listed.stdout
    only_b = run(tmp_path, "unsubscribes", "list", "--team", TB)
    assert "bob@example.com" in only_b.stdout and "ann@example.com" not in only_b.stdout
    # Removing without --team lifts the every-workspace one only.
    assert run(tmp_path, "unsubscribes", "remove", "ann@example.com").returncode == 1
    assert run(tmp_path, "unsubscribes", "remove", "ann@example.com", "--team", TA).returncode == 0


def test_a_team_that_is_not_a_workspace_id_is_refused_and_changes_nothing(tmp_path):
    result = run(tmp_path, "unsubscribes", "add", "ann@example.com", "--team", "acme; drop")
    assert result.returncode == 2 and "not a Slack workspace ID" in result.stderr
    assert not (tmp_path / "data" / "sendmail.db").exists() or not _unsubscribed(tmp_path)


def _unsubscribed(tmp_path: Path) -> list[str]:
    store = _store(tmp_path)
    try:
        return [u.email for u in store.suppressions.unsubscribes()]
    finally:
        store.close()


def test_with_many_workspaces_a_cli_send_must_name_its_workspace(tmp_path):
    """A campaign of no workspace would be seen by every workspace's people."""
    many = {
        "SLACK_CLIENT_ID": "1.2",
        "SLACK_CLIENT_SECRET": "s" * 32,
        "PUBLIC_BASE_URL": "https://mailbolt.example.com",
    }
    refused = send(tmp_path, env=many)
    assert refused.returncode == 2
    assert "--team" in refused.stderr and "many Slack workspaces" in refused.stderr
    from tests.test_trust_cli import campaigns

    assert campaigns(tmp_path) == 0
    assert send(tmp_path, "--team", TA, env=many).returncode == 0
    store = _store(tmp_path)
    try:
        assert [c.team for c in store.campaigns.recent()] == [TA]
    finally:
        store.close()
