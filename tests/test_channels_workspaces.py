"""Channels per workspace, with two workspaces installed through "Add to Slack":
each workspace's approval requests, status messages and warnings go to its own
channels with its own token; a workspace with no approval channel is told so at
the preview, before anything is recorded; ``serve`` warns of one bare channel ID
serving several installed workspaces."""

from __future__ import annotations

from typing import Any

import pytest

from bot.handlers import preflight
from bot.handlers.campaign import CampaignRequest
from bot.models import Recipient, RecipientList
from bot.records import CampaignStatus
from bot.slack import views
from bot.slack.app import build_client
from bot.slack.installations import SlackClients
from bot.slack.status import StatusBoard
from bot.slack.views import approval as approval_views
from tests.fakes.slack_fake import SlackFake, compose_values, wait_for
from tests.fakes.workspaces import TEAM_A, TEAM_B, USER_A, USER_B, two_workspaces
from tests.test_install_serve import _serve, slack_env

APPROVER_A, APPROVER_B = "U0A2", "U0B2"
APPROVALS = {TEAM_A: "C0AAPPROVALS", TEAM_B: "G0BAPPROVALS"}
STATUS = {TEAM_A: "C0ASTATUS", TEAM_B: "C0BSTATUS"}
VARS = "team=Acme\nstart_url=https://acme.example/start"


def paired(channels: dict[str, str]) -> str:
    return ",".join(f"{team}:{channel}" for team, channel in channels.items())


@pytest.fixture
def fake():
    with SlackFake() as slack:
        slack.add_user(APPROVER_A, "a2@a.example", "Al Two", team=TEAM_A)
        slack.add_user(APPROVER_B, "b2@b.example", "Bo Two", team=TEAM_B)
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


@pytest.fixture
def approving(settings):
    return settings.replace(
        allowed_slack_users=f"{USER_A},{USER_B},{APPROVER_A},{APPROVER_B}",
        approval_required="always",
        approvers=f"{APPROVER_A},{APPROVER_B}",
        approval_channel=paired(APPROVALS),
        status_channel=paired(STATUS),
    )


def _compose(fake: SlackFake, user: str, team: str) -> dict[str, Any]:
    shown = fake.top_view(user)
    old = shown["id"] if shown else None
    fake.command("", user=user, team=team)
    return wait_for(
        lambda: (v := fake.top_view(user)) and v["id"] != old and v, f"{user}'s compose form"
    )


def _channel_offered(compose: dict[str, Any]) -> str:
    """The status channel the compose form starts with."""
    block = next(b for b in compose["blocks"] if b.get("block_id") == views.B_CHANNEL)
    return block["element"].get("initial_conversation", "")


def _preview(fake: SlackFake, user: str, team: str) -> dict[str, Any]:
    compose = _compose(fake, user, team)
    channel = _channel_offered(compose)
    values = compose_values(paste="ann@example.com", variables=VARS, channel=channel)
    fake.submit_view(compose["id"], values, user=user)
    return wait_for(
        lambda: (v := fake.top_view(user)) and v["callback_id"] == views.CB_PREVIEW and v,
        f"{user}'s preview",
    )


def test_each_workspaces_request_lands_in_its_own_channel_and_is_approved_there(approving, fake):
    with two_workspaces(approving, fake) as mailbolt:
        store = mailbolt.deps.store
        for team, user in ((TEAM_A, USER_A), (TEAM_B, USER_B)):
            compose = _compose(fake, user, team)
            assert _channel_offered(compose) == STATUS[team]
        for team, user in ((TEAM_A, USER_A), (TEAM_B, USER_B)):
            preview = _preview(fake, user, team)
            assert preview["submit"]["text"] == "Request approval"
            fake.submit_view(preview["id"], {}, user=user)
        requests = {
            team: wait_for(
                lambda team=team: next(
                    (m for m in fake.messages_in(APPROVALS[team]) if not m["thread_ts"]), None
                ),
                f"{team}'s approval request",
            )
            for team in (TEAM_A, TEAM_B)
        }
        for team, request in requests.items():
            assert request["team"] == team  # posted with that workspace's own token
            wait_for(
                lambda request=request: any(
                    a.ts == request["ts"] for a in store.approvals.pending()
                ),
                "the request's place recorded",
            )
        for team, approver in ((TEAM_A, APPROVER_A), (TEAM_B, APPROVER_B)):
            request = requests[team]
            fake.click(
                approval_views.A_APPROVE,
                user=approver,
                message=(request["channel"], request["ts"]),
                team=team,
            )
        wait_for(
            lambda: [c.status for c in store.campaigns.recent()] == [CampaignStatus.COMPLETED] * 2,
            "both approved campaigns to finish",
        )
        mailbolt.settle()
        for team in (TEAM_A, TEAM_B):
            wait_for(
                lambda team=team: any(
                    "finished" in m["text"] for m in fake.messages_in(STATUS[team])
                ),
                f"{team}'s finished status",
            )
        campaigns = {c.team: c for c in store.campaigns.recent()}
        assert {t: c.status_channel for t, c in campaigns.items()} == STATUS
        for team in (TEAM_A, TEAM_B):
            posted = fake.messages_in(APPROVALS[team]) + fake.messages_in(STATUS[team])
            assert posted and {m["team"] for m in posted} == {team}
            assert store.approvals.get(campaigns[team].id).decided_by in (APPROVER_A, APPROVER_B)
    assert len(mailbolt.eml_files()) == 2


def test_a_workspace_without_an_approval_channel_is_told_at_the_preview(approving, fake):
    only_a = approving.replace(approval_channel=f"{TEAM_A}:{APPROVALS[TEAM_A]}")
    with two_workspaces(only_a, fake) as mailbolt:
        compose = _compose(fake, USER_B, TEAM_B)
        values = compose_values(paste="ann@example.com", variables=VARS, channel=STATUS[TEAM_B])
        reply = fake.submit_view(compose["id"], values, user=USER_B)
        said = reply.json["errors"][views.B_TEMPLATE]
        assert "This campaign needs approval (every campaign needs approval" in said
        assert f"no approval channel for Slack workspace {TEAM_B}" in said
        assert f"{TEAM_B}:C0123ABCD to the APPROVAL_CHANNEL setting" in said
        mailbolt.settle()
        store = mailbolt.deps.store
        assert store.campaigns.recent() == [] and store.approvals.pending() == []
        assert fake.top_view(USER_B)["callback_id"] != views.CB_PREVIEW
        # Workspace A, which has one, is asked as before.
        preview = _preview(fake, USER_A, TEAM_A)
        assert preview["submit"]["text"] == "Request approval"
    assert fake.calls_to("chat.postMessage") == []
    assert mailbolt.eml_files() == []


def test_a_warning_about_a_cli_campaign_goes_to_its_workspaces_status_channel(approving, fake):
    """The bounce scan's warnings about a campaign with no status message of its own."""
    with two_workspaces(approving, fake) as mailbolt:
        deps, settings = mailbolt.deps, mailbolt.settings
        clients = SlackClients(
            build_client(settings), deps.store.installations, mailbolt.wiring.seal
        )
        board = StatusBoard(
            clients.base,
            deps,
            interval=3600,
            alert_channels=settings.status_channels,
            client_for=clients.for_team,
        )
        for team in (TEAM_B, TEAM_A):
            request = CampaignRequest(
                template="welcome",
                recipients=RecipientList([Recipient("ann@example.com", "Ann", {})]),
                requested_by="cli",
                common_vars={"team": "Acme", "start_url": "https://acme.example/start"},
                team=team,
            )
            campaign_id, _ = preflight.record(preflight.preflight(request, deps), deps)
            board.alert(campaign_id, f"Campaign {campaign_id}: 1 of 4 messages bounced (25.0%).")
    for team in (TEAM_A, TEAM_B):
        [warning] = fake.messages_in(STATUS[team])
        assert warning["team"] == team and warning["text"].startswith(":warning: Campaign")


def test_serve_warns_of_one_bare_channel_for_several_workspaces(settings, fake, tmp_path):
    with two_workspaces(settings.replace(allowed_slack_users=USER_A), fake):
        pass  # both installed, in the database serve reads below
    env = slack_env(
        fake,
        SLACK_CLIENT_ID=fake.client_id,
        SLACK_CLIENT_SECRET=fake.client_secret,
        PUBLIC_BASE_URL="https://mail.example.com",
        ALLOWED_SLACK_USERS=f"{USER_A},{USER_B}",
        APPROVAL_REQUIRED="always",
        APPROVERS=f"{APPROVER_A},{APPROVER_B}",
        APPROVAL_CHANNEL="C0APPROVALS",
        STATUS_CHANNEL=f"{TEAM_A}:C0ASTATUS,C0BSTATUS",  # the default serves B alone
    )
    process, lines = _serve(tmp_path, env)
    try:
        wait_for(lambda: any("listening on" in line for line in lines), "serve to start")
    finally:
        process.terminate()
        process.wait(30)
    said = " ".join("".join(lines).split())
    assert "installed in 2;" in said
    assert (
        f"APPROVAL_CHANNEL=C0APPROVALS is one channel for the 2 workspaces {TEAM_A}, {TEAM_B}, "
        "but a channel belongs to one workspace only" in said
    )
    assert f"APPROVAL_CHANNEL={TEAM_A}:C0APPROVALS,{TEAM_B}:C0456EFGH" in said
    assert "STATUS_CHANNEL=" not in said
