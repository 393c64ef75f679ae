"""Templates per workspace on the real command line (a subprocess): ``templates
--team T`` lists what workspace T sees; ``send --team T`` renders T's version."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

from tests.templates_workspace_folders import (
    A_LAYOUT,
    A_OFFER,
    A_WELCOME,
    TEAM_A,
    TEAM_B,
    templates_with_workspaces,
)
from tests.test_cli import outbox, run, write

CSV = "email,name,headline\r\nann@example.com,Ann Lee,Spring\r\n"


def _env(tmp_path: Path) -> dict[str, str]:
    return {"TEMPLATES_DIR": str(templates_with_workspaces(tmp_path))}


def _listed(stdout: str) -> set[str]:
    words = {"a_offer", "b_offer", "welcome", "newsletter", "event_invitation"}
    return {w for w in words if f" {w} " in stdout}


def test_templates_team_lists_the_shared_ones_and_that_workspaces_own(tmp_path):
    env = _env(tmp_path)
    a = run(tmp_path, "templates", "--team", TEAM_A, env=env)
    assert a.returncode == 0, a.stderr
    assert _listed(a.stdout) == {"a_offer", "welcome", "newsletter", "event_invitation"}
    assert f"{TEAM_A}'s own" in a.stdout and "shared" in a.stdout
    b = run(tmp_path, "templates", "--team", TEAM_B, env=env)
    assert _listed(b.stdout) == {"b_offer", "welcome", "newsletter", "event_invitation"}
    shared = run(tmp_path, "templates", env=env)
    assert _listed(shared.stdout) == {"welcome", "newsletter", "event_invitation"}
    assert TEAM_A not in shared.stdout and TEAM_B not in shared.stdout


def test_templates_team_refuses_what_is_not_a_workspace_id(tmp_path):
    result = run(tmp_path, "templates", "--team", "../T0AAA", env=_env(tmp_path))
    assert result.returncode == 2
    assert "is not a Slack workspace ID" in result.stderr


def _sent(tmp_path: Path) -> email.message.EmailMessage:
    files = outbox(tmp_path)
    assert len(files) == 1
    return email.message_from_bytes(files[0].read_bytes(), policy=policy.default)


def test_send_team_renders_the_workspaces_own_version(tmp_path):
    env = _env(tmp_path)
    write(tmp_path, "r.csv", CSV)
    result = run(
        tmp_path,
        *("send", "--template", "welcome", "--recipients", "r.csv", "--team", TEAM_A),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    msg = _sent(tmp_path)
    html = msg.get_body(("html",)).get_content()
    assert msg["Subject"] == "A welcome: Spring"
    assert A_WELCOME in html and A_LAYOUT in html


def test_a_workspaces_own_template_sends_for_it_and_is_unknown_to_others(tmp_path):
    env = _env(tmp_path)
    write(tmp_path, "r.csv", CSV)
    for team in (TEAM_B, ""):
        args = ["send", "--template", "a_offer", "--recipients", "r.csv"]
        result = run(tmp_path, *args, *(["--team", team] if team else []), env=env)
        assert result.returncode != 0
        assert "There is no template called 'a_offer'" in result.stderr
        assert "a_offer" not in result.stderr.split("Available templates:")[1]
    assert outbox(tmp_path) == []
    status = run(tmp_path, "status", env=env)
    assert "a_offer" not in status.stdout
    result = run(
        tmp_path,
        *("send", "--template", "a_offer", "--recipients", "r.csv", "--team", TEAM_A),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert A_OFFER in _sent(tmp_path).get_body(("html",)).get_content()


def test_send_without_team_renders_the_shared_version(tmp_path):
    write(tmp_path, "r.csv", CSV.replace("headline", "team"))
    result = run(
        tmp_path,
        *("send", "--template", "welcome", "--recipients", "r.csv"),
        *("--var", "start_url=https://a.example"),
        env=_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    html = _sent(tmp_path).get_body(("html",)).get_content()
    assert A_WELCOME not in html and A_LAYOUT not in html


def test_preview_team_writes_the_workspaces_version(tmp_path):
    write(tmp_path, "r.csv", CSV)
    result = run(
        tmp_path,
        *("preview", "--template", "welcome", "--recipients", "r.csv", "--team", TEAM_A),
        *("--out", "shown"),
        env=_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    html = "".join(p.read_text() for p in (tmp_path / "shown").glob("*.html"))
    assert A_WELCOME in html and A_LAYOUT in html


def test_a_broken_workspace_catalogue_is_named_by_any_command_that_reads_templates(tmp_path):
    env = _env(tmp_path)
    broken = Path(env["TEMPLATES_DIR"]) / TEAM_B / "catalogue.toml"
    broken.write_text(broken.read_text().replace('"transactional"', '"promo"'))
    result = run(tmp_path, "templates", "--team", TEAM_A, env=env)
    assert result.returncode == 2
    assert str(broken) in result.stderr and "category is 'promo'" in result.stderr
