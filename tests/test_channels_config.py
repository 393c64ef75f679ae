"""APPROVAL_CHANNEL and STATUS_CHANNEL: one channel ID for every workspace, or
``TEAM:CHANNEL`` pairs with at most one bare ID as the default; bad values are
refused with words that say what to write instead."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.errors import ConfigError
from tests.test_cli import run


def load(**env: str) -> Settings:
    return Settings.load(environ=env, env_file=None)


def refusal(**env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(**env)
    return " ".join(str(caught.value).split())


def test_one_bare_id_is_every_workspaces_channel():
    settings = load(APPROVAL_CHANNEL="C0APPROVE", STATUS_CHANNEL="C0STATUS")
    for team in ("", "T0AAA", "T0BBB"):
        assert settings.approval_channels.for_team(team) == "C0APPROVE"
        assert settings.status_channels.for_team(team) == "C0STATUS"


def test_pairs_give_each_workspace_its_own_and_a_bare_id_is_the_default():
    settings = load(
        APPROVAL_CHANNEL=" T0AAA:C0AAAAPPR , T0BBB:G0BBBAPPR,C0DEFAULT ",
        STATUS_CHANNEL="T0AAA:C0AAASTAT",
    )
    approvals = settings.approval_channels
    assert approvals.for_team("T0AAA") == "C0AAAAPPR"
    assert approvals.for_team("T0BBB") == "G0BBBAPPR"
    assert approvals.for_team("T0CCC") == "C0DEFAULT"
    assert approvals.for_team("") == "C0DEFAULT"  # a campaign of the CLI
    assert settings.status_channels.for_team("T0AAA") == "C0AAASTAT"
    assert settings.status_channels.for_team("T0BBB") == ""  # none: the form's channel
    assert settings.approval_channel == "T0AAA:C0AAAAPPR,T0BBB:G0BBBAPPR,C0DEFAULT"


def test_a_direct_message_is_a_status_channel_but_not_an_approval_channel():
    assert load(STATUS_CHANNEL="T0AAA:D0DM").status_channels.for_team("T0AAA") == "D0DM"
    assert "'D0DM', which is not a channel ID" in refusal(APPROVAL_CHANNEL="D0DM")


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("#general", "has '#general', which is not a channel ID: give an ID such as C0123ABCD"),
        ("T0AAA:general", "has 'general' in 'T0AAA:general', which is not a channel ID"),
        ("T0AAA:", "has 'T0AAA:', which is not TEAM:CHANNEL (for example T0123ABCD:C0123ABCD)"),
        (":C0AAA", "has ':C0AAA', which is not TEAM:CHANNEL"),
        ("T0AAA:C0A:C0B", "has 'T0AAA:C0A:C0B', which is not TEAM:CHANNEL"),
        ("acme:C0AAA", "'acme' is not a Slack workspace ID (they look like T0123ABCD"),
        ("C0AAA:C0BBB", "'C0AAA' is not a Slack workspace ID"),
        (
            "T0AAA:C0ONE,T0BBB:C0TWO,T0AAA:C0THREE",
            "names workspace T0AAA twice (T0AAA:C0ONE and T0AAA:C0THREE); give each "
            "workspace one channel",
        ),
        (
            "C0ONE,T0AAA:C0TWO,C0THREE",
            "names two channels without a workspace (C0ONE and C0THREE); give at most one "
            "as the default and the others as TEAM:CHANNEL",
        ),
    ],
)
def test_bad_values_are_refused_saying_what_is_wrong(value, said):
    for name in ("APPROVAL_CHANNEL", "STATUS_CHANNEL"):
        text = refusal(**{name: value})
        assert f"{name}={value!r}" in text and said in text, text


def test_approval_still_needs_a_channel_when_it_is_asked_for(tmp_path):
    env = {"APPROVAL_REQUIRED": "always", "APPROVERS": "U0APPROVER"}
    shown = run(tmp_path, "config", env=env)
    assert shown.returncode == 2
    assert "APPROVAL_CHANNEL" in shown.stdout + shown.stderr
    paired = run(tmp_path, "config", env={**env, "APPROVAL_CHANNEL": "T0AAA:C0APPROVE"})
    assert paired.returncode == 0, paired.stdout + paired.stderr
    assert "T0AAA:C0APPROVE" in paired.stdout


def test_the_command_line_names_the_setting_and_what_is_wrong(tmp_path):
    shown = run(tmp_path, "config", env={"STATUS_CHANNEL": "T0AAA:C0A,T0AAA:C0B"})
    assert shown.returncode == 2
    said = " ".join((shown.stdout + shown.stderr).split())
    assert "STATUS_CHANNEL='T0AAA:C0A,T0AAA:C0B': names workspace T0AAA twice" in said
