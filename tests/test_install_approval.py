"""Many workspaces: a campaign of workspace B that needs approval is asked about,
decided and reported in B, with B's token only."""

from __future__ import annotations

from bot.records import CampaignStatus
from bot.slack import views
from bot.slack.views import approval as approval_views
from tests.fakes.slack_fake import SlackFake, compose_values, wait_for
from tests.fakes.workspaces import TEAM_B, USER_A, USER_B, two_workspaces

APPROVER_B = "U0B2"
STATUS, APPROVALS = "C0STATUS", "C0APPROVALS"
VARS = "team=Acme\nstart_url=https://acme.example/start"


def test_an_approval_in_workspace_b_uses_bs_token_throughout(settings):
    approving = settings.replace(
        allowed_slack_users=f"{USER_A},{USER_B},{APPROVER_B}",
        approval_required="always",
        approvers=f"{USER_B},{APPROVER_B}",
        approval_channel=APPROVALS,
    )
    with SlackFake() as fake:
        fake.add_user(APPROVER_B, "b2@b.example", "Bo Two", team=TEAM_B)
        with two_workspaces(approving, fake) as mailbolt:
            before = len(fake.calls)
            fake.command("", user=USER_B, team=TEAM_B)
            compose = wait_for(lambda: fake.top_view(USER_B), "the compose modal")
            values = compose_values(paste="ann@example.com", variables=VARS, channel=STATUS)
            fake.submit_view(compose["id"], values, user=USER_B)
            preview = wait_for(
                lambda: (v := fake.top_view(USER_B)) and v["callback_id"] == views.CB_PREVIEW and v,
                "the preview",
            )
            assert preview["submit"]["text"] == "Request approval"
            fake.submit_view(preview["id"], {}, user=USER_B)
            request = wait_for(
                lambda: next((m for m in fake.messages_in(APPROVALS) if not m["thread_ts"]), None),
                "the approval request",
            )
            assert request["team"] == TEAM_B
            store = mailbolt.deps.store
            wait_for(
                lambda: any(a.ts == request["ts"] for a in store.approvals.pending()),
                "the request's place recorded",
            )
            fake.click(
                approval_views.A_APPROVE,
                user=APPROVER_B,
                message=(request["channel"], request["ts"]),
                team=TEAM_B,
            )
            wait_for(
                lambda: store.campaigns.recent()[0].status == CampaignStatus.COMPLETED,
                "the approved campaign to finish",
            )
            mailbolt.settle()
            wait_for(
                lambda: any("finished" in m["text"] for m in fake.messages_in(STATUS)),
                "the finished status",
            )
            ours = [
                c
                for c in fake.calls[before:]
                if c.method in ("chat.postMessage", "chat.update", "chat.postEphemeral")
            ]
    assert ours and {c.team for c in ours} == {TEAM_B}, [(c.method, c.team) for c in ours]
    assert all(not c.error for c in ours)
