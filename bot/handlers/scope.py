"""Whose data a request may touch: everything a Slack workspace owns is its own.

A request from Slack carries its workspace (``team``, e.g. ``T0AAA``); one from
the operator's CLI carries ``None``: whoever holds the database sees everything.
Every object a person names by an ID they could edit (a button's ``value``, a
view's ``private_metadata``, ``/sendmail export 12``) is looked up here, once per
kind of object, and an object of another workspace is answered exactly like one
that does not exist: the answer must not tell that it exists elsewhere.

The Slack layer decides nothing of this: it passes the request's team along. So
the rule holds whatever a listener does, and the handler tests prove it with two
workspaces' data in one store.
"""

from __future__ import annotations

from bot.errors import UserInputError
from bot.ports import SenderAccounts, StoreParts
from bot.records import Campaign, SenderAccount

#: The operator's view (the CLI): every workspace's data.
EVERYONE: None = None


def no_such_campaign(campaign_id: int) -> UserInputError:
    """The one answer for a campaign that does not exist *for this asker*."""
    return UserInputError(f"There is no campaign #{campaign_id}.", field="campaign")


def sees_campaign(campaign: Campaign, team: str | None) -> bool:
    """Whether a request of workspace ``team`` (``None``: the operator) may see it.

    A campaign belongs to the workspace it was started in. One started on the
    command line (team ``''``) is the operator's, and like the operator's sender
    accounts and unsubscribes it serves every workspace: so a single-workspace
    install keeps working as before (a CLI send approved in Slack, its status
    shown there). An operator of many workspaces files a CLI campaign under one
    with ``send --team``.
    """
    return team is None or (campaign.team or "") in ("", team)


def find_campaign(store: StoreParts, campaign_id: int, team: str | None) -> Campaign | None:
    """Campaign ``campaign_id`` if it exists for ``team``; None otherwise (also when
    it belongs to another workspace)."""
    campaign = store.campaigns.get(campaign_id)
    if campaign is None or not sees_campaign(campaign, team):
        return None
    return campaign


def campaign_of(store: StoreParts, campaign_id: int, team: str | None) -> Campaign:
    """Campaign ``campaign_id`` as seen by ``team``; ``UserInputError`` "There is no
    campaign #N." when it does not exist or is another workspace's."""
    campaign = find_campaign(store, campaign_id, team)
    if campaign is None:
        raise no_such_campaign(campaign_id)
    return campaign


def sees_account(account: SenderAccount, team: str | None) -> bool:
    """Whether workspace ``team`` may see and use a sender account: its own, and the
    operator's (team ``''``, linked on the CLI), which serves every workspace."""
    return team is None or account.team in ("", team)


def account_of(
    senders: SenderAccounts, name_or_address: str, team: str | None
) -> SenderAccount | None:
    """The sender account named (by address or name) as ``team`` sees it, or None."""
    account = senders.get(name_or_address.strip().lower()) or senders.find(name_or_address)
    if account is None or not sees_account(account, team):
        return None
    return account


def link_team(store: StoreParts, campaign_id: int) -> str:
    """The workspace an unsubscribe link suppresses for: its campaign's.

    A link names its campaign (signed), so the team comes from there. A link whose
    campaign is gone, or one of a campaign from the CLI, gives ``''``: the address
    is suppressed in every workspace, the safe side.
    """
    campaign = store.campaigns.get(campaign_id)
    return (campaign.team or "") if campaign is not None else ""
