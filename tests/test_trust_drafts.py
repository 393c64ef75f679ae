"""Gathering a campaign's recipients from every source (``bot.handlers.drafts``),
through the real server and the Slack fake, and through the CLI: pasted text, a
CSV and Slack people are merged, the campaign-wide limit applies to the total,
and a CSV with unusable rows is refused on the CSV field unless they are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot.slack import views
from tests.fakes.slack_fake import SlackFake, compose_values, running_mailbolt, wait_for
from tests.test_cli import run

OWNER, PERSON = "U0OWNER", "U0PERSON"
STATUS = "C0STATUS"
VARS = "team=Acme\nstart_url=https://acme.example/start"


@pytest.fixture
def fake() -> Iterator[SlackFake]:
    with SlackFake() as slack:
        slack.add_user(OWNER, "owner@acme.example", "Olive Owner")
        slack.add_user(PERSON, "pat@acme.example", "Pat Person")
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


def submit(fake: SlackFake, **form: Any) -> dict[str, Any]:
    """Open the form and submit it; the view that follows "Checking…"."""
    fake.command("", user=OWNER)
    compose = wait_for(lambda: fake.top_view(OWNER), "the compose modal")
    form.setdefault("variables", VARS)
    form.setdefault("channel", STATUS)
    reply = fake.submit_view(compose["id"], compose_values(**form), user=OWNER)
    assert reply.json["response_action"] == "update", reply.json  # "Checking…"
    return wait_for(  # the "Checking…" view has no callback id; what replaces it has
        lambda: (v := fake.top_view(OWNER)).get("callback_id") and v,
        "the result of the check",
    )


def text_under(view: dict[str, Any], block_id: str) -> str:
    blocks = view["blocks"]
    at = next(i for i, b in enumerate(blocks) if b.get("block_id") == block_id)
    return blocks[at + 1]["elements"][0]["text"]


def test_every_source_is_merged_into_one_preview(fake, settings):
    csv = fake.add_file("list.csv", b"email,name\nann@example.com,Ann\ncy@example.com,Cy\n")
    with running_mailbolt(settings.replace(allowed_slack_users=OWNER), fake):
        shown = submit(fake, paste="ann@example.com", files=[csv], people=[PERSON])
    text = json.dumps(shown["blocks"])
    assert shown["callback_id"] == views.CB_PREVIEW
    assert "*Will send:* 3" in text  # ann (pasted), cy (CSV), pat (Slack)
    assert "*Duplicates, left out:* 1" in text  # ann again, in the CSV


def test_the_campaign_limit_applies_to_all_sources_together(fake, settings):
    csv = fake.add_file("list.csv", b"email\ncy@example.com\ndee@example.com\n")
    limited = settings.replace(allowed_slack_users=OWNER, max_recipients_per_campaign=3)
    with running_mailbolt(limited, fake):
        shown = submit(fake, paste="ann@example.com", files=[csv], people=[PERSON])
    assert shown["callback_id"] == views.CB_COMPOSE
    assert "The campaign has 4 recipients, more than the limit of 3" in text_under(
        shown, views.B_RECIPIENTS
    )


def test_unusable_csv_rows_are_refused_on_the_csv_field_unless_skipped(fake, settings):
    rows = b"email\nann@example.com\nnot-an-address\n"
    with running_mailbolt(settings.replace(allowed_slack_users=OWNER), fake):
        refused = submit(fake, files=[fake.add_file("list.csv", rows)])
        assert refused["callback_id"] == views.CB_COMPOSE
        note = text_under(refused, views.B_CSV)
        assert note.startswith(":x: 1 rows are not usable: line 3: 'not-an-address'")
        assert note.endswith("Fix them, or tick 'Skip invalid addresses'.")
        skipped = submit(fake, files=[fake.add_file("list.csv", rows)], skip_invalid=True)
    text = json.dumps(skipped["blocks"])
    assert "*Will send:* 1" in text and "*Invalid, left out:* 1" in text


def test_the_cli_reads_a_csv_through_the_same_gathering(tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_bytes(b"email,name\nann@example.com,Ann\nann@example.com,Again\nbad\n")
    args = ["send", "--template", "welcome", "--recipients", str(listing), "--dry-run"]
    args += ["--var", "team=Acme", "--var", "start_url=https://acme.example/s"]
    refused = run(tmp_path, *args)
    assert refused.returncode == 2, refused.stderr
    assert "1 recipient line(s) are not usable" in refused.stderr
    skipped = run(tmp_path, *args, "--skip-invalid")
    assert skipped.returncode == 0, skipped.stderr
    assert "1 valid recipient(s)" in skipped.stdout
    assert "1 duplicate, skipped:" in skipped.stdout
