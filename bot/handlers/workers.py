"""One worker process (``python -m bot worker``): send what any campaign has ready.

Why it looks like this:
- Many workers, on many machines, share one PostgreSQL store. None owns a
  campaign: each sender account with ready messages gets a few threads in every
  worker (``sends_per_account``), and each thread waits for the account's quota
  slot (the pacer in the database, shared by all workers), then claims one
  message with ``Outbox.claim_ready`` (``for update skip locked``), so no message
  is ever held by two workers and N workers together keep to the account's quota.
  Accounts are independent, so many accounts send in parallel.
- A claim is a lease (``lease_seconds``). The worker that holds it settles it
  (sent, failed, deferred, uncertain) and starts no attempt after half the lease;
  a worker that died (SIGKILL, a lost machine) leaves its claims to the others,
  which turn claims older than the lease into ``uncertain`` and reconcile them by
  Message-ID, exactly as a restart does after a crash. A live worker's fresher
  claims are never touched.
- The campaign-level moves of the single-process send loop happen here too, by
  whichever worker sees the need first: a drained campaign is marked completed,
  a refused grant pauses its campaign, a reached daily limit defers the
  campaign's queued messages. Each is idempotent, so two workers doing it at once
  do no harm.
- The per-message steps (render and check again, retries, the outcome of a send)
  are the send loop's own (``send_loop.render_raw``, ``deliver_claimed``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from bot.errors import AuthError, TemplateError, UserInputError
from bot.handlers import attachments, policy, quota, resolution, schedule, send_loop
from bot.handlers.campaign import COMPLETED, PAUSED, QUEUED, RUNNING, Deps
from bot.handlers.quota import DAY_SECONDS, SEND_UNITS
from bot.handlers.rendering import Renderer
from bot.records import Campaign, CampaignStatus, Message, MessageState

log = logging.getLogger(__name__)

DAILY_LIMIT_REASON = "the daily sending limit is reached"
WAITING_FOR_IN_FLIGHT = "waiting for sends under way to settle the daily count"
#: The pacer's window (Gmail's minute and the arrival slack): at most one ceiling's
#: worth of sends starts in any such window.
PACED_WINDOW_SECONDS = 62.0
#: Sends that take no quota slot from the shared pacer (a test send to oneself).
_UNPACED_MARGIN = 10
#: How often the worker looks for new work, finished campaigns and expired claims.
POLL_SECONDS = 1.0


@dataclass
class _Context:
    """What sending a campaign's messages needs, read once per worker."""

    campaign: Campaign
    renderer: Renderer
    files: attachments.AttachmentSet


class _ResumeOnly(send_loop.Budget):
    """The send loop's budget, where only ``resume_at`` is asked: the worker checks
    the daily limit itself, against every worker's claims."""

    def __init__(self, deps: Deps):
        self.deps = deps
        self.lock = threading.Lock()
        self.left = None


class Worker:
    """Sends ready messages of every running campaign until ``stop`` is set."""

    def __init__(
        self,
        deps: Deps,
        *,
        deps_for: Callable[[str], Deps],
        lease_seconds: float,
        sends_per_account: int,
        stop: threading.Event | None = None,
        poll_seconds: float = POLL_SECONDS,
    ):
        self.deps = deps
        self._deps_for = deps_for
        self.lease_seconds = lease_seconds
        self.sends_per_account = sends_per_account
        self.stop = stop or threading.Event()
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._contexts: dict[int, _Context] = {}
        self._work: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []
        self._next_recovery = 0.0
        self._day_counts: dict[str, tuple[float, int]] = {}

    # -- the main loop -------------------------------------------------------------

    def run(self) -> None:
        """Work until ``stop`` is set; in-flight sends finish, unsent claims go back."""
        try:
            while not self.stop.is_set():
                self.tick()
                self.stop.wait(self.poll_seconds)
        finally:
            self.stop.set()
            for thread in self._threads:
                thread.join()

    def tick(self) -> None:
        """One look around: expired claims, re-queued and drained campaigns, new work."""
        store = self.deps.store
        now = self.deps.clock()
        if now >= self._next_recovery:
            self._next_recovery = now + max(1.0, min(self.lease_seconds / 4, 30.0))
            if store.outbox.recover_expired(self.lease_seconds):
                self._reconcile()
        for campaign_id in store.campaigns.due(now):
            row = store.campaigns.get(campaign_id)
            if row is not None and row.status == CampaignStatus.COMPLETED:
                # A person re-queued messages of a finished campaign: it runs again.
                store.campaigns.update(campaign_id, status=RUNNING, finished_at=None)
        # Scheduled campaigns whose time came start here too (checked again first),
        # so workers need no sending server: one worker's conditional update to
        # running wins, then every worker claims its messages.
        schedule.start_due(self.deps, self._deps_for, lambda _campaign_id: None, now=now)
        for campaign_id in store.campaigns.drained():
            self._complete(campaign_id)
        for account in store.outbox.ready_accounts(now):
            self._lane(account).set()

    def _lane(self, account: str) -> threading.Event:
        """The "may have work" signal of ``account``'s threads, started on first use."""
        with self._lock:
            work = self._work.get(account)
            if work is None:
                work = self._work[account] = threading.Event()
                for i in range(self.sends_per_account):
                    thread = threading.Thread(
                        target=self._send_loop,
                        args=(account, work),
                        name=f"worker-{account or 'default'}-{i}",
                        daemon=True,
                    )
                    self._threads.append(thread)
                    thread.start()
            return work

    def _send_loop(self, account: str, work: threading.Event) -> None:
        # A back-off between retries ends when the worker stops (the message is
        # then queued again: certainly not sent).
        deps = dataclasses.replace(self._deps_for(account), sleep=self._nap)
        while not self.stop.is_set():
            if not work.wait(self.poll_seconds):
                continue
            # The quota slot first: a claim counts as in flight from then on.
            deps.pacer.acquire(SEND_UNITS)
            if self.stop.is_set():
                return
            claimed = deps.store.outbox.claim_ready(account, 1)
            if not claimed:
                work.clear()  # all taken; the next tick says when there is more
                continue
            try:
                self._settle(deps, claimed[0])
            except Exception:  # a bug must not leave the message claimed forever
                log.exception("unexpected error sending message %s", claimed[0].id)
                deps.store.outbox.mark_uncertain(claimed[0].id, "internal error in a worker")

    def _nap(self, seconds: float) -> None:
        self.stop.wait(seconds)

    # -- one message ---------------------------------------------------------------

    def _settle(self, deps: Deps, row: Message) -> None:
        """Send one claimed message (``sending``) and record its outcome."""
        store = deps.store
        try:
            context = self._context(row.campaign_id, deps)
            transport = deps.transport()
        except (AuthError, UserInputError) as exc:  # the grant or the stored files are gone
            store.outbox.requeue(row.id, f"not sent: {exc}")
            store.campaigns.update(row.campaign_id, status=PAUSED, paused_reason=str(exc))
            return
        campaign = context.campaign
        reason = policy.suppression_reason(store, row.email, campaign.category, campaign.team)
        if reason:  # skipped is reached from queued: not sent, so back first
            store.outbox.requeue(row.id, reason)
            store.outbox.mark_skipped(row.id, reason)
            return
        if self._over_daily_limit(deps):
            if self._others_in_flight_decide(deps):
                # Over only if every send under way goes out: let them settle, and
                # claim again (deferring here left the day short of its limit).
                store.outbox.requeue(row.id, WAITING_FOR_IN_FLIGHT)
                self._nap(self.poll_seconds)
                return
            now = deps.clock()
            use = quota.read(store, deps.account, daily_limit=deps.policy.daily_limit, now=now)
            self._defer(deps, row, use.next_free_at)
            return
        run = send_loop.Run(
            campaign.id,
            campaign.category,
            campaign.common_vars,
            context.renderer,
            _ResumeOnly(deps),
            threading.Event(),
            halt=self.stop,
            files=context.files,
            lease_ends=(row.claimed_at or deps.clock()) + self.lease_seconds / 2,
        )
        try:
            raw = send_loop.render_raw(run, deps, row)
        except (TemplateError, UserInputError) as exc:
            store.outbox.mark_failed(row.id, str(exc))
            return
        send_loop.deliver_claimed(run, deps, transport, row, raw)
        if run.stop_status == PAUSED:
            store.campaigns.update(campaign.id, status=PAUSED, paused_reason=run.stop_reason)
        elif run.resume_at is not None:  # Gmail's own daily limit answered
            self._defer_queued(deps, campaign.id, run.resume_at, run.stop_reason)

    def _over_daily_limit(self, deps: Deps) -> bool:
        """Whether the account's rolling day is over its limit, this claim included.

        Counted in the store, so every worker's committed claims count. The count
        (a scan of the account's day) is not made for every message: claims only
        follow quota slots, so in ``t`` seconds the count grows by at most a
        window's worth of sends per started window; while the last count plus that
        growth stays within the limit, no count is needed.
        """
        limit = deps.policy.daily_limit
        if limit is None:
            return False
        now = deps.clock()
        with self._lock:
            last = self._day_counts.get(deps.account)
        per_window = getattr(deps.pacer, "units_per_minute", 0) // SEND_UNITS
        if last is not None and per_window > 0:
            counted_at, count = last
            # One window more for slots taken before the count whose claims came after.
            windows = math.ceil(max(0.0, now - counted_at) / PACED_WINDOW_SECONDS) + 2
            if count + windows * per_window + _UNPACED_MARGIN <= limit:
                return False
        count = deps.store.outbox.sent_since(now - DAY_SECONDS, deps.account)
        with self._lock:
            self._day_counts[deps.account] = (now, count)
        return count > limit

    @staticmethod
    def _others_in_flight_decide(deps: Deps) -> bool:
        """Whether the day has room for this claim once claims still in flight
        elsewhere are left out: then whether it fits depends on their outcome."""
        limit = deps.policy.daily_limit
        if limit is None:
            return False
        now = deps.clock()
        settled = deps.store.outbox.sent_since(now - DAY_SECONDS, deps.account, in_flight=False)
        return settled + 1 <= limit

    def _defer(self, deps: Deps, row: Message, resume_at: float) -> None:
        deps.store.outbox.mark_deferred(row.id, resume_at, DAILY_LIMIT_REASON)
        self._defer_queued(deps, row.campaign_id, resume_at, DAILY_LIMIT_REASON)

    @staticmethod
    def _defer_queued(deps: Deps, campaign_id: int, resume_at: float, reason: str) -> None:
        """The rest of the campaign waits for the account's day to free up, instead
        of each message being claimed only to be deferred."""
        for queued in deps.store.outbox.messages(campaign_id, [QUEUED]):
            # Only from queued: one claimed since the listing is that worker's to settle.
            deps.store.outbox.mark_deferred(queued.id, resume_at, reason, from_states=(QUEUED,))

    def _context(self, campaign_id: int, deps: Deps) -> _Context:
        with self._lock:
            context = self._contexts.get(campaign_id)
        if context is not None:
            return context
        campaign = deps.store.campaigns.get(campaign_id)
        if campaign is None:
            raise UserInputError(f"There is no campaign {campaign_id}.")
        renderer = deps.catalogue.for_team(campaign.team).renderer(
            campaign.template, subject_override=campaign.subject or None
        )
        context = _Context(
            campaign, renderer, attachments.load(campaign.common_vars, deps.attachment_files)
        )
        with self._lock:
            return self._contexts.setdefault(campaign_id, context)

    # -- campaigns -----------------------------------------------------------------

    def _complete(self, campaign_id: int) -> None:
        store = self.deps.store
        store.campaigns.update(
            campaign_id,
            status=CampaignStatus(COMPLETED),
            paused_reason=None,
            finished_at=self.deps.clock(),
        )
        attachments.release(campaign_id, store, self.deps.attachment_files)
        with self._lock:
            self._contexts.pop(campaign_id, None)

    def _reconcile(self) -> None:
        """Settle the messages of workers that stopped: found in Sent → ``sent``,
        certainly not → queued again, unknown → ``uncertain`` for a person."""
        store = self.deps.store
        for campaign_id in store.campaigns.unfinished():
            if not store.outbox.counts(campaign_id)[MessageState.UNCERTAIN]:
                continue
            row = store.campaigns.get(campaign_id)
            deps = self._deps_for(row.account if row else "")
            try:
                resolution.reconcile_uncertain(campaign_id, deps, deps.transport())
            except AuthError as exc:
                store.campaigns.update(campaign_id, status=PAUSED, paused_reason=str(exc))
