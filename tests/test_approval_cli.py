"""Approval from the CLI: ``python -m bot send`` under an approval policy, in
subprocesses, with the real ``serve`` against the loopback Slack fake."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from bot.records import CampaignStatus
from bot.slack.views import approval as approval_views
from bot.store import Store
from tests.fakes.slack_fake import SlackFake, wait_for
from tests.test_cli import outbox, run, write
from tests.test_trust_handoff import environment

APPROVER, APPROVALS = "U0APPROVER", "C0APPROVALS"
POLICY = {"APPROVAL_REQUIRED": "always", "APPROVERS": APPROVER, "APPROVAL_CHANNEL": APPROVALS}
CSV = "email,name,team,start_url\nann@example.com,Ann,Acme,https://a.example\n"


def campaigns(tmp_path: Path) -> list:
    path = tmp_path / "data" / "sendmail.db"
    if not path.exists():
        return []
    store = Store(path)
    try:
        return store.campaigns.recent()
    finally:
        store.close()


def test_without_slack_a_send_that_needs_approval_is_refused_and_nothing_recorded(tmp_path):
    write(tmp_path, "r.csv", CSV)
    sent = run(tmp_path, "send", "--template", "welcome", "--recipients", "r.csv", env=POLICY)
    assert sent.returncode == 2, sent.stdout + sent.stderr
    said = " ".join((sent.stdout + sent.stderr).split())
    assert "needs approval (every campaign needs approval (APPROVAL_REQUIRED=always))" in said
    assert "Slack is not configured" in said and "Nothing was sent or recorded" in said
    assert outbox(tmp_path) == [] and campaigns(tmp_path) == []
    # A dry run still checks and says approval would be needed.
    dry = run(tmp_path, "send", "--template", "welcome", "--recipients", "r.csv", "--dry-run",
              env=POLICY)  # fmt: skip
    assert dry.returncode == 0 and "Needs approval:" in dry.stdout


def test_below_the_threshold_no_approval_is_needed(tmp_path):
    write(tmp_path, "r.csv", CSV)
    env = {"APPROVAL_MIN_RECIPIENTS": "2", "APPROVERS": APPROVER, "APPROVAL_CHANNEL": APPROVALS}
    sent = run(tmp_path, "send", "--template", "welcome", "--recipients", "r.csv", env=env)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert len(outbox(tmp_path)) == 1


def test_approval_required_without_approvers_stops_at_start(tmp_path):
    write(tmp_path, "r.csv", CSV)
    send = ("send", "--template", "welcome", "--recipients", "r.csv")
    for args in (("config",), ("serve",), send):
        done = run(tmp_path, *args, env={"APPROVAL_REQUIRED": "marketing"})
        said = done.stdout + done.stderr
        assert done.returncode == 2, said
        assert "APPROVERS" in said and "APPROVAL_CHANNEL" in said
    assert outbox(tmp_path) == [] and campaigns(tmp_path) == []
    bad = run(tmp_path, "config", env={**POLICY, "APPROVERS": "alice"})
    assert bad.returncode == 2 and "user group IDs" in bad.stdout + bad.stderr


def test_a_cli_send_waits_for_approval_in_slack_then_is_sent(tmp_path):
    write(tmp_path, "r.csv", CSV)
    with SlackFake() as slack:
        env = {**environment(tmp_path, slack), **POLICY, "ALLOWED_SLACK_USERS": APPROVER}
        log, said = tmp_path / "serve.log", tmp_path / "send.log"
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(lambda: "listening on" in log.read_text(), "the server", timeout=60)
            url = re.search(r"listening on (http://\S+) ", log.read_text())
            assert url, log.read_text()
            slack.app_url = f"{url.group(1)}/slack/events"
            with open(said, "wb") as out:
                sender = subprocess.Popen(
                    [sys.executable, "-m", "bot", "send", "--template", "welcome",
                     "--recipients", "r.csv"],
                    cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                )  # fmt: skip
            wait_for(lambda: "Waiting for approval" in said.read_text(), "the CLI to wait")
            assert "Ctrl-C stops waiting, the request stays" in said.read_text()
            request = wait_for(lambda: slack.messages_in(APPROVALS), "the request in Slack")[0]
            assert (tmp_path / "outbox").exists() is False
            assert campaigns(tmp_path)[0].status == CampaignStatus.AWAITING_APPROVAL
            slack.click(
                approval_views.A_APPROVE, user=APPROVER, message=(request["channel"], request["ts"])
            )
            assert sender.wait(60) == 0, said.read_text()
            text = said.read_text()
            assert f"approved by {APPROVER}" in text and "completed" in text
            assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()


def test_a_cli_send_without_serve_is_refused(tmp_path):
    write(tmp_path, "r.csv", CSV)
    env = {**POLICY, "SLACK_BOT_TOKEN": "xoxb-test"}
    sent = run(tmp_path, "send", "--template", "welcome", "--recipients", "r.csv", env=env)
    assert sent.returncode == 2, sent.stdout + sent.stderr
    assert "which is not running" in " ".join(sent.stderr.split())
    assert campaigns(tmp_path) == []


def test_resume_never_sends_a_campaign_awaiting_or_changed_after_approval(tmp_path, settings):
    from bot.handlers import approval
    from bot.records import ApprovalDecision, NewMessage
    from bot.wiring import Wiring

    settings = settings.replace(database_path=tmp_path / "data" / "sendmail.db")
    deps = Wiring(settings).deps(sending=False)
    store = deps.store

    def recorded(email: str) -> int:
        campaign_id, _ = store.campaigns.create(
            requested_by="U0OWNER",
            template="welcome",
            category="transactional",
            subject="",
            common_vars={"team": "Acme", "start_url": "https://a.example"},
            messages=[NewMessage(email, f"<{email}.1@mailbolt.example>")],
            status=CampaignStatus.AWAITING_APPROVAL,
        )
        row = store.campaigns.get(campaign_id)
        store.approvals.request(campaign_id, "U0OWNER", approval.campaign_digest(row, deps), "rule")
        return campaign_id

    waiting = recorded("ann@example.com")
    changed = recorded("bo@example.com")
    assert store.approvals.decide(changed, APPROVER, ApprovalDecision.APPROVED)
    assert store.approvals.release(changed, APPROVER)
    with store.database.tx() as db:  # altered after the approval, before sending
        db.execute(
            "update messages set email = ? where campaign_id = ?", ["eve@x.example", changed]
        )
    assert store.campaigns.get(changed).status == CampaignStatus.RUNNING

    resumed = run(tmp_path, "send", "--resume")
    said = resumed.stdout + resumed.stderr
    assert "awaiting approval" in said, said
    assert outbox(tmp_path) == []
    assert store.campaigns.get(waiting).status == CampaignStatus.AWAITING_APPROVAL
    assert store.campaigns.get(changed).status == CampaignStatus.AWAITING_APPROVAL
    assert store.approvals.get(changed).decision == ApprovalDecision.PENDING
    listed = run(tmp_path, "approvals")
    assert listed.returncode == 0
    assert str(waiting) in listed.stdout and str(changed) in listed.stdout
    store.close()


def test_the_marketing_rule_covers_marketing_templates_only(tmp_path):
    write(tmp_path, "news.csv", "email,headline,body\r\nann@example.com,News,Text\r\n")
    write(tmp_path, "r.csv", CSV)
    env = {**POLICY, "APPROVAL_REQUIRED": "marketing"}
    news = run(tmp_path, "send", "--template", "newsletter", "--recipients", "news.csv",
               "--dry-run", env=env)  # fmt: skip
    assert news.returncode == 0, news.stdout + news.stderr
    assert "Needs approval: marketing email needs approval" in " ".join(news.stdout.split())
    welcome = run(tmp_path, "send", "--template", "welcome", "--recipients", "r.csv", env=env)
    assert welcome.returncode == 0, welcome.stdout + welcome.stderr
    assert "approval" not in welcome.stdout and len(outbox(tmp_path)) == 1


def test_serve_warns_about_approvers_who_may_not_use_the_app(settings):
    from bot.cli import serve_cmds

    checked = settings.replace(
        allowed_slack_users="U0OWNER",
        approval_required="always",
        approvers=f"U0OWNER,{APPROVER},S0GROUP",
        approval_channel=APPROVALS,
    )
    _, warnings = serve_cmds.startup_problems(checked)
    assert any(f"APPROVERS names {APPROVER}, not in ALLOWED_SLACK_USERS" in w for w in warnings)
    everyone = checked.replace(allowed_slack_users="*")
    assert not any("APPROVERS" in w for w in serve_cmds.startup_problems(everyone)[1])
