""" "Send later" through the real Bolt app and the loopback Slack fake: a preview
sent at a time, a real stop and start of the server in between, Cancel and
Move… on the status message, and the lists.

Time is driven through the use cases' wall clock (``running_mailbolt(clock=…)``):
the server that starts after the restart lives a few minutes ahead, so a
campaign scheduled two minutes ahead is due without waiting two real minutes.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.records import CampaignStatus
from bot.slack import views
from tests.fakes.slack_fake import SlackFake, running_mailbolt, wait_for
from tests.test_slack_flow import STATUS, block_text, final_status, to_preview

OWNER, OTHER, ADMIN = "U0OWNER", "U0OTHER", "U0ADMIN"
PARIS = ZoneInfo("Europe/Paris")
PASTE = "ann@example.com, Bob Brown <bob@example.com>"


@pytest.fixture
def fake():
    with SlackFake() as slack:
        slack.add_user(OWNER, "owner@acme.example", "Olive Owner", tz="Europe/Paris")
        slack.add_user(OTHER, "other@acme.example", "Otto Other", tz="America/New_York")
        slack.add_user(ADMIN, "admin@acme.example", "Ada Admin", tz="UTC")
        yield slack
        assert slack.problems == [], "Slack would have refused something we sent"


@pytest.fixture
def allowed(settings):
    return settings.replace(allowed_slack_users=f"{OWNER},{OTHER},{ADMIN}", admin_slack_users=ADMIN)


class Ahead:
    """The wall clock, ``seconds`` ahead (moved by the test)."""

    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds

    def __call__(self) -> float:
        return time.time() + self.seconds


def when_values(moment: datetime | None) -> dict[str, Any]:
    """The preview's When inputs: Send now (None), or the date and time of ``moment``."""
    choice = views.OPT_NOW if moment is None else views.OPT_LATER
    values: dict[str, Any] = {
        views.B_WHEN: {
            views.ACTION: {"type": "radio_buttons", "selected_option": {"value": choice}}
        }
    }
    if moment is not None:
        values |= picked(moment)
    return values


def picked(moment: datetime) -> dict[str, Any]:
    return {
        views.B_DATE: {views.ACTION: {"type": "datepicker", "selected_date": f"{moment:%Y-%m-%d}"}},
        views.B_TIME: {"value": {"type": "timepicker", "selected_time": f"{moment:%H:%M}"}},
    }


def paris_in(minutes: float) -> datetime:
    """A wall-clock time in Paris at least ``minutes`` from now, on a whole minute."""
    moment = datetime.now(PARIS) + timedelta(minutes=minutes)
    return (moment + timedelta(minutes=1)).replace(second=0, microsecond=0)


def words(moment: datetime, zone: str) -> str:
    return f"{moment:%A} {moment.day} {moment:%B}, {moment:%H:%M} {zone}"


def schedule_preview(
    fake: SlackFake, moment: datetime, user: str = OWNER, preview: dict[str, Any] | None = None
) -> dict[str, Any]:
    preview = preview or to_preview(fake, user, paste=PASTE)
    reply = fake.submit_view(preview["id"], when_values(moment), user=user)
    assert reply.json.get("response_action") == "update", reply.json
    return reply.json


def scheduled_status(fake: SlackFake) -> dict[str, Any]:
    return final_status(fake, "scheduled")


def test_scheduled_two_minutes_ahead_starts_on_time_after_a_restart(allowed, fake):
    moment = paris_in(2)
    with running_mailbolt(allowed, fake) as first:
        preview = to_preview(fake, paste=PASTE)
        shown = block_text(preview["blocks"])
        assert "Send now" in shown and '"timezone": "Europe/Paris"' in shown
        answer = schedule_preview(fake, moment, preview=preview)
        told = block_text(answer["view"]["blocks"])
        assert f"Scheduled for {words(moment, 'Europe/Paris')}" in told
        status = scheduled_status(fake)
        text = block_text(status["blocks"])
        assert words(moment, "Europe/Paris") in text
        assert views.A_CANCEL in text and views.A_MOVE in text
        [row] = first.deps.store.campaigns.scheduled()
        assert row.scheduled_at == moment.timestamp() and row.schedule_zone == "Europe/Paris"
        assert first.runner.start_scheduled() == []  # not before its time
        assert first.eml_files() == []
    # A real stop above; the next server starts three minutes later by its clock.
    with running_mailbolt(allowed, fake, clock=Ahead(180)) as second:
        wait_for(lambda: len(second.eml_files()) == 2, "both messages sent")
        done = final_status(fake)
        assert "sent *2*" in block_text(done["blocks"])
        started = second.deps.store.campaigns.get(row.id)
        assert started is not None and started.status == CampaignStatus.COMPLETED
        actions = [a.action for a in second.deps.store.audit.recent()]
        assert "campaign.schedule_started" in actions


def test_a_running_server_starts_it_within_seconds_of_its_time(allowed, fake):
    clock = Ahead()
    with running_mailbolt(allowed, fake, clock=clock) as mailbolt:
        schedule_preview(fake, paris_in(30))
        scheduled_status(fake)
        clock.seconds = 32 * 60  # its time comes while the server runs
        wait_for(lambda: len(mailbolt.eml_files()) == 2, "the periodic check to start it")


def test_moved_and_cancelled_do_what_they_say_owner_or_admin_only(allowed, fake):
    clock = Ahead()
    with running_mailbolt(allowed, fake, clock=clock) as mailbolt:
        store = mailbolt.deps.store
        first = paris_in(10)
        schedule_preview(fake, first)
        status = scheduled_status(fake)
        where = (STATUS, status["ts"])
        [row] = store.campaigns.scheduled()

        # Someone else may neither move nor cancel it: refused on the server.
        fake.click(views.A_CANCEL, user=OTHER, message=where)
        fake.click(views.A_MOVE, user=OTHER, message=where)
        mailbolt.settle()
        refusals = [c.args["text"] for c in fake.calls_to("chat.postEphemeral")]
        assert len(refusals) == 2 and all("Only the person who scheduled" in t for t in refusals)
        assert store.campaigns.get(row.id).status == CampaignStatus.SCHEDULED  # type: ignore[union-attr]

        # The owner moves it an hour later; a time in the past is refused in the modal.
        fake.click(views.A_MOVE, user=OWNER, message=where)
        modal = wait_for(
            lambda: (v := fake.top_view(OWNER)) and v["callback_id"] == views.CB_MOVE and v,
            "the Move modal",
        )
        past = fake.submit_view(modal["id"], picked(paris_in(-90)), user=OWNER)
        assert "has already passed" in past.json["errors"][views.B_DATE]
        later = first + timedelta(hours=1)
        assert fake.submit_view(modal["id"], picked(later), user=OWNER).status == 200
        moved = store.campaigns.get(row.id)
        assert moved is not None and moved.scheduled_at == later.timestamp()
        final_status(fake, f"{later:%H:%M} Europe/Paris")
        clock.seconds = 20 * 60  # past the first time, before the new one
        assert mailbolt.runner.start_scheduled() == []

        # An admin cancels it: nothing is ever sent, even after its time.
        fake.click(views.A_CANCEL, user=ADMIN, message=where)
        final_status(fake, "cancelled")
        clock.seconds = 3 * 3600
        assert mailbolt.runner.start_scheduled() == []
        cancelled = store.campaigns.get(row.id)
        assert cancelled is not None and cancelled.status == CampaignStatus.CANCELLED
        assert mailbolt.eml_files() == []
        actions = [a.action for a in store.audit.recent()]
        assert "campaign.schedule_moved" in actions and "campaign.schedule_cancelled" in actions


def test_lists_in_the_command_and_app_home_are_per_person_and_all_for_admins(allowed, fake):
    with running_mailbolt(allowed, fake) as mailbolt:
        schedule_preview(fake, paris_in(60))
        scheduled_status(fake)
        mailbolt.settle()
        mine, _ = fake.command("scheduled", user=OWNER)
        assert "#1 welcome to 2" in mine.json["text"] and "Europe/Paris" in mine.json["text"]
        theirs, _ = fake.command("scheduled", user=OTHER)
        assert "Nothing is scheduled" in theirs.json["text"]
        admin, _ = fake.command("scheduled", user=ADMIN)
        assert "#1 welcome" in admin.json["text"]
        fake.event({"type": "app_home_opened", "user": OWNER, "tab": "home"})
        home = wait_for(lambda: fake.home.get(OWNER), "App Home")
        assert "*Scheduled*" in block_text(home["blocks"])


def test_a_refused_time_is_marked_on_the_form_and_records_nothing(allowed, fake):
    with running_mailbolt(allowed, fake) as mailbolt:
        preview = to_preview(fake, paste=PASTE)
        past = fake.submit_view(preview["id"], when_values(paris_in(-30)), user=OWNER)
        assert "has already passed" in past.json["errors"][views.B_DATE]
        far = fake.submit_view(preview["id"], when_values(paris_in(60 * 24 * 370)), user=OWNER)
        assert "more than a year ahead" in far.json["errors"][views.B_DATE]
        no_time = when_values(paris_in(60))
        del no_time[views.B_TIME]
        missing = fake.submit_view(preview["id"], no_time, user=OWNER)
        assert "Choose a time" in missing.json["errors"][views.B_TIME]
        mailbolt.settle()
        assert mailbolt.deps.store.campaigns.recent() == []


def test_checked_again_at_its_time_a_broken_template_stops_it_with_the_reason(
    allowed, fake, tmp_path
):
    templates = tmp_path / "templates"
    shutil.copytree(allowed.templates_dir, templates)
    settings = allowed.replace(templates_dir=templates)
    with running_mailbolt(settings, fake):
        schedule_preview(fake, paris_in(2))
        scheduled_status(fake)
    body = templates / "welcome.txt.j2"
    body.write_text(body.read_text() + "\n{{ coupon_code }}\n")  # now needs a new value
    with running_mailbolt(settings, fake, clock=Ahead(240)) as second:
        status = final_status(fake, "cancelled")
        text = block_text(status["blocks"])
        assert "not started at its time" in text and "coupon_code" in text
        [row] = second.deps.store.campaigns.recent()
        assert row.status == CampaignStatus.CANCELLED
        assert second.eml_files() == []
        assert "campaign.schedule_refused" in [a.action for a in second.deps.store.audit.recent()]


def test_a_double_click_on_a_scheduled_send_records_one_campaign(allowed, fake):
    with running_mailbolt(allowed, fake) as mailbolt:
        preview = to_preview(fake, paste=PASTE)
        values = when_values(paris_in(45))
        first = fake.submit_view(preview["id"], values, user=OWNER, apply=False)
        second = fake.submit_view(preview["id"], values, user=OWNER)
        assert first.status == second.status == 200
        mailbolt.settle()
        assert len(mailbolt.deps.store.campaigns.scheduled()) == 1
        assert len(mailbolt.deps.store.campaigns.recent()) == 1


def test_when_the_daily_limit_cannot_cover_it_then_it_says_when_it_will_finish(allowed, fake):
    with running_mailbolt(allowed, fake) as mailbolt:
        mailbolt.deps.policy.daily_limit = 1  # two recipients: one waits a day
        moment = paris_in(60)
        answer = schedule_preview(fake, moment)
        told = block_text(answer["view"]["blocks"])
        finish = datetime.fromtimestamp(moment.timestamp() + 24 * 3600, PARIS)
        assert "1 message(s) wait for it" in told
        assert f"finish around {words(finish, 'Europe/Paris')}" in told
        scheduled_status(fake)
        wait_for(
            lambda: any("wait for it" in m["text"] for m in fake.messages_in(STATUS)),
            "the estimate in the status thread",
        )


def test_the_answer_to_a_small_list_asks_slack_nothing_for_the_time_zone(allowed, fake):
    """A short pasted list is checked inside the 3-second answer; the person's time
    zone for "Send at" comes from the profile read when the form opened, not from
    a users.info call on that path."""
    with running_mailbolt(allowed, fake):
        fake.command("", user=OWNER)
        wait_for(lambda: fake.top_view(OWNER), "the compose modal")
        wait_for(lambda: fake.calls_to("users.info"), "the profile read after the form opened")
        before = len(fake.calls_to("users.info"))
        preview = to_preview(fake, paste=PASTE)
        assert '"timezone": "Europe/Paris"' in block_text(preview["blocks"])
        assert len(fake.calls_to("users.info")) == before
