"""``/sendmail`` subcommands and App Home, through the running server."""

from __future__ import annotations

import json

import pytest

from bot.slack import views
from tests.fakes.slack_fake import SlackFake, running_mailbolt, wait_for

ADMIN, STRANGER = "U0ADMIN", "U0STRANGER"


@pytest.fixture
def fake():
    with SlackFake() as slack:
        yield slack
        assert slack.problems == []


@pytest.fixture
def mailbolt(settings, fake):
    with running_mailbolt(settings.replace(allowed_slack_users=ADMIN), fake) as running:
        yield running


def ask(fake: SlackFake, text: str, user: str = ADMIN) -> dict:
    reply, _ = fake.command(text, user=user)
    assert reply.status == 200
    answer = reply.json
    assert answer["response_type"] == "ephemeral"
    return answer


def shown(answer: dict) -> str:
    return answer["text"] + json.dumps(answer.get("blocks", []))


def sent_campaign(mailbolt, emails=("ann@example.com",)) -> int:
    """A finished campaign, recorded the way the CLI does it and sent by the runner
    (whose due check would otherwise start it too, racing a direct ``send_loop.run``)."""
    from bot.handlers import campaign, preflight
    from bot.handlers.recipient_paste import parse_text

    request = campaign.CampaignRequest(
        template="welcome",
        recipients=parse_text(", ".join(emails)),
        requested_by=ADMIN,
        common_vars={"team": "Acme", "start_url": "https://acme.example"},
    )
    campaign_id, _ = preflight.record(preflight.preflight(request, mailbolt.deps), mailbolt.deps)
    assert mailbolt.runner.start(campaign_id).wait(30)
    return campaign_id


def test_help_is_for_allowed_senders_and_tells_others_how_to_get_access(fake, mailbolt):
    assert "/sendmail status [id]" in shown(ask(fake, "help"))
    answer = ask(fake, "help", user=STRANGER)
    assert "ALLOWED_SLACK_USERS" in answer["text"] and STRANGER in answer["text"]


def test_other_subcommands_need_permission(fake, mailbolt):
    answer = ask(fake, "quota", user=STRANGER)
    assert "ALLOWED_SLACK_USERS" in answer["text"]


def test_unknown_subcommand_shows_help(fake, mailbolt):
    answer = ask(fake, "frobnicate")
    assert "I don't know `/sendmail frobnicate`" in answer["text"]


def test_status_lists_recent_campaigns_and_one_campaign(fake, mailbolt):
    campaign_id = sent_campaign(mailbolt, ("ann@example.com", "bob@example.com"))
    recent = shown(ask(fake, "status"))
    assert f"#{campaign_id}" in recent and "completed, 2/2 sent" in recent
    one = shown(ask(fake, f"status {campaign_id}"))
    assert "sent *2*" in one
    assert "campaign_cancel" not in one and "actions" not in one
    assert "no campaign #99" in ask(fake, "status 99")["text"]
    assert "not a campaign number" in ask(fake, "status soon")["text"]


def test_quota_in_the_sandbox(fake, mailbolt):
    sent_campaign(mailbolt)
    text = ask(fake, "quota")["text"]
    assert "Sent in the last 24 hours: *1*" in text and "no daily limit" in text


def test_templates_lists_the_catalogue(fake, mailbolt):
    text = shown(ask(fake, "templates"))
    assert "*welcome* (transactional)" in text and "`start_url`" in text
    assert "*newsletter* (marketing)" in text


def test_unsubscribe_and_resubscribe(fake, mailbolt):
    store = mailbolt.deps.store
    assert "will get no more marketing email" in ask(fake, "unsubscribe Ann@Example.com")["text"]
    assert store.suppressions.unsubscribed_among(["ann@example.com"]) == {"ann@example.com"}
    assert "had already unsubscribed" in ask(fake, "unsubscribe ann@example.com")["text"]
    assert "Give one email address" in ask(fake, "unsubscribe bob@")["text"]
    assert "may get marketing email again" in ask(fake, "resubscribe ann@example.com")["text"]
    assert store.suppressions.unsubscribed_among(["ann@example.com"]) == set()
    actions = [(a.actor, a.action) for a in store.audit.recent()]
    assert (f"slack:{ADMIN}", "unsubscribe.removed") in actions


def test_a_template_name_opens_the_form_with_it_chosen(fake, mailbolt):
    reply, _ = fake.command("newsletter", user=ADMIN)
    assert reply.body == b""
    view = wait_for(lambda: fake.top_view(ADMIN), "the compose modal")
    select = next(b for b in view["blocks"] if b.get("block_id") == views.B_TEMPLATE)
    assert select["element"]["initial_option"]["value"] == "newsletter"


def test_an_expired_trigger_is_explained_privately(fake, mailbolt):
    fake.fail_next("views.open", error="expired_trigger_id")
    fake.command("", user=ADMIN, channel="C0HERE")
    note = wait_for(lambda: fake.ephemerals, "the private note")[0]
    assert note["channel"] == "C0HERE" and "run /sendmail again" in note["text"]


def test_app_home_shows_campaigns_quota_templates_and_setup(fake, mailbolt):
    campaign_id = sent_campaign(mailbolt)
    reply = fake.event(
        {"type": "app_home_opened", "user": ADMIN, "channel": "D0ADMIN", "tab": "home"}
    )
    assert reply.status == 200
    home = json.dumps(wait_for(lambda: fake.home.get(ADMIN), "the Home tab"))
    assert f"#{campaign_id}*" in home
    assert "Sandbox mode" in home
    assert "Sent in the last 24 hours: *1*" in home
    assert "*event_invitation*" in home
    assert "1 people may send" in home


def test_a_retried_event_is_not_handled_again(fake, mailbolt):
    reply = fake.event(
        {"type": "app_home_opened", "user": ADMIN, "channel": "D0ADMIN", "tab": "home"},
        retry_num=1,
    )
    assert reply.status == 200 and reply.headers["x-slack-no-retry"] == "1"
    mailbolt.settle()  # a publish, had one been started, has finished
    assert not fake.calls_to("views.publish")
