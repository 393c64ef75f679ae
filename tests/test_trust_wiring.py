"""The composition root builds each part when first needed.

Commands that send nothing never touch the Gmail grant. Observable from the
outside: ``auth`` repairs a token file others can read (mode 0644 → 0600) as
soon as it is read, so a command that leaves the mode alone never read it.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.test_cli import run


@pytest.mark.parametrize(
    "command",
    [["templates"], ["status"], ["stats"], ["unsubscribes", "list"]],
    ids=lambda c: " ".join(c),
)
def test_commands_that_send_nothing_never_read_the_gmail_grant(
    tmp_path: Path, command: list[str]
) -> None:
    grant = tmp_path / "token.json"
    grant.write_text(json.dumps({"account": "team@mailbolt.example"}), encoding="utf-8")
    grant.chmod(0o644)
    env = {"MAIL_TRANSPORT": "gmail", "SENDER_ADDRESS": "", "GMAIL_TOKEN_FILE": str(grant)}

    result = run(tmp_path, *command, env=env)

    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(grant.stat().st_mode) == 0o644, "the grant was opened"


def test_a_sending_command_does_read_the_grant(tmp_path: Path) -> None:
    """The counter-check: ``quota`` needs the account, so it reads (and repairs) the grant."""
    grant = tmp_path / "token.json"
    grant.write_text(json.dumps({"account": "team@mailbolt.example"}), encoding="utf-8")
    grant.chmod(0o644)
    env = {"MAIL_TRANSPORT": "gmail", "SENDER_ADDRESS": "", "GMAIL_TOKEN_FILE": str(grant)}

    result = run(tmp_path, "quota", env=env)

    assert result.returncode == 0, result.stderr
    assert "team@mailbolt.example" in result.stdout
    assert stat.S_IMODE(grant.stat().st_mode) == 0o600
