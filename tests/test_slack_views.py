"""Every Block Kit builder, validated with slack_sdk.models and Slack's other limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.handlers.stats import DeliveryStats
from bot.handlers.templates import TemplateCatalogue
from bot.models import TemplateInfo
from bot.slack import views
from tests.conftest import ROOT
from tests.fakes.slack_fake import compose_values, message_problems, view_problems


@pytest.fixture(scope="module")
def templates() -> list[TemplateInfo]:
    return TemplateCatalogue(ROOT / "templates").list()


def valid_modal(view: dict) -> dict:
    assert view_problems(view, view["type"]) == []
    View(**view).to_dict()  # raises on anything the SDK finds wrong
    return view


def valid_message(text: str, blocks: list[dict]) -> None:
    assert message_problems(text, blocks) is None
    for block in Block.parse_all(blocks):
        block.to_dict()


def test_compose_view_is_valid_and_reads_back(templates):
    view = valid_modal(
        views.compose_view(templates, form=views.ComposeForm(), metadata={"channel": "C1"})
    )
    assert {b.get("block_id") for b in view["blocks"] if b["type"] == "input"} == {
        views.B_TEMPLATE,
        views.B_RECIPIENTS,
        views.B_PEOPLE,
        views.B_CSV,
        views.B_ATTACHMENTS,
        views.B_SUBJECT,
        views.B_VARIABLES,
        views.B_CHANNEL,
        views.B_OPTIONS,
        views.B_GROUPS,
        views.B_CHANNELS,
        views.B_GUESTS,
    }
    paste = next(b for b in view["blocks"] if b.get("block_id") == views.B_RECIPIENTS)
    assert paste["element"]["max_length"] == 3000
    assert "CSV" in paste["hint"]["text"]
    assert views.metadata_of(view) == {"channel": "C1"}
    upload = {"id": "F1", "name": "a.csv"}
    form = views.read_compose(
        compose_values(
            template="newsletter",
            paste="a@example.com",
            people=["U1"],
            files=[upload],
            subject="Hi",
            variables="x=1",
            channel="C9",
            skip_invalid=True,
        )
    )
    assert form == views.ComposeForm(
        "newsletter", "a@example.com", ["U1"], [upload], "Hi", "x=1", "C9", True
    )


def test_compose_view_prefilled_with_problems_and_notes(templates):
    form = views.ComposeForm(
        template="welcome",
        paste="x" * 5000,
        people=["U1", "U2"],
        subject="Hello",
        variables="team=A",
        channel="C7",
        skip_invalid=True,
    )
    view = valid_modal(
        views.compose_view(
            templates,
            form=form,
            metadata={"channel": "C1"},
            problems={views.B_CSV: "line 3: <!channel> bad"},
            notes={views.B_PEOPLE: "hint"},
        )
    )
    text = json.dumps(view)
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    by_id = {b.get("block_id"): b for b in view["blocks"]}
    assert len(by_id[views.B_RECIPIENTS]["element"]["initial_value"]) == 3000
    assert by_id[views.B_TEMPLATE]["element"]["initial_option"]["value"] == "welcome"
    assert by_id[views.B_CHANNEL]["element"]["initial_conversation"] == "C7"
    assert by_id[views.B_OPTIONS]["element"]["initial_options"]


def test_long_template_descriptions_fit_an_option(templates):
    long = TemplateInfo("long", "d" * 500, "marketing", "s", ("a",) * 30, "x.html.j2")
    valid_modal(views.compose_view([long], form=views.ComposeForm(), metadata={"c": "C"}))


def preview(**changes) -> views.PreviewData:
    data = views.PreviewData(
        template="welcome",
        category="transactional",
        valid=3,
        invalid=1,
        duplicates=0,
        suppressed=0,
        deferred=0,
        duration="under a minute",
        subject="Welcome to <Acme>",
        opening="Hello Ann, " * 400,
        first_to="Ann <ann@example.com>",
        transport="gmail",
    )
    for key, value in changes.items():
        setattr(data, key, value)
    return data


def test_preview_is_valid_and_asks_to_confirm_large_sends():
    small = valid_modal(views.preview_view(preview(), metadata={"draft": "k"}))
    assert not any(b.get("block_id") == views.B_CONFIRM for b in small["blocks"])
    assert "&lt;Acme&gt;" in json.dumps(small)
    big = valid_modal(
        views.preview_view(
            preview(valid=2500, deferred=500, transport="sandbox", sandbox_outbox="data/outbox"),
            metadata={"draft": "k"},
        )
    )
    text = json.dumps(big)
    assert any(b.get("block_id") == views.B_CONFIRM for b in big["blocks"])
    assert "Send 2,500" in text and "daily sending limit" in text and "Sandbox mode" in text


def test_checking_and_notice_views_are_valid():
    valid_modal(views.checking_view("reading a.csv, looking up 200 Slack people."))
    valid_modal(views.notice_view("Not sent", "x" * 5000))


def status(**changes) -> views.StatusData:
    data = views.StatusData(
        campaign_id=7,
        requested_by="U0OWNER",
        template="welcome",
        status="running",
        counts={"sent": 5, "failed": 2, "skipped": 1, "deferred": 0, "uncertain": 1, "queued": 11},
        total=20,
    )
    for key, value in changes.items():
        setattr(data, key, value)
    return data


def buttons(blocks: list[dict]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_status_while_running_offers_cancel_only():
    text, blocks = views.status_message(status(active=True))
    valid_message(text, blocks)
    assert buttons(blocks) == [views.A_CANCEL]
    assert "`▓▓▓▓▓▓▓▓▓░░░░░░░░░░░` 45%" in json.dumps(blocks, ensure_ascii=False)
    assert "to go *11*" in json.dumps(blocks)


def test_final_status_offers_retry_and_uncertain_choices_and_lists_failures():
    failures = [(f"p{i}@example.com", "x" * 500) for i in range(5)]
    text, blocks = views.status_message(
        status(
            status="completed", counts={"sent": 17, "failed": 2, "uncertain": 1}, failures=failures
        )
    )
    valid_message(text, blocks)
    assert buttons(blocks) == [
        views.A_RETRY_FAILED,
        views.A_RESEND_UNCERTAIN,
        views.A_SKIP_UNCERTAIN,
    ]
    assert "p4@example.com" in json.dumps(blocks)
    assert len(text) <= views.MAX_MESSAGE_TEXT


def test_status_of_cli_campaigns_and_deferred_and_paused_ones():
    _, blocks = views.status_message(
        status(requested_by="cli", counts={"deferred": 3}, resume_at=1_800_000_000.0)
    )
    shown = json.dumps(blocks)
    assert "<@cli>" not in shown and "cli is sending" in shown
    assert "<!date^1800000000^" in shown and "Cancel" in shown
    _, paused = views.status_message(status(status="paused", reason="Token revoked."))
    assert "python -m bot auth" in json.dumps(paused)


def test_progress_bar_edges():
    assert views.progress_bar(0, 0).endswith("100%")
    assert views.progress_bar(0, 10) == "`░░░░░░░░░░░░░░░░░░░░` 0%"


def test_home_view_stays_within_limits(templates):
    campaigns = [
        views.CampaignLine(i, "welcome", "completed", "U0OWNER", 100, 99, 1_800_000_000.0)
        for i in range(50)
    ]
    data = views.HomeData(
        campaigns=campaigns,
        quota=views.QuotaData("gmail", 450, 500, 300, 6000),
        delivery=DeliveryStats("Last 7 days", 1_234_567, 9_000, 3_456),
        templates=templates,
        health=[(True, "fine"), (False, "Nobody may send yet: an admin sets ALLOWED_SLACK_USERS.")],
    )
    home = valid_modal(views.home_view(data))
    text = json.dumps(home)
    assert "450* of 500" in text and ":warning: Nobody may send" in text
    assert "Delivery, last 7 days" in text and "bounced *12,456* (1.0%" in text


def test_ephemeral_blocks_are_valid(templates):
    valid_message(views.HELP, views.help_blocks())
    valid_message("Templates", views.templates_blocks(templates))
    text = views.quota_text(views.QuotaData("sandbox", 3, None, 0, 6000))
    assert "no daily limit" in text


def test_manifest_asks_for_exactly_the_scopes_serve_checks():
    import yaml

    from bot.cli.serve_cmds import REQUIRED_SCOPES

    manifest = yaml.safe_load(Path(ROOT / "manifest.yml").read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(REQUIRED_SCOPES)
    assert manifest["features"]["slash_commands"][0]["command"] == "/sendmail"
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
