"""The real command line, run as a subprocess on small files (as mailmerge's tests do)."""

from __future__ import annotations

import email
import os
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest

from tests.conftest import ROOT


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None):
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_PATH": str(tmp_path / "data" / "sendmail.db"),
        "SANDBOX_OUTBOX": str(tmp_path / "data" / "outbox"),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        "POSTAL_ADDRESS": "Mailbolt Inc., 1 Harbour Street, Bristol",
        "SENDER_ADDRESS": "team@mailbolt.example",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=environ,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def outbox(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "data" / "outbox").glob("*.eml"))


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


CSV = (
    "email,name,team,start_url\r\nann@example.com,Ann Lee,Acme,https://a.example\r\n"
    "bo@example.org,Bo Ek,Acme,https://a.example\r\n"
)


def test_bundled_sample_sends_and_reports_invalid_and_duplicate(tmp_path):
    result = run(
        tmp_path,
        "send",
        "--template",
        "welcome",
        "--recipients",
        str(ROOT / "data/samples/welcome.csv"),
        "--skip-invalid",
        "--var",
        "start_url=https://mailbolt.example/start",
    )
    assert result.returncode == 0, result.stderr
    assert "1 invalid" in result.stdout and "1 duplicate" in result.stdout
    assert "line 5" in result.stdout and "not-an-address@" in result.stdout
    files = outbox(tmp_path)
    assert len(files) == 5
    msg = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg.get_body(("html",)) is not None and msg.get_body(("plain",)) is not None
    assert "Alice" in msg.get_body(("plain",)).get_content()


def test_send_exit_0_and_summary(tmp_path):
    write(tmp_path, "r.csv", CSV)
    result = run(tmp_path, "send", "--template", "welcome", "--recipients", "r.csv")
    assert result.returncode == 0, result.stderr
    assert "sent" in result.stdout and "completed" in result.stdout
    assert len(outbox(tmp_path)) == 2


def test_dry_run_sends_and_records_nothing(tmp_path):
    write(tmp_path, "r.csv", CSV)
    result = run(tmp_path, "send", "--template", "welcome", "--recipients", "r.csv", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Dry run: 2 message(s)" in result.stdout
    assert outbox(tmp_path) == []
    status = run(tmp_path, "status")
    assert "welcome" not in status.stdout


def test_limit(tmp_path):
    write(tmp_path, "r.csv", CSV)
    result = run(tmp_path, "send", "--template", "welcome", "--recipients", "r.csv", "--limit", "1")
    assert result.returncode == 0
    assert len(outbox(tmp_path)) == 1


@pytest.mark.parametrize(
    ("name", "content", "args", "expected"),
    [
        ("r.csv", "name,team\r\nAnn,Acme\r\n", [], "email"),
        ("r.csv", "", [], "empty"),
        (
            "r.csv",
            "email,name,team,start_url\r\nann@example.com,Ann,Acme,x,EXTRA\r\n",
            [],
            "line 2",
        ),
        ("r.csv", "email,name,team,start_url\r\nbob@,Bob,Acme,x\r\n", [], "bob@"),
        ("r.csv", "email,name,team,start_url\r\n,Bob,Acme,x\r\n", [], "line 2"),
        (
            "r.csv",
            b"email,name,team,start_url\r\njos\xe9@example.com,Jos\xe9,Acme,x\r\n",
            [],
            "UTF-8",
        ),
        ("r.csv", CSV, ["--template", "nope"], "nope"),
        ("r.csv", "email,name\r\nann@example.com,Ann\r\n", [], "start_url"),
        ("r.csv", CSV, ["--subject", "Hi\r\nBcc: evil@example.com"], "line break"),
        ("r.csv", CSV, ["--subject", "A 💩 =?UTF-8?Q?=0A?=Bcc: x@y"], "encoded-word"),
        ("r.csv", CSV, ["--subject", "{{ oops"], "subject"),
        ("r.txt", "ann@example.com, bob@", [], "bob@"),
        ("missing.csv", None, [], "does not exist"),
    ],
)
def test_bad_input_exits_2_and_sends_nothing(tmp_path, name, content, args, expected):
    if content is not None:
        write(tmp_path, name, content)
    argv = ["send", "--template", "welcome", "--recipients", name, *args]
    if "--template" in args:
        argv = ["send", "--recipients", name, *args]
    result = run(tmp_path, *argv)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert expected in result.stderr + result.stdout
    assert "Nothing was sent" in result.stderr
    assert "Traceback" not in result.stderr
    assert outbox(tmp_path) == []
    assert "welcome" not in run(tmp_path, "status").stdout


def test_ten_megabytes_of_pasted_text_is_refused(tmp_path):
    write(tmp_path, "big.txt", "someone@example.com, " * 500_000)
    result = run(tmp_path, "send", "--template", "welcome", "--recipients", "big.txt")
    assert result.returncode == 2
    assert "CSV" in result.stderr
    assert outbox(tmp_path) == []


def test_more_recipients_than_allowed(tmp_path):
    rows = "".join(f"p{i}@example.com,P,Acme,x\r\n" for i in range(6))
    write(tmp_path, "r.csv", "email,name,team,start_url\r\n" + rows)
    result = run(
        tmp_path,
        "send",
        "--template",
        "welcome",
        "--recipients",
        "r.csv",
        env={"MAX_RECIPIENTS_PER_CAMPAIGN": "5"},
    )
    assert result.returncode == 2
    assert "MAX_RECIPIENTS_PER_CAMPAIGN" in result.stderr
    assert outbox(tmp_path) == []


def test_bad_setting_is_named(tmp_path):
    result = run(
        tmp_path, "templates", env={"MAIL_TRANSPORT": "smtp", "MAX_RECIPIENTS_PER_CAMPAIGN": "lots"}
    )
    assert result.returncode == 2
    assert "MAIL_TRANSPORT" in result.stderr and "MAX_RECIPIENTS_PER_CAMPAIGN" in result.stderr


def test_templates_lists_the_catalogue(tmp_path):
    result = run(tmp_path, "templates")
    assert result.returncode == 0
    for name in ("welcome", "newsletter", "event_invitation", "marketing", "transactional"):
        assert name in result.stdout


def test_preview_writes_html_and_text(tmp_path):
    write(tmp_path, "r.csv", CSV)
    result = run(
        tmp_path,
        "preview",
        "--template",
        "welcome",
        "--recipients",
        "r.csv",
        "--row",
        "2",
        "--out",
        "pv",
    )
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "pv" / "welcome-row2.html").read_text()
    text = (tmp_path / "pv" / "welcome-row2.txt").read_text()
    assert "Bo" in html and "style=" in html
    assert "Bo" in text and "<" not in text.split("http")[0]


def test_config_masks_secrets(tmp_path):
    token = "xoxb-1234567890-abcdefghijklmnop"
    result = run(
        tmp_path,
        "config",
        env={"SLACK_BOT_TOKEN": token, "SLACK_SIGNING_SECRET": "s3cr3t-signing-value"},
    )
    assert result.returncode == 0
    assert token not in result.stdout and "s3cr3t-signing-value" not in result.stdout
    assert "xoxb-…" in result.stdout


def test_env_example_matches_the_settings(tmp_path):
    result = run(tmp_path, "config", "--example")
    assert result.stdout == (ROOT / ".env.example").read_text()


def test_marketing_without_postal_address_exits_2(tmp_path):
    write(tmp_path, "r.csv", "email,headline,body\r\nann@example.com,News,Text\r\n")
    result = run(
        tmp_path,
        "send",
        "--template",
        "newsletter",
        "--recipients",
        "r.csv",
        env={"POSTAL_ADDRESS": ""},
    )
    assert result.returncode == 2
    assert "POSTAL_ADDRESS" in result.stderr
