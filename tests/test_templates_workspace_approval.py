"""Templates per workspace and approvals: workspace A's request shows A's own
version of the template, and a change of A's own file after the request needs
approval again (the digest hashes the file the campaign renders: A's)."""

from __future__ import annotations

import json

from bot.records import CampaignStatus
from bot.slack import views
from bot.slack.views import approval as approval_views
from tests.fakes.slack_fake import SlackFake, compose_values, wait_for
from tests.fakes.workspaces import TEAM_A, USER_A, USER_B, two_workspaces
from tests.templates_workspace_folders import A_LAYOUT, A_WELCOME, templates_with_workspaces

APPROVER_A = "U0A2"
STATUS, APPROVALS = "C0STATUS", "C0APPROVALS"


def _requests(fake: SlackFake) -> list[dict]:
    return [m for m in fake.messages_in(APPROVALS, team=TEAM_A) if not m["thread_ts"]]


def test_a_change_of_a_workspaces_own_template_after_the_request_needs_approval_again(
    settings, tmp_path
):
    folder = templates_with_workspaces(tmp_path)
    approving = settings.replace(
        allowed_slack_users=f"{USER_A},{USER_B},{APPROVER_A}",
        approval_required="always",
        approvers=f"{USER_A},{APPROVER_A}",
        approval_channel=APPROVALS,
        templates_dir=folder,
    )
    with SlackFake() as fake:
        fake.add_user(APPROVER_A, "a2@a.example", "Al Two", team=TEAM_A)
        with two_workspaces(approving, fake) as mailbolt:
            fake.command("", user=USER_A, team=TEAM_A)
            compose = wait_for(lambda: fake.top_view(USER_A), "the compose modal")
            values = compose_values(
                template="welcome", paste="ann@example.com", variables="headline=Hi", channel=STATUS
            )
            fake.submit_view(compose["id"], values, user=USER_A)
            preview = wait_for(
                lambda: (v := fake.top_view(USER_A)) and v["callback_id"] == views.CB_PREVIEW and v,
                "the preview",
            )
            fake.submit_view(preview["id"], {}, user=USER_A)
            first = wait_for(lambda: _requests(fake) and _requests(fake)[0], "the request")
            assert A_WELCOME in json.dumps(first["blocks"])
            store = mailbolt.deps.store
            wait_for(
                lambda: any(a.ts == first["ts"] for a in store.approvals.pending()),
                "the request's place recorded",
            )
            # A's own file changes; the shared welcome is not A's and does not matter.
            own = folder / TEAM_A / "welcome.html.j2"
            own.write_text(own.read_text().replace(A_WELCOME, "A-THRILLED"))
            fake.click(
                approval_views.A_APPROVE,
                user=APPROVER_A,
                message=(first["channel"], first["ts"]),
                team=TEAM_A,
            )
            second = wait_for(lambda: len(_requests(fake)) == 2 and _requests(fake)[-1], "again")
            assert "A-THRILLED" in json.dumps(second["blocks"])
            mailbolt.settle()
            campaign = store.campaigns.recent()[0]
            assert campaign.status == CampaignStatus.AWAITING_APPROVAL
            assert mailbolt.eml_files() == []
            fake.click(
                approval_views.A_APPROVE,
                user=APPROVER_A,
                message=(second["channel"], second["ts"]),
                team=TEAM_A,
            )
            wait_for(lambda: len(mailbolt.eml_files()) == 1, "the message")
            sent = mailbolt.eml_files()[0].read_bytes()
            assert b"A-THRILLED" in sent and A_LAYOUT.encode() in sent
