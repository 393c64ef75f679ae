"""The send loop: one campaign from its ready messages to a ``Result``.

This module owns ``run``, sending one message, the rolling-day budget of the
sending account, the live tally of counts, and the retry policy.

The loop is an outbox over the store. For each message it commits
``queued → sending`` before calling the transport and ``sending → sent/failed/…``
after, so a crash at any point leaves the message in a state that says what is
known. ``sending`` found at start-up means "may have left": it becomes
``uncertain`` and is reconciled by Message-ID (``resolution``) or held for a
person, never re-sent blindly.

Retrying lives here, not in the transports, so every transport (sandbox, Gmail,
the fakes) gets the same bounded, jittered, ``Retry-After``-honouring policy and
every attempt is counted in the store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from bot.errors import (
    AuthError,
    LocalFault,
    PermanentSendError,
    PolicyError,
    QuotaDeferred,
    StorageError,
    TemplateError,
    TransientSendError,
    UncertainSendError,
    UserInputError,
)
from bot.handlers import approval, attachments, policy, quota, sensitive
from bot.handlers.campaign import (
    CANCELLED,
    CANCELLED_REASON,
    COMPLETED,
    DEFERRED,
    FAILED,
    PAUSED,
    QUEUED,
    RUNNING,
    Deps,
    Result,
    list_unsubscribe_headers,
    message_variables,
)
from bot.handlers.compose import build_message
from bot.handlers.quota import SEND_UNITS
from bot.handlers.rendering import Renderer
from bot.handlers.resolution import counts_result, reconcile_uncertain
from bot.models import OutgoingMessage
from bot.ports import Transport
from bot.records import CampaignChanges, CampaignStatus, Message

log = logging.getLogger(__name__)


def quota_use(deps: Deps) -> quota.QuotaUse:
    """The sending account's quota use now, under this policy's daily limit."""
    return quota.read(
        deps.store, deps.account, daily_limit=deps.policy.daily_limit, now=deps.clock()
    )


def daily_left(deps: Deps) -> int | None:
    """Messages the sending account may still send in the rolling day (None: no limit)."""
    return quota_use(deps).left


def daily_resume_at(deps: Deps) -> float:
    """When the account's oldest send in the rolling day ages out (a day from now if none)."""
    return quota_use(deps).next_free_at


class Budget:
    """The rolling-24h daily limit of the sending account, shared by the worker
    threads of one run."""

    def __init__(self, deps: Deps):
        self.deps = deps
        self.lock = threading.Lock()
        self.left = daily_left(deps)

    def take(self) -> bool:
        with self.lock:
            if self.left is None:
                return True
            if self.left <= 0:
                return False
            self.left -= 1
            return True

    def resume_at(self) -> float:
        return daily_resume_at(self.deps)


class _Tally:
    """Messages per state, kept up to date as each message moves.

    Counting the campaign's rows after every send cost O(n) per message (7 ms a
    message at 100k rows, under the store lock); each worker knows where its
    message started and one primary-key read says where it ended.
    """

    def __init__(self, counts: dict[str, int]):
        self._counts = dict(counts)
        self._lock = threading.Lock()

    def move(self, before: str, after: str | None) -> dict[str, int]:
        """Record one message's move and return a snapshot of the counts."""
        with self._lock:
            if after is not None and after != before:
                self._counts[before] -= 1
                self._counts[after] = self._counts.get(after, 0) + 1
            return dict(self._counts)


@dataclass
class Run:
    campaign_id: int
    category: str
    common: dict[str, str]
    renderer: Renderer
    budget: Budget
    cancel: threading.Event
    stop_reason: str = ""
    stop_status: str = ""
    resume_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    scanner: sensitive.Scanner = field(default_factory=sensitive.Scanner)
    files: attachments.AttachmentSet = field(default_factory=attachments.AttachmentSet)
    #: The campaign's workspace: whose unsubscribes and bounces hold for it.
    team: str = ""

    def stop(self, status: str, reason: str, resume_at: float | None = None) -> None:
        with self.lock:
            if not self.stop_status:
                self.stop_status, self.stop_reason, self.resume_at = status, reason, resume_at

    halt: threading.Event = field(default_factory=threading.Event)
    fault: StorageError | None = None
    #: A worker's claim is a lease: past this time (the deps' clock) no attempt starts,
    #: so the message is settled before other workers may take it as abandoned.
    lease_ends: float | None = None

    @property
    def stopped(self) -> bool:
        return bool(self.stop_status) or self.cancel.is_set() or self.halt.is_set()

    def out_of_time(self, now: float) -> bool:
        """Stopped, or the claim's lease is (nearly) over: attempt nothing more."""
        return self.stopped or (self.lease_ends is not None and now >= self.lease_ends)


def render_raw(run: Run, deps: Deps, row: Message) -> bytes:
    """The message's bytes, checked again at send time (settings, sensitive data, files)."""
    # Settings may have changed since preflight (a campaign resumed after a restart).
    policy.check_marketing_settings(
        run.renderer.info,
        deps.policy.postal_address,
        unsubscribe_base=deps.policy.unsubscribe_base,
        public_links=deps.policy.public_links,
    )
    variables = message_variables(
        deps,
        row.email,
        row.name or "",
        row.variables,
        run.common,
        run.campaign_id,
        run.category,
    )
    rendered = run.renderer.render(variables, who=row.email)
    # Again at send time: the template files are read anew when a campaign resumes.
    if findings := run.scanner.scan(rendered, variables):
        raise PolicyError("not sent: " + "; ".join(map(str, findings)))
    if missing := run.files.missing(row.variables):
        raise UserInputError(f"not sent: the attachment(s) {', '.join(missing)} are not stored")
    return build_message(
        deps.envelope,
        to_address=row.email,
        to_name=row.name or "",
        rendered=rendered,
        message_id=row.message_id,
        extra_headers=list_unsubscribe_headers(deps, variables),
        attachments=[f.part for f in run.files.for_row(row.variables)],
    )


class _StopWhenRunStops(stop_base):
    """Retrying ends as soon as the run is cancelled, halted or stopped, or its
    claim's lease runs out."""

    def __init__(self, run: Run, clock: Callable[[], float]):
        self.run = run
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.run.out_of_time(self.clock())


def _retrying(deps: Deps, run: Run) -> Retrying:
    """Bounded retries of transient errors: full jitter, never sooner than Retry-After."""
    jitter = wait_random_exponential(
        multiplier=deps.policy.retry.backoff_base, max=deps.policy.retry.backoff_cap
    )

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return max(jitter(state), getattr(exc, "retry_after", None) or 0.0)

    return Retrying(
        retry=retry_if_exception_type(TransientSendError),
        stop=stop_any(
            stop_after_attempt(deps.policy.retry.max_attempts),
            stop_after_delay(deps.policy.retry.max_elapsed),
            _StopWhenRunStops(run, deps.clock),
        ),
        wait=wait,
        sleep=deps.sleep,
        reraise=True,
    )


def _send_one(run: Run, deps: Deps, transport: Transport, row: Message) -> None:
    store = deps.store
    reason = policy.suppression_reason(store, row.email, run.category, run.team)
    if reason:
        store.outbox.mark_skipped(row.id, reason)
        return
    if not run.budget.take():
        resume = run.budget.resume_at()
        store.outbox.mark_deferred(row.id, resume, "the daily sending limit is reached")
        run.stop(RUNNING, "the daily sending limit is reached", resume)
        return
    try:
        raw = render_raw(run, deps, row)
    except (TemplateError, UserInputError) as exc:
        store.outbox.mark_failed(row.id, str(exc))
        return
    # Wait for the quota slot *before* claiming: a claimed message counts as in
    # flight, and after a crash every claimed one is in doubt.
    deps.pacer.acquire(SEND_UNITS)
    if not store.outbox.claim(row.id, deps.account):
        return  # someone else has it, or it was cancelled meanwhile
    deliver_claimed(run, deps, transport, row, raw)


def deliver_claimed(run: Run, deps: Deps, transport: Transport, row: Message, raw: bytes) -> None:
    """Send one message already claimed (``sending``), with retries, and record what
    became of it; a stop the campaign must make is left in ``run.stop_status``."""
    store = deps.store
    if run.lease_ends is not None and deps.clock() >= run.lease_ends:
        store.outbox.requeue(row.id, "not sent yet: its claim ran out before its turn")
        return
    message = OutgoingMessage(row.id, run.campaign_id, row.email, row.message_id, raw)
    attempts = 0

    def attempt() -> str:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            deps.pacer.acquire(SEND_UNITS)
        store.quota.record_units(SEND_UNITS, "messages.send", account=deps.account)
        return transport.send(message)

    try:
        provider_id = _retrying(deps, run)(attempt)
    except TransientSendError as exc:
        if run.out_of_time(deps.clock()):  # cancelled, stopping, lease over: not sent
            store.outbox.requeue(row.id, f"not sent yet: {exc}")
        else:
            store.outbox.mark_failed(row.id, f"gave up after {attempts} attempts: {exc}")
    except UncertainSendError as exc:
        store.outbox.mark_uncertain(row.id, str(exc))
    except PermanentSendError as exc:
        store.outbox.mark_failed(row.id, str(exc))
    except QuotaDeferred as exc:
        resume = exc.resume_after or run.budget.resume_at()
        store.outbox.mark_deferred(row.id, resume, str(exc))
        run.stop(RUNNING, str(exc), resume)
    except AuthError as exc:
        store.outbox.requeue(row.id, "not sent: Gmail authorization failed")
        run.stop(PAUSED, str(exc))
    except LocalFault as exc:  # this machine cannot send anything now: pause, fail nothing
        store.outbox.requeue(row.id, f"not sent: {exc}")
        run.stop(PAUSED, str(exc))
    else:
        store.outbox.mark_sent(row.id, provider_id)


def run(
    campaign_id: int,
    deps: Deps,
    *,
    progress: Callable[[dict[str, int]], None] | None = None,
    cancel: threading.Event | None = None,
    resume: bool = False,
    halt: threading.Event | None = None,
    notice: Callable[[str], None] | None = None,
) -> Result:
    """Send every ready message of a campaign; return where it ended up.

    With ``resume=True`` (a restart), messages left ``sending`` by a previous
    process become ``uncertain`` and are reconciled first. ``cancel`` skips what
    is left; ``halt`` (a shutdown) lets in-flight sends finish and leaves the rest
    queued for the next start. ``notice`` hears why a resume waits or cannot
    look messages up (a sentence for the person watching).
    """
    store = deps.store
    campaign = store.campaigns.get(campaign_id)
    if campaign is None:
        raise UserInputError(f"There is no campaign {campaign_id}.", field="campaign")
    if campaign.status == CANCELLED:
        return Result(campaign_id, CANCELLED, store.outbox.counts(campaign_id))
    if campaign.status == CampaignStatus.SCHEDULED:  # only schedule.release starts it
        return Result(campaign_id, campaign.status, store.outbox.counts(campaign_id))
    if approval.refuse_unapproved(campaign, deps):
        # Awaiting approval, or changed since it was approved: nothing is sent.
        return counts_result(campaign_id, deps)
    renderer = deps.catalogue.for_team(campaign.team).renderer(
        campaign.template, subject_override=campaign.subject or None
    )
    if resume:
        store.outbox.recover_in_flight(campaign_id)
    try:
        transport = deps.transport()
        if resume:
            reconcile_uncertain(campaign_id, deps, transport, notice)
    except AuthError as exc:
        store.campaigns.update(campaign_id, status=PAUSED, paused_reason=str(exc))
        return counts_result(campaign_id, deps)
    try:
        files = attachments.load(campaign.common_vars, deps.attachment_files)
    except UserInputError as exc:  # the stored files are gone: nothing can be sent as checked
        store.campaigns.update(campaign_id, status=PAUSED, paused_reason=str(exc))
        return counts_result(campaign_id, deps)
    store.campaigns.update(
        campaign_id,
        status=RUNNING,
        paused_reason=None,
        started_at=campaign.started_at or deps.clock(),
    )
    state = Run(
        campaign_id,
        campaign.category,
        campaign.common_vars,
        renderer,
        Budget(deps),
        cancel or threading.Event(),
        halt=halt or threading.Event(),
        files=files,
        team=campaign.team,
    )
    ready = store.outbox.ready_messages(campaign_id)
    rows = iter(ready)
    rows_lock = threading.Lock()
    tally = _Tally(store.outbox.counts(campaign_id)) if progress else None

    def worker() -> None:
        while not state.stopped:
            with rows_lock:
                row = next(rows, None)
            if row is None:
                return
            try:
                _send_one(state, deps, transport, row)
                if progress and tally:
                    progress(tally.move(row.state, store.outbox.state_of(row.id)))
            except StorageError as exc:
                # The database cannot record anything: stop every worker. What was
                # committed stays true; a claimed message is settled on resume.
                state.fault = state.fault or exc
                state.halt.set()
                return
            except Exception as exc:  # a bug must not leave a message claimed forever
                log.exception("unexpected error sending message %s", row.id)
                store.outbox.mark_uncertain(row.id, f"internal error: {exc}")
                raise

    threads = [
        threading.Thread(target=worker, name=f"send-{campaign_id}-{i}", daemon=True)
        for i in range(max(1, min(transport.max_in_flight, len(ready))))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if state.fault is not None:
        raise state.fault
    return _finish(state, deps, campaign_id)


def _finish(state: Run, deps: Deps, campaign_id: int) -> Result:
    store = deps.store
    if state.cancel.is_set() and not state.stop_status:
        for row in store.outbox.messages(campaign_id, [QUEUED, DEFERRED]):
            store.outbox.mark_skipped(row.id, CANCELLED_REASON)
        state.stop(CANCELLED, "cancelled")
    if state.halt.is_set() and not state.stop_status:
        state.stop(RUNNING, "mailbolt was stopped; sending resumes when it starts again")
    if state.stop_status == RUNNING and state.resume_at is not None:
        for row in store.outbox.messages(campaign_id, [QUEUED]):
            store.outbox.mark_deferred(row.id, state.resume_at, state.stop_reason)
    counts = store.outbox.counts(campaign_id)
    unfinished = counts[DEFERRED] or counts[QUEUED]
    status = state.stop_status or (RUNNING if unfinished else COMPLETED)
    if status == RUNNING and not unfinished:
        status = COMPLETED
    resume_at = state.resume_at
    if status == RUNNING and resume_at is None and counts[DEFERRED]:
        resume_at = store.outbox.deferred_until(campaign_id)
    changes: CampaignChanges = {
        "status": CampaignStatus(status),
        "paused_reason": state.stop_reason or None,
    }
    if status in (COMPLETED, CANCELLED):
        changes["finished_at"] = deps.clock()
    store.campaigns.update(campaign_id, **changes)
    if status in (COMPLETED, CANCELLED):
        attachments.release(campaign_id, store, deps.attachment_files)
    failures = [
        (r.email, r.last_error or "") for r in store.outbox.messages(campaign_id, [FAILED], limit=5)
    ]
    return Result(campaign_id, status, counts, state.stop_reason, resume_at, failures)
