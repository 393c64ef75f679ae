"""Sender accounts: who may send from which account, and connecting one's own Gmail.

Owns the rules, for Slack and the CLI alike:
- A person may use their own personal account, and a shared account that is open
  to everyone who may send or that names them or one of their Slack user groups.
  Only active accounts can be chosen.
- The default From is one's own account, else the first shared one.
- The account chosen on a form is checked again here, on the server, whatever
  the form sent: an edited payload gets the same refusal as a wrong choice.
- "Connect your Gmail" is a one-time ``state`` bound to the Slack user and
  workspace, to the browser that opened it, and to a PKCE verifier kept sealed;
  it expires after ``STATE_TTL_SECONDS`` and a second use finds nothing.

Grants arrive from ``GrantFlow`` and are sealed (``Sealer``) before the store
sees them; this module never imports Google's libraries or a store.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from bot.errors import AuthError, UserInputError
from bot.handlers import scope
from bot.ports import GrantFlow, Sealer, SenderAccounts
from bot.records import (
    GrantClient,
    OAuthState,
    SenderAccount,
    SenderKind,
    SenderStatus,
    account_key,
)

log = logging.getLogger(__name__)

#: How long a "Connect your Gmail" link stays usable after App Home showed it.
STATE_TTL_SECONDS = 30 * 60.0
#: Who the CLI acts as in the audit log.
CLI_ACTOR = "cli"
#: The field of the compose form the From choice is shown on.
FROM_FIELD = "from"

#: Given a set of Slack user-group ids, the ones the person is a member of.
GroupsOf = Callable[[frozenset[str]], frozenset[str]]


def no_groups(groups: frozenset[str]) -> frozenset[str]:
    return frozenset()


# -- who may use what --------------------------------------------------------------------


def may_use(
    account: SenderAccount,
    user: str,
    groups_of: GroupsOf = no_groups,
    team: str | None = None,
) -> bool:
    """Whether ``user`` of workspace ``team`` may send from ``account`` now (active
    accounts only; never another workspace's, ``scope.sees_account``)."""
    if account.status != SenderStatus.ACTIVE or not scope.sees_account(account, team):
        return False
    if account.kind == SenderKind.PERSONAL:
        return bool(user) and account.owner == user
    if account.everyone or user in account.users:
        return True
    return bool(account.groups and groups_of(account.groups))


def usable(
    accounts: Iterable[SenderAccount],
    user: str,
    groups_of: GroupsOf = no_groups,
    team: str | None = None,
) -> list[SenderAccount]:
    """The accounts ``user`` (of workspace ``team``) may send from: their own first,
    then shared ones."""
    mine = [a for a in accounts if may_use(a, user, groups_of, team)]
    return sorted(mine, key=lambda a: (a.kind != SenderKind.PERSONAL, a.created_at, a.address))


def choose(
    senders: SenderAccounts,
    user: str,
    address: str,
    groups_of: GroupsOf = no_groups,
    team: str | None = None,
) -> SenderAccount:
    """The account to send from: ``address`` if ``user`` of workspace ``team`` may
    use it, else the default when ``address`` is empty. Refusals name the field and
    what to do; another workspace's account is "not connected", as if unknown."""
    wanted = account_key(address)
    if wanted:
        account = senders.get(wanted)
        if account is not None and not scope.sees_account(account, team):
            account = None
        if account is None or not may_use(account, user, groups_of, team):
            why = "is not connected" if account is None else _why_not(account)
            raise UserInputError(
                f"You may not send from {wanted}: it {why}. Choose one of the accounts "
                "offered, or ask an admin for access.",
                field=FROM_FIELD,
            )
        return account
    choices = usable(senders.all(team=team), user, groups_of, team)
    if not choices:
        raise UserInputError(
            "You have no account to send from yet: open mailbolt's App Home and click "
            "'Connect your Gmail', or ask an admin for access to a shared account.",
            field=FROM_FIELD,
        )
    return choices[0]


def _why_not(account: SenderAccount) -> str:
    if account.status != SenderStatus.ACTIVE:
        return "lost its Gmail authorization and must be reconnected"
    if account.kind == SenderKind.PERSONAL:
        return "is another person's own account"
    return "is a shared account you have not been given access to"


def named_account(senders: SenderAccounts, address: str) -> SenderAccount:
    """The account ``--from`` names (by address or name), active or not."""
    account = senders.get(account_key(address)) or senders.find(address)
    if account is None:
        known = ", ".join(a.address for a in senders.all()) or "none yet"
        raise UserInputError(
            f"There is no sender account {address!r} (known: {known}). Link one with "
            "`python -m bot accounts link NAME`.",
            field=FROM_FIELD,
        )
    return account


def cli_account(senders: SenderAccounts, address: str) -> SenderAccount:
    """``send --from``: CLI users administer the machine, but the account must exist
    and be active."""
    account = named_account(senders, address)
    if account.status != SenderStatus.ACTIVE:
        raise AuthError(
            f"The sender account {account.address} lost its Gmail authorization "
            f"({account.status_reason or 'revoked'}). {reconnect_hint(account)}"
        )
    return account


#: How every sentence saying how to reconnect an account starts (the Slack layer
#: shows it instead of its generic advice).
RECONNECT = "To reconnect it"


def reconnect_hint(account: SenderAccount) -> str:
    """What to do when ``account``'s grant stops working, in one sentence."""
    if account.client == GrantClient.WEB:
        return (
            f"{RECONNECT}, {_owner(account)} opens mailbolt's App Home in Slack and clicks "
            f"'Connect your Gmail', signing in as {account.address}."
        )
    if account.client == GrantClient.INSTALLED:
        name = account.name or account.address
        return f"{RECONNECT}, an admin runs `python -m bot accounts link {name}`."
    return f"{RECONNECT}, an admin runs `python -m bot auth`."


def _owner(account: SenderAccount) -> str:
    return f"<@{account.owner}>" if account.owner else "its owner"


# -- connecting one's own Gmail ----------------------------------------------------------


@dataclass(frozen=True)
class Connected:
    """A finished "Connect your Gmail"."""

    account: SenderAccount
    replaced: bool


def begin_connect(senders: SenderAccounts, sealer: Sealer, user: str, team: str, now: float) -> str:
    """A new single-use state for ``user`` (the link App Home shows); old ones are dropped."""
    senders.drop_states_before(now - STATE_TTL_SECONDS)
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(72)[:96]  # RFC 7636: 43–128 characters
    senders.add_state(OAuthState(state, user, team, sealer.seal(verifier), now))
    return state


def browser_key(cookie: str) -> str:
    """What the store keeps of a browser's cookie: a hash, so the database alone
    cannot finish someone's flow."""
    return hashlib.sha256(cookie.encode("utf-8")).hexdigest()


def open_link(
    senders: SenderAccounts, flow: GrantFlow, sealer: Sealer, state: str, cookie: str, now: float
) -> str:
    """The link was opened in a browser (whose ``cookie`` we just set): tie the state
    to it and return Google's consent URL."""
    bound = senders.bind_state(state, browser_key(cookie)) if state else None
    if bound is None:
        raise UserInputError(
            "This link was already opened, or is not one mailbolt made. Open mailbolt's "
            "App Home in Slack again and click 'Connect your Gmail'.",
            field="state",
        )
    if now - bound.created_at > STATE_TTL_SECONDS:
        senders.take_state(state)
        raise UserInputError(_EXPIRED, field="state")
    return flow.authorization_url(state, sealer.open(bound.sealed_verifier))


_EXPIRED = (
    "This link has expired. Open mailbolt's App Home in Slack again and click 'Connect your Gmail'."
)


def finish_connect(
    senders: SenderAccounts,
    flow: GrantFlow,
    sealer: Sealer,
    *,
    state: str,
    code: str,
    error: str,
    cookie: str,
    now: float,
) -> Connected:
    """Google sent the browser back: check the state, exchange the code, keep the grant.

    Nothing is stored unless every check passes.
    """
    taken = senders.take_state(state) if state else None
    if taken is None:
        raise UserInputError(
            "This sign-in was already used, or did not start in mailbolt. Nothing was "
            "connected. Open mailbolt's App Home in Slack and click 'Connect your Gmail'.",
            field="state",
        )
    if not taken.browser or not cookie or browser_key(cookie) != taken.browser:
        raise UserInputError(
            "This sign-in finished in a different browser from the one that started it, so "
            "it was refused and nothing was connected. Start again from mailbolt's App Home.",
            field="state",
        )
    if now - taken.created_at > STATE_TTL_SECONDS:
        raise UserInputError(_EXPIRED, field="state")
    if error:
        raise AuthError(
            f"Google did not grant access ({error}). Nothing was connected; click "
            "'Connect your Gmail' again and allow sending."
        )
    grant = flow.exchange(code, sealer.open(taken.sealed_verifier))
    address = account_key(grant.address)
    old = senders.get(address)
    if old is not None and (old.kind != SenderKind.PERSONAL or old.owner != taken.user):
        # Not revoked: at Google that would end the grant the account already has.
        who = "a shared account" if old.kind == SenderKind.SHARED else "another person's account"
        raise UserInputError(
            f"{address} is already connected as {who}. Nothing was changed; sign in with "
            "your own Gmail account.",
            field="state",
        )
    account = SenderAccount(
        address=address,
        kind=SenderKind.PERSONAL,
        client=GrantClient.WEB,
        owner=taken.user,
        team=taken.team,
        scopes=grant.scopes,
        sealed_grant=sealer.seal(grant.refresh_token),
    )
    action = "account.reconnected" if old else "account.connected"
    senders.save(account, actor=taken.user, action=action)
    return Connected(account, replaced=old is not None)


def disconnect(
    senders: SenderAccounts,
    flow: GrantFlow,
    sealer: Sealer,
    user: str,
    address: str,
    team: str | None = None,
) -> str:
    """Revoke ``user``'s own grant at Google and forget it; a sentence saying what
    happened. Only an account of the asker's workspace ``team``."""
    account = senders.get(account_key(address))
    if (
        account is None
        or account.kind != SenderKind.PERSONAL
        or account.owner != user
        or not scope.sees_account(account, team)
    ):
        raise UserInputError(f"You have no connected account {address}.", field=FROM_FIELD)
    note = revoke_quietly(flow, sealer, account)
    senders.remove(account.address, actor=user, action="account.disconnected")
    return f"Disconnected {account.address}.{note}"


def revoke_quietly(flow: GrantFlow, sealer: Sealer, account: SenderAccount) -> str:
    """Revoke at Google; a failure is said, not raised (the grant is forgotten anyway)."""
    if not account.sealed_grant:
        return ""
    try:
        flow.revoke(sealer.open(account.sealed_grant))
    except AuthError as exc:
        log.warning("revoking the grant of %s failed: %s", account.address, exc)
        return (
            " Google could not be told to revoke the grant; remove mailbolt at "
            "https://myaccount.google.com/permissions to be sure."
        )
    return " Google revoked mailbolt's access."


# -- shared accounts ---------------------------------------------------------------------


def allow(
    senders: SenderAccounts,
    name: str,
    *,
    actor: str,
    users: Iterable[str] = (),
    groups: Iterable[str] = (),
    everyone: bool | None = None,
    replace_lists: bool = False,
) -> SenderAccount:
    """Give Slack users or user groups (or everyone) the use of a shared account."""
    account = _shared(senders, name)
    new_users = set() if replace_lists else set(account.users)
    new_groups = set() if replace_lists else set(account.groups)
    new_users |= {u.strip() for u in users if u.strip()}
    new_groups |= {g.strip() for g in groups if g.strip()}
    open_to_all = account.everyone if everyone is None else everyone
    senders.set_access(
        account.address,
        everyone=open_to_all,
        users=frozenset(new_users),
        groups=frozenset(new_groups),
        actor=actor,
    )
    return replace(
        account, everyone=open_to_all, users=frozenset(new_users), groups=frozenset(new_groups)
    )


def _shared(senders: SenderAccounts, name: str) -> SenderAccount:
    account = senders.find(name)
    if account is None or account.kind != SenderKind.SHARED:
        raise UserInputError(f"There is no shared sender account {name!r}.", field="name")
    return account


def may_administer(admins: frozenset[str], user: str) -> bool:
    """Whether a Slack user administers shared accounts (``ADMIN_SLACK_USERS``)."""
    return user in admins
