"""The fake refuses what Slack refuses, so the other tests can fail for real."""

from __future__ import annotations

import time
import urllib.request

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.fakes.slack_fake import SlackFake

MODAL = {
    "type": "modal",
    "title": {"type": "plain_text", "text": "Test"},
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}],
}


@pytest.fixture
def fake():
    with SlackFake() as slack:
        yield slack


@pytest.fixture
def client(fake):
    return WebClient(token=fake.bot_token, base_url=fake.api_url)


def error_of(call) -> str:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value.response["error"]


def test_trigger_ids_work_once_and_expire(fake, client):
    trigger = fake.new_trigger("U1")
    client.views_open(trigger_id=trigger, view=MODAL)
    assert error_of(lambda: client.views_open(trigger_id=trigger, view=MODAL)) == (
        "exchanged_trigger_id"
    )
    late = fake.new_trigger("U1")
    fake._triggers[late] = (time.monotonic() - 3.1, "U1")  # issued 3.1 s ago
    assert error_of(lambda: client.views_open(trigger_id=late, view=MODAL)) == "expired_trigger_id"


def test_views_beyond_slacks_limits_are_refused(fake, client):
    too_long = {
        **MODAL,
        "blocks": [
            {
                "type": "input",
                "block_id": "b",
                "label": {"type": "plain_text", "text": "x"},
                "element": {"type": "plain_text_input", "action_id": "a", "max_length": 5000},
            }
        ],
    }
    assert error_of(
        lambda: client.views_open(trigger_id=fake.new_trigger("U1"), view=too_long)
    ) == ("invalid_arguments")
    metadata = {**MODAL, "private_metadata": "x" * 3001}
    assert (
        error_of(lambda: client.views_open(trigger_id=fake.new_trigger("U1"), view=metadata))
        == "invalid_arguments"
    )
    many = {**MODAL, "blocks": MODAL["blocks"] * 101}
    assert (
        error_of(lambda: client.views_open(trigger_id=fake.new_trigger("U1"), view=many))
        == "invalid_arguments"
    )
    assert len(fake.problems) == 3


def test_messages_beyond_slacks_limits_are_refused(fake, client):
    block = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}
    assert error_of(
        lambda: client.chat_postMessage(channel="C1", text="x", blocks=[block] * 51)
    ) == ("invalid_blocks")
    assert error_of(lambda: client.chat_postMessage(channel="C1", text="x" * 4001)) == (
        "msg_too_long"
    )
    assert error_of(lambda: client.chat_update(channel="C1", ts="1.2", text="x")) == (
        "message_not_found"
    )


def test_files_need_the_bot_token(fake, client):
    upload = fake.add_file("a.csv", b"email\na@example.com\n")
    url = client.files_info(file=upload["id"])["file"]["url_private_download"]
    with urllib.request.urlopen(url) as anonymous:
        assert anonymous.headers.get_content_type() == "text/html"
    signed = urllib.request.Request(url, headers={"Authorization": f"Bearer {fake.bot_token}"})
    with urllib.request.urlopen(signed) as response:
        assert response.read() == b"email\na@example.com\n"


def test_a_wrong_token_is_refused(fake):
    other = WebClient(token="xoxb-wrong", base_url=fake.api_url)
    assert error_of(other.auth_test) == "invalid_auth"
