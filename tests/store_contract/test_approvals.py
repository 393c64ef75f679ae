"""Approvals: every move is conditional, so a decision is taken once, never by the
requester, and never on a campaign that is not waiting for one."""

from __future__ import annotations

from bot.ports import StoreParts
from bot.records import ApprovalDecision, CampaignStatus, MessageState, NewMessage
from tests.store_contract.conftest import START

APPROVED, REJECTED, PENDING = (
    ApprovalDecision.APPROVED,
    ApprovalDecision.REJECTED,
    ApprovalDecision.PENDING,
)
AWAITING = CampaignStatus.AWAITING_APPROVAL


def awaiting(store: StoreParts, requested_by: str = "U1", key: str = "a") -> int:
    campaign_id, _ = store.campaigns.create(
        requested_by=requested_by,
        template="welcome",
        category="transactional",
        subject="",
        common_vars={},
        status=AWAITING,
        messages=[
            NewMessage(f"{key}{i}@example.com", f"<{key}{i}@mailbolt.example>") for i in range(2)
        ],
    )
    store.approvals.request(campaign_id, requested_by, "digest-1", "every campaign")
    return campaign_id


def test_a_request_is_recorded_and_listed_until_decided(store: StoreParts):
    campaign_id = awaiting(store)
    request = store.approvals.get(campaign_id)
    assert request is not None
    assert (request.requested_by, request.requested_at, request.digest) == ("U1", START, "digest-1")
    assert (request.decision, request.reason, request.ts) == (PENDING, "every campaign", "")
    assert [a.campaign_id for a in store.approvals.pending()] == [campaign_id]
    store.approvals.set_message(campaign_id, "C1", "1.2")
    assert (store.approvals.get(campaign_id).channel, store.approvals.get(campaign_id).ts) == (
        "C1",
        "1.2",
    )
    assert store.audit.recent(1)[0].action == "approval.requested"


def test_awaiting_campaigns_are_neither_unfinished_nor_due(store: StoreParts):
    campaign_id = awaiting(store)
    assert store.campaigns.get(campaign_id).status == AWAITING
    assert campaign_id not in store.campaigns.unfinished()
    assert campaign_id not in store.campaigns.due(START + 10**6)


def test_the_requester_never_decides(store: StoreParts):
    campaign_id = awaiting(store, requested_by="U1")
    assert not store.approvals.decide(campaign_id, "U1", APPROVED)
    assert not store.approvals.decide(campaign_id, "U1", REJECTED, "no")
    assert store.approvals.get(campaign_id).decision == PENDING


def test_a_decision_is_taken_once(store: StoreParts):
    campaign_id = awaiting(store)
    assert store.approvals.decide(campaign_id, "U2", APPROVED)
    assert not store.approvals.decide(campaign_id, "U3", APPROVED)
    assert not store.approvals.decide(campaign_id, "U3", REJECTED, "late")
    decided = store.approvals.get(campaign_id)
    assert (decided.decision, decided.decided_by, decided.decided_at) == (APPROVED, "U2", START)
    assert store.approvals.pending() == []
    assert store.approvals.approved_waiting() == [campaign_id]


def test_release_moves_an_approved_campaign_to_running_once(store: StoreParts):
    campaign_id = awaiting(store)
    assert not store.approvals.release(campaign_id, "U2")  # not approved yet
    store.approvals.decide(campaign_id, "U2", APPROVED)
    assert store.approvals.release(campaign_id, "U2")
    assert not store.approvals.release(campaign_id, "U2")
    assert store.campaigns.get(campaign_id).status == CampaignStatus.RUNNING
    assert campaign_id in store.campaigns.unfinished()
    assert store.approvals.approved_waiting() == []


def test_a_rejection_cancels_the_campaign_and_skips_its_messages(store: StoreParts):
    campaign_id = awaiting(store)
    assert store.approvals.decide(campaign_id, "U2", REJECTED, "wrong link")
    campaign = store.campaigns.get(campaign_id)
    assert campaign.status == CampaignStatus.CANCELLED
    assert campaign.paused_reason == "rejected by U2: wrong link"
    counts = store.outbox.counts(campaign_id)
    assert (counts[MessageState.SKIPPED], counts[MessageState.QUEUED]) == (2, 0)
    assert not store.approvals.release(campaign_id, "U2")
    assert campaign_id not in store.campaigns.unfinished()
    assert store.audit.recent(1)[0].action == "approval.rejected"


def test_no_decision_on_a_campaign_that_stopped_waiting(store: StoreParts):
    campaign_id = awaiting(store)
    store.campaigns.update(campaign_id, status=CampaignStatus.CANCELLED)
    assert not store.approvals.decide(campaign_id, "U2", APPROVED)


def test_reopen_asks_again_about_what_the_campaign_is_now(store: StoreParts):
    campaign_id = awaiting(store)
    store.approvals.set_message(campaign_id, "C1", "1.2")
    store.approvals.decide(campaign_id, "U2", APPROVED)
    store.approvals.release(campaign_id, "U2")
    assert store.approvals.reopen(campaign_id, "digest-2", "changed")
    request = store.approvals.get(campaign_id)
    assert (request.decision, request.digest, request.decided_by, request.ts) == (
        PENDING,
        "digest-2",
        "",
        "",
    )
    campaign = store.campaigns.get(campaign_id)
    assert (campaign.status, campaign.paused_reason) == (AWAITING, "changed")
    assert [a.campaign_id for a in store.approvals.pending()] == [campaign_id]


def test_a_withdrawn_request_cancels_the_campaign_once_and_nobody_decides_it(store: StoreParts):
    campaign_id = awaiting(store, requested_by="U1")
    assert store.approvals.withdraw(campaign_id, "U1")
    assert not store.approvals.withdraw(campaign_id, "U1")  # once
    request = store.approvals.get(campaign_id)
    assert (request.decision, request.decided_by) == (ApprovalDecision.WITHDRAWN, "U1")
    campaign = store.campaigns.get(campaign_id)
    assert campaign.status == CampaignStatus.CANCELLED
    assert store.outbox.counts(campaign_id)[MessageState.SKIPPED] == 2
    assert not store.approvals.decide(campaign_id, "U2", APPROVED)  # too late
    assert not store.approvals.release(campaign_id, "U2")
    assert store.approvals.pending() == []
    assert store.audit.recent(1)[0].action == "approval.withdrawn"


def test_a_decided_request_cannot_be_withdrawn(store: StoreParts):
    campaign_id = awaiting(store, requested_by="U1")
    assert store.approvals.decide(campaign_id, "U2", APPROVED)
    assert not store.approvals.withdraw(campaign_id, "U1")
    assert store.approvals.get(campaign_id).decision == APPROVED
