"""Sender accounts (issue 10): kept with sealed grants, who may use each, audited
changes, and single-use OAuth states. Written against ``bot.ports`` only."""

from __future__ import annotations

from dataclasses import replace

from bot.ports import StoreParts
from bot.records import GrantClient, OAuthState, SenderAccount, SenderKind, SenderStatus
from tests.store_contract.conftest import START, Clock

ALICE = SenderAccount(
    address="alice@example.com",
    kind=SenderKind.PERSONAL,
    client=GrantClient.WEB,
    name="Alice",
    owner="U0ALICE",
    team="T0TEAM",
    scopes=frozenset({"openid", "gmail.send"}),
    sealed_grant="sealed-1",
)
TEAM = SenderAccount(
    address="team@example.com",
    kind=SenderKind.SHARED,
    client=GrantClient.INSTALLED,
    name="Team",
    users=frozenset({"U0BOB"}),
    groups=frozenset({"S0DESIGN"}),
    sealed_grant="sealed-2",
)


def test_saved_accounts_come_back_as_saved(store: StoreParts, clock: Clock):
    store.senders.save(ALICE, actor="U0ALICE", action="account.connected")
    clock.advance(5)
    store.senders.save(TEAM, actor="cli", action="account.linked")
    alice, team = store.senders.all()
    assert replace(alice, created_at=0.0, updated_at=0.0) == ALICE
    assert alice.created_at == START
    assert team.users == {"U0BOB"} and team.groups == {"S0DESIGN"}
    assert store.senders.get("team@example.com") == team
    assert store.senders.get("nobody@example.com") is None


def test_found_by_address_or_by_name(store: StoreParts):
    store.senders.save(TEAM, actor="cli", action="account.linked")
    assert store.senders.find("TEAM").address == "team@example.com"
    assert store.senders.find("team@example.com").name == "Team"
    assert store.senders.find("design") is None


def test_saving_again_replaces_grant_and_access_but_keeps_creation(store: StoreParts, clock: Clock):
    store.senders.save(TEAM, actor="cli", action="account.linked")
    clock.advance(60)
    store.senders.save(
        replace(TEAM, sealed_grant="sealed-3", users=frozenset(), everyone=True),
        actor="cli",
        action="account.linked",
    )
    team = store.senders.get("team@example.com")
    assert team.sealed_grant == "sealed-3" and team.users == frozenset() and team.everyone
    assert team.created_at == START and team.updated_at == START + 60


def test_status_and_access_changes_are_audited(store: StoreParts):
    store.senders.save(TEAM, actor="cli", action="account.linked")
    assert store.senders.set_status("team@example.com", SenderStatus.REVOKED, "gone", actor="x")
    assert not store.senders.set_status("team@example.com", SenderStatus.REVOKED, actor="x")
    assert store.senders.get("team@example.com").status_reason == "gone"
    assert store.senders.set_access(
        "team@example.com",
        everyone=False,
        users=frozenset({"U0CAROL"}),
        groups=frozenset(),
        actor="U0ADMIN",
    )
    assert not store.senders.set_access(
        "nobody@example.com", everyone=True, users=frozenset(), groups=frozenset(), actor="x"
    )
    assert store.senders.get("team@example.com").users == {"U0CAROL"}
    actions = [e.action for e in store.audit.recent()]
    assert actions == ["account.access", "account.revoked", "account.linked"]
    assert all("sealed" not in str(e.detail) for e in store.audit.recent())


def test_removed_accounts_are_gone_with_their_access(store: StoreParts):
    store.senders.save(TEAM, actor="cli", action="account.linked")
    assert store.senders.remove("team@example.com", actor="cli", action="account.removed")
    assert not store.senders.remove("team@example.com", actor="cli", action="account.removed")
    assert store.senders.all() == []
    store.senders.save(replace(TEAM, users=frozenset()), actor="cli", action="account.linked")
    assert store.senders.get("team@example.com").users == frozenset()


def test_an_oauth_state_is_bound_once_and_taken_once(store: StoreParts, clock: Clock):
    state = OAuthState("s1", "U0ALICE", "T0TEAM", "sealed-v", START)
    store.senders.add_state(state)
    assert store.senders.bind_state("s1", "browser-hash") == replace(state, browser="browser-hash")
    assert store.senders.bind_state("s1", "other-browser") is None
    assert store.senders.bind_state("unknown", "browser-hash") is None
    taken = store.senders.take_state("s1")
    assert taken == replace(state, browser="browser-hash")
    assert store.senders.take_state("s1") is None


def test_old_states_are_dropped(store: StoreParts, clock: Clock):
    store.senders.add_state(OAuthState("old", "U1", "T1", "v", START))
    store.senders.add_state(OAuthState("new", "U1", "T1", "v", START + 100))
    assert store.senders.drop_states_before(START + 50) == 1
    assert store.senders.take_state("old") is None
    assert store.senders.take_state("new") is not None
