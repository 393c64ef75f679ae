"""The status board against the fake Web API with the real WebClient, flushed by hand."""

from __future__ import annotations

import json

import pytest

from bot.handlers import campaign, preflight, send_loop
from bot.handlers.recipient_paste import parse_text
from bot.slack.app import build_client
from bot.slack.status import StatusBoard
from bot.wiring import build_deps
from tests.fakes.slack_fake import SlackFake

CHANNEL = "C0STATUS"


@pytest.fixture
def fake():
    with SlackFake() as slack:
        yield slack
        assert slack.problems == []


@pytest.fixture
def deps(settings):
    return build_deps(settings)


@pytest.fixture
def board(settings, fake, deps):
    client = build_client(
        settings.replace(slack_bot_token=fake.bot_token, slack_api_url=fake.api_url)
    )
    return StatusBoard(client, deps, interval=3600)  # no flusher thread: flush() by hand


def recorded(deps, n=3, channel=CHANNEL, correlation_id="") -> int:
    request = campaign.CampaignRequest(
        template="welcome",
        recipients=parse_text(", ".join(f"p{i}@example.com" for i in range(n))),
        requested_by="U0OWNER",
        common_vars={"team": "Acme", "start_url": "https://acme.example"},
        status_channel=channel,
        correlation_id=correlation_id,
    )
    campaign_id, _ = preflight.record(preflight.preflight(request, deps), deps)
    return campaign_id


def only_message(fake: SlackFake) -> dict:
    messages = [m for m in fake.messages_in(CHANNEL) if not m["thread_ts"]]
    assert len(messages) == 1
    return messages[0]


def test_progress_is_batched_into_one_edit_per_flush(fake, deps, board):
    campaign_id = recorded(deps)
    board.post(campaign_id)
    board.started(campaign_id)
    for _ in range(50):
        board.progress(campaign_id, deps.store.outbox.counts(campaign_id))
    assert fake.calls_to("chat.update") == []
    assert board.flush() == 1
    assert board.flush() == 0
    assert len(fake.calls_to("chat.update")) == 1
    assert "sending" in only_message(fake)["text"]


def test_final_edit_is_immediate_and_never_overwritten_by_progress(fake, deps, board):
    campaign_id = recorded(deps)
    board.post(campaign_id)
    board.started(campaign_id)
    result = send_loop.run(campaign_id, deps)
    board.progress(campaign_id, result.counts)
    board.finished(campaign_id, result)
    assert "finished, 3 of 3 sent" in only_message(fake)["text"]
    board.progress(campaign_id, result.counts)  # a straggler from a send thread
    board.flush()
    assert "finished, 3 of 3 sent" in only_message(fake)["text"]
    assert "campaign_cancel" not in json.dumps(only_message(fake)["blocks"])


def test_a_failure_is_shown_with_a_reference_and_replied_in_the_thread(fake, deps, board):
    campaign_id = recorded(deps, correlation_id="ref123abc")
    board.post(campaign_id)
    board.failed(campaign_id, RuntimeError("disk on fire"))
    message = only_message(fake)
    shown = json.dumps(message["blocks"])
    assert "Something went wrong on our side (reference ref123abc)" in shown
    assert "disk on fire" not in shown  # details stay in the log
    replies = [m for m in fake.messages_in(CHANNEL) if m["thread_ts"] == message["ts"]]
    assert replies and "reference ref123abc" in replies[0]["text"]


def test_a_deleted_status_message_is_posted_again(fake, deps, board):
    campaign_id = recorded(deps)
    board.post(campaign_id)
    first = only_message(fake)
    del fake.messages[(CHANNEL, first["ts"])]
    board.refresh(campaign_id)
    board.flush()
    again = only_message(fake)
    assert again["ts"] != first["ts"]
    assert deps.store.campaigns.get(campaign_id).status_ts == again["ts"]


def test_campaigns_without_a_channel_are_left_alone(fake, deps, board):
    campaign_id = recorded(deps, channel="")
    assert board.post(campaign_id) is None
    board.finished(campaign_id, send_loop.run(campaign_id, deps))
    assert fake.calls_to("chat.postMessage") == []


def test_rate_limited_edit_is_retried_after_retry_after(fake, deps, board):
    campaign_id = recorded(deps)
    board.post(campaign_id)
    fake.fail_next("chat.update", retry_after=1)
    board.finished(campaign_id, send_loop.run(campaign_id, deps))
    assert [c.status for c in fake.calls_to("chat.update")] == [429, 200]
    assert "finished" in only_message(fake)["text"]
