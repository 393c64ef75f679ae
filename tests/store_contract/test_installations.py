"""Slack installations (one per workspace) and the single-use states of "Add to Slack"."""

from __future__ import annotations

from bot.ports import StoreParts
from bot.records import Installation
from tests.store_contract.conftest import START, Backend, Clock

TEN_MINUTES = 600.0


def _install(team: str, token: str = "sealed:xoxb-1", **extra: str) -> Installation:  # noqa: S107
    return Installation(team=team, sealed_bot_token=token, **extra)


def test_an_installation_is_kept_per_workspace_and_replaced_when_installed_again(
    store: StoreParts, clock: Clock
):
    store.installations.save(_install("T0AAA", bot_user="U0BOTA", scopes="commands,chat:write"))
    store.installations.save(_install("T0BBB", "sealed:xoxb-2", installer="U0B1"))
    clock.advance(60)
    store.installations.save(_install("T0AAA", "sealed:xoxb-3", bot_user="U0BOTA"))

    again = store.installations.get("T0AAA")
    assert again is not None
    assert (again.sealed_bot_token, again.scopes) == ("sealed:xoxb-3", "")
    assert (again.installed_at, again.updated_at) == (START, START + 60)
    assert [i.team for i in store.installations.all()] == ["T0AAA", "T0BBB"]
    assert store.installations.get("T0CCC") is None


def test_deleting_an_installation_forgets_only_that_workspace(store: StoreParts):
    store.installations.save(_install("T0AAA"))
    store.installations.save(_install("T0BBB"))
    assert store.installations.delete("T0AAA") is True
    assert store.installations.delete("T0AAA") is False
    assert [i.team for i in store.installations.all()] == ["T0BBB"]


def test_a_state_is_accepted_once(store: StoreParts):
    store.installations.issue_state("s1")
    assert store.installations.consume_state("s1", TEN_MINUTES) is True
    assert store.installations.consume_state("s1", TEN_MINUTES) is False
    assert store.installations.consume_state("never-issued", TEN_MINUTES) is False


def test_a_state_expires(store: StoreParts, clock: Clock):
    store.installations.issue_state("old")
    store.installations.issue_state("young")
    clock.advance(TEN_MINUTES)
    assert store.installations.consume_state("old", TEN_MINUTES) is False
    store.installations.issue_state("fresh")
    clock.advance(TEN_MINUTES - 1)
    assert store.installations.consume_state("fresh", TEN_MINUTES) is True


def test_two_servers_cannot_both_accept_one_state(
    store: StoreParts, backend: Backend, clock: Clock
):
    other = backend.reopen(store, clock)
    try:
        store.installations.issue_state("shared")
        accepted = [
            other.installations.consume_state("shared", TEN_MINUTES),
            store.installations.consume_state("shared", TEN_MINUTES),
        ]
        assert accepted == [True, False]
    finally:
        other.close()
