"""``serve`` with many workspaces: it says which mode it is in, refuses half the
settings, and keeps answering the workspace of an existing ``SLACK_BOT_TOKEN``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from bot.records import NewMessage
from bot.store import Store
from tests.fakes.slack_fake import TEAM, SlackFake, wait_for
from tests.fakes.workspaces import Browser
from tests.test_cli import ROOT, run

BASE = "https://mail.example.com"


@pytest.fixture
def fake():
    with SlackFake() as slack:
        slack.add_user("U0ADMIN", "admin@acme.example", "Ada Admin")
        yield slack


def slack_env(fake: SlackFake, **more: str) -> dict[str, str]:
    return {
        "SLACK_SIGNING_SECRET": fake.signing_secret,
        "SLACK_API_URL": fake.api_url,
        "ALLOWED_SLACK_USERS": "U0ADMIN",
        **more,
    }


def test_a_client_id_without_its_secret_is_refused(tmp_path, fake):
    env = slack_env(fake, SLACK_BOT_TOKEN=fake.bot_token, SLACK_CLIENT_ID=fake.client_id)
    result = run(tmp_path, "serve", "--port", "0", env=env)
    assert result.returncode == 2
    assert "SLACK_CLIENT_ID is set but SLACK_CLIENT_SECRET is not" in result.stderr
    assert "did not start" in result.stderr


def test_many_workspaces_need_a_public_url_for_the_redirect(tmp_path, fake):
    env = slack_env(fake, SLACK_CLIENT_ID=fake.client_id, SLACK_CLIENT_SECRET=fake.client_secret)
    result = run(tmp_path, "serve", "--port", "0", env=env)
    assert result.returncode == 2
    assert "need PUBLIC_BASE_URL" in result.stderr
    assert "SLACK_BOT_TOKEN is not set" not in result.stderr  # not needed with OAuth
    assert fake.client_secret not in result.stdout + result.stderr


def _serve(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_PATH": str(tmp_path / "data" / "sendmail.db"),
        "SANDBOX_OUTBOX": str(tmp_path / "data" / "outbox"),
        "TEMPLATES_DIR": str(ROOT / "templates"),
        "POSTAL_ADDRESS": "Mailbolt Inc., 1 Harbour Street, Bristol",
        "SENDER_ADDRESS": "team@mailbolt.example",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=tmp_path,
        env=environ,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return process, lines


def test_the_single_token_keeps_working_after_the_switch(tmp_path, fake):
    env = slack_env(
        fake,
        SLACK_BOT_TOKEN=fake.bot_token,
        SLACK_CLIENT_ID=fake.client_id,
        SLACK_CLIENT_SECRET=fake.client_secret,
        SLACK_OAUTH_AUTHORIZE_URL=fake.authorize_url,
        PUBLIC_BASE_URL=BASE,
    )
    # A campaign sent from the command line while there was one workspace.
    assert run(tmp_path, "unsubscribes", "add", "zed@example.com").returncode == 0
    before = Store(tmp_path / "data" / "sendmail.db")
    try:
        unowned = _cli_campaign(before)
    finally:
        before.close()
    process, lines = _serve(tmp_path, env)
    try:
        listening = wait_for(
            lambda: next((line for line in lines if "listening on" in line), None),
            "serve to start",
        )
        said = "".join(lines)
        assert "many workspaces" in said and f"{BASE}/slack/install" in said
        url = re.search(r"http://127\.0\.0\.1:\d+", listening)
        assert url, listening
        fake.app_url = f"{url.group(0)}/slack/events"
        reply, _ = fake.command("help", user="U0ADMIN")
        assert reply.status == 200 and "/sendmail" in reply.json["text"], reply
        consent = Browser().start_at(url.group(0))
        assert consent.status == 302 and consent.location.startswith(fake.authorize_url)
        query = parse_qs(urlparse(consent.location).query)
        assert query["redirect_uri"] == [f"{BASE}/slack/oauth_redirect"]
    finally:
        process.terminate()
        process.wait(30)
    store = Store(tmp_path / "data" / "sendmail.db")
    try:
        (installed,) = store.installations.all()
    finally:
        store.close()
    assert installed.team == TEAM
    assert fake.bot_token not in installed.sealed_bot_token
    # What the one workspace had with no workspace is now its own, and said so.
    assert (
        "1 campaign(s) and 0 sender account(s) of the one-workspace setup now belong to "
        f"workspace {TEAM}" in "".join(lines)
    )
    store = Store(tmp_path / "data" / "sendmail.db")
    try:
        assert store.campaigns.get(unowned).team == TEAM
        assert store.suppressions.unsubscribed_among(["zed@example.com"], "T0OTHER")  # still all
    finally:
        store.close()
    assert fake.bot_token not in "".join(lines)


def test_one_workspace_mode_is_said_and_unchanged(tmp_path, fake):
    env = slack_env(fake, SLACK_BOT_TOKEN=fake.bot_token)
    process, lines = _serve(tmp_path, env)
    try:
        wait_for(lambda: any("listening on" in line for line in lines), "serve to start")
        assert "one workspace (SLACK_BOT_TOKEN)" in "".join(lines)
    finally:
        process.terminate()
        process.wait(30)


def test_serve_warns_about_an_installation_that_lacks_a_scope(tmp_path, settings):
    from bot.slack.app import build_client
    from bot.slack.installations import SlackClients
    from bot.wiring import Wiring

    with SlackFake(scopes="commands,chat:write") as fake:
        local = settings.replace(
            database_path=tmp_path / "data" / "sendmail.db", slack_api_url=fake.api_url
        )
        wiring = Wiring(local)
        clients = SlackClients(build_client(local), wiring.store.installations, wiring.seal)
        clients.record_single_token(fake.bot_token)  # installed earlier, with fewer scopes
        wiring.store.close()
        env = slack_env(
            fake,
            SLACK_CLIENT_ID=fake.client_id,
            SLACK_CLIENT_SECRET=fake.client_secret,
            PUBLIC_BASE_URL=BASE,
        )
        process, lines = _serve(tmp_path, env)
        try:
            wait_for(lambda: any("listening on" in line for line in lines), "serve to start")
        finally:
            process.terminate()
            process.wait(30)
    said = " ".join("".join(lines).split())
    assert f"workspace {TEAM}: the bot token lacks users:read, users:read.email" in said
    assert "installed in 1;" in said


def test_empty_oauth_variables_in_the_environment_leave_one_workspace_mode(tmp_path, fake):
    """Bolt alone would switch to OAuth with file stores on seeing these, even empty."""
    env = slack_env(
        fake, SLACK_BOT_TOKEN=fake.bot_token, SLACK_CLIENT_ID="", SLACK_CLIENT_SECRET=""
    )
    process, lines = _serve(tmp_path, env)
    try:
        listening = wait_for(
            lambda: next((line for line in lines if "listening on" in line), None),
            "serve to start",
        )
        assert "one workspace (SLACK_BOT_TOKEN)" in "".join(lines)
        url = re.search(r"http://127\.0\.0\.1:\d+", listening)
        assert url, listening
        fake.app_url = f"{url.group(0)}/slack/events"
        reply, _ = fake.command("help", user="U0ADMIN")
        assert reply.status == 200 and "/sendmail" in reply.json["text"], reply
    finally:
        process.terminate()
        process.wait(30)
    assert not (tmp_path / ".bolt-app-installation").exists()


def _cli_campaign(store: Store) -> int:
    campaign_id, _ = store.campaigns.create(
        requested_by="cli",
        template="welcome",
        category="transactional",
        subject="",
        common_vars={},
        messages=[NewMessage(email="ann@example.com", message_id="<cli1@m>")],
    )
    return campaign_id
