"""Suppression is per workspace (issue 12): the one-click link of a campaign of
workspace A suppresses the address for A only, a link whose campaign is gone (or
is the command line's) for every workspace, and a hard bounce found in a sender
account's mailbox for that account's workspace. Real HTTP to the unsubscribe app,
the real Google client against the Gmail fake."""

from __future__ import annotations

import dataclasses

from bot.handlers import policy
from bot.handlers.unsubscribe import load_secret, make_token
from bot.models import Recipient
from bot.records import GrantClient, SenderAccount, SenderKind
from bot.wiring import Wiring
from tests.test_bounces import PEOPLE, fake, reader, send_news, sent_to  # noqa: F401 (fixtures)
from tests.test_scope_handlers import TA, TB
from tests.test_unsubscribe import server  # noqa: F401 (fixture)


def _campaign(store, team: str) -> int:
    from bot.records import NewMessage

    n = store.campaigns.newest_id() + 1
    campaign_id, _ = store.campaigns.create(
        requested_by="U1",
        template="newsletter",
        category="marketing",
        subject="",
        common_vars={},
        team=team,
        messages=[NewMessage(email="ann@example.com", message_id=f"<m{n}@x>")],
    )
    return campaign_id


def _link(settings, email: str, campaign_id: int) -> str:
    secret = load_secret(settings.unsubscribe_secret, settings.database_path.parent)
    return f"/unsubscribe/{make_token(secret, email, campaign_id)}"


def test_a_link_of_workspace_a_unsubscribes_from_a_only(settings, store, server):  # noqa: F811
    of_a = _campaign(store, TA)
    status, _, _ = server.one_click(_link(settings, "Ann@example.com", of_a))
    assert status == 200
    s = store.suppressions
    assert s.unsubscribed_among(["ann@example.com"], TA) == {"ann@example.com"}
    assert s.unsubscribed_among(["ann@example.com"], TB) == set()
    assert [(u.email, u.team, u.campaign_id) for u in s.unsubscribes()] == [
        ("ann@example.com", TA, of_a)
    ]
    # The confirmation page says so for A's link, and offers B's link the button.
    of_b = _campaign(store, TB)
    _, _, page_a = server.request("GET", _link(settings, "ann@example.com", of_a))
    _, _, page_b = server.request("GET", _link(settings, "ann@example.com", of_b))
    assert "already unsubscribed" in page_a.decode()
    assert "already unsubscribed" not in page_b.decode()


def test_a_link_of_a_campaign_gone_or_of_the_cli_unsubscribes_everywhere(
    settings,
    store,
    server,  # noqa: F811
):
    for email, campaign_id in (("bob@example.com", 999), ("cy@example.com", _campaign(store, ""))):
        status, _, _ = server.one_click(_link(settings, email, campaign_id))
        assert status == 200
        for team in (TA, TB, "T0CCC"):
            assert store.suppressions.unsubscribed_among([email], team) == {email}


def test_a_hard_bounce_suppresses_for_the_mailbox_accounts_workspace(
    reader,  # noqa: F811
    store,
    gmail_fake,
):
    wiring = Wiring(reader, store)
    account = wiring.account
    existing = store.senders.get(account)
    base = existing or SenderAccount(
        address=account, kind=SenderKind.SHARED, client=GrantClient.TOKEN_FILE
    )
    store.senders.save(dataclasses.replace(base, team=TB), actor="cli", action="account.linked")
    send_news(reader, store, PEOPLE)
    gmail_fake.bounce(sent_to(gmail_fake, "bob@example.com"), "bob@example.com", "5.1.1")
    assert wiring.scan_bounces().hard == 1
    recipients = [Recipient(e, "", {}, i + 2) for i, e in enumerate(PEOPLE)]
    _, dropped_b = policy.suppress(store, recipients, "transactional", TB)
    _, dropped_a = policy.suppress(store, recipients, "transactional", TA)
    assert [r.text for r in dropped_b] == ["bob@example.com"]
    assert dropped_a == []
