"""Per-workspace data (issue 12, migration 10): suppressions are per (team,
address), with team ``''`` holding for every workspace; every list a workspace
sees can be filtered to its team. Run on both back-ends."""

from __future__ import annotations

from bot.ports import StoreParts
from bot.records import (
    ApprovalDecision,
    CampaignStatus,
    GrantClient,
    MessageState,
    NewMessage,
    SenderAccount,
    SenderKind,
    SenderStatus,
)
from tests.store_contract.conftest import GMAIL, START


def _campaign(store: StoreParts, team: str, **extra) -> int:
    n = store.campaigns.newest_id() + 1
    campaign_id, _ = store.campaigns.create(
        requested_by="U1",
        template="welcome",
        category="marketing",
        subject="",
        common_vars={},
        team=team,
        account=GMAIL,
        messages=[NewMessage(email=f"{team or 'cli'}@example.com", message_id=f"<{team}{n}@m>")],
        **extra,
    )
    return campaign_id


def _link(store: StoreParts, address: str, team: str) -> None:
    """A shared account of workspace ``team`` ('': the operator's)."""
    store.senders.save(
        SenderAccount(
            address=address,
            kind=SenderKind.SHARED,
            client=GrantClient.INSTALLED,
            team=team,
            status=SenderStatus.ACTIVE,
            created_at=START,
            updated_at=START,
        ),
        actor="cli",
        action="account.connected",
    )


def test_an_unsubscribe_holds_for_its_workspace_and_an_unteamed_one_for_all(store: StoreParts):
    s = store.suppressions
    assert s.add_unsubscribe("Ann@example.com", "one-click", 1, team="TA")
    assert not s.add_unsubscribe("ann@example.com", "slack:U1", team="TA")
    assert s.unsubscribed_among(["ann@example.com"], "TA") == {"ann@example.com"}
    assert s.unsubscribed_among(["ann@example.com"], "TB") == set()
    # B may record its own unsubscribe of the same address: the key is (team, address).
    assert s.add_unsubscribe("ann@example.com", "one-click", 2, team="TB")
    assert s.unsubscribed_among(["ann@example.com"], "TB") == {"ann@example.com"}
    # The operator's (team '') holds everywhere, also for a workspace never seen.
    assert s.add_unsubscribe("bob@example.com", "cli")
    assert s.unsubscribed_among(["bob@example.com"], "TC") == {"bob@example.com"}
    assert not s.add_unsubscribe("bob@example.com", "slack:U2", team="TA")
    # None asks about any workspace (the operator, or a caller that cannot tell).
    assert s.unsubscribed_among(["ann@example.com", "bob@example.com"]) == {
        "ann@example.com",
        "bob@example.com",
    }
    assert [(u.email, u.team) for u in s.unsubscribes("TA")] == [
        ("ann@example.com", "TA"),
        ("bob@example.com", ""),
    ]
    assert {(u.email, u.team) for u in s.unsubscribes()} == {
        ("ann@example.com", "TA"),
        ("ann@example.com", "TB"),
        ("bob@example.com", ""),
    }


def test_a_workspace_removes_only_its_own_unsubscribe(store: StoreParts):
    s = store.suppressions
    s.add_unsubscribe("ann@example.com", "one-click", team="TA")
    s.add_unsubscribe("bob@example.com", "cli")
    assert not s.remove_unsubscribe("ann@example.com", "slack:U9", team="TB")
    assert not s.remove_unsubscribe("bob@example.com", "slack:U9", team="TB")
    assert s.unsubscribed_among(["ann@example.com"], "TA") == {"ann@example.com"}
    assert s.unsubscribed_among(["bob@example.com"], "TB") == {"bob@example.com"}
    assert s.remove_unsubscribe("ann@example.com", "slack:U1", team="TA")
    assert s.unsubscribed_among(["ann@example.com"], "TA") == set()
    assert s.remove_unsubscribe("bob@example.com", "cli")
    removed = store.audit.recent(limit=1, team="")[0]
    assert (removed.action, removed.detail) == ("unsubscribe.removed", {"email": "bob@example.com"})


def test_a_hard_bounce_suppresses_for_its_accounts_workspace(store: StoreParts):
    s = store.suppressions
    assert s.record_bounce("r1", kind="hard", email="gone@example.com", team="TA")
    assert s.record_bounce("r2", kind="hard", email="old@example.com")
    wanted = ["gone@example.com", "old@example.com"]
    assert s.hard_bounced_among(wanted, "TA") == set(wanted)
    assert s.hard_bounced_among(wanted, "TB") == {"old@example.com"}
    assert s.hard_bounced_among(wanted) == set(wanted)


def test_campaign_lists_show_a_workspace_its_own_and_the_operators(store: StoreParts):
    a = _campaign(store, "TA")
    b = _campaign(store, "TB", scheduled_at=START + 3600)
    cli = _campaign(store, "")
    a_later = _campaign(store, "TA", scheduled_at=START + 60)
    # A workspace sees its own and the operator's (the command line's, team '').
    assert [c.id for c in store.campaigns.recent(team="TA")] == [a_later, cli, a]
    assert [c.id for c in store.campaigns.recent(team="TB")] == [cli, b]
    assert [c.id for c in store.campaigns.recent(team="")] == [cli]
    assert [c.id for c in store.campaigns.recent()] == [a_later, cli, b, a]
    assert [c.id for c in store.campaigns.scheduled(team="TB")] == [b]
    assert [c.id for c in store.campaigns.scheduled(team="TA")] == [a_later]
    assert [c.id for c in store.campaigns.scheduled()] == [a_later, b]


def test_pending_approvals_follow_their_campaigns_workspace(store: StoreParts):
    waiting = CampaignStatus.AWAITING_APPROVAL
    a = _campaign(store, "TA", status=waiting)
    b = _campaign(store, "TB", status=waiting)
    store.approvals.request(a, "U1", "d", "big")
    store.approvals.request(b, "U2", "d", "big")
    assert [r.campaign_id for r in store.approvals.pending(team="TA")] == [a]
    assert [r.campaign_id for r in store.approvals.pending(team="TB")] == [b]
    assert [r.campaign_id for r in store.approvals.pending()] == [a, b]
    store.approvals.decide(b, "U3", ApprovalDecision.REJECTED)
    assert store.approvals.pending(team="TB") == []


def test_audit_entries_belong_to_their_campaigns_workspace(store: StoreParts):
    a = _campaign(store, "TA")
    b = _campaign(store, "TB")
    store.audit.record("slack:U1", "campaign.exported", campaign_id=a)
    store.audit.record("slack:U2", "campaign.exported", campaign_id=b)
    store.audit.record("cli", "unsubscribes.exported", rows=0)
    assert {(e.action, e.detail.get("campaign_id")) for e in store.audit.recent(team="TA")} == {
        ("campaign.created", a),
        ("campaign.exported", a),
    }
    assert [e.team for e in store.audit.recent(team="TB")] == ["TB", "TB"]
    assert [e.action for e in store.audit.recent(team="")] == ["unsubscribes.exported"]
    assert len(store.audit.recent()) == 5


def test_test_sends_and_sender_accounts_filter_by_workspace(store: StoreParts):
    for team in ("TA", "TB"):
        row = store.test_sends.start(
            account=GMAIL,
            requested_by="U1",
            email="me@example.com",
            template="welcome",
            subject="Hi",
            message_id=f"<t{team}@m>",
            team=team,
        )
        store.test_sends.finish(row, MessageState.SENT, provider_id="g")
    assert [t.team for t in store.test_sends.recent(team="TA")] == ["TA"]
    assert [e.action for e in store.audit.recent(team="TB")] == ["test.finished", "test.started"]
    for address, team in (("a@a.example", "TA"), ("b@b.example", "TB"), ("ops@x.example", "")):
        _link(store, address, team)
    assert [a.address for a in store.senders.all(team="TA")] == [
        "a@a.example",
        "ops@x.example",
    ]
    assert len(store.senders.all()) == 3
    store.senders.remove("b@b.example", actor="U2", action="account.disconnected")
    assert [(e.action, e.detail.get("address")) for e in store.audit.recent(team="TB")][:2] == [
        ("account.disconnected", "b@b.example"),
        ("account.connected", "b@b.example"),
    ]
    assert "a@a.example" not in {e.detail.get("address") for e in store.audit.recent(team="TB")}


def test_the_command_lines_campaigns_and_accounts_are_adopted_by_a_workspace(store: StoreParts):
    """On the switch to many workspaces, what had no workspace (the one workspace's
    CLI sends and linked accounts) becomes that workspace's; others are untouched."""
    unowned, theirs = _campaign(store, ""), _campaign(store, "TB")
    for address, team in (("legacy@example.com", ""), ("b@example.com", "TB")):
        _link(store, address, team)
    assert store.campaigns.adopt_unowned("TA", actor="serve") == 1
    assert store.senders.adopt_unowned("TA", actor="serve") == 1
    assert store.campaigns.get(unowned).team == "TA" and store.campaigns.get(theirs).team == "TB"
    assert [a.address for a in store.senders.all(team="TB")] == ["b@example.com"]
    assert [a.address for a in store.senders.all(team="TA")] == ["legacy@example.com"]
    adopted = [
        e.detail for e in store.audit.recent(10, team="TA") if e.action == "workspace.adopted"
    ]
    assert {"campaigns": 1} in adopted and {"accounts": 1} in adopted
    # Nothing left to adopt the second time.
    assert store.campaigns.adopt_unowned("TA", actor="serve") == 0
    assert store.senders.adopt_unowned("TA", actor="serve") == 0
