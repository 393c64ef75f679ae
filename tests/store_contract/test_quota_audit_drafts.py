"""The quota log, the audit log and Slack drafts."""

from __future__ import annotations

from bot.ports import StoreParts
from bot.records import AuditEntry, Draft
from tests.store_contract.conftest import GMAIL, START, Clock

WEEK = 7 * 24 * 3600


def test_quota_units_are_summed_over_a_window(store: StoreParts, clock: Clock):
    store.quota.record_units(100, "messages.send", account=GMAIL, at=START - 50)
    store.quota.record_units(5, "messages.list", account=GMAIL)
    clock.advance(30)
    store.quota.record_units(100, "messages.send", account=GMAIL)
    assert store.quota.units_since(START - 60, GMAIL) == 205
    assert store.quota.units_since(START, GMAIL) == 105
    assert store.quota.units_since(START + 1, GMAIL) == 100
    assert store.quota.units_since(START + 31, GMAIL) == 0


def test_audit_entries_are_newest_first_with_their_detail(store: StoreParts, clock: Clock):
    store.audit.record("cli", "campaign.dry_run", template="welcome", recipients=3)
    clock.advance(1)
    store.audit.record("slack:U1", "slack.cancel", campaign_id=4, team="T1")
    first, second = store.audit.recent()
    assert first == AuditEntry(
        first.id, START + 1, "slack:U1", "slack.cancel", {"campaign_id": 4}, team="T1"
    )
    assert (second.action, second.detail) == (
        "campaign.dry_run",
        {"template": "welcome", "recipients": 3},
    )
    assert first.id > second.id
    assert store.audit.recent(limit=1) == [first]


def test_a_draft_is_kept_for_a_week(store: StoreParts, clock: Clock):
    data = {"form": {"template": "welcome"}, "had_csv": True, "rows": [["a@x", "Ä"]]}
    store.drafts.save("k1", "U1", data)
    assert store.drafts.get("k1") == Draft("k1", "U1", data)
    assert store.drafts.get("unknown") is None
    clock.advance(WEEK)
    assert store.drafts.get("k1") == Draft("k1", "U1", data)
    clock.advance(1)
    assert store.drafts.get("k1") is None


def test_saving_again_replaces_the_data_but_keeps_owner_and_age(store: StoreParts, clock: Clock):
    store.drafts.save("k1", "U1", {"preview": {"test_note": ""}})
    clock.advance(WEEK - 10)
    store.drafts.save("k1", "U2", {"preview": {"test_note": "Test sent"}})
    assert store.drafts.get("k1") == Draft("k1", "U1", {"preview": {"test_note": "Test sent"}})
    clock.advance(11)
    assert store.drafts.get("k1") is None, "the age counts from the first save"


def test_an_expired_draft_is_gone_even_if_time_is_reset(store: StoreParts, clock: Clock):
    """Saving any draft drops the expired ones, rather than keeping them forever."""
    store.drafts.save("old", "U1", {"n": 1})
    clock.advance(WEEK + 1)
    store.drafts.save("new", "U1", {"n": 2})
    clock.now = START
    assert store.drafts.get("old") is None
    assert store.drafts.get("new") == Draft("new", "U1", {"n": 2})
