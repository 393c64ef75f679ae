"""Runs campaigns in the background of ``python -m bot serve``; knows nothing of Slack.

Why it looks like this:
- Its own threads, not Bolt's five listener threads: a campaign paced at one send
  a second runs for minutes or hours, and every thread it held would be one
  fewer for answering Slack within its 3-second limit.
- One campaign at a time *per sender account*. The per-minute quota and the
  daily limit belong to the mail account, not to a campaign: two campaigns of one
  account at once would not send faster, and each would work out its share of
  the daily limit from the same starting count, so together they would overshoot
  it. Two accounts, though, each have their own quota: each account gets its own
  lane (and, through ``deps_for``, its own transport and pacer), so two people
  sending from their own Gmail at once each get their account's full rate.
  One-message campaigns get a lane of their own, so they do not wait behind a
  long send. (A "send a test to me" is no campaign at all:
  ``trial_send.send_test`` sends it at once.)
- A cancel ``Event`` per campaign, set by whoever presses Cancel; the send loop
  checks it between messages.
- At start, unfinished campaigns resume with ``send_loop.run(resume=True)``, which
  turns messages left ``sending`` by a crash into ``uncertain``. That is only
  right while no other process sends, so the caller holds ``SenderLock``.
- Deferred messages (daily limit reached) fall due later: a periodic check
  starts their campaign again. Other periodic work (a bounce poller, say) is
  added with ``every``.
- A CLI ``send`` while the server runs records its campaign and leaves the
  sending to the server (one lock, one pacing, one quota). A cheap check of the
  newest campaign id every second notices it and starts it at once, instead of
  at the next full due-check.
- Scheduled campaigns (``bot.handlers.schedule``) are released by a check every
  few seconds (one indexed query), and once at start: a campaign whose time
  passed while the server was down starts at once, and none waits for the next
  minute-long due check.
- The Slack layer follows along through ``Observer`` callbacks.
- ``hand_off=True`` (``python -m bot serve --no-send``, beside workers): nothing
  is sent here. Each campaign the runner would run is handed to the workers and
  followed instead (``handoff.follow``), so Send, Resume, Cancel and the status
  messages work the same while the workers send.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bot.handlers import handoff, resolution, schedule, send_loop
from bot.handlers.campaign import Deps, Result
from bot.records import CampaignStatus, MessageState

log = logging.getLogger(__name__)

DUE_CHECK_SECONDS = 60.0
NEW_CAMPAIGN_CHECK_SECONDS = 1.0
#: How often scheduled campaigns are looked for: well within "a minute of their time".
SCHEDULE_CHECK_SECONDS = 5.0
EXPRESS_MAX_MESSAGES = 1


class Observer(Protocol):
    """Told about each campaign's life; called from the runner's threads.

    ``progress`` is called after every message, from several threads at once:
    it must be cheap and must not block.
    """

    def queued(self, campaign_id: int) -> None: ...

    def started(self, campaign_id: int) -> None: ...

    def progress(self, campaign_id: int, counts: dict[str, int]) -> None: ...

    def finished(self, campaign_id: int, result: Result) -> None: ...

    def failed(self, campaign_id: int, error: Exception) -> None: ...


@dataclass
class Handle:
    """A campaign handed to the runner; ``wait`` for its result."""

    campaign_id: int
    resume: bool
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    result: Result | None = None
    error: Exception | None = None

    def wait(self, timeout: float | None = None) -> Result | None:
        """The result, or None if it is not done within ``timeout`` or it failed."""
        self.done.wait(timeout)
        return self.result


@dataclass
class _Periodic:
    name: str
    interval: float
    job: Callable[[], object]
    next_at: float


class _Lane:
    """One thread working through a queue of campaigns, in order."""

    def __init__(self, name: str, execute: Callable[[Handle], None]):
        self.queue: queue.Queue[Handle | None] = queue.Queue()
        self._execute = execute
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def begin(self) -> None:
        """Start the thread unless it already was (lanes may appear while opening)."""
        if self.thread.ident is None:
            self.thread.start()

    def _loop(self) -> None:
        while (handle := self.queue.get()) is not None:
            self._execute(handle)


class Runner:
    """Queues, runs, cancels and resumes campaigns; runs periodic jobs."""

    def __init__(
        self,
        deps: Deps,
        *,
        deps_for: Callable[[str], Deps] | None = None,
        due_check_seconds: float = DUE_CHECK_SECONDS,
        new_campaign_check_seconds: float = NEW_CAMPAIGN_CHECK_SECONDS,
        schedule_check_seconds: float = SCHEDULE_CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        hand_off: bool = False,
    ):
        self.deps = deps
        #: Never send: hand campaigns to the workers and follow them.
        self.hand_off = hand_off
        #: The Deps of a campaign's sender account (``Wiring.deps_for``); one account only
        #: when not given.
        self._deps_for = deps_for or (lambda account: deps)
        self._clock = clock
        self._lock = threading.Lock()
        self._handles: dict[int, Handle] = {}
        self._running: set[int] = set()
        self._observers: list[Observer] = []
        self._periodic: list[_Periodic] = []
        self._stop = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._lanes: dict[str, _Lane] = {}
        self._express = _Lane("campaigns-express", self._execute)
        self._scheduler = threading.Thread(target=self._schedule, name="periodic", daemon=True)
        self._opened = False
        self._newest_seen = 0
        self.every(due_check_seconds, self.start_due, "deferred messages")
        self.every(new_campaign_check_seconds, self.start_new, "new campaigns")
        self.every(schedule_check_seconds, self.start_scheduled, "scheduled campaigns")

    # -- set-up ------------------------------------------------------------------

    def add_observer(self, observer: Observer) -> None:
        self._observers.append(observer)

    def every(self, seconds: float, job: Callable[[], object], name: str) -> None:
        """Run ``job`` every ``seconds`` on the scheduler thread (errors are logged)."""
        self._periodic.append(_Periodic(name, seconds, job, self._clock() + seconds))

    def open(self, *, resume: bool = True) -> list[int]:
        """Start the threads and, with ``resume``, queue every unfinished campaign.

        Returns the ids of the campaigns queued for resuming.
        """
        if not self._opened:
            self._opened = True
            self._newest_seen = self.deps.store.campaigns.newest_id()
            with self._lock:
                for lane in self._lanes.values():
                    lane.begin()
            self._express.thread.start()
            self._scheduler.start()
        if not resume:
            return []
        ids = self.deps.store.campaigns.unfinished()
        for campaign_id in ids:
            self.start(campaign_id, resume=True)
        try:
            self.start_scheduled()  # their time passed while nothing ran
        except Exception:  # the periodic check tries again in a few seconds
            log.exception("starting scheduled campaigns failed")
        return ids

    def close(self, timeout: float = 30.0) -> bool:
        """Stop taking work and let the running campaign finish its in-flight sends.

        Its unsent messages stay queued and are resumed at the next start; if the
        sends do not finish within ``timeout``, crash recovery settles them then.
        Returns False in that case, so the caller can say so.
        """
        self._stop.set()
        with self._lock:
            lanes = (*self._lanes.values(), self._express)
        for lane in lanes:
            lane.queue.put(None)
        for lane in lanes:
            if lane.thread.is_alive():
                lane.thread.join(timeout)
        return not any(lane.thread.is_alive() for lane in lanes)

    # -- campaigns ---------------------------------------------------------------

    def start(self, campaign_id: int, *, resume: bool = False) -> Handle:
        """Queue a campaign; if it is already queued or running, return that handle."""
        with self._lock:
            handle = self._handles.get(campaign_id)
            if handle is not None:
                return handle
            handle = Handle(campaign_id, resume)
            self._handles[campaign_id] = handle
        row = self.deps.store.campaigns.get(campaign_id)
        small = row is not None and row.total <= EXPRESS_MAX_MESSAGES
        lane = self._express if small else self._lane(row.account if row else "")
        lane.queue.put(handle)
        self._notify("queued", campaign_id)
        return handle

    def _lane(self, account: str) -> _Lane:
        """The lane of one sender account, started on first use."""
        with self._lock:
            lane = self._lanes.get(account)
            if lane is None:
                name = f"campaigns-{account}" if account else "campaigns"
                lane = self._lanes[account] = _Lane(name, self._execute)
                if self._opened:
                    lane.begin()
            return lane

    def resume_paused(self, account: str) -> list[int]:
        """Start again the paused campaigns of one sender account (its grant works
        again); other accounts' campaigns are left alone."""
        ids = []
        for campaign_id in self.deps.store.campaigns.unfinished():
            row = self.deps.store.campaigns.get(campaign_id)
            if row and row.account == account and row.status == CampaignStatus.PAUSED:
                self.start(campaign_id)
                ids.append(campaign_id)
        return ids

    def cancel(self, campaign_id: int) -> bool:
        """Ask a campaign to stop; what has not been sent yet is skipped.

        Works whether it is running, queued, or waiting for deferred messages to
        fall due. False if there is nothing left to cancel.
        """
        with self._lock:
            handle = self._handles.get(campaign_id)
            if handle is not None:
                handle.cancel.set()
                return True
        row = self.deps.store.campaigns.get(campaign_id)
        if row is None or row.status == CampaignStatus.CANCELLED:
            return False
        counts = self.deps.store.outbox.counts(campaign_id)
        if not (counts["queued"] or counts["deferred"]):
            return False
        handle = self.start(campaign_id)
        handle.cancel.set()
        return True

    def is_active(self, campaign_id: int) -> bool:
        """Queued or running in this process."""
        with self._lock:
            return campaign_id in self._handles

    def is_running(self, campaign_id: int) -> bool:
        with self._lock:
            return campaign_id in self._running

    def start_due(self) -> list[int]:
        """Start every campaign that has queued messages or deferred ones now due."""
        ids = self.deps.store.campaigns.due(self.deps.clock())
        for campaign_id in ids:
            self.start(campaign_id)
        return ids

    def start_scheduled(self) -> list[int]:
        """Start the scheduled campaigns whose time came (each checked again first,
        as its own sender account); the ids started. One refused by that check is
        reported to the observers as finished (its status says why)."""
        outcomes = schedule.start_due(self.deps, self._deps_for, self.start)
        for campaign_id, outcome in outcomes.items():
            if outcome is schedule.Released.REFUSED:
                self._notify(
                    "finished", campaign_id, resolution.counts_result(campaign_id, self.deps)
                )
        return [c for c, outcome in outcomes.items() if outcome is schedule.Released.STARTED]

    def start_new(self) -> list[int]:
        """Start due campaigns when one was recorded since the last look, e.g. by
        ``python -m bot send`` in another process; one indexed query otherwise."""
        newest = self.deps.store.campaigns.newest_id()
        if newest <= self._newest_seen:
            return []
        self._newest_seen = newest
        return self.start_due()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running (tests, a clean shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._handles:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _execute(self, handle: Handle) -> None:
        campaign_id = handle.campaign_id
        with self._lock:
            self._running.add(campaign_id)
        try:
            if self._nothing_to_do(handle):
                handle.result = resolution.counts_result(campaign_id, self.deps)
            else:
                self._notify("started", campaign_id)
                row = self.deps.store.campaigns.get(campaign_id)
                deps = self._deps_for(row.account if row else "")
                progress = lambda counts: self._notify("progress", campaign_id, counts)  # noqa: E731
                if self.hand_off:
                    handle.result = handoff.follow(
                        campaign_id, deps, cancel=handle.cancel, halt=self._stop, progress=progress
                    )
                else:
                    handle.result = send_loop.run(
                        campaign_id,
                        deps,
                        progress=progress,
                        cancel=handle.cancel,
                        resume=handle.resume,
                        halt=self._stop,
                    )
        except Exception as exc:  # reported to a person by the observers, never lost
            log.exception("campaign %s stopped with an error", campaign_id)
            handle.error = exc
        finally:
            with self._idle:
                self._running.discard(campaign_id)
                self._handles.pop(campaign_id, None)
                self._idle.notify_all()
            handle.done.set()
        if handle.error is not None:
            self._notify("failed", campaign_id, handle.error)
        elif handle.result is not None:
            self._notify("finished", campaign_id, handle.result)

    def _nothing_to_do(self, handle: Handle) -> bool:
        """True when a run would find no message to send.

        Skipping it saves a status-message round for a campaign that is only
        waiting for its deferred messages to fall due.
        """
        if handle.cancel.is_set():
            return False
        store = self.deps.store
        if store.campaigns.get(handle.campaign_id) is None:
            return False  # run() says so in words
        if store.outbox.ready_messages(handle.campaign_id):
            return False
        counts = store.outbox.counts(handle.campaign_id)
        return not (
            counts[MessageState.SENDING] or (handle.resume and counts[MessageState.UNCERTAIN])
        )

    # -- plumbing ----------------------------------------------------------------

    def _notify(self, event: str, *args: object) -> None:
        for observer in self._observers:
            try:
                getattr(observer, event)(*args)
            except Exception:  # an observer's bug must not stop the sending
                log.exception("observer %r failed on %s%r", observer, event, args)

    def _schedule(self) -> None:
        while not self._stop.is_set():
            now = self._clock()
            for job in self._periodic:
                if job.next_at <= now:
                    job.next_at = now + job.interval
                    try:
                        job.job()
                    except Exception:
                        log.exception("periodic job %r failed", job.name)
            upcoming = min((j.next_at for j in self._periodic), default=now + 1.0)
            self._stop.wait(max(0.05, min(1.0, upcoming - self._clock())))
