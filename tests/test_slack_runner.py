"""The background runner with a real store and the sandbox transport (or a gated one)."""

from __future__ import annotations

import threading

import pytest

from bot.errors import UserInputError
from bot.handlers import campaign, preflight
from bot.handlers.recipient_paste import parse_text
from bot.mail.sandbox import SandboxTransport
from bot.records import CampaignStatus
from bot.runner import Runner
from bot.wiring import build_deps
from tests.fakes.slack_fake import wait_for

CANCELLED, COMPLETED, RUNNING = (
    CampaignStatus.CANCELLED,
    CampaignStatus.COMPLETED,
    CampaignStatus.RUNNING,
)


class Recorder:
    """An observer that writes down what it is told."""

    def __init__(self):
        self.events: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def _add(self, kind: str, campaign_id: int) -> None:
        with self.lock:
            self.events.append((kind, campaign_id))

    def queued(self, campaign_id):
        self._add("queued", campaign_id)

    def started(self, campaign_id):
        self._add("started", campaign_id)

    def progress(self, campaign_id, counts):
        self._add("progress", campaign_id)

    def finished(self, campaign_id, result):
        self._add("finished", campaign_id)

    def failed(self, campaign_id, error):
        self._add(f"failed:{type(error).__name__}", campaign_id)


class Broken(Recorder):
    def progress(self, campaign_id, counts):
        raise RuntimeError("observer bug")


class GatedTransport(SandboxTransport):
    """The sandbox, but messages of ``held`` campaigns wait until the test lets them go."""

    max_in_flight = 1

    def __init__(self, outbox, held: set[int]):
        super().__init__(outbox)
        self.held = held
        self.gate = threading.Semaphore(0)

    def send(self, message):
        if message.campaign_id in self.held:
            assert self.gate.acquire(timeout=30)
        return super().send(message)


@pytest.fixture
def deps(settings):
    return build_deps(settings)


@pytest.fixture
def runner(deps):
    running = Runner(deps, due_check_seconds=3600)
    yield running
    running.wait_idle(30)
    running.close()


def recorded(deps, n=2) -> int:
    request = campaign.CampaignRequest(
        template="welcome",
        recipients=parse_text(", ".join(f"p{i}@example.com" for i in range(n))),
        requested_by="U0OWNER",
        common_vars={"team": "Acme", "start_url": "https://acme.example"},
    )
    campaign_id, _ = preflight.record(preflight.preflight(request, deps), deps)
    return campaign_id


def test_a_campaign_runs_in_the_background_and_observers_follow(deps, runner):
    seen, broken = Recorder(), Broken()
    runner.add_observer(broken)
    runner.add_observer(seen)
    runner.open(resume=False)
    campaign_id = recorded(deps)
    handle = runner.start(campaign_id)
    assert runner.start(campaign_id) is handle  # already queued: the same run
    result = handle.wait(30)
    assert result is not None and result.counts["sent"] == 2
    kinds = [kind for kind, _ in seen.events]
    assert kinds[0] == "queued" and kinds[1] == "started" and kinds[-1] == "finished"
    assert kinds.count("progress") == 2
    assert not runner.is_active(campaign_id)


def test_unfinished_campaigns_resume_at_open(deps, runner):
    campaign_id = recorded(deps)
    row = deps.store.outbox.messages(campaign_id)[0]
    assert deps.store.outbox.claim(row.id, "sandbox")  # the process died while sending it
    assert runner.open() == [campaign_id]
    assert runner.wait_idle(30)
    counts = deps.store.outbox.counts(campaign_id)
    # Not in the sandbox outbox, so certainly not sent: queued again and sent once.
    assert counts["sent"] == 2 and counts["uncertain"] == 0


def test_deferred_messages_wait_for_their_time_and_then_go(deps, runner):
    campaign_id = recorded(deps)
    later = deps.clock() + 3600
    for row in deps.store.outbox.messages(campaign_id):
        deps.store.outbox.mark_deferred(row.id, later, "the daily sending limit is reached")
    runner.open(resume=False)
    assert runner.start_due() == []
    runner.start(campaign_id).wait(30)
    assert deps.store.campaigns.get(campaign_id).status == RUNNING  # not "completed"
    assert deps.store.outbox.counts(campaign_id)["deferred"] == 2
    for row in deps.store.outbox.messages(campaign_id):
        deps.store.outbox.mark_deferred(row.id, deps.clock() - 1, "due now")
    assert runner.start_due() == [campaign_id]
    assert runner.wait_idle(30)
    assert deps.store.outbox.counts(campaign_id)["sent"] == 2
    assert deps.store.campaigns.get(campaign_id).status == COMPLETED


def test_cancel_a_campaign_waiting_for_deferred_messages(deps, runner):
    campaign_id = recorded(deps)
    for row in deps.store.outbox.messages(campaign_id):
        deps.store.outbox.mark_deferred(row.id, deps.clock() + 3600, "limit")
    runner.open(resume=False)
    assert runner.cancel(campaign_id)
    assert runner.wait_idle(30)
    assert deps.store.campaigns.get(campaign_id).status == CANCELLED
    assert deps.store.outbox.counts(campaign_id)["skipped"] == 2
    assert not runner.cancel(campaign_id)  # nothing left


def test_a_test_send_does_not_wait_behind_a_long_campaign(deps, runner):
    long_id = recorded(deps, n=3)
    gated = GatedTransport(deps.store.path.parent / "outbox", held={long_id})
    deps.transport = lambda: gated
    runner.open(resume=False)
    long_one = runner.start(long_id)
    wait_for(lambda: runner.is_running(long_id), "the long campaign to start")
    test_send = runner.start(recorded(deps, n=1))
    result = test_send.wait(30)
    assert result is not None and result.counts["sent"] == 1
    assert runner.is_running(long_id) and deps.store.outbox.counts(long_id)["sent"] == 0
    gated.gate.release(3)
    assert long_one.wait(30).counts["sent"] == 3


def test_a_failure_reaches_the_observers(deps, runner):
    seen = Recorder()
    runner.add_observer(seen)
    runner.open(resume=False)
    handle = runner.start(999)
    assert handle.wait(30) is None and isinstance(handle.error, UserInputError)
    assert ("failed:UserInputError", 999) in seen.events


def test_periodic_jobs_run_and_one_failing_does_not_stop_the_others(deps):
    runner = Runner(deps, due_check_seconds=3600)
    ticks = []
    runner.every(0.05, lambda: 1 / 0, "broken")
    runner.every(0.05, lambda: ticks.append(1), "counter")
    runner.open(resume=False)
    try:
        wait_for(lambda: len(ticks) >= 3, "three ticks")
    finally:
        runner.close()


def test_close_says_whether_the_sends_under_way_finished(deps):
    runner = Runner(deps, due_check_seconds=3600)
    campaign_id = recorded(deps, n=3)
    gated = GatedTransport(deps.store.path.parent / "outbox", held={campaign_id})
    deps.transport = lambda: gated
    runner.open(resume=False)
    runner.start(campaign_id)
    wait_for(lambda: deps.store.outbox.counts(campaign_id)["sending"] == 1, "a send under way")
    assert runner.close(timeout=0.1) is False  # that send is held at the gate
    gated.gate.release()
    wait_for(lambda: not runner.is_running(campaign_id), "the halted run to end")
    assert runner.close() is True
    counts = deps.store.outbox.counts(campaign_id)
    assert (counts["sent"], counts["queued"]) == (1, 2), "the rest stays queued"
