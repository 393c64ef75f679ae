"""Per-workspace data at the handler layer (issue 12): two workspaces' data in one
real store, and every use case a Slack request reaches asked as one workspace.

Another workspace's campaign is answered exactly like one that does not exist,
and nothing changes; suppressions hold for their workspace (and ``''`` for all).
The Slack layer only passes the request's team along, so these are the rules
whatever a listener does.
"""

from __future__ import annotations

import pytest

from bot.channels import ChannelMap
from bot.errors import UserInputError
from bot.handlers import (
    approval,
    audit_log,
    drafts,
    export,
    resolution,
    schedule,
    scope,
    senders,
    stats,
)
from bot.handlers.approval import ApprovalPolicy
from bot.records import (
    ApprovalDecision,
    CampaignStatus,
    GrantClient,
    MessageState,
    SenderAccount,
    SenderKind,
)
from tests.test_campaign import ScriptedTransport, people, start, use

TA, TB = "T0AAA", "T0BBB"
ADMINS = frozenset({"UADMIN"})


@pytest.fixture
def deps(settings, store):
    from bot.wiring import build_deps

    return build_deps(settings, store)


def _state(deps, campaign_id):
    """What a refused request must leave as it was."""
    row = deps.store.campaigns.get(campaign_id)
    return (row, deps.store.outbox.counts(campaign_id), deps.store.approvals.get(campaign_id))


def test_another_workspaces_campaign_does_not_exist_for_any_use_case(deps):
    b_sent = start(deps, people("ann@example.com"), team=TB)
    resolution_target = deps.store.outbox.messages(b_sent)[0]
    deps.store.outbox.claim(resolution_target.id, deps.account)
    deps.store.outbox.mark_failed(resolution_target.id, "boom")
    b_later = start(deps, people("bob@example.com"), team=TB)
    deps.store.campaigns.update(b_later, status=CampaignStatus.SCHEDULED, scheduled_at=2e9)
    plan = _plan(deps, TB, "cy@example.com")
    b_waiting, _ = approval.record(plan, deps, "big")
    before = {c: _state(deps, c) for c in (b_sent, b_later, b_waiting)}
    audit_before = deps.store.audit.recent(limit=100)
    when = schedule.When(2.1e9, "UTC")
    policy = ApprovalPolicy(channels=ChannelMap("C0APPROVE"), approvers=frozenset({"UAPPROVER"}))

    attempts = {
        "export": lambda c: export.export_campaign(
            deps.store, c, actor="UADMIN", admins=ADMINS, team=TA
        ),
        "retry": lambda c: resolution.retry_failed(c, deps, "UADMIN", team=TA),
        "resolve": lambda c: resolution.resolve_uncertain(c, deps, "UADMIN", resend=True, team=TA),
        "stats": lambda c: stats.stats(deps.store, campaign_id=c, team=TA),
        "cancel": lambda c: schedule.cancel(deps, c, "UADMIN", ADMINS, team=TA),
        "move": lambda c: schedule.move(deps, c, "UADMIN", ADMINS, when, team=TA),
        "withdraw": lambda c: approval.withdraw(c, "UADMIN", deps, ADMINS, team=TA),
        "approve": lambda c: approval.decide(
            c, "UAPPROVER", ApprovalDecision.APPROVED, policy, deps, None, team=TA
        ),
        "look up": lambda c: scope.campaign_of(deps.store, c, TA),
    }
    for what, attempt in attempts.items():
        for campaign_id in (b_sent, b_later, b_waiting):
            with pytest.raises(UserInputError) as refused:
                attempt(campaign_id)
            assert str(refused.value) == f"There is no campaign #{campaign_id}.", what
    # Word for word what a campaign that does not exist gets: nothing tells them apart.
    with pytest.raises(UserInputError, match=r"^There is no campaign #999\.$"):
        export.export_campaign(deps.store, 999, actor="UADMIN", admins=ADMINS, team=TA)
    assert {c: _state(deps, c) for c in (b_sent, b_later, b_waiting)} == before
    assert deps.store.audit.recent(limit=100) == audit_before
    # Its own workspace, and the operator (None), reach it.
    assert (
        export.export_campaign(deps.store, b_sent, actor="UADMIN", admins=ADMINS, team=TB).rows == 1
    )
    assert resolution.retry_failed(b_sent, deps, "cli") == 1
    assert schedule.cancel(deps, b_later, "UADMIN", ADMINS, team=TB).status == "cancelled"


def _plan(deps, team: str, *emails: str, template: str = "welcome"):
    from bot.handlers import preflight
    from tests.test_campaign import NEWS_VARS, WELCOME_VARS

    request = drafts.build_request(
        people(*emails),
        template=template,
        requested_by="U1",
        common_vars=WELCOME_VARS if template == "welcome" else NEWS_VARS,
        team=team,
    )
    return preflight.preflight(request, deps)


def test_lists_show_a_workspace_its_own_campaigns_and_the_operators(deps):
    a = start(deps, people("ann@example.com"), team=TA)
    b = start(deps, people("bob@example.com"), team=TB)
    cli = start(deps, people("cy@example.com"))
    for campaign_id in (a, b, cli):
        deps.store.campaigns.update(campaign_id, status=CampaignStatus.SCHEDULED, scheduled_at=2e9)
    assert {c.id for c in schedule.listed(deps, "UADMIN", ADMINS, team=TA)} == {a, cli}
    assert {c.id for c in schedule.listed(deps, None, None)} == {a, b, cli}
    assert not scope.sees_campaign(deps.store.campaigns.get(b), TA)
    assert scope.sees_campaign(deps.store.campaigns.get(cli), TA)
    export.export_campaign(deps.store, a, actor="UADMIN", team=TA)
    export.export_campaign(deps.store, b, actor="UOTHER", team=TB)
    seen = audit_log.audit_lines(deps.store.audit, team=TA)
    assert {line.actor for line in seen} == {"test", "UADMIN"}
    assert all(line.team == TA for line in seen)
    assert "UOTHER" in {line.actor for line in audit_log.audit_lines(deps.store.audit)}


def test_suppressions_hold_for_their_workspace_in_preflight(deps):
    deps.store.suppressions.add_unsubscribe("ann@example.com", "one-click", team=TA)
    deps.store.suppressions.record_bounce("r1", kind="hard", email="bob@example.com", team=TB)
    deps.store.suppressions.add_unsubscribe("cy@example.com", "cli")  # every workspace
    everyone = ("ann@example.com", "bob@example.com", "cy@example.com", "di@example.com")

    def kept(team: str) -> set[str]:
        return {r.email for r in _plan(deps, team, *everyone, template="newsletter").to_send}

    assert kept(TA) == {"bob@example.com", "di@example.com"}
    assert kept(TB) == {"ann@example.com", "di@example.com"}
    assert kept("T0CCC") == {"ann@example.com", "bob@example.com", "di@example.com"}
    # A campaign of no workspace (the CLI's) respects every workspace's.
    assert kept("") == {"di@example.com"}


def test_the_last_check_before_each_send_uses_the_campaigns_workspace(deps):
    transport = use(deps, ScriptedTransport(max_in_flight=1))
    from bot.handlers import send_loop

    news_b = start(deps, people("ann@example.com", "bob@example.com"), "newsletter", team=TB)
    news_a = start(deps, people("ann@example.com", "bob@example.com"), "newsletter", team=TA)
    # Both unsubscribe after the campaigns were checked: in A only.
    deps.store.suppressions.add_unsubscribe("ann@example.com", "one-click", team=TA)
    deps.store.suppressions.record_bounce("r9", kind="hard", email="bob@example.com", team=TA)
    assert send_loop.run(news_b, deps).counts[MessageState.SENT] == 2
    result = send_loop.run(news_a, deps)
    assert result.counts[MessageState.SKIPPED] == 2 and result.counts[MessageState.SENT] == 0
    assert transport.calls == ["ann@example.com", "bob@example.com"]


def test_a_workspace_unsubscribes_and_resubscribes_only_for_itself(deps):
    from bot.handlers import policy

    assert policy.unsubscribe(deps.store, "Ann@Example.com", actor="slack:U1", team=TA)[1]
    assert not policy.unsubscribe(deps.store, "ann@example.com", actor="slack:U2", team=TA)[1]
    assert policy.unsubscribe(deps.store, "ann@example.com", actor="slack:U9", team=TB)[1]
    assert not policy.resubscribe(deps.store, "cy@example.com", actor="slack:U9", team=TB)[1]
    policy.unsubscribe(deps.store, "cy@example.com", actor="cli")
    # B cannot lift the operator's every-workspace unsubscribe, nor A's.
    assert not policy.resubscribe(deps.store, "cy@example.com", actor="slack:U9", team=TB)[1]
    assert policy.resubscribe(deps.store, "ann@example.com", actor="slack:U9", team=TB)[1]
    assert deps.store.suppressions.unsubscribed_among(["ann@example.com"], TA)
    assert deps.store.suppressions.unsubscribed_among(["cy@example.com"], TB)


def _account(store, address: str, team: str, **extra) -> SenderAccount:
    account = SenderAccount(
        address=address,
        kind=SenderKind.SHARED,
        client=GrantClient.INSTALLED,
        team=team,
        everyone=True,
        **extra,
    )
    store.senders.save(account, actor="cli", action="account.linked")
    return account


def test_an_account_of_another_workspace_cannot_be_chosen_even_by_name(deps):
    _account(deps.store, "b@b.example", TB)
    _account(deps.store, "ops@x.example", "")
    with pytest.raises(UserInputError) as refused:
        senders.choose(deps.store.senders, "U1", "b@b.example", team=TA)
    assert "You may not send from b@b.example: it is not connected" in str(refused.value)
    assert [a.address for a in senders.usable(deps.store.senders.all(), "U1", team=TA)] == [
        "ops@x.example"
    ]
    assert senders.choose(deps.store.senders, "U1", "", team=TA).address == "ops@x.example"
    assert senders.choose(deps.store.senders, "U2", "b@b.example", team=TB).address == (
        "b@b.example"
    )
    assert scope.account_of(deps.store.senders, "b@b.example", TA) is None


def test_a_personal_account_is_disconnected_only_from_its_workspace(deps):
    from bot.records import SenderStatus

    mine = SenderAccount(
        address="me@b.example",
        kind=SenderKind.PERSONAL,
        client=GrantClient.WEB,
        owner="U1",
        team=TB,
        status=SenderStatus.ACTIVE,
    )
    deps.store.senders.save(mine, actor="U1", action="account.connected")
    with pytest.raises(UserInputError, match=r"You have no connected account me@b\.example"):
        senders.disconnect(deps.store.senders, None, None, "U1", "me@b.example", TA)  # type: ignore[arg-type]
    assert deps.store.senders.get("me@b.example") is not None


def test_a_draft_of_another_workspace_is_as_if_it_had_expired(deps):
    request = _plan(deps, TB, "ann@example.com").request
    key = drafts.save_draft(deps.store.drafts, "U1", request, {"form": {}})
    assert drafts.draft_of(deps.store.drafts, key, TA) is None
    found = drafts.draft_of(deps.store.drafts, key, TB)
    assert found is not None and found.team == TB
    drafts.update_draft(deps.store.drafts, found, preview={"x": 1})
    assert drafts.draft_of(deps.store.drafts, key, TB) is not None
