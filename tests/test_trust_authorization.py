"""Every listener checks who is asking, every time.

The listeners are not listed here by hand: the test asks the running app what
it registered (``MailboltApp.registered``) and sends a signed request to each,
through the real waitress server and Bolt app, against the Slack fake. A new
listener of a kind this file cannot build a request for fails the test.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.handlers import campaign, preflight
from bot.handlers.recipient_paste import parse_text
from bot.runner import Runner
from bot.slack import views
from bot.slack.app import MailboltApp, build_app
from bot.web import WebServer, make_wsgi_app
from bot.wiring import build_deps
from tests.fakes.slack_fake import TEAM, Reply, SlackFake, wait_for

OWNER, GONE = "U0OWNER", "U0GONE"
ELSEWHERE = "T0ELSEWHERE"
CHANNEL = "C0STATUS"
NOT_ALLOWED = "may not send email with mailbolt"
OTHER_WORKSPACE = "only in the Slack workspace it is installed in"


@pytest.fixture
def fake() -> Iterator[SlackFake]:
    with SlackFake() as slack:
        slack.add_user(OWNER, "owner@acme.example", "Olive Owner")
        slack.add_user(GONE, "gone@acme.example", "Gus Gone")
        yield slack
        assert slack.problems == []


@contextmanager
def serving(settings, fake: SlackFake) -> Iterator[tuple[MailboltApp, Any]]:
    """The real app in waitress, as ``serve`` builds it; yields the Bolt app too."""
    settings = settings.replace(
        slack_bot_token=fake.bot_token,
        slack_signing_secret=fake.signing_secret,
        slack_api_url=fake.api_url,
    )
    deps = build_deps(settings)
    runner = Runner(deps, due_check_seconds=0.5)
    app = build_app(settings, deps, runner, status_interval=0.2)
    server = WebServer(make_wsgi_app(settings, deps.store, app), "127.0.0.1", 0).start()
    fake.app_url = f"{server.url}/slack/events"
    runner.open()
    try:
        yield app, deps
    finally:
        runner.wait_idle(30)
        runner.close()
        server.stop()


def gone_campaign(settings) -> int:
    """A campaign U0GONE sent while still allowed, recorded before the restart."""
    deps = build_deps(settings)
    request = campaign.CampaignRequest(
        template="welcome",
        recipients=parse_text("ann@example.com"),
        requested_by=GONE,
        common_vars={"team": "Acme", "start_url": "https://acme.example"},
    )
    campaign_id, _ = preflight.record(preflight.preflight(request, deps), deps)
    deps.store.close()
    return campaign_id


@pytest.fixture
def running(settings, fake, caplog):
    """mailbolt restarted after U0GONE was taken off ALLOWED_SLACK_USERS."""
    caplog.set_level(logging.INFO, logger="bot.slack.authorize")
    campaign_id = gone_campaign(settings)
    with serving(settings.replace(allowed_slack_users=OWNER), fake) as (app, deps):
        wait_for(lambda: deps.store.campaigns.get(campaign_id).status == "completed", "the resume")
        yield app, deps, campaign_id


# -- the requests Slack sends, from anyone in any workspace ---------------------------------


def _user(user: str, team: str) -> dict[str, str]:
    return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team}


def _interaction(fake: SlackFake, payload: dict[str, Any]) -> Reply:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return fake.post_signed(body, "application/x-www-form-urlencoded")


def command(fake: SlackFake, name: str, user: str, team: str, text: str = "") -> Reply:
    form = {
        "team_id": team,
        "team_domain": "somewhere",
        "channel_id": CHANNEL,
        "user_id": user,
        "user_name": user.lower(),
        "command": name,
        "text": text,
        "api_app_id": "A0FAKE",
        "trigger_id": fake.new_trigger(user),
    }
    return fake.post_signed(urlencode(form).encode(), "application/x-www-form-urlencoded")


def _view(callback_id: str, metadata: str) -> dict[str, Any]:
    return {
        "id": "V0TEST",
        "team_id": TEAM,
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": metadata,
        "blocks": [
            {
                "type": "input",
                "block_id": views.B_TEMPLATE,
                "label": {"type": "plain_text", "text": "Template"},
                "element": {"type": "plain_text_input", "action_id": views.ACTION},
            }
        ],
        "state": {"values": {}},
    }


def action(
    fake: SlackFake, action_id: str, user: str, team: str, *, in_view: bool, value: str
) -> Reply:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": {"id": team, "domain": "somewhere"},
        "user": _user(user, team),
        "api_app_id": "A0FAKE",
        "trigger_id": fake.new_trigger(user),
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value}],
    }
    if in_view:
        payload["container"] = {"type": "view", "view_id": "V0TEST"}
        payload["view"] = _view(views.CB_PREVIEW, json.dumps({"draft": "d"}))
    else:
        payload["container"] = {"type": "message", "message_ts": "1.2", "channel_id": CHANNEL}
        payload["channel"] = {"id": CHANNEL, "name": "status"}
        payload["message"] = {"ts": "1.2", "text": "status", "blocks": []}
    return _interaction(fake, payload)


def view_event(fake: SlackFake, kind: str, callback_id: str, user: str, team: str) -> Reply:
    return _interaction(
        fake,
        {
            "type": kind,
            "team": {"id": team, "domain": "somewhere"},
            "user": _user(user, team),
            "api_app_id": "A0FAKE",
            "view": _view(callback_id, json.dumps({"channel": CHANNEL, "draft": "d"})),
        },
    )


def options(fake: SlackFake, action_id: str, user: str, team: str) -> Reply:
    return _interaction(
        fake,
        {
            "type": "block_suggestion",
            "team": {"id": team, "domain": "somewhere"},
            "user": _user(user, team),
            "action_id": action_id,
            "block_id": "b",
            "value": "abc",
        },
    )


def event(fake: SlackFake, event_type: str, user: str, team: str) -> Reply:
    body = {
        "team_id": team,
        "api_app_id": "A0FAKE",
        "type": "event_callback",
        "event_id": f"Ev{time.time_ns()}",
        "event_time": int(time.time()),
        "event": {"type": event_type, "user": user, "channel": "D0X", "tab": "home"},
        "authorizations": [{"team_id": team, "user_id": "U0BOT", "is_bot": True}],
    }
    return fake.post_signed(json.dumps(body).encode(), "application/json")


# -- what each refusal looks like -----------------------------------------------------------


def refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("[")]


def told_privately(fake: SlackFake, user: str, text: str) -> bool:
    """An ephemeral note or a direct message to ``user`` containing ``text``."""
    with fake.lock:
        notes = [e["text"] for e in fake.ephemerals if e.get("user") == user]
        dms = [m["text"] for (channel, _), m in fake.messages.items() if channel == f"D{user[1:]}"]
    return any(text in t for t in notes + dms)


def check_refused(
    fake, caplog, method: str, constraint: Any, user: str, team: str, text: str, campaign_id=1
):
    """Send one request per way ``constraint`` can be reached; each must be refused."""
    answerable = team == TEAM
    before = len(refusals(caplog))
    sent = 0
    if not isinstance(constraint, str):
        pytest.fail(f"{method}({constraint!r}): give this test a request for it")
    if method == "command":
        reply = command(fake, constraint, user, team, text="help")
        assert reply.status == 200 and reply.json["response_type"] == "ephemeral"
        assert text in reply.json["text"]
        sent += 1
    elif method in ("action", "block_action"):
        for in_view in (False, True):
            with fake.lock:
                fake.ephemerals.clear()
                fake.messages.clear()
            reply = action(fake, constraint, user, team, in_view=in_view, value=str(campaign_id))
            assert reply.status == 200 and reply.body == b""
            assert told_privately(fake, user, text) == answerable, (constraint, in_view)
            sent += 1
    elif method in ("view", "view_submission"):
        reply = view_event(fake, "view_submission", constraint, user, team)
        assert reply.status == 200
        assert reply.json["response_action"] == "errors"
        assert text in reply.json["errors"][views.B_TEMPLATE]
        reply = view_event(fake, "view_closed", constraint, user, team)
        assert reply.status == 200 and reply.body == b""
        sent += 2
    elif method in ("options", "block_suggestion"):
        reply = options(fake, constraint, user, team)
        assert reply.status == 200 and reply.json == {"options": []}
        sent += 1
    elif method == "event":
        with fake.lock:
            fake.home.clear()
        reply = event(fake, constraint, user, team)
        assert reply.status == 200 and reply.body == b""
        home = json.dumps(fake.home.get(user, {}))
        assert (text in home) if answerable else (home == "{}"), constraint
        sent += 1
    else:
        pytest.fail(f"{method}({constraint!r}): give this test a request for it")
    assert len(refusals(caplog)) - before == sent, f"{method}({constraint!r}) was not refused"


# -- the tests ---------------------------------------------------------------------------------


SIDE_EFFECTS = ("views.open", "views.update", "views.push", "users.info", "files.info")


def test_every_listener_refuses_someone_taken_off_the_allowed_list(fake, running, caplog):
    app, deps, campaign_id = running
    assert len(app.registered) == len(app._listeners)  # nothing registered unseen
    kinds = {method for method, _ in app.registered}
    assert {"command", "action", "view", "event"} <= kinds
    campaigns_before = deps.store.campaigns.recent()
    for method, constraint in app.registered:
        check_refused(fake, caplog, method, constraint, GONE, TEAM, NOT_ALLOWED, campaign_id)
    # a request that passes shows the lazy work of the refused ones would have happened by now
    command(fake, "/sendmail", OWNER, TEAM)
    wait_for(lambda: fake.calls_to("views.open"), "the allowed sender's form")
    assert len(fake.calls_to("views.open")) == 1
    # The allowed sender's own profile may be read (their time zone, for the form);
    # nothing was looked up for anyone refused.
    assert {c.args.get("user") for c in fake.calls_to("users.info")} <= {OWNER}
    assert not any(fake.calls_to(m) for m in SIDE_EFFECTS if m not in ("views.open", "users.info"))
    assert deps.store.campaigns.recent() == campaigns_before
    assert deps.store.outbox.counts(campaign_id)["sent"] == 1


def test_every_listener_refuses_an_allowed_id_from_another_workspace(fake, running, caplog):
    app, deps, _ = running
    campaigns_before = deps.store.campaigns.recent()
    for method, constraint in app.registered:
        check_refused(fake, caplog, method, constraint, OWNER, ELSEWHERE, OTHER_WORKSPACE)
    with fake.lock:
        told = [c for c in fake.calls if c.method.startswith(("chat.", "views."))]
    assert told == [], "nothing is posted for someone outside the workspace"
    assert deps.store.campaigns.recent() == campaigns_before


def test_the_owner_taken_off_the_list_cannot_retry_their_old_campaign(fake, running, caplog):
    _, deps, campaign_id = running
    assert deps.store.campaigns.get(campaign_id).requested_by == GONE
    reply = action(fake, views.A_RETRY_FAILED, GONE, TEAM, in_view=False, value=str(campaign_id))
    assert reply.status == 200
    assert told_privately(fake, GONE, NOT_ALLOWED)
    assert any("refused block_actions from user U0GONE" in line for line in refusals(caplog))


def test_send_a_test_and_edit_are_checked_too(fake, running, caplog):
    for action_id in (views.A_SEND_TEST, views.A_EDIT):
        reply = action(fake, action_id, GONE, TEAM, in_view=True, value="")
        assert reply.status == 200
        assert told_privately(fake, GONE, NOT_ALLOWED)
    assert len(refusals(caplog)) == 2


def test_an_allowed_sender_in_the_workspace_passes(fake, running, caplog):
    reply = command(fake, "/sendmail", OWNER, TEAM, text="help")
    assert reply.status == 200 and "/sendmail status" in reply.json["text"]
    assert refusals(caplog) == []
