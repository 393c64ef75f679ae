"""Every setting is checked the way a person reads it (issue 8, item 10)."""

from __future__ import annotations

from bot.config import SPECS
from tests.test_cli import run, write

CSV = "email,name\r\nann@example.com,Ann Lee\r\n"


def test_out_of_range_port_is_refused_in_words(tmp_path):
    result = run(tmp_path, "status", env={"PORT": "99999"})
    assert result.returncode == 2
    assert "PORT='99999': must be a whole number from 1 to 65,535" in result.stderr
    assert "Traceback" not in result.stderr


def test_quota_below_one_send_a_minute_is_refused_before_any_campaign(tmp_path):
    write(tmp_path, "r.csv", CSV)
    result = run(
        tmp_path,
        "send",
        "--template",
        "welcome",
        "--recipients",
        "r.csv",
        "--var",
        "start_url=https://x.example",
        env={"GMAIL_QUOTA_UNITS_PER_MINUTE": "50", "MAIL_TRANSPORT": "gmail"},
    )
    assert result.returncode == 2
    assert "GMAIL_QUOTA_UNITS_PER_MINUTE='50': must be a whole number from 100" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "sendmail.db").exists()


def test_every_bad_value_one_line_each_and_no_python_messages(tmp_path):
    env = {
        "MAX_RECIPIENTS_PER_CAMPAIGN": "lots",
        "GMAIL_RECONCILE_GRACE_SECONDS": "soon",
        "CHECK_DELIVERABILITY": "maybe",
        "REPLY_TO": "not an address",
        "DATABASE_PATH": "",
    }
    result = run(tmp_path, "templates", env=env)
    assert result.returncode == 2
    for name in env:
        lines = [line for line in result.stderr.splitlines() if f"{name}=" in line]
        assert len(lines) == 1, (name, result.stderr)
    assert "invalid literal" not in result.stderr and "could not convert" not in result.stderr


def test_config_shows_the_whole_table_with_bad_rows_marked(tmp_path):
    result = run(
        tmp_path,
        "config",
        env={"PORT": "99999", "SLACK_BOT_TOKEN": "xoxb-secret\nsecond-line"},
    )
    assert result.returncode == 2
    for spec in SPECS:
        assert spec.env in result.stdout
    marked = [line for line in result.stdout.splitlines() if "✗" in line]
    assert len(marked) == 2
    assert any("PORT" in line and "65,535" in line for line in marked)
    assert "xoxb-secret" not in result.stdout + result.stderr
    assert "PORT='99999'" in result.stderr


def test_config_with_good_values_exits_0(tmp_path):
    result = run(tmp_path, "config", env={"PORT": "8080"})
    assert result.returncode == 0, result.stderr
    assert "✗" not in result.stdout
    assert "8080" in result.stdout


GMAIL_NO_GRANT = {
    "MAIL_TRANSPORT": "gmail",
    "SENDER_ADDRESS": "",
    "GMAIL_TOKEN_FILE": "missing/token.json",
}


def test_commands_that_need_no_gmail_work_without_a_grant(tmp_path):
    for args in (["templates"], ["status"], ["config"], ["quota"], ["stats"]):
        result = run(tmp_path, *args, env=GMAIL_NO_GRANT)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "auth" not in result.stderr, args


def test_send_without_a_grant_says_to_run_auth(tmp_path):
    write(tmp_path, "r.csv", CSV)
    result = run(
        tmp_path,
        "send",
        "--template",
        "welcome",
        "--recipients",
        "r.csv",
        "--var",
        "start_url=https://x.example",
        env=GMAIL_NO_GRANT,
    )
    assert result.returncode == 1
    assert "python -m bot auth" in result.stderr
    assert "Traceback" not in result.stderr
