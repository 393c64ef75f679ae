"""The rules of who may send from which account (``bot.handlers.senders``), the use
case both edges call: personal accounts are their owner's, shared ones follow their
lists (users, user groups, everyone), only active accounts can be chosen, and the
default is one's own."""

from __future__ import annotations

import pytest

from bot.errors import AuthError, UserInputError
from bot.handlers import senders
from bot.records import GrantClient, SenderAccount, SenderKind, SenderStatus
from bot.store import Store

MINE = SenderAccount("me@acme.example", SenderKind.PERSONAL, GrantClient.WEB, owner="U0ME")
TEAM = SenderAccount(
    "team@acme.example", SenderKind.SHARED, GrantClient.INSTALLED, name="team", everyone=True
)
DESIGN = SenderAccount(
    "design@acme.example",
    SenderKind.SHARED,
    GrantClient.INSTALLED,
    name="design",
    groups=frozenset({"S0DESIGN"}),
)


def in_design(groups: frozenset[str]) -> frozenset[str]:
    return groups & {"S0DESIGN"}


@pytest.fixture
def store(tmp_path) -> Store:
    opened = Store(tmp_path / "rules.db")
    for account in (DESIGN, TEAM, MINE):
        opened.senders.save(account, actor="test", action="account.linked")
    yield opened
    opened.close()


def test_personal_accounts_are_their_owners_only():
    assert senders.may_use(MINE, "U0ME")
    assert not senders.may_use(MINE, "U0OTHER")
    assert not senders.may_use(MINE, "")


def test_group_members_may_use_a_shared_account_others_may_not():
    assert senders.may_use(DESIGN, "U0ANY", in_design)
    assert not senders.may_use(DESIGN, "U0ANY")  # Slack says: in no group
    assert senders.may_use(TEAM, "U0ANY")


def test_a_revoked_account_cannot_be_chosen_even_by_its_owner():
    revoked = SenderAccount(
        MINE.address, MINE.kind, MINE.client, owner="U0ME", status=SenderStatus.REVOKED
    )
    assert not senders.may_use(revoked, "U0ME")


def test_ones_own_account_comes_first_and_is_the_default(store):
    usable = senders.usable(store.senders.all(), "U0ME", in_design)
    assert [a.address for a in usable] == [MINE.address, DESIGN.address, TEAM.address]
    assert senders.choose(store.senders, "U0ME", "", in_design).address == MINE.address
    assert senders.choose(store.senders, "U0ME", "TEAM@acme.example").address == TEAM.address


def test_a_refusal_names_the_field_and_the_reason(store):
    with pytest.raises(UserInputError, match="another person's own account") as refused:
        senders.choose(store.senders, "U0OTHER", MINE.address)
    assert refused.value.field == senders.FROM_FIELD
    with pytest.raises(UserInputError, match="not been given access"):
        senders.choose(store.senders, "U0OTHER", DESIGN.address)


def test_the_cli_needs_an_existing_active_account(store):
    assert senders.cli_account(store.senders, "design").address == DESIGN.address
    with pytest.raises(UserInputError, match="no sender account"):
        senders.cli_account(store.senders, "nobody@acme.example")
    store.senders.set_status(TEAM.address, SenderStatus.REVOKED, "invalid_grant", actor="x")
    with pytest.raises(AuthError, match="accounts link team"):
        senders.cli_account(store.senders, TEAM.address)
