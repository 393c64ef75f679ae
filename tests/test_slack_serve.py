"""``serve``: start-up checks, ``auth.test``, and the web server's routes."""

from __future__ import annotations

import argparse
import json
import threading
import urllib.error
import urllib.request

import pytest

from bot.cli import serve_cmds
from bot.handlers import campaign, preflight
from bot.handlers.recipient_paste import parse_text
from bot.slack.app import build_client
from bot.store import Store
from tests.fakes.slack_fake import SlackFake, wait_for


@pytest.fixture
def fake():
    with SlackFake() as slack:
        yield slack


def slack_settings(settings, fake, **changes):
    return settings.replace(
        slack_bot_token=fake.bot_token,
        slack_signing_secret=fake.signing_secret,
        slack_api_url=fake.api_url,
        allowed_slack_users="U0ADMIN",
        **changes,
    )


def test_each_missing_setting_names_the_step_that_provides_it(settings):
    problems, warnings = serve_cmds.startup_problems(settings)
    assert len(problems) == 2
    assert "SLACK_BOT_TOKEN is not set" in problems[0] and "OAuth & Permissions" in problems[0]
    assert "SLACK_SIGNING_SECRET" in problems[1] and "Basic Information" in problems[1]
    assert "ALLOWED_SLACK_USERS is empty" in warnings[0]


def test_wrong_values_are_each_explained(settings):
    problems, warnings = serve_cmds.startup_problems(
        settings.replace(
            slack_bot_token="xoxp-user-token",
            slack_app_token="xoxb-not-an-app-token",
            status_channel="#general",
            allowed_slack_users="U0ADMIN, bob",
        )
    )
    text = "\n".join(problems)
    assert "starting with xoxb-" in text
    assert "SLACK_APP_TOKEN must be an app-level token" in text and "connections:write" in text
    assert "STATUS_CHANNEL='#general'" in text
    assert "'bob'" in text and "Copy member ID" in text
    assert "SLACK_SIGNING_SECRET" not in text  # Socket Mode needs none
    assert warnings == []


def test_bounce_scanning_without_gmail_is_a_warning(settings):
    _, warnings = serve_cmds.startup_problems(
        settings.replace(bounce_scan=True, allowed_slack_users="*")
    )
    assert warnings == [
        "BOUNCE_SCAN=on does nothing with MAIL_TRANSPORT=sandbox: bounce reports are read "
        "from the Gmail mailbox, and nothing sent here can bounce."
    ]


def test_auth_test_passes_with_a_good_token(settings, fake):
    assert serve_cmds.check_slack(build_client(slack_settings(settings, fake))) == []
    assert fake.calls_to("auth.test")


def test_auth_test_explains_a_refused_token(settings, fake):
    client = build_client(slack_settings(settings, fake).replace(slack_bot_token="xoxb-revoked"))
    [line] = serve_cmds.check_slack(client)
    assert "Slack refused SLACK_BOT_TOKEN (invalid_auth)" in line and "Reinstall" in line


def test_auth_test_names_missing_scopes(settings):
    with SlackFake(scopes="commands,chat:write") as fake:
        [line] = serve_cmds.check_slack(build_client(slack_settings(settings, fake)))
    assert "users:read, users:read.email, files:read" in line and "manifest.yml" in line


def test_unreachable_slack(settings):
    with SlackFake() as fake:
        dead = slack_settings(settings, fake)
    [line] = serve_cmds.check_slack(build_client(dead))
    assert line.startswith(f"Cannot reach Slack at {dead.slack_api_url}")


def test_serve_refuses_to_start_with_one_line_per_problem(settings, capsys):
    parser = argparse.ArgumentParser()
    serve_cmds.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--port", "0"])
    assert args.func(args, settings) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "did not start" in err


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_serve_resumes_campaigns_and_serves_every_route(settings, fake):
    settings = slack_settings(settings, fake)
    store = Store(settings.database_path)
    from bot.wiring import build_deps

    deps = build_deps(settings, store)
    request = campaign.CampaignRequest(
        template="welcome",
        recipients=parse_text("ann@example.com"),
        requested_by="cli",
        common_vars={"team": "Acme", "start_url": "https://acme.example"},
    )
    campaign_id, _ = preflight.record(preflight.preflight(request, deps), deps)
    store.close()

    started = threading.Event()
    servers = []

    def ready(web):
        servers.append(web)
        started.set()

    thread = threading.Thread(
        target=serve_cmds.serve,
        args=(settings, build_client(settings), "127.0.0.1", 0),
        kwargs={"ready": ready},
        daemon=True,
    )
    thread.start()
    assert started.wait(30)
    web = servers[0]
    try:
        fake.app_url = f"{web.url}/slack/events"
        status, body = get(f"{web.url}/healthz")
        assert status == 200
        assert json.loads(body) == {"ok": True, "transport": "sandbox", "slack": "http"}
        assert get(f"{web.url}/slack/events")[0] == 405
        assert get(f"{web.url}/nothing-here")[0] == 404
        assert get(f"{web.url}/unsubscribe/forged.token")[0] == 400  # the compliance endpoint
        reply, _ = fake.command("help", user="U0ADMIN")
        assert reply.status == 200 and "/sendmail status" in reply.json["text"]
        wait_for(
            lambda: list(settings.sandbox_outbox.glob(f"{campaign_id:04d}-*.eml")),
            "the unfinished campaign to be resumed and sent",
        )
    finally:
        web.stop()
        thread.join(10)
    assert not thread.is_alive()
