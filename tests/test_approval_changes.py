"""An approval is bound to what it was asked about: a campaign that changes
afterwards (here its template) is not sent on it, and is asked about again."""

from __future__ import annotations

import shutil

import pytest

from bot.records import ApprovalDecision, CampaignStatus
from bot.slack.views import approval as approval_views
from bot.store import Store
from tests import test_approval_slack as flow
from tests.conftest import ROOT
from tests.fakes.slack_fake import running_mailbolt, wait_for
from tests.test_approval_slack import APPROVER, request_for_approval, text_of, where
from tests.test_approval_slack import _requests as requests_in

fake, approving = flow.fake, flow.approving  # the same fixtures


@pytest.fixture
def templates(tmp_path):
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    return folder


def test_a_template_changed_after_the_request_needs_approval_again(fake, approving, templates):
    settings = approving.replace(templates_dir=templates)
    with running_mailbolt(settings, fake) as mailbolt:
        first = request_for_approval(fake, mailbolt)
        store = mailbolt.deps.store
        campaign_id = store.campaigns.recent()[0].id
        for name in ("welcome.html.j2", "welcome.txt.j2"):
            path = templates / name
            path.write_text(path.read_text().replace("glad you", "THRILLED you"))

        fake.click(approval_views.A_APPROVE, user=APPROVER, message=where(first))
        second = wait_for(lambda: len(requests_in(fake)) == 2 and requests_in(fake)[-1], "again")
        assert "THRILLED" in text_of(second["blocks"])
        assert "changed after it was submitted" in text_of(fake.messages[where(first)]["blocks"])
        assert approval_views.A_APPROVE not in text_of(fake.messages[where(first)]["blocks"])
        mailbolt.settle()
        assert store.campaigns.get(campaign_id).status == CampaignStatus.AWAITING_APPROVAL
        assert store.approvals.get(campaign_id).decision == ApprovalDecision.PENDING
        assert mailbolt.eml_files() == []
        # The old request's buttons count for nothing now.
        actions = [e.action for e in store.audit.recent(100, campaign_id=campaign_id)]
        assert "approval.invalidated" in actions and "approval.released" not in actions

        fake.click(approval_views.A_APPROVE, user=APPROVER, message=where(second))
        wait_for(lambda: len(mailbolt.eml_files()) == 3, "the three messages")
        assert all(b"THRILLED" in f.read_bytes() for f in mailbolt.eml_files())


def test_a_recorded_campaign_changed_after_approval_is_not_sent(fake, approving, tmp_path):
    """Anything that alters the recorded campaign between the approval and the
    start of sending (here a recipient row changed in the database) stops it."""
    with running_mailbolt(approving, fake) as mailbolt:
        request = request_for_approval(fake, mailbolt)
        store = mailbolt.deps.store
        campaign_id = store.campaigns.recent()[0].id
        other = Store(approving.database_path)
        try:
            with other.database.tx() as db:
                db.execute(
                    "update messages set email = ? where campaign_id = ? and position = 0",
                    ["mallory@evil.example", campaign_id],
                )
        finally:
            other.close()
        fake.click(approval_views.A_APPROVE, user=APPROVER, message=where(request))
        wait_for(lambda: len(requests_in(fake)) == 2, "a new request")
        mailbolt.settle()
        mailbolt.runner.wait_idle(10)
        assert store.campaigns.get(campaign_id).status == CampaignStatus.AWAITING_APPROVAL
        assert mailbolt.eml_files() == []
