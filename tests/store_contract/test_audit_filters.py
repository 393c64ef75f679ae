"""The audit log read back for one campaign, or from a moment on (``python -m bot audit``)."""

from __future__ import annotations

from bot.ports import StoreParts
from tests.store_contract.conftest import START, Clock


def test_audit_entries_of_one_campaign_and_since_a_moment(store: StoreParts, clock: Clock):
    store.audit.record("U1", "campaign.retry_failed", campaign_id=4, count=2)
    clock.advance(10)
    store.audit.record("U2", "slack.cancel", campaign_id=5)
    clock.advance(10)
    store.audit.record("cli", "unsubscribe.added", email="a@example.com")
    store.audit.record("U1", "campaign.resolve_uncertain", campaign_id=4, count=1)

    of_four = store.audit.recent(campaign_id=4)
    assert [e.action for e in of_four] == ["campaign.resolve_uncertain", "campaign.retry_failed"]
    assert [e.action for e in store.audit.recent(since=START + 10)] == [
        "campaign.resolve_uncertain",
        "unsubscribe.added",
        "slack.cancel",
    ]
    assert [e.action for e in store.audit.recent(campaign_id=4, since=START + 5)] == [
        "campaign.resolve_uncertain"
    ]
    assert store.audit.recent(campaign_id=4, limit=1) == of_four[:1]
