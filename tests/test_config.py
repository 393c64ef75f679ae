"""Settings: environment over .env, every bad value reported at once, secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import SPECS, Settings, mask
from bot.errors import ConfigError


def test_defaults_are_safe():
    s = Settings.load(environ={}, env_file=None)
    assert s.mail_transport == "sandbox"
    assert s.database_path == Path("data/sendmail.db")
    assert s.max_recipients_per_campaign == 2000
    assert s.allowed_users == frozenset()
    assert s.gmail_quota_units_per_minute == 6000
    assert s.check_deliverability is False


def test_env_file_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("FROM_NAME=From File\nPOSTAL_ADDRESS='1 Main St'\nPORT=8080\n")
    s = Settings.load(environ={"PORT": "9090"}, env_file=env_file)
    assert s.from_name == "From File"
    assert s.postal_address == "1 Main St"
    assert s.port == 9090


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        Settings.load(
            environ={
                "MAIL_TRANSPORT": "smtp",
                "PORT": "-1",
                "PUBLIC_BASE_URL": "mail.example.com",
                "BOUNCE_SCAN": "maybe",
            },
            env_file=None,
        )
    text = str(info.value)
    for name in ("MAIL_TRANSPORT", "PORT", "PUBLIC_BASE_URL", "BOUNCE_SCAN"):
        assert name in text
    assert len(info.value.problems) == 4


def test_a_bad_secret_is_not_echoed():
    with pytest.raises(ConfigError) as info:
        Settings.load(environ={"SLACK_BOT_TOKEN": "xoxb-secret\nvalue"}, env_file=None)
    assert "xoxb-secret" not in str(info.value)


def test_masked_hides_secrets_and_marks_defaults():
    s = Settings.defaults(slack_bot_token="xoxb-1234-5678-abcdef", unsubscribe_secret="k" * 40)
    rows = {name: (shown, default) for name, shown, default in s.masked()}
    assert rows["SLACK_BOT_TOKEN"][0] == "xoxb-…(21 chars)"
    assert "k" * 40 not in rows["UNSUBSCRIBE_SECRET"][0]
    assert rows["MAIL_TRANSPORT"] == ("sandbox", True)
    assert rows["SLACK_BOT_TOKEN"][1] is False
    assert len(rows) == len(SPECS)


def test_mask_never_shows_the_body():
    assert mask("xapp-1-A0-verysecret") == "xapp-…(20 chars)"
    assert "s3cr3t" not in mask("s3cr3t")


def test_allowed_users_parsing():
    s = Settings.defaults(allowed_slack_users=" U1, U2 ,,")
    assert s.allowed_users == frozenset({"U1", "U2"})
