"""The live status message of each campaign, kept up to date from the runner.

Why it looks like this:
- ``chat.update`` is rate-limited (Tier 3, about 50 a minute) while a campaign
  reports progress after every message. Progress only marks a campaign "dirty";
  one flusher thread edits each dirty message at most every ``interval``
  seconds, and the final state is written at once when the campaign ends. A
  per-campaign lock makes sure a late progress edit never overwrites the final one.
- A 429 is retried by the WebClient's ``RateLimitErrorRetryHandler`` after
  ``Retry-After``; the sending threads never wait for Slack, because the flusher
  and the runner's lane do the calling.
- The message is rendered from the store, not from the counts handed in, so
  whatever edit lands last shows the truth.
- If the app is not in the chosen channel, the status goes to the requester's
  direct messages with a note saying how to invite the app.
- Bounce warnings from the background scan (``alert``) go into the campaign's
  status thread, broadcast to the channel so they are seen, and the message is
  redrawn with the new delivery line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.channels import NO_CHANNELS, ChannelMap
from bot.errors import MailboltError
from bot.handlers import resolution, stats
from bot.handlers.campaign import Deps, Result
from bot.records import Campaign, CampaignStatus
from bot.runner import EXPRESS_MAX_MESSAGES
from bot.slack import describe, views

log = logging.getLogger(__name__)

UPDATE_INTERVAL_SECONDS = 3.0


class _Run(StrEnum):
    """Where the board last saw a campaign's run (the runner's events, not the store)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


_QUEUED, _RUNNING, _DONE = _Run.QUEUED, _Run.RUNNING, _Run.DONE
# ``stats.bounce_alert`` names its campaign by ``DeliveryStats.scope``: "Campaign 12 …".


def status_data(
    deps: Deps,
    campaign_id: int,
    *,
    delivery_known: bool,
    active: bool,
    queued: bool = False,
    waiting_for: int | None = None,
    note: str = "",
    failures: list[tuple[str, str]] | None = None,
) -> views.StatusData:
    """What a status message shows about a campaign, read from the store now.

    Shared by the live status message and ``/sendmail status ID``.
    """
    row = deps.store.campaigns.get(campaign_id)
    assert row is not None
    current = resolution.counts_result(campaign_id, deps)
    return views.StatusData(
        campaign_id=campaign_id,
        requested_by=row.requested_by,
        template=row.template,
        status=current.status,
        counts=current.counts,
        total=row.total,
        reason=current.reason,
        resume_at=current.resume_at,
        failures=failures or current.failures,
        active=active,
        queued=queued,
        waiting_for=waiting_for,
        cancelled=(
            resolution.cancelled_count(campaign_id, deps)
            if current.status == CampaignStatus.CANCELLED
            else 0
        ),
        note=note,
        delivery=stats.stats(deps.store, campaign_id=campaign_id) if delivery_known else None,
        approval=deps.store.approvals.get(campaign_id),
        scheduled_at=row.scheduled_at,
        schedule_zone=row.schedule_zone,
    )


def _error_of(exc: Exception) -> str:
    """Slack's error code, or our own error's words."""
    return exc.response.get("error", "") if isinstance(exc, SlackApiError) else str(exc)


class StatusBoard:
    """Posts and edits status messages; a ``bot.runner.Observer``."""

    def __init__(
        self,
        client: WebClient,
        deps: Deps,
        *,
        interval: float = UPDATE_INTERVAL_SECONDS,
        bounces_known: bool = False,
        alert_channels: ChannelMap = NO_CHANNELS,
        client_for: Callable[[str], WebClient] | None = None,
    ):
        """``bounces_known``: bounce reports are read (BOUNCE_SCAN), so the final
        message shows delivery rates; ``alert_channels`` (STATUS_CHANNEL) take the
        warnings about campaigns that have no status message (those sent from the
        CLI), each in its own workspace's channel;
        ``client_for(team)``: each campaign is spoken about with the bot token of
        its own workspace (``Campaign.team``)."""
        self.client = client
        #: The client of a campaign's workspace (many workspaces); else ``client``.
        self.client_for = client_for or (lambda team: client)
        self.deps = deps
        self.interval = interval
        self.bounces_known = bounces_known
        self.alert_channels = alert_channels
        self._lock = threading.Lock()
        self._state: dict[int, str] = {}
        self._dirty: set[int] = set()
        self._notes: dict[int, str] = {}  # about this run, e.g. why it stopped
        self._moved: dict[int, str] = {}  # why the message is not where it was asked
        self._campaign_locks: dict[int, threading.Lock] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flush_loop, name="slack-status", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()

    # -- posting -----------------------------------------------------------------

    def post(self, campaign_id: int) -> str | None:
        """Post the first status message of a campaign; returns its ``ts``."""
        row = self.deps.store.campaigns.get(campaign_id)
        if row is None or row.status != CampaignStatus.SCHEDULED:  # a scheduled one waits
            with self._lock:
                self._state.setdefault(campaign_id, _QUEUED)
        with self._campaign_lock(campaign_id):
            return self._post(campaign_id)

    def reply(self, campaign_id: int, text: str, *, broadcast: bool = False) -> bool:
        """A line in the status message's thread (who pressed what, errors).

        ``broadcast`` also shows it in the channel. False when there is no status
        message to reply to or Slack refused.
        """
        row = self.deps.store.campaigns.get(campaign_id)
        if not row or not row.status_ts:
            return False
        try:
            self.client_for(row.team).chat_postMessage(
                channel=row.status_channel,
                thread_ts=row.status_ts,
                text=text,
                reply_broadcast=broadcast,
            )
        except SlackApiError as exc:
            log.warning("campaign %s: could not reply in thread: %s", campaign_id, exc)
            return False
        return True

    def alert(self, campaign_id: int, text: str) -> None:
        """A warning about a campaign (``stats.bounce_alert``), where its people look.

        In the status thread, also shown in the channel; without a status message,
        in its workspace's STATUS_CHANNEL, with that workspace's token; with
        neither, only in the log.
        """
        message = f":warning: {views.escape(text)}"
        if self.reply(campaign_id, message, broadcast=True):
            self.refresh(campaign_id)
            return
        row = self.deps.store.campaigns.get(campaign_id)
        team = row.team if row is not None else ""
        channel = self.alert_channels.for_team(team)
        if not channel:
            log.warning("%s (no status channel to post this in)", text)
            return
        try:
            self.client_for(team).chat_postMessage(channel=channel, text=message)
        except (SlackApiError, MailboltError) as exc:  # MailboltError: uninstalled since
            log.warning("could not post a warning (%s): %s", _error_of(exc), text)

    def _post(self, campaign_id: int) -> str | None:
        row = self.deps.store.campaigns.get(campaign_id)
        if not row or not row.status_channel:
            return None
        if row.status_ts:
            return row.status_ts
        text, blocks = self._render(campaign_id)
        try:
            response = self.client_for(row.team).chat_postMessage(
                channel=row.status_channel, text=text, blocks=blocks
            )
        except SlackApiError as exc:
            error = exc.response.get("error", "")
            if error not in ("not_in_channel", "channel_not_found", "is_archived"):
                raise
            return self._post_privately(campaign_id, row, error)
        self.deps.store.campaigns.update(
            campaign_id, status_channel=response["channel"], status_ts=response["ts"]
        )
        return response["ts"]

    def _post_privately(self, campaign_id: int, row: Campaign, error: str) -> str | None:
        """The app cannot post in the chosen channel: tell the requester directly."""
        with self._lock:
            self._moved[campaign_id] = (
                f"I could not post in <#{row.status_channel}> ({error}), so the status "
                "is here. Invite me to that channel with /invite @mailbolt next time."
            )
        text, blocks = self._render(campaign_id)
        client = self.client_for(row.team)
        response = client.chat_postMessage(channel=row.requested_by, text=text, blocks=blocks)
        self.deps.store.campaigns.update(
            campaign_id, status_channel=response["channel"], status_ts=response["ts"]
        )
        return response["ts"]

    # -- runner.Observer ---------------------------------------------------------

    def queued(self, campaign_id: int) -> None:
        self._mark(campaign_id, _QUEUED)

    def started(self, campaign_id: int) -> None:
        self._mark(campaign_id, _RUNNING)

    def progress(self, campaign_id: int, counts: dict[str, int]) -> None:
        with self._lock:
            if self._state.get(campaign_id) != _DONE:
                self._dirty.add(campaign_id)

    def finished(self, campaign_id: int, result: Result) -> None:
        self._final(campaign_id, result)

    def failed(self, campaign_id: int, error: Exception) -> None:
        row = self.deps.store.campaigns.get(campaign_id)
        text = describe(error, row.correlation_id if row else "")
        with self._lock:
            self._notes[campaign_id] = f"Stopped: {text}"
        self._final(campaign_id, None)
        self.reply(campaign_id, f":x: {text}")

    # -- editing -----------------------------------------------------------------

    def refresh(self, campaign_id: int) -> None:
        """Edit the message at the next flush (someone changed the campaign)."""
        with self._lock:
            self._dirty.add(campaign_id)

    def flush(self) -> int:
        """Edit every message whose campaign moved since the last edit; returns how many."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for campaign_id in sorted(dirty):
            with self._campaign_lock(campaign_id):
                try:
                    self._edit(campaign_id, None)
                except SlackApiError as exc:
                    log.warning("campaign %s: status update failed: %s", campaign_id, exc)
        return len(dirty)

    def _mark(self, campaign_id: int, state: str) -> None:
        with self._lock:
            self._state[campaign_id] = state
            self._notes.pop(campaign_id, None)
            self._dirty.add(campaign_id)

    def _final(self, campaign_id: int, result: Result | None) -> None:
        """The last edit of a run, at once; the lock orders it after any late flush."""
        with self._campaign_lock(campaign_id):
            with self._lock:
                self._state[campaign_id] = _DONE
                self._dirty.discard(campaign_id)
            self._edit(campaign_id, result)

    def _edit(self, campaign_id: int, result: Result | None) -> None:
        row = self.deps.store.campaigns.get(campaign_id)
        if not row or not row.status_channel:
            return
        if not row.status_ts:
            self._post(campaign_id)
            return
        text, blocks = self._render(campaign_id, result)
        try:
            self.client_for(row.team).chat_update(
                channel=row.status_channel, ts=row.status_ts, text=text, blocks=blocks
            )
        except SlackApiError as exc:
            if exc.response.get("error") != "message_not_found":
                raise
            log.warning("campaign %s: status message was deleted; posting a new one", campaign_id)
            self.deps.store.campaigns.update(campaign_id, status_ts=None)
            self._post(campaign_id)

    def _render(
        self, campaign_id: int, result: Result | None = None
    ) -> tuple[str, list[dict[str, Any]]]:
        with self._lock:
            state = self._state.get(campaign_id, _DONE)
            note = " ".join(
                n for n in (self._notes.get(campaign_id), self._moved.get(campaign_id)) if n
            )
            running = sorted(
                c for c, s in self._state.items() if s == _RUNNING and c != campaign_id
            )
        waiting_for = None
        if state == _QUEUED and running:
            row = self.deps.store.campaigns.get(campaign_id)
            if row is not None and row.total > EXPRESS_MAX_MESSAGES:  # else its own lane
                waiting_for = running[0]
        return views.status_message(
            status_data(
                self.deps,
                campaign_id,
                delivery_known=self.bounces_known and state == _DONE,
                active=state in (_QUEUED, _RUNNING),
                queued=state == _QUEUED,
                waiting_for=waiting_for,
                note=note,
                failures=result.failures if result else None,
            )
        )

    def _campaign_lock(self, campaign_id: int) -> threading.Lock:
        with self._lock:
            return self._campaign_locks.setdefault(campaign_id, threading.Lock())

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # keep the flusher alive whatever one edit did
                log.exception("status update failed")
