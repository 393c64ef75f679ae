"""The campaign use case: preflight, the outbox loop, retries, deferral, recovery.

The sandbox transport is real; ``ScriptedTransport`` is a test double of the
``Transport`` port that answers from a script, so every error class can be hit.
"""

from __future__ import annotations

import email
import threading
from email import policy as email_policy

import pytest

from bot.errors import (
    AuthError,
    PermanentSendError,
    PolicyError,
    QuotaDeferred,
    TemplateError,
    TransientSendError,
    UncertainSendError,
    UserInputError,
)
from bot.handlers import campaign, preflight, resolution, send_loop
from bot.handlers.resolution import RECONCILE_POLL_SECONDS
from bot.mail.sandbox import SandboxTransport
from bot.models import OutgoingMessage, Recipient, RecipientList, Rejected
from bot.wiring import build_deps

WELCOME_VARS = {"team": "Mailbolt", "start_url": "https://mailbolt.example/start"}
NEWS_VARS = {"headline": "Big news", "body": "We shipped it."}


class ScriptedTransport:
    """Answers each send from ``script[recipient]`` (a list of outcomes, in order)."""

    name = "scripted"

    def __init__(self, script=None, max_in_flight=2, sent_ids=None):
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.max_in_flight = max_in_flight
        self.calls: list[str] = []
        self.sent: dict[str, str] = {}
        self.sent_ids = sent_ids
        self.lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> str:
        with self.lock:
            self.calls.append(message.recipient)
            steps = self.script.get(message.recipient, [])
            outcome = steps.pop(0) if steps else None
        if isinstance(outcome, Exception):
            raise outcome
        provider_id = f"p-{len(self.calls)}"
        with self.lock:
            self.sent[message.message_id] = provider_id
        return provider_id

    def find_sent(self, message_id: str) -> str | None:
        if self.sent_ids is None:
            raise NotImplementedError
        return self.sent_ids.get(message_id)


class Clock:
    def __init__(self, now=1_800_000_000.0):
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def people(*emails: str, **variables: str) -> RecipientList:
    recipients = [
        Recipient(e, e.split("@")[0].title(), dict(variables), i + 2, "csv")
        for i, e in enumerate(emails)
    ]
    return RecipientList(recipients, columns=list(variables))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def deps(settings, store, clock):
    d = build_deps(settings, store)
    d.sleep = clock.sleep
    d.clock = clock
    store.clock = clock
    return d


def use(deps, transport):
    deps.transport = lambda: transport
    return transport


def start(deps, recipients, template="welcome", **kwargs):
    variables = kwargs.pop("common_vars", WELCOME_VARS if template == "welcome" else NEWS_VARS)
    request = campaign.CampaignRequest(
        template=template,
        recipients=recipients,
        requested_by="test",
        common_vars=variables,
        **kwargs,
    )
    plan = preflight.preflight(request, deps)
    campaign_id, _ = preflight.record(plan, deps)
    return campaign_id


def test_sandbox_sends_one_eml_per_recipient(deps, settings):
    cid = start(deps, people("a@example.com", "b@example.com", "c@example.com"))
    result = send_loop.run(cid, deps)
    assert result.status == "completed" and result.exit_code == 0
    assert result.counts["sent"] == 3
    files = sorted(settings.sandbox_outbox.glob("*.eml"))
    assert len(files) == 3
    rows = {r.email: r for r in deps.store.outbox.messages(cid)}
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email_policy.default)
        row = rows[msg["To"].addresses[0].addr_spec]
        assert msg["Message-ID"] == row.message_id
        assert row.provider_id == f"sandbox:{path.name}"
        assert row.attempts == 1
        assert "Mailbolt" in msg["Subject"]


def test_template_error_for_one_recipient_records_and_sends_nothing(deps, settings):
    """A pasted address mixed with CSV rows lacks the CSV's columns."""
    recipients = people("a@example.com", "b@example.com", team="Mailbolt")
    recipients.recipients[1] = Recipient("b@example.com", "B", {}, 3)
    with pytest.raises(TemplateError, match=r"b@example\.com"):
        start(
            deps,
            recipients,
            common_vars={"start_url": "https://x.example"},
            subject="Hi {{ team }}",
        )
    assert deps.store.campaigns.recent() == []
    assert not settings.sandbox_outbox.exists()


def test_missing_column_is_named_once(deps):
    with pytest.raises(TemplateError, match="'start_url'"):
        start(deps, people("a@example.com"), common_vars={"team": "X"})
    assert deps.store.campaigns.recent() == []


def test_invalid_lines_stop_the_campaign_unless_skipped(deps):
    recipients = people("a@example.com")
    recipients.rejected.append(Rejected(3, "bob@", "is not a valid address"))
    with pytest.raises(UserInputError, match="1 recipient line") as info:
        start(deps, recipients)
    assert info.value.field == "recipients" and info.value.line == 3
    assert deps.store.campaigns.recent() == []
    cid = start(deps, recipients, skip_invalid=True)
    assert send_loop.run(cid, deps).counts["sent"] == 1


def test_unknown_template_is_a_template_error(deps):
    with pytest.raises(TemplateError, match="nope"):
        start(deps, people("a@example.com"), template="nope")


def test_unsubscribed_skipped_for_marketing_not_transactional(deps):
    deps.store.suppressions.add_unsubscribe("B@example.com", "test")
    transport = use(deps, ScriptedTransport())
    news = start(deps, people("a@example.com", "b@example.com"), template="newsletter")
    result = send_loop.run(news, deps)
    assert result.counts == {**result.counts, "sent": 1, "skipped": 1}
    assert transport.calls == ["a@example.com"]
    welcome = start(deps, people("a@example.com", "b@example.com"))
    assert send_loop.run(welcome, deps).counts["sent"] == 2


def test_unsubscribe_during_a_campaign_is_honoured(deps):
    transport = use(deps, ScriptedTransport(max_in_flight=1))
    cid = start(deps, people("a@example.com", "b@example.com"), template="newsletter")
    deps.store.suppressions.add_unsubscribe("b@example.com", "one-click")
    result = send_loop.run(cid, deps)
    assert transport.calls == ["a@example.com"]
    assert result.counts["skipped"] == 1


def test_marketing_without_postal_address_refuses(deps):
    deps.policy.postal_address = ""
    with pytest.raises(PolicyError, match="POSTAL_ADDRESS"):
        start(deps, people("a@example.com"), template="newsletter")
    assert deps.store.campaigns.recent() == []


def test_marketing_messages_carry_one_click_unsubscribe(deps, settings):
    cid = start(deps, people("a@example.com"), template="newsletter")
    send_loop.run(cid, deps)
    (path,) = settings.sandbox_outbox.glob("*.eml")
    msg = email.message_from_bytes(path.read_bytes(), policy=email_policy.default)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Only the one-click link: nothing would read replies to a mailto: opt-out.
    (https,) = (part.strip(" <>") for part in msg["List-Unsubscribe"].split(","))
    assert https.startswith("http://localhost:3000/unsubscribe/v1.")
    assert https in msg.get_body(("html",)).get_content()
    assert https in msg.get_body(("plain",)).get_content()


def test_transient_errors_retry_with_backoff_honouring_retry_after(deps, clock):
    transport = use(
        deps,
        ScriptedTransport(
            {
                "a@example.com": [
                    TransientSendError("503"),
                    TransientSendError("429", retry_after=7.0),
                ]
            }
        ),
    )
    cid = start(deps, people("a@example.com"))
    result = send_loop.run(cid, deps)
    assert result.counts["sent"] == 1
    assert transport.calls == ["a@example.com"] * 3
    assert len(clock.sleeps) == 2 and clock.sleeps[1] >= 7.0
    assert deps.store.outbox.messages(cid)[0].attempts == 1  # one claim, three HTTP attempts
    assert deps.store.quota.units_since(0, deps.account) == 300


def test_transient_errors_give_up_after_max_attempts(deps):
    use(deps, ScriptedTransport({"a@example.com": [TransientSendError("503")] * 10}))
    cid = start(deps, people("a@example.com", "b@example.com"))
    result = send_loop.run(cid, deps)
    assert result.counts["failed"] == 1 and result.counts["sent"] == 1
    assert "gave up after 5 attempts" in result.failures[0][1]
    assert result.exit_code == 1


def test_permanent_error_fails_one_and_continues(deps):
    use(deps, ScriptedTransport({"b@example.com": [PermanentSendError("Invalid To header")]}))
    cid = start(deps, people("a@example.com", "b@example.com", "c@example.com"))
    result = send_loop.run(cid, deps)
    assert result.counts["sent"] == 2 and result.counts["failed"] == 1
    assert result.failures == [("b@example.com", "Invalid To header")]


def test_daily_quota_from_provider_defers_the_rest(deps, clock):
    resume = clock.now + 3600
    transport = use(
        deps,
        ScriptedTransport(
            {"b@example.com": [QuotaDeferred("Mail sending limit", resume_after=resume)]},
            max_in_flight=1,
        ),
    )
    cid = start(deps, people("a@example.com", "b@example.com", "c@example.com"))
    result = send_loop.run(cid, deps)
    assert result.counts["sent"] == 1 and result.counts["deferred"] == 2
    assert result.counts["failed"] == 0
    assert result.status == "running" and result.resume_at == resume
    assert send_loop.run(cid, deps).counts["sent"] == 1  # not yet due: nothing happens
    clock.now = resume + 1
    result = send_loop.run(cid, deps)
    assert result.status == "completed" and result.counts["sent"] == 3
    assert transport.calls == ["a@example.com", "b@example.com", "b@example.com", "c@example.com"]


def test_daily_limit_is_counted_across_campaigns(deps, clock):
    deps.policy.daily_limit = 3
    use(deps, ScriptedTransport(max_in_flight=1))
    first = start(deps, people("a@example.com", "b@example.com"))
    assert send_loop.run(first, deps).counts["sent"] == 2
    clock.now += 3600
    second = start(deps, people("c@example.com", "d@example.com", "e@example.com"))
    result = send_loop.run(second, deps)
    assert result.counts["sent"] == 1 and result.counts["deferred"] == 2
    assert result.resume_at == pytest.approx(clock.now - 3600 + 24 * 3600)
    clock.now = result.resume_at + 1
    assert send_loop.run(second, deps).counts["sent"] == 3


def test_auth_error_pauses_without_failing_anything(deps):
    transport = use(
        deps,
        ScriptedTransport(
            {"a@example.com": [AuthError("revoked: run python -m bot auth")]}, max_in_flight=1
        ),
    )
    cid = start(deps, people("a@example.com", "b@example.com"))
    result = send_loop.run(cid, deps)
    assert result.status == "paused" and "python -m bot auth" in result.reason
    assert result.counts["failed"] == 0 and result.counts["queued"] == 2
    result = send_loop.run(cid, deps, resume=True)
    assert result.status == "completed" and result.counts["sent"] == 2
    assert transport.calls == ["a@example.com", "a@example.com", "b@example.com"]


def test_uncertain_is_held_when_transport_cannot_tell(deps):
    use(deps, ScriptedTransport({"a@example.com": [UncertainSendError("response lost")]}))
    cid = start(deps, people("a@example.com"))
    result = send_loop.run(cid, deps, resume=True)
    assert result.counts["uncertain"] == 1 and result.exit_code == 1
    assert resolution.resolve_uncertain(cid, deps, "U1", resend=False) == 1
    assert deps.store.outbox.counts(cid)["skipped"] == 1


def test_crash_recovery_reconciles_by_message_id(deps, settings):
    """A message left ``sending`` is looked up in the outbox, never blindly re-sent."""
    cid = start(deps, people("a@example.com", "b@example.com"))
    rows = deps.store.outbox.messages(cid)
    sandbox = SandboxTransport(settings.sandbox_outbox)
    # a@ was written to the outbox, then the process died before recording it
    assert deps.store.outbox.claim(rows[0].id, "sandbox")
    sandbox.send(
        OutgoingMessage(
            rows[0].id, cid, "a@example.com", rows[0].message_id, b"Subject: x\r\n\r\nx"
        )
    )
    # b@ was claimed but the process died before the request went out
    assert deps.store.outbox.claim(rows[1].id, "sandbox")
    result = send_loop.run(cid, deps, resume=True)
    assert result.counts["sent"] == 2
    assert len(list(settings.sandbox_outbox.glob("*.eml"))) == 2


def test_retry_failed_sends_them_again(deps):
    transport = use(deps, ScriptedTransport({"a@example.com": [PermanentSendError("x")]}))
    cid = start(deps, people("a@example.com"))
    assert send_loop.run(cid, deps).counts["failed"] == 1
    assert resolution.retry_failed(cid, deps, "U1") == 1
    assert send_loop.run(cid, deps).counts["sent"] == 1
    assert len(transport.calls) == 2


def test_cancel_skips_what_is_left(deps):
    cancel = threading.Event()
    transport = use(deps, ScriptedTransport(max_in_flight=1))
    cid = start(deps, people(*(f"p{i}@example.com" for i in range(10))))

    def progress(counts):
        if counts["sent"] == 3:
            cancel.set()

    result = send_loop.run(cid, deps, progress=progress, cancel=cancel)
    assert result.status == "cancelled"
    assert result.counts["sent"] == 3 and result.counts["skipped"] == 7
    assert len(transport.calls) == 3


def test_same_idempotency_key_records_one_campaign(deps):
    first = start(deps, people("a@example.com"), idempotency_key="view-1")
    second = start(deps, people("a@example.com"), idempotency_key="view-1")
    assert first == second
    assert len(deps.store.campaigns.recent()) == 1


def test_limit_sends_to_the_first_n(deps):
    request = campaign.CampaignRequest(
        "welcome", people("a@x.example", "b@x.example"), "test", WELCOME_VARS, limit=1
    )
    plan = preflight.preflight(request, deps)
    assert [r.email for r in plan.to_send] == ["a@x.example"]
    assert [r.email for r in plan.over_limit] == ["b@x.example"]


class LookupFails(ScriptedTransport):
    def find_sent(self, message_id):
        raise TransientSendError("lookup timed out")


def test_a_failed_lookup_leaves_messages_uncertain(deps):
    use(deps, LookupFails({"a@example.com": [UncertainSendError("response lost")]}))
    cid = start(deps, people("a@example.com"))
    send_loop.run(cid, deps)
    assert send_loop.run(cid, deps, resume=True).counts["uncertain"] == 1


def test_reconcile_finds_or_requeues(deps):
    transport = use(deps, ScriptedTransport(sent_ids={}))
    cid = start(deps, people("a@example.com", "b@example.com"))
    a, b = deps.store.outbox.messages(cid)
    for row in (a, b):
        deps.store.outbox.claim(row.id, "sandbox")
    transport.sent_ids[a.message_id] = "gm-found"
    result = send_loop.run(cid, deps, resume=True)
    assert result.counts["sent"] == 2
    assert transport.calls == ["b@example.com"]  # a@ was found in Sent: not sent again
    assert deps.store.outbox.messages(cid)[0].provider_id == "gm-found"


def test_no_grant_pauses_the_campaign(deps):
    def no_grant():
        raise AuthError("There is no Gmail grant yet: run `python -m bot auth`.")

    deps.transport = no_grant
    cid = start(deps, people("a@example.com"))
    result = send_loop.run(cid, deps)
    assert result.status == "paused" and "python -m bot auth" in result.reason
    assert result.counts["queued"] == 1


def test_send_time_scan_blocks_a_secret_that_appears_after_preflight(deps):
    """E.g. a template edited between preflight and a resume."""
    transport = use(deps, ScriptedTransport(max_in_flight=1))
    cid = start(deps, people("a@example.com", "b@example.com", team="Acme"))
    row = deps.store.outbox.messages(cid)[1]
    deps.store.database.db["messages"].update(
        row.id, {"variables": '{"team": "card 4111 1111 1111 1111"}'}
    )
    result = send_loop.run(cid, deps)
    assert transport.calls == ["a@example.com"]
    assert result.counts["failed"] == 1
    assert "not sent: " in result.failures[0][1]
    assert "4111" not in result.failures[0][1]


def test_hard_bounce_recorded_mid_campaign_is_honoured(deps):
    transport = use(deps, ScriptedTransport(max_in_flight=1))
    cid = start(deps, people("a@example.com", "b@example.com"))
    deps.store.suppressions.record_bounce(
        email="b@example.com", kind="hard", status="5.1.1", provider_id="dsn-1"
    )
    result = send_loop.run(cid, deps)
    assert transport.calls == ["a@example.com"]
    assert result.counts["skipped"] == 1


def test_halt_finishes_in_flight_and_leaves_the_rest_queued(deps):
    halt = threading.Event()
    transport = use(deps, ScriptedTransport(max_in_flight=1))
    cid = start(deps, people(*(f"p{i}@example.com" for i in range(6))))

    def progress(counts):
        if counts["sent"] == 2:
            halt.set()

    result = send_loop.run(cid, deps, progress=progress, halt=halt)
    assert result.status == "running" and "resumes" in result.reason
    assert result.counts["sent"] == 2 and result.counts["queued"] == 4
    assert deps.store.campaigns.unfinished() == [cid]
    assert send_loop.run(cid, deps, resume=True).counts["sent"] == 6
    assert len(transport.calls) == 6


def test_a_run_with_only_future_deferrals_stays_running(deps, clock):
    use(deps, ScriptedTransport(max_in_flight=1))
    deps.policy.daily_limit = 1
    cid = start(deps, people("a@example.com", "b@example.com"))
    first = send_loop.run(cid, deps)
    assert first.counts["deferred"] == 1
    again = send_loop.run(cid, deps)  # nothing is due yet
    assert again.status == "running"
    assert again.resume_at == first.resume_at
    clock.now = first.resume_at + 1
    assert send_loop.run(cid, deps).status == "completed"


def test_reconcile_waits_out_the_grace_before_trusting_not_found(deps, clock):
    """Gmail may still be processing a send the dead process handed over."""
    deps.policy.reconcile_grace = 30.0
    transport = use(deps, ScriptedTransport(sent_ids={}))
    cid = start(deps, people("a@example.com"))
    (row,) = deps.store.outbox.messages(cid)
    deps.store.outbox.claim(row.id, "sandbox")
    claimed = clock.now
    clock.now += 5  # the process died 5 s after claiming; now it restarts

    def gmail_finishes(seconds):
        clock.sleeps.append(seconds)
        clock.now += seconds
        transport.sent_ids[row.message_id] = "gm-late"

    deps.sleep = gmail_finishes
    result = send_loop.run(cid, deps, resume=True)
    # Not found at first: it looked again after a pause instead of re-sending,
    # and stopped waiting as soon as the message showed up.
    assert clock.sleeps == [RECONCILE_POLL_SECONDS]
    assert clock.now - claimed < 30.0
    assert result.counts["sent"] == 1 and transport.calls == []


def test_reconcile_trusts_not_found_only_when_the_grace_is_over(deps, clock):
    deps.policy.reconcile_grace = 30.0
    transport = use(deps, ScriptedTransport(sent_ids={}))
    cid = start(deps, people("a@example.com"))
    (row,) = deps.store.outbox.messages(cid)
    deps.store.outbox.claim(row.id, "sandbox")
    claimed = clock.now
    clock.now += 5

    def nothing_arrives(seconds):
        clock.sleeps.append(seconds)
        clock.now += seconds

    deps.sleep = nothing_arrives
    result = send_loop.run(cid, deps, resume=True)
    assert sum(clock.sleeps) == pytest.approx(claimed + 30.0 - (claimed + 5))
    assert clock.now >= claimed + 30.0
    assert result.counts["sent"] == 1 and len(transport.calls) == 1  # re-sent once, after


def test_a_transient_error_during_shutdown_leaves_the_message_queued(deps):
    halt = threading.Event()

    class HaltsWhileFailing(ScriptedTransport):
        def send(self, message):
            halt.set()
            raise TransientSendError("503")

    use(deps, HaltsWhileFailing(max_in_flight=1))
    cid = start(deps, people("a@example.com", "b@example.com"))
    result = send_loop.run(cid, deps, halt=halt)
    assert result.counts["failed"] == 0 and result.counts["queued"] == 2
    assert result.status == "running"
