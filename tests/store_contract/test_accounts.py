"""The sending account (issue 8): quota use and the rolling day belong to the account
that sent; an uncertain attempt re-sent by a person keeps counting; test sends are
recorded apart from campaigns but spend the same day.
"""

from __future__ import annotations

from bot.ports import StoreParts
from bot.records import LEGACY_ACCOUNT, SANDBOX_ACCOUNT, CampaignStatus, MessageState
from tests.store_contract.conftest import GMAIL, START, Clock, new_campaign

Q, ST, F, U = MessageState.QUEUED, MessageState.SENT, MessageState.FAILED, MessageState.UNCERTAIN
OTHER = "other@example.com"


def send(store: StoreParts, row_id: int, account: str) -> None:
    assert store.outbox.claim(row_id, account)
    assert store.outbox.mark_sent(row_id, f"p-{row_id}").changed


def send_campaign(store: StoreParts, n: int, account: str, prefix: str) -> int:
    campaign_id = new_campaign(store, *[Q] * n, prefix=prefix, account=account)
    for row in store.outbox.messages(campaign_id):
        send(store, row.id, account)
    return campaign_id


def test_campaigns_and_messages_record_their_account(store: StoreParts):
    campaign_id = new_campaign(store, Q, Q, account=SANDBOX_ACCOUNT)
    campaign = store.campaigns.get(campaign_id)
    assert campaign is not None and campaign.account == SANDBOX_ACCOUNT
    first, second = store.outbox.messages(campaign_id)
    assert (first.account, second.account) == (SANDBOX_ACCOUNT, SANDBOX_ACCOUNT)
    # The account that claims a message is the one whose day it counts against.
    assert store.outbox.claim(second.id, GMAIL)
    assert store.outbox.messages(campaign_id)[1].account == GMAIL


def test_daily_counts_belong_to_the_account_that_sent(store: StoreParts, clock: Clock):
    send_campaign(store, 3, SANDBOX_ACCOUNT, "sandbox-")
    clock.advance(10)
    send_campaign(store, 2, GMAIL, "gmail-")
    clock.advance(10)
    send_campaign(store, 1, OTHER, "other-")
    assert store.outbox.sent_since(START, SANDBOX_ACCOUNT) == 3
    assert store.outbox.sent_since(START, GMAIL) == 2
    assert store.outbox.sent_since(START, OTHER) == 1
    assert store.outbox.oldest_sent_since(START, SANDBOX_ACCOUNT) == START
    assert store.outbox.oldest_sent_since(START, GMAIL) == START + 10
    assert store.outbox.oldest_sent_since(START, OTHER) == START + 20
    assert store.outbox.oldest_sent_since(START, "nobody@example.com") is None


def test_quota_units_belong_to_the_account_that_spent_them(store: StoreParts):
    store.quota.record_units(100, "messages.send", account=GMAIL)
    store.quota.record_units(5, "messages.list", account=OTHER)
    store.quota.record_units(100, "messages.send", account=SANDBOX_ACCOUNT)
    assert store.quota.units_since(START, GMAIL) == 100
    assert store.quota.units_since(START, OTHER) == 5
    assert store.quota.units_since(START, SANDBOX_ACCOUNT) == 100


def test_legacy_rows_count_against_every_gmail_account_never_the_sandbox(store: StoreParts):
    """Rows from before accounts were recorded cannot be told apart: to be safe they
    use up every Gmail account's day and quota, but never the sandbox's."""
    send_campaign(store, 2, LEGACY_ACCOUNT, "legacy-")
    store.quota.record_units(100, "messages.send", account=LEGACY_ACCOUNT)
    send_campaign(store, 1, GMAIL, "gmail-")
    assert store.outbox.sent_since(START, GMAIL) == 3
    assert store.outbox.sent_since(START, OTHER) == 2
    assert store.outbox.sent_since(START, SANDBOX_ACCOUNT) == 0
    assert store.outbox.oldest_sent_since(START, OTHER) == START
    assert store.outbox.oldest_sent_since(START, SANDBOX_ACCOUNT) is None
    assert store.quota.units_since(START, GMAIL) == 100
    assert store.quota.units_since(START, OTHER) == 100
    assert store.quota.units_since(START, SANDBOX_ACCOUNT) == 0


def test_a_resent_uncertain_message_keeps_its_earlier_attempt_counted(
    store: StoreParts, clock: Clock
):
    campaign_id = new_campaign(store, Q)
    (row,) = store.outbox.messages(campaign_id)
    assert store.outbox.claim(row.id, GMAIL)
    assert store.outbox.mark_uncertain(row.id, "lost response").changed
    clock.advance(100)
    assert store.outbox.resend_uncertain(row.id).changed
    (row,) = store.outbox.messages(campaign_id)
    assert (row.state, row.last_error, row.prior_claimed_at) == (Q, None, START)
    assert store.outbox.sent_since(START, GMAIL) == 1  # queued, but it may have gone out
    clock.advance(100)
    send(store, row.id, GMAIL)
    assert store.outbox.sent_since(START, GMAIL) == 2  # both attempts use up the day
    assert store.outbox.sent_since(START + 1, GMAIL) == 1
    assert store.outbox.oldest_sent_since(START, GMAIL) == START
    assert store.outbox.sent_since(START, SANDBOX_ACCOUNT) == 0


def test_only_an_uncertain_message_can_be_resent_that_way(store: StoreParts):
    campaign_id = new_campaign(store, Q, F)
    queued, failed = store.outbox.messages(campaign_id)
    for row in (queued, failed):
        outcome = store.outbox.resend_uncertain(row.id)
        assert (outcome.changed, outcome.state) == (False, row.state)
    assert [r.prior_claimed_at for r in store.outbox.messages(campaign_id)] == [None, None]
    assert store.outbox.sent_since(START, GMAIL) == 0


def test_test_sends_are_recorded_apart_but_spend_their_account_s_day(
    store: StoreParts, clock: Clock
):
    first = store.test_sends.start(
        account=GMAIL,
        requested_by="U1",
        email="me@example.com",
        template="welcome",
        subject="[TEST] Welcome",
        message_id="<t1@mailbolt.example>",
        reference="preview-1",
    )
    in_flight = store.test_sends.by_reference("preview-1")
    assert in_flight is not None and in_flight.state == MessageState.SENDING
    assert store.outbox.sent_since(START, GMAIL) == 1  # in flight: it may go out
    store.test_sends.finish(first, ST, provider_id="gm-t1")
    clock.advance(10)
    second = store.test_sends.start(
        account=GMAIL,
        requested_by="U1",
        email="me@example.com",
        template="welcome",
        subject="[TEST] Welcome",
        message_id="<t2@mailbolt.example>",
        reference="preview-1",
    )
    store.test_sends.finish(second, F, error="refused")

    latest = store.test_sends.by_reference("preview-1")
    assert latest is not None
    assert (latest.id, latest.state, latest.last_error) == (second, F, "refused")
    assert store.test_sends.by_reference("preview-2") is None
    sent, failed = store.test_sends.recent()[::-1]
    assert (sent.id, sent.state, sent.provider_id, sent.account) == (first, ST, "gm-t1", GMAIL)
    assert (sent.email, sent.subject, sent.template, sent.reference) == (
        "me@example.com",
        "[TEST] Welcome",
        "welcome",
        "preview-1",
    )
    assert failed.id == second
    # Not a campaign, not in delivery statistics ...
    assert store.campaigns.recent() == []
    assert store.outbox.delivery_counts().sent == 0
    # ... but the one that went out spent the account's day; the failed one did not.
    assert store.outbox.sent_since(START, GMAIL) == 1
    assert store.outbox.oldest_sent_since(START, GMAIL) == START
    assert store.outbox.sent_since(START, SANDBOX_ACCOUNT) == 0
    assert store.outbox.sent_since(START + 1, GMAIL) == 0
    actions = [e.action for e in store.audit.recent()]
    assert actions.count("test.started") == 2 and actions.count("test.finished") == 2


def test_completed_campaigns_with_requeued_mail_are_due_again(store: StoreParts):
    """A person re-queued messages of a completed campaign (from the CLI while the
    server runs): the server picks them up. Paused and cancelled ones stay put."""
    completed = new_campaign(store, Q, prefix="completed-")
    store.campaigns.update(completed, status=CampaignStatus.COMPLETED)
    for status in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED):
        store.campaigns.update(new_campaign(store, Q, prefix=f"{status}-"), status=status)
    finished = new_campaign(store, ST, prefix="finished-")
    store.campaigns.update(finished, status=CampaignStatus.COMPLETED)
    assert store.campaigns.due(START) == [completed]


def test_newest_id_notices_new_campaigns(store: StoreParts):
    assert store.campaigns.newest_id() == 0
    first = new_campaign(store, prefix="a-")
    assert store.campaigns.newest_id() == first
    second = new_campaign(store, prefix="b-")
    assert store.campaigns.newest_id() == second > first
