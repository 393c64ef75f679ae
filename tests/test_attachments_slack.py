"""Attachments from the Slack form: signed submissions to the real app, files fetched
from the Slack fake with the bot token, messages read back from the sandbox outbox."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bot.slack import views
from tests.fakes.slack_fake import SlackFake, compose_values, running_mailbolt, wait_for

OWNER = "U0OWNER"
STATUS = "C0STATUS"


@pytest.fixture
def fake():
    with SlackFake() as slack:
        slack.add_user(OWNER, "owner@acme.example", "Olive Owner")
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


@pytest.fixture
def mailbolt(settings, fake):
    with running_mailbolt(settings.replace(allowed_slack_users=OWNER), fake) as running:
        yield running


def submit(fake: SlackFake, attach: list[dict[str, Any]], **form: Any) -> dict[str, Any]:
    """Open the form and submit it with ``attach`` in the attachments field."""
    fake.command("", user=OWNER)
    compose = wait_for(lambda: fake.top_view(OWNER), "the compose modal")
    form.setdefault("variables", "team=Acme\nstart_url=https://acme.example/start")
    values = compose_values(channel=STATUS, **form)
    values[views.B_ATTACHMENTS] = {views.ACTION: {"type": "file_input", "files": attach}}
    return fake.submit_view(compose["id"], values, user=OWNER).json


def wait_for_view(fake: SlackFake, callback_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (v := fake.top_view(OWNER)) and v["callback_id"] == callback_id and v,
        f"the {callback_id} view",
    )


def parsed(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_uploaded_files_are_fetched_after_the_answer_and_sent_per_row(fake, mailbolt):
    terms, invoice = b"%PDF-1.7\n% terms\n", b"%PDF-1.7\n% invoice for Ann\n"
    uploads = [
        fake.add_file("terms.pdf", terms, filetype="pdf"),
        fake.add_file("Facture été.pdf", invoice, filetype="pdf"),
    ]
    csv = fake.add_file(
        "people.csv",
        b"email,name,attachments\nann@example.com,Ann,Facture \xc3\xa9t\xc3\xa9.pdf\n"
        b"bob@example.com,Bob,\n",
    )

    first = submit(fake, uploads, files=[csv])

    assert first["response_action"] == "update"
    assert "Checking" in str(first["view"]["blocks"])  # no download inside the 3-second answer
    preview = wait_for_view(fake, views.CB_PREVIEW)
    shown = str(preview["blocks"])
    assert "terms.pdf (everyone" in shown and "Facture été.pdf (1 recipient," in shown
    downloaded = {c.args["file"] for c in fake.calls_to("file.download")}
    assert downloaded == {u["id"] for u in [*uploads, csv]}
    fake.submit_view(preview["id"], {}, user=OWNER)

    sent = wait_for(lambda: len(mailbolt.eml_files()) == 2 and mailbolt.eml_files(), "two messages")
    by_to = {m["To"].addresses[0].addr_spec: m for m in map(parsed, sent)}
    files = {
        to: {p.get_filename(): p.get_payload(decode=True) for p in m.iter_attachments()}
        for to, m in by_to.items()
    }
    assert files == {
        "ann@example.com": {"terms.pdf": terms, "Facture été.pdf": invoice},
        "bob@example.com": {"terms.pdf": terms},
    }


def test_a_blocked_type_is_refused_on_the_field_before_anything_is_downloaded(fake, mailbolt):
    upload = fake.add_file("setup.exe", b"MZ\x90\x00", filetype="binary")

    answer = submit(fake, [upload], paste="ann@example.com")

    assert answer["response_action"] == "errors"
    assert "setup.exe" in answer["errors"][views.B_ATTACHMENTS]
    assert "Gmail blocks" in answer["errors"][views.B_ATTACHMENTS]
    mailbolt.settle()
    assert fake.calls_to("file.download") == []


def test_a_name_in_the_csv_that_was_not_uploaded_comes_back_on_the_form(fake, mailbolt):
    upload = fake.add_file("terms.pdf", b"%PDF-1.7\n", filetype="pdf")
    csv = fake.add_file("people.csv", b"email,attachments\nann@example.com,contract.pdf\n")

    submit(fake, [upload], files=[csv])

    form = wait_for(
        lambda: (
            (v := fake.top_view(OWNER))
            and v["callback_id"] == views.CB_COMPOSE
            and "contract.pdf" in str(v["blocks"])
            and v
        ),
        "the form with the problem",
    )
    shown = str(form["blocks"])
    assert "line 2 (ann@example.com)" in shown and "not attached" in shown
    assert mailbolt.eml_files() == []
