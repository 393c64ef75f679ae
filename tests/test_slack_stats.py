"""Delivery and bounce rates in Slack: ``/sendmail stats``, App Home, the status
message, and the bounce warning that ``serve``'s background scan posts.

Through the running server (signed requests to Bolt in waitress, the real
WebClient against the Slack fake); the warning end to end with the Gmail fake too.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from slack_sdk.models.blocks import Block

from bot.channels import ChannelMap
from bot.cli import serve_cmds
from bot.handlers import campaign, preflight
from bot.handlers.bounce_parse import HARD, SOFT
from bot.handlers.recipient_paste import parse_text
from bot.handlers.stats import DeliveryStats
from bot.mail.sandbox import SandboxTransport
from bot.slack import views
from bot.slack.app import build_client
from bot.slack.status import StatusBoard
from bot.store import Store
from bot.wiring import build_deps
from tests.fakes.gmail_fake import READONLY_SCOPE, SEND_SCOPE, FakeGmail
from tests.fakes.slack_fake import SlackFake, message_problems, running_mailbolt, wait_for
from tests.test_bounces import NEWS, gmail_settings, sent_to

ADMIN = "U0ADMIN"
STATUS = "C0STATUS"
PEOPLE = ["ann@example.com", "bob@example.com", "cy@example.com", "dee@example.com"]


@pytest.fixture
def fake():
    with SlackFake() as slack:
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


def valid_message(text: str, blocks: list[dict]) -> str:
    assert message_problems(text, blocks) is None
    for block in Block.parse_all(blocks):
        block.to_dict()
    return text + json.dumps(blocks, ensure_ascii=False)


def ask(fake: SlackFake, text: str) -> str:
    reply, _ = fake.command(text, user=ADMIN)
    assert reply.status == 200 and reply.json["response_type"] == "ephemeral"
    return valid_message(reply.json["text"], reply.json["blocks"])


def recorded(deps, emails=PEOPLE, channel: str = "") -> int:
    request = campaign.CampaignRequest(
        template="welcome",
        recipients=parse_text(", ".join(emails)),
        requested_by=ADMIN,
        common_vars={"team": "Acme", "start_url": "https://acme.example"},
        status_channel=channel,
    )
    campaign_id, _ = preflight.record(preflight.preflight(request, deps), deps)
    return campaign_id


def bounce(store: Store, campaign_id: int, email: str, kind: str) -> None:
    """What a bounce scan records for a matched report (see ``bounces.ingest``)."""
    row = next(r for r in store.outbox.messages(campaign_id) if r.email == email)
    assert store.suppressions.record_bounce(
        f"g-{row.id}", kind=kind, message_row_id=row.id, email=email
    )


def gmail_like(settings, **changes):
    """Settings of a Gmail set-up; the tests hand mailbolt the sandbox as its transport."""
    return settings.replace(allowed_slack_users=ADMIN, mail_transport="gmail", **changes)


@pytest.fixture
def scanning(settings, fake):
    """A Gmail set-up reading bounce reports, writing .eml files instead of sending."""
    configured = gmail_like(settings, bounce_scan=True)
    transport = SandboxTransport(configured.sandbox_outbox)
    with running_mailbolt(configured, fake, transport=transport) as running:
        yield running


# -- the views ---------------------------------------------------------------------


def test_delivery_lines_and_what_delivered_means():
    known = DeliveryStats("Last 7 days", 200, 9, 3)
    assert views.delivery_line(known) == (
        "sent *200* · delivered *188* (94.0%) · bounced *12* (6.0%: 9 hard, 3 soft)"
    )
    blind = DeliveryStats("Last 7 days", 200, 0, 0, bounces_known=False)
    assert views.delivery_line(blind).endswith("(100.0%) · bounces not tracked")
    assert views.delivery_line(DeliveryStats("Last 7 days", 0, 0, 0)) == "no mail sent"
    assert "accepted by Gmail" in views.delivery_note("gmail", False)
    assert "BOUNCE_SCAN=on" in views.delivery_note("gmail", False)
    assert "written to the outbox" in views.delivery_note("sandbox", True)
    assert "can take hours" in views.delivery_note("gmail", True)


def test_a_long_report_stays_within_slack_limits():
    rows = [
        DeliveryStats(f"Campaign {i}", 10_000, 900, 100, campaign_id=i, template="t" * 60)
        for i in range(200, 0, -1)
    ]
    text, blocks = views.delivery_report(
        DeliveryStats("Last 7 days", 2_000_000, 180_000, 20_000),
        rows,
        flagged=[200],
        note=views.delivery_note("gmail", True),
    )
    shown = valid_message(text, blocks)
    assert shown.count(":warning: *#") == 1
    assert f"and {200 - views.STATS_CAMPAIGNS} more: `python -m bot stats`" in shown


def test_the_status_message_shows_delivery_only_once_the_run_is_over():
    data = views.StatusData(
        campaign_id=7,
        requested_by=ADMIN,
        template="welcome",
        status="completed",
        counts={"sent": 4},
        total=4,
        delivery=DeliveryStats("Campaign 7", 4, 1, 0, campaign_id=7),
    )
    shown = valid_message(*views.status_message(data))
    assert "Delivery so far: sent *4* · delivered *3* (75.0%)" in shown
    assert "`/sendmail stats 7`" in shown
    data.active = True
    assert "Delivery so far" not in valid_message(*views.status_message(data))


# -- /sendmail stats and help ------------------------------------------------------------


def test_help_lists_stats(fake, settings):
    with running_mailbolt(settings.replace(allowed_slack_users=ADMIN), fake):
        assert "/sendmail stats [id]" in ask(fake, "help")


def test_stats_with_bounce_scanning_off_says_what_delivered_means(fake, settings):
    configured = gmail_like(settings)
    transport = SandboxTransport(configured.sandbox_outbox)
    with running_mailbolt(configured, fake, transport=transport) as running:
        campaign_id = recorded(running.deps, PEOPLE[:2])
        assert running.runner.start(campaign_id).wait(30)
        week = ask(fake, "stats")
        one = ask(fake, f"stats {campaign_id}")
    assert "*Delivery, last 7 days*" in week
    assert f"*#{campaign_id}* welcome — sent *2* · delivered *2* (100.0%) · bounces not" in week
    for shown in (week, one):
        assert "accepted by Gmail" in shown and "BOUNCE_SCAN=on" in shown
        assert "bounced *" not in shown


def test_stats_in_the_sandbox_say_nothing_is_delivered(fake, settings):
    with running_mailbolt(settings.replace(allowed_slack_users=ADMIN), fake):
        shown = ask(fake, "stats")
    assert "no mail sent" in shown and "No mail was sent in this window" in shown
    assert "written to the outbox" in shown


def test_stats_with_bounces_flags_the_campaign_and_says_what_to_do(fake, scanning):
    store = scanning.deps.store
    quiet = recorded(scanning.deps, ["ok@example.com"])
    noisy = recorded(scanning.deps)
    for campaign_id in (quiet, noisy):
        assert scanning.runner.start(campaign_id).wait(30)
    bounce(store, noisy, "bob@example.com", HARD)
    bounce(store, noisy, "cy@example.com", SOFT)

    week = ask(fake, "stats")
    assert "sent *5* · delivered *3* (60.0%) · bounced *2* (40.0%: 1 hard, 1 soft)" in week
    assert f":warning: *#{noisy}* welcome — sent *4*" in week
    assert f"• *#{quiet}* welcome — sent *1*" in week
    assert "`/sendmail stats ID` says what to do" in week

    one = ask(fake, f"stats #{noisy}")
    assert f"Campaign {noisy} (welcome): 2 of 4 messages bounced (50.0%" in one
    assert "clean the recipient list" in one and "reports can take hours" in one
    assert ":warning:" not in ask(fake, f"stats {quiet}")

    status = ask(fake, f"status {noisy}")
    assert "Delivery so far: sent *4* · delivered *2* (50.0%)" in status


def test_stats_refuses_what_is_not_a_campaign(fake, scanning):
    assert "`soon` is not a campaign number; try `/sendmail stats 12`" in ask(fake, "stats soon")
    assert "There is no campaign #99" in ask(fake, "stats 99")


def test_stats_need_permission(fake, scanning):
    reply, _ = fake.command("stats", user="U0STRANGER")
    assert "ALLOWED_SLACK_USERS" in reply.json["text"] and "Delivery" not in reply.json["text"]


# -- App Home and the status message -------------------------------------------------


def test_app_home_has_a_delivery_panel_next_to_the_quota(fake, scanning):
    campaign_id = recorded(scanning.deps)
    assert scanning.runner.start(campaign_id).wait(30)
    bounce(scanning.deps.store, campaign_id, "bob@example.com", HARD)
    fake.event({"type": "app_home_opened", "user": ADMIN, "channel": "D0ADMIN", "tab": "home"})
    home = wait_for(lambda: fake.home.get(ADMIN), "the Home tab")
    texts = [json.dumps(b, ensure_ascii=False) for b in home["blocks"]]
    quota = next(i for i, t in enumerate(texts) if "Today's sending" in t)
    assert "*Delivery, last 7 days*" in texts[quota + 1]
    assert (
        "sent *4* · delivered *3* (75.0%) · bounced *1* (25.0%: 1 hard, 0 soft)" in texts[quota + 1]
    )
    assert "reports can take hours" in texts[quota + 2]


def final_message(fake: SlackFake) -> dict:
    return wait_for(
        lambda: next(
            (m for m in fake.messages_in(STATUS) if not m["thread_ts"] and "finished" in m["text"]),
            None,
        ),
        "the final status message",
    )


def test_the_final_status_update_shows_delivery_when_bounces_are_read(fake, scanning):
    scanning.runner.start(recorded(scanning.deps, channel=STATUS))
    shown = json.dumps(final_message(fake)["blocks"], ensure_ascii=False)
    assert "Delivery so far: sent *4* · delivered *4* (100.0%) · bounced *0*" in shown


def test_no_delivery_line_while_bounces_are_not_read(fake, settings):
    configured = settings.replace(allowed_slack_users=ADMIN)
    with running_mailbolt(configured, fake) as running:
        running.runner.start(recorded(running.deps, channel=STATUS))
        assert "Delivery so far" not in json.dumps(final_message(fake)["blocks"])


# -- where a bounce warning goes ----------------------------------------------------


@pytest.fixture
def deps(settings):
    return build_deps(settings)


def board_for(settings, fake, deps, alert_channel: str = "") -> StatusBoard:
    client = build_client(
        settings.replace(slack_bot_token=fake.bot_token, slack_api_url=fake.api_url)
    )
    channels = ChannelMap.parse(alert_channel)
    return StatusBoard(client, deps, interval=3600, alert_channels=channels)


def test_a_warning_without_a_status_message_goes_to_status_channel(fake, settings, deps):
    cli_campaign = recorded(deps)
    board_for(settings, fake, deps, alert_channel="C0ALERTS").alert(
        cli_campaign, f"Campaign {cli_campaign} (welcome): 1 of 4 messages bounced (25.0%)."
    )
    [posted] = fake.messages_in("C0ALERTS")
    assert posted["text"].startswith(":warning: Campaign")


def test_a_warning_with_nowhere_to_go_is_only_logged(fake, settings, deps, caplog):
    board_for(settings, fake, deps).alert(42, "Campaign 42 (welcome): 3 of 4 messages bounced.")
    assert fake.calls_to("chat.postMessage") == []
    assert "no status channel to post this in" in caplog.text


# -- end to end: serve, Gmail, the scan, the warning -----------------------------------


@pytest.fixture
def gmail(gmail_fake: FakeGmail) -> FakeGmail:
    return gmail_fake


def test_serve_scans_for_bounces_and_warns_in_the_status_thread(
    settings, fake, gmail, tmp_path: Path, capsys
):
    configured = gmail_settings(
        gmail_like(
            settings,
            slack_bot_token=fake.bot_token,
            slack_signing_secret=fake.signing_secret,
            slack_api_url=fake.api_url,
        ),
        gmail,
        tmp_path,
        (SEND_SCOPE, READONLY_SCOPE),
    )
    store = Store(configured.database_path)
    request = campaign.CampaignRequest(
        template="newsletter",
        recipients=parse_text(", ".join(PEOPLE)),
        requested_by=ADMIN,
        common_vars=NEWS,
        status_channel=STATUS,
    )
    deps = build_deps(configured, store)
    campaign_id, _ = preflight.record(preflight.preflight(request, deps), deps)
    store.close()

    servers = []
    started = threading.Event()

    def ready(web):
        servers.append(web)
        started.set()

    thread = threading.Thread(
        target=serve_cmds.serve,
        args=(configured, build_client(configured), "127.0.0.1", 0),
        kwargs={"ready": ready, "bounce_scan_seconds": 0.3},
        daemon=True,
    )
    thread.start()
    assert started.wait(30)
    try:
        status = final_message(fake)  # resumed at start and sent through Gmail
        assert len(gmail.sent) == 4
        gmail.bounce(sent_to(gmail, "bob@example.com"), "bob@example.com", "5.1.1")
        warning = wait_for(
            lambda: next(
                (m for m in fake.messages_in(STATUS) if m["thread_ts"] == status["ts"]), None
            ),
            "the bounce warning in the status thread",
        )
        assert warning["text"].startswith(f":warning: Campaign {campaign_id} (newsletter): 1 of 4")
        [call] = [c for c in fake.calls_to("chat.postMessage") if c.args.get("thread_ts")]
        assert call.args["reply_broadcast"] is True, "shown in the channel, not only the thread"
        wait_for(
            lambda: (
                "bounced *1* (25.0%: 1 hard, 0 soft)"
                in json.dumps(fake.messages[(STATUS, status["ts"])]["blocks"], ensure_ascii=False)
            ),
            "the status message to show the bounces",
        )
    finally:
        servers[0].stop()
        thread.join(30)
    assert not thread.is_alive()
    assert serve_cmds.STOPPED in capsys.readouterr().err
    assert len(fake.messages_in(STATUS)) == 2, "one warning, however many scans ran"
