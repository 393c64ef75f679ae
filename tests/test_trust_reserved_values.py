"""Values cannot change what mailbolt itself puts in a message.

Through the real CLI (sandbox) and the Slack form: a CSV column, ``--var`` or
Slack value named like a variable mailbolt sets (in any case or spacing) is
refused with its name; values that become links must be http, https or mailto,
however ``javascript:`` is spelled; a subject typed by a person sees no Jinja
globals.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
from email import policy as email_policy
from pathlib import Path

import pytest

from bot.slack import views
from tests.conftest import ROOT
from tests.fakes.slack_fake import SlackFake, compose_values, running_mailbolt, wait_for

POSTAL = "Mailbolt Inc., 1 Harbour Street, Bristol"


class Cli:
    """``python -m bot`` in a subprocess with the sandbox transport in ``folder``."""

    def __init__(self, folder: Path, templates: Path = ROOT / "templates"):
        self.folder = folder
        self.templates = templates

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "COLUMNS": "300",
            "DATABASE_PATH": str(self.folder / "data" / "sendmail.db"),
            "SANDBOX_OUTBOX": str(self.folder / "outbox"),
            "TEMPLATES_DIR": str(self.templates),
            "POSTAL_ADDRESS": POSTAL,
            "PUBLIC_BASE_URL": "https://mail.example.com",
        }
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def csv(self, text: str, name: str = "people.csv") -> str:
        (self.folder / name).write_text(text, encoding="utf-8")
        return name

    def sent(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(p.read_bytes(), policy=email_policy.default)
            for p in sorted((self.folder / "outbox").glob("*.eml"))
        ]


def said(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stdout + result.stderr).split())


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def newsletter(cli: Cli, header: str, row: str, *extra: str) -> subprocess.CompletedProcess[str]:
    name = cli.csv(f"email,headline,body,{header}\nann@example.com,News,Body,{row}\n")
    return cli.run("send", "--template", "newsletter", "--recipients", name, *extra)


# -- reserved names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "column",
    [
        "postal_address",
        "Postal Address",
        "POSTAL-ADDRESS",
        " postal_address ",
        "ｐｏｓｔａｌ_address",  # full-width letters
        "unsubscribe_url",
        "From Name",
        "sender_address",
    ],
)
def test_a_csv_column_cannot_replace_what_mailbolt_sets(cli, column):
    result = newsletter(cli, column, "Nowhere 1, Fakeland")
    assert result.returncode == 2, said(result)
    assert f"the column '{column.strip()}' cannot be used" in said(result)
    assert "reserved" in said(result)
    assert cli.sent() == []


@pytest.mark.parametrize(
    "pair",
    [
        "postal_address=Nowhere 1",
        "POSTAL_ADDRESS=Nowhere 1",
        " Postal_Address =Nowhere 1",
        "unsubscribe_url=https://evil.example",
        "from_name=Your Bank",
        "sender_address=ceo@bank.example",
        "email=other@example.com",
        "first_name=Boss",
    ],
)
def test_a_var_cannot_replace_what_mailbolt_sets(cli, pair):
    result = newsletter(cli, "note", "x", "--var", pair)
    assert result.returncode == 2, said(result)
    assert f"The value '{pair.partition('=')[0].strip()}' cannot be given" in said(result)
    assert cli.sent() == []


def test_the_configured_footer_is_what_every_message_shows(cli):
    result = newsletter(cli, "note", "Hello")
    assert result.returncode == 0, said(result)
    (msg,) = cli.sent()
    assert POSTAL in msg.get_body(("plain",)).get_content()


def test_a_first_name_column_still_names_the_reader(cli):
    name = cli.csv("email,name,first_name,team\nann@example.com,Ann Lee,Annie,Acme\n")
    result = cli.run(
        "send",
        "--template",
        "welcome",
        "--recipients",
        name,
        "--var",
        "start_url=https://a.example",
    )
    assert result.returncode == 0, said(result)
    (msg,) = cli.sent()
    assert msg["Subject"] == "Welcome to Acme, Annie!"


# -- links -------------------------------------------------------------------------------

BAD_LINKS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "&#106;avascript:alert(1)",
    "javascript&#58;alert(1)",
    "data:text/html;base64,PHNjcmlwdD4=",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "www.example.com/no-scheme",
]


def welcome(cli: Cli, start_url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    quoted = '"' + start_url.replace('"', '""') + '"'
    name = cli.csv(
        "email,name,team,start_url\n"
        "ann@example.com,Ann,Acme,https://ok.example/start\n"
        f"bob@example.com,Bob,Acme,{quoted}\n"
    )
    return cli.run("send", "--template", "welcome", "--recipients", name, *extra)


@pytest.mark.parametrize("link", BAD_LINKS)
def test_a_link_value_that_is_not_http_https_or_mailto_is_refused_with_row_and_column(cli, link):
    result = welcome(cli, link)
    assert result.returncode == 2, said(result)
    assert "line 3 (bob@example.com), column 'start_url'" in said(result)
    assert cli.sent() == []


@pytest.mark.parametrize("link", ["javascript:alert(1)", "DATA:text/html,x"])
def test_a_var_link_is_checked_too(cli, link):
    name = cli.csv("email,name,team\nann@example.com,Ann,Acme\n")
    result = cli.run(
        "send", "--template", "welcome", "--recipients", name, "--var", f"start_url={link}"
    )
    assert result.returncode == 2, said(result)
    assert "The value 'start_url'" in said(result)
    assert cli.sent() == []


@pytest.mark.parametrize(
    "link", ["https://ok.example/a?b=c", "http://ok.example", "mailto:help@ok.example"]
)
def test_http_https_and_mailto_links_go_out(cli, link):
    result = welcome(cli, link)
    assert result.returncode == 0, said(result)
    assert len(cli.sent()) == 2


@pytest.fixture
def own_templates(tmp_path: Path) -> Path:
    """A catalogue whose links come from values with plain names, directly or via ``set``."""
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "catalogue.toml").write_text(
        '[plain]\ndescription = "d"\ncategory = "transactional"\nsubject = "Hello"\n'
        'required = ["target"]\nhtml = "plain.html.j2"\n'
        '[indirect]\ndescription = "d"\ncategory = "transactional"\nsubject = "Hello"\n'
        'required = ["target"]\nhtml = "indirect.html.j2"\n'
    )
    (folder / "catalogue.toml").write_text(
        (folder / "catalogue.toml").read_text()
        + '[multiline]\ndescription = "d"\ncategory = "transactional"\nsubject = "Hello"\n'
        'required = ["target"]\nhtml = "multiline.html.j2"\n'
    )
    (folder / "multiline.html.j2").write_text(
        '{% set where = target %}<p><a class="x" href="\n   {{ where }}">Go</a></p>\n'
    )
    (folder / "plain.html.j2").write_text('<p><a href="{{ target }}">Go</a></p>\n')
    (folder / "indirect.html.j2").write_text(
        "{% set where = target | trim %}<p><img src='{{ where }}' alt=\"x\"></p>\n"
    )
    return folder


@pytest.mark.parametrize("template", ["plain", "indirect", "multiline"])
def test_a_value_that_begins_a_link_is_checked_whatever_its_name(tmp_path, own_templates, template):
    cli = Cli(tmp_path, own_templates)
    name = cli.csv(
        "email,target\nann@example.com,https://ok.example\nbob@example.com,JAVASCRIPT:x\n"
    )
    result = cli.run("send", "--template", template, "--recipients", name)
    assert result.returncode == 2, said(result)
    assert "bob@example.com" in said(result) and "javascript: link" in said(result)
    assert "'target'" in said(result)
    assert cli.sent() == []


# -- subjects typed by a person ----------------------------------------------------------


@pytest.mark.parametrize("name", ["range", "dict", "lipsum", "cycler", "joiner", "namespace"])
def test_a_typed_subject_sees_no_jinja_globals(cli, name):
    people = cli.csv("email,name,team\nann@example.com,Ann,Acme\n")
    result = cli.run(
        "send",
        "--template",
        "welcome",
        "--recipients",
        people,
        "--var",
        "start_url=https://a.example",
        "--subject",
        f"Hello {{{{ {name} }}}}",
        "--dry-run",
    )
    assert result.returncode == 2, said(result)
    assert f"'{name}'" in said(result)
    assert "class" not in said(result) and "function" not in said(result)


def test_a_typed_subject_still_uses_values_and_fallbacks(cli):
    people = cli.csv("email,name,team\nann@example.com,Ann,Acme\nbob@example.com,,Acme\n")
    result = cli.run(
        "send",
        "--template",
        "welcome",
        "--recipients",
        people,
        "--var",
        "start_url=https://a.example",
        "--subject",
        "{{ team | upper }} news for {{ first_name or 'you' }}",
    )
    assert result.returncode == 0, said(result)
    assert sorted(m["Subject"] for m in cli.sent()) == ["ACME news for Ann", "ACME news for you"]


# -- Slack --------------------------------------------------------------------------------

OWNER = "U0OWNER"


@pytest.mark.parametrize(
    "variables",
    [
        "headline=H\nbody=B\npostal_address=Nowhere",
        "headline=H\nbody=B\nUnsubscribe_URL=https://evil.example",
        "headline=H\nbody=B\ncta_url=javascript:alert(1)",
    ],
)
def test_slack_values_go_through_the_same_rules(settings, variables):
    with SlackFake() as slack:
        slack.add_user(OWNER, "owner@acme.example", "Olive Owner")
        with running_mailbolt(settings.replace(allowed_slack_users=OWNER), slack) as running:
            reply, _ = slack.command("", user=OWNER)
            assert reply.status == 200
            compose = wait_for(lambda: slack.top_view(OWNER), "the compose modal")
            values = compose_values(
                template="newsletter", paste="ann@example.com", variables=variables
            )
            answer = slack.submit_view(compose["id"], values, user=OWNER).json
            assert answer["response_action"] == "errors", answer
            error = answer["errors"][views.B_VARIABLES]
            name = variables.splitlines()[-1].partition("=")[0]
            assert f"'{name}'" in error
            assert running.deps.store.campaigns.recent() == []
        assert slack.problems == []
