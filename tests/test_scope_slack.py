"""Edited payloads cannot reach another workspace's data (issue 12).

Until a second workspace can be installed, requests come from the fake's one
workspace; the data of another (``T0OTHER``) is put in the store directly. Every
command, button and form that names it by an ID in its text, ``value`` or
``private_metadata`` gets the same answer as for an ID that does not exist, and
nothing changes. Signed requests into the real server.
"""

from __future__ import annotations

import json

from bot.records import CampaignStatus, NewMessage
from bot.slack import views
from tests.fakes.slack_fake import TEAM, running_mailbolt, wait_for
from tests.test_schedule_slack import (  # noqa: F401 (fixtures)
    ADMIN,
    OWNER,
    allowed,
    fake,
    paris_in,
    picked,
    schedule_preview,
    scheduled_status,
)
from tests.test_slack_flow import STATUS

OTHER_TEAM = "T0OTHER"


def _theirs(store, *, status=CampaignStatus.SCHEDULED) -> int:
    """A campaign of another workspace, scheduled an hour ahead."""
    n = store.campaigns.newest_id() + 1
    campaign_id, _ = store.campaigns.create(
        requested_by=ADMIN,  # the same person id: only the workspace differs
        template="welcome",
        category="transactional",
        subject="",
        common_vars={"team": "Other", "start_url": "https://other.example"},
        team=OTHER_TEAM,
        status_channel=STATUS,
        messages=[NewMessage(email="zed@other.example", message_id=f"<other{n}@x>")],
        scheduled_at=paris_in(60).timestamp(),
    )
    store.audit.record(ADMIN, "campaign.exported", campaign_id=campaign_id, rows=0)
    return campaign_id


def _ask(fake, text: str, user: str = ADMIN) -> str:  # noqa: F811
    reply, _ = fake.command(text, user=user)
    assert reply.status == 200
    return reply.json["text"] + json.dumps(reply.json.get("blocks", []))


def test_commands_naming_another_workspaces_campaign_find_none(allowed, fake):  # noqa: F811
    with running_mailbolt(allowed, fake) as mailbolt:
        store = mailbolt.deps.store
        theirs = _theirs(store)
        before = store.campaigns.get(theirs)
        for verb in ("status", "stats", "export"):
            assert f"There is no campaign #{theirs}." in _ask(fake, f"{verb} {theirs}"), verb
            assert f"There is no campaign #{theirs + 1}." in _ask(fake, f"{verb} {theirs + 1}")
        assert f"#{theirs}" not in _ask(fake, "status")
        assert "welcome" not in _ask(fake, "scheduled")  # an admin's list: the workspace's
        mailbolt.settle()
        assert fake.calls_to("files.completeUploadExternal") == []
        assert store.campaigns.get(theirs) == before
        # App Home: an admin sees neither the campaign nor the other workspace's audit.
        fake.event({"type": "app_home_opened", "user": ADMIN, "tab": "home"})
        home = wait_for(lambda: fake.home.get(ADMIN), "App Home")
        assert f"#{theirs}" not in json.dumps(home)


def test_unsubscribes_typed_in_slack_are_the_workspaces_own(allowed, fake):  # noqa: F811
    with running_mailbolt(allowed, fake) as mailbolt:
        s = mailbolt.deps.store.suppressions
        s.add_unsubscribe("zed@other.example", "one-click", team=OTHER_TEAM)
        assert "was not unsubscribed" in _ask(fake, "resubscribe zed@other.example")
        assert s.unsubscribed_among(["zed@other.example"], OTHER_TEAM)
        assert "no more marketing email" in _ask(fake, "unsubscribe zed@other.example")
        assert {(u.email, u.team) for u in s.unsubscribes()} == {
            ("zed@other.example", OTHER_TEAM),
            ("zed@other.example", TEAM),
        }


def test_buttons_and_forms_edited_to_name_another_workspaces_campaign_change_nothing(
    allowed,  # noqa: F811
    fake,  # noqa: F811
):
    with running_mailbolt(allowed, fake) as mailbolt:
        store = mailbolt.deps.store
        schedule_preview(fake, paris_in(30))
        where = (STATUS, scheduled_status(fake)["ts"])
        theirs = _theirs(store)
        before = store.campaigns.get(theirs)

        for button in (views.A_CANCEL, views.A_MOVE):
            fake.click(button, user=ADMIN, message=where, value=str(theirs))
        mailbolt.settle()
        refusals = [c.args["text"] for c in fake.calls_to("chat.postEphemeral")]
        assert len(refusals) == 2, refusals
        assert all(f"There is no campaign #{theirs}." in t for t in refusals), refusals

        # The Move form of one's own campaign, its metadata edited to name theirs.
        fake.click(views.A_MOVE, user=OWNER, message=where)
        modal = wait_for(
            lambda: (v := fake.top_view(OWNER)) and v["callback_id"] == views.CB_MOVE and v,
            "the Move modal",
        )
        with fake.lock:
            fake.views[modal["id"]]["private_metadata"] = json.dumps({"campaign": theirs})
        answer = fake.submit_view(modal["id"], picked(paris_in(120)), user=OWNER)
        assert f"There is no campaign #{theirs}." in json.dumps(answer.json)
        assert store.campaigns.get(theirs) == before
        [mine] = store.campaigns.scheduled(team=TEAM)[:1]
        assert mine.id != theirs and mine.status == CampaignStatus.SCHEDULED


def test_a_preview_whose_draft_is_another_workspaces_sends_nothing(allowed, fake):  # noqa: F811
    with running_mailbolt(allowed, fake) as mailbolt:
        store = mailbolt.deps.store
        from tests.test_slack_flow import to_preview

        preview = to_preview(fake, OWNER, paste="ann@example.com")
        key = views.metadata_of(preview)["draft"]
        draft = store.drafts.get(key)
        store.drafts.save("theirs", draft.user, draft.data, team=OTHER_TEAM)
        with fake.lock:
            fake.views[preview["id"]]["private_metadata"] = json.dumps({"draft": "theirs"})
        reply = fake.submit_view(preview["id"], {}, user=OWNER)
        assert reply.json["response_action"] == "update"
        assert "Not sent" in json.dumps(reply.json["view"])
        mailbolt.settle()
        assert store.campaigns.recent() == []
        assert mailbolt.eml_files() == []
