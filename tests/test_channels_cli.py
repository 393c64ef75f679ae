"""``python -m bot send`` under an approval policy with a channel per workspace: a
campaign filed under a workspace with no approval channel, or one of the command
line's own with no default, is refused before anything is recorded."""

from __future__ import annotations

import pytest

from tests.test_approval_cli import CSV, campaigns
from tests.test_cli import outbox, run, write

POLICY = {
    "APPROVAL_REQUIRED": "always",
    "APPROVERS": "U0APPROVER",
    "APPROVAL_CHANNEL": "T0AAA:C0AAPPROVALS",
    "SLACK_BOT_TOKEN": "xoxb-1-unused",
    "SLACK_CLIENT_ID": "1.2",
    "SLACK_CLIENT_SECRET": "secret",
}


@pytest.mark.parametrize(
    ("team", "whose", "example"),
    [
        ("T0BBB", "Slack workspace T0BBB", "T0BBB:C0123ABCD"),
        ("", "campaigns without a workspace", "a channel ID without a workspace"),
    ],
)
def test_a_send_whose_workspace_has_no_approval_channel_is_refused(tmp_path, team, whose, example):
    write(tmp_path, "r.csv", CSV)
    args = ("send", "--template", "welcome", "--recipients", "r.csv", "--team", team)
    # With many workspaces a send names its workspace; one of none is one workspace's.
    env = POLICY if team else {k: v for k, v in POLICY.items() if "CLIENT" not in k}
    sent = run(tmp_path, *args, env=env)
    assert sent.returncode == 2, sent.stdout + sent.stderr
    said = " ".join((sent.stdout + sent.stderr).split())
    assert "This campaign needs approval (every campaign needs approval" in said
    assert f"there is no approval channel for {whose} to ask in" in said
    assert f"adds {example} to the APPROVAL_CHANNEL setting" in said
    assert "Nothing was sent or recorded." in said
    assert outbox(tmp_path) == [] and campaigns(tmp_path) == []


def test_many_workspaces_need_a_team_before_anything_else(tmp_path):
    write(tmp_path, "r.csv", CSV)
    env = {k: v for k, v in POLICY.items() if k != "SLACK_BOT_TOKEN"}
    env["APPROVAL_CHANNEL"] = "T0AAA:C0AAPPROVALS,C0DEFAULT"
    sent = run(tmp_path, "send", "--template", "welcome", "--recipients", "r.csv", env=env)
    assert sent.returncode == 2, sent.stdout + sent.stderr
    said = " ".join((sent.stdout + sent.stderr).split())
    assert "say which one this campaign belongs to with --team" in said
    assert outbox(tmp_path) == [] and campaigns(tmp_path) == []


def test_a_send_filed_under_a_workspace_with_a_channel_goes_on_to_ask_serve(tmp_path):
    write(tmp_path, "r.csv", CSV)
    env = {k: v for k, v in POLICY.items() if k != "SLACK_BOT_TOKEN"}
    args = ("send", "--template", "welcome", "--recipients", "r.csv", "--team", "T0AAA")
    sent = run(tmp_path, *args, env=env)
    said = " ".join((sent.stdout + sent.stderr).split())
    assert sent.returncode == 2, said
    assert "through `python -m bot serve`, which is not running" in said
    assert "no approval channel" not in said and "Slack is not configured" not in said
    assert campaigns(tmp_path) == []
