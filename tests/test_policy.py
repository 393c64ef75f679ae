"""Anti-spam rules and suppression: who may receive what, and when a campaign may start."""

from __future__ import annotations

import pytest

from bot.errors import PolicyError, UserInputError
from bot.handlers import campaign, policy, preflight
from bot.models import Recipient, RecipientList
from bot.wiring import build_deps

POSTAL = "Mailbolt Inc., 1 Harbour Street, Bristol BS1 4QA, UK"
NEWS = {"headline": "Spring news", "body": "We shipped it."}
WELCOME = {"team": "Mailbolt", "start_url": "https://mailbolt.example/start"}


def people(*emails: str) -> list[Recipient]:
    return [Recipient(e, "", {}, i + 2) for i, e in enumerate(emails)]


@pytest.fixture
def history(store):
    """One unsubscribe and one hard bounce, stored the way the endpoint and scan do."""
    store.suppressions.add_unsubscribe("Unsub@Example.com", source="one-click", campaign_id=1)
    store.suppressions.record_bounce("g1", kind="hard", email="gone@example.com")
    store.suppressions.record_bounce("g2", kind="soft", email="full@example.com")
    return store


def test_marketing_skips_unsubscribed_and_hard_bounced(history):
    keep, dropped = policy.suppress(
        history,
        people("ann@example.com", "UNSUB@example.com", "gone@Example.com", "full@example.com"),
        "marketing",
    )
    assert [r.email for r in keep] == ["ann@example.com", "full@example.com"]
    assert [(d.line, d.text, d.reason) for d in dropped] == [
        (3, "UNSUB@example.com", "has unsubscribed"),
        (4, "gone@Example.com", "bounced permanently before"),
    ]


def test_transactional_reaches_the_unsubscribed_but_never_a_hard_bounce(history):
    keep, dropped = policy.suppress(
        history, people("unsub@example.com", "gone@example.com"), "transactional"
    )
    assert [r.email for r in keep] == ["unsub@example.com"]
    assert [d.text for d in dropped] == ["gone@example.com"]


def test_suppression_reason_at_send_time(history):
    assert (
        policy.suppression_reason(history, "unsub@example.com", "marketing") == "has unsubscribed"
    )
    assert policy.suppression_reason(history, "unsub@example.com", "transactional") is None
    assert policy.suppression_reason(history, "gone@example.com", "transactional") == (
        "bounced permanently before"
    )
    assert policy.suppression_reason(history, "full@example.com", "marketing") is None


def test_unsubscribe_and_resubscribe_on_someones_behalf(store):
    assert policy.unsubscribe(store, " Bob@Example.COM", actor="slack:U123") == (
        "Bob@example.com",
        True,
    )
    assert policy.unsubscribe(store, "bob@example.com", actor="slack:U123")[1] is False
    (row,) = store.suppressions.unsubscribes()
    assert (row.email, row.source) == ("bob@example.com", "slack:U123")
    with pytest.raises(UserInputError, match="not a valid email address"):
        policy.unsubscribe(store, "bob at example.com", actor="slack:U123")
    assert policy.resubscribe(store, "BOB@example.com ", actor="slack:U9") == (
        "BOB@example.com",
        True,
    )
    assert policy.resubscribe(store, "bob@example.com", actor="slack:U9")[1] is False
    assert store.audit.recent()[0].actor == "slack:U9"


# -- campaigns -----------------------------------------------------------------


def request(template: str, *emails: str) -> campaign.CampaignRequest:
    return campaign.CampaignRequest(
        template=template,
        recipients=RecipientList(people(*emails)),
        requested_by="test",
        common_vars=NEWS if template == "newsletter" else WELCOME,
    )


def test_a_marketing_campaign_refuses_to_start_without_a_postal_address(settings, store):
    deps = build_deps(settings.replace(postal_address=""), store)
    with pytest.raises(PolicyError, match="set POSTAL_ADDRESS") as caught:
        preflight.preflight(request("newsletter", "ann@example.com"), deps)
    assert caught.value.field == "template"
    assert store.campaigns.recent() == []


def test_transactional_mail_needs_no_postal_address(settings, store):
    deps = build_deps(settings.replace(postal_address=""), store)
    plan = preflight.preflight(request("welcome", "ann@example.com"), deps)
    assert [r.email for r in plan.to_send] == ["ann@example.com"]


def test_the_preview_counts_what_suppression_removed(settings, history):
    deps = build_deps(settings, history)
    plan = preflight.preflight(
        request("newsletter", "ann@example.com", "unsub@example.com", "gone@example.com"), deps
    )
    assert [r.email for r in plan.to_send] == ["ann@example.com"]
    assert len(plan.suppressed) == 2


def test_check_marketing_settings_only_concerns_marketing(settings, store):
    catalogue = build_deps(settings, store).catalogue
    policy.check_marketing_settings(catalogue.get("welcome"), "")
    with pytest.raises(PolicyError, match="POSTAL_ADDRESS"):
        policy.check_marketing_settings(catalogue.get("newsletter"), "  ")
    policy.check_marketing_settings(catalogue.get("newsletter"), POSTAL)
