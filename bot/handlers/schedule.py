""" "Send later": when a recorded campaign starts, and who may cancel or move it.

A campaign is checked in full (``preflight``) when it is scheduled, recorded
``scheduled`` with its time (seconds since the epoch, UTC) and the zone the
person gave it in, and checked again when its time comes: an unsubscribe, a
changed template or a sensitive value found since then counts. Nothing else
starts a scheduled campaign: the store leaves it out of resumable work, and the
send loop refuses to run one.

``release`` is the one decision between "recorded" and "sending": every path
that lets a campaign go (Send now, a scheduled time, an approval) calls it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.errors import MailboltError, UserInputError
from bot.handlers import attachments, preflight, quota, scope
from bot.handlers.campaign import CANCELLED_REASON, CampaignRequest, Deps, Plan
from bot.handlers.display import NOT_STARTED
from bot.handlers.quota import DAY_SECONDS, estimate_duration
from bot.handlers.values import ATTACHMENTS_COLUMN
from bot.models import Recipient, RecipientList
from bot.records import Campaign, CampaignStatus, MessageState
from bot.timefmt import fixed_zone_name, local_moment, wall_minute, zone

#: The furthest ahead a campaign may be scheduled.
MAX_AHEAD_SECONDS = 365 * 24 * 3600.0
#: Said when a time is refused: the forms a person may type.
WHEN_FORMS = '"YYYY-MM-DD HH:MM", optionally followed by a zone (Europe/Paris) or offset (+01:00)'

SCHEDULED, RUNNING, CANCELLED = (
    CampaignStatus.SCHEDULED,
    CampaignStatus.RUNNING,
    CampaignStatus.CANCELLED,
)
_OFFSET = re.compile(r"^(?:Z|[+-]\d{2}:?\d{2})$")


@dataclass(frozen=True)
class When:
    """A moment a campaign is to start, and the zone to show it in."""

    at: float
    zone: str

    def words(self, now: float | None = None) -> str:
        """``Tuesday 3 March, 09:00 Europe/Paris``."""
        return local_moment(self.at, self.zone, now=now)


class Released(enum.StrEnum):
    """What ``release`` did with a campaign."""

    STARTED = "started"  # handed to ``start``: it sends now
    WAITING = "waiting"  # its time is ahead: it stays scheduled
    REFUSED = "refused"  # checked again at its time and refused; its status says why
    GONE = "gone"  # cancelled, moved or started by someone else meanwhile


# -- times -------------------------------------------------------------------------


def parse_when(text: str, *, default_zone: str, now: float) -> When:
    """``2026-03-03 09:00`` (in ``default_zone``), ``… Europe/Paris``, ``… +01:00``.

    Refuses, in words, a time that does not parse, a local time the clocks skip
    (a daylight-saving change), one in the past, and one over a year ahead.
    """
    raw = " ".join(text.split())
    zone_name = default_zone
    stamp = raw
    head, _, tail = raw.rpartition(" ")
    if head and (tail[:1].isalpha() or _OFFSET.match(tail)):
        stamp, zone_name = head, tail
    try:
        if ":" not in stamp:  # a date alone would silently mean midnight
            raise ValueError(stamp)
        local = datetime.fromisoformat(stamp.replace(" ", "T", 1))
    except ValueError:
        raise UserInputError(
            f"{text!r} is not a date and time: write {WHEN_FORMS}.", field="when"
        ) from None
    if _OFFSET.match(zone_name):
        offset = datetime.fromisoformat(f"2000-01-01T00:00{zone_name}").utcoffset()
        assert offset is not None
        zone_name = fixed_zone_name(offset)
    if local.tzinfo is not None:
        offset = local.utcoffset()
        assert offset is not None
        zone_name, local = fixed_zone_name(offset), local.replace(tzinfo=None)
    return local_when(local, zone_name, now=now)


def local_when(local: datetime, zone_name: str, *, now: float) -> When:
    """A wall-clock time (no zone) in ``zone_name``, checked like ``parse_when``'s."""
    try:
        where = zone(zone_name)
    except ValueError:
        raise UserInputError(
            f"{zone_name!r} is not a time zone: use a name like Europe/Paris or an "
            "offset like +01:00.",
            field="when",
        ) from None
    aware = local.replace(tzinfo=where, second=0, microsecond=0)
    back = aware.astimezone(UTC).astimezone(where)  # a skipped time comes back moved
    if back.replace(tzinfo=None) != aware.replace(tzinfo=None):
        raise UserInputError(
            f"{wall_minute(local)} does not exist in {zone_name}: the clocks skip it "
            "(daylight saving time). Choose another time.",
            field="when",
        )
    when = When(aware.timestamp(), zone_name)
    check_when(when, now)
    return when


def check_when(when: When, now: float) -> None:
    """Refuse a time in the past or more than a year ahead, saying which."""
    if when.at <= now:
        raise UserInputError(
            f"{when.words(now)} has already passed: choose a time ahead, or send now.",
            field="when",
        )
    if when.at > now + MAX_AHEAD_SECONDS:
        raise UserInputError(
            f"{when.words(now)} is more than a year ahead: choose a time within a year.",
            field="when",
        )


@dataclass(frozen=True)
class Finish:
    """When a campaign starting at a time should be done, and what waits for the
    daily limit (counted from the account's sends in the day before that time)."""

    deferred: int
    finish_at: float


def estimate_finish(count: int, deps: Deps, at: float, units_per_minute: int) -> Finish:
    """An estimate only: sends made between now and ``at`` are not known yet."""
    left = quota.read(
        deps.store, deps.account, daily_limit=deps.policy.daily_limit, now=max(at, deps.clock())
    ).left
    if left is None or count <= left:
        return Finish(0, at + estimate_duration(count, units_per_minute))
    deferred = count - left
    return Finish(deferred, at + DAY_SECONDS + estimate_duration(deferred, units_per_minute))


# -- scheduling, moving, cancelling -------------------------------------------------


def may_manage(campaign: Campaign, user: str, admins: Collection[str] | None) -> bool:
    """The person who scheduled it and the admins; ``admins`` None: the machine's
    operator on the command line."""
    return admins is None or user == campaign.requested_by or user in admins


def schedule(plan: Plan, deps: Deps, when: When | None) -> tuple[int, bool]:
    """Record a checked plan: scheduled for ``when``, or to go at once (None).
    Same idempotency as ``preflight.record``."""
    if when is not None:
        check_when(when, deps.clock())
    return preflight.record(plan, deps, when=(when.at, when.zone) if when else None)


def scheduled_campaign(
    deps: Deps,
    campaign_id: int,
    actor: str,
    admins: Collection[str] | None,
    *,
    team: str | None = None,
) -> Campaign:
    """The scheduled campaign ``actor`` (of workspace ``team``; None: the operator)
    may change; refusals say why, another workspace's is "no such campaign"."""
    row = scope.campaign_of(deps.store, campaign_id, team)
    if not may_manage(row, actor, admins):
        raise UserInputError(
            f"Only the person who scheduled campaign #{campaign_id} and the admins may change it.",
            field="campaign",
        )
    if row.status != SCHEDULED:
        raise UserInputError(
            f"Campaign #{campaign_id} is not scheduled any more (it is {row.status}).",
            field="campaign",
        )
    return row


def cancel(
    deps: Deps,
    campaign_id: int,
    actor: str,
    admins: Collection[str] | None,
    *,
    team: str | None = None,
) -> Campaign:
    """Cancel a scheduled campaign before it starts: nothing is sent, it is audited."""
    scheduled_campaign(deps, campaign_id, actor, admins, team=team)
    store = deps.store
    if not store.campaigns.update_if(
        campaign_id, SCHEDULED, status=CANCELLED, finished_at=deps.clock()
    ):
        raise UserInputError(f"Campaign #{campaign_id} has just started or changed.")
    for row in store.outbox.messages(campaign_id, [MessageState.QUEUED]):
        store.outbox.mark_skipped(row.id, CANCELLED_REASON)
    store.audit.record(actor, "campaign.schedule_cancelled", campaign_id=campaign_id)
    attachments.release(campaign_id, store, deps.attachment_files)
    found = store.campaigns.get(campaign_id)
    assert found is not None
    return found


def move(
    deps: Deps,
    campaign_id: int,
    actor: str,
    admins: Collection[str] | None,
    when: When,
    *,
    team: str | None = None,
) -> Campaign:
    """Give a scheduled campaign a new time, checked like the first; audited."""
    before = scheduled_campaign(deps, campaign_id, actor, admins, team=team)
    check_when(when, deps.clock())
    if not deps.store.campaigns.update_if(
        campaign_id, SCHEDULED, scheduled_at=when.at, schedule_zone=when.zone
    ):
        raise UserInputError(f"Campaign #{campaign_id} has just started or changed.")
    deps.store.audit.record(
        actor,
        "campaign.schedule_moved",
        campaign_id=campaign_id,
        before=before.scheduled_at,
        after=when.at,
        zone=when.zone,
    )
    found = deps.store.campaigns.get(campaign_id)
    assert found is not None
    return found


def listed(
    deps: Deps,
    user: str | None,
    admins: Collection[str] | None,
    *,
    team: str | None = None,
) -> list[Campaign]:
    """Upcoming campaigns of workspace ``team`` (None: every one, for the CLI): one's
    own, or everyone's for an admin or the CLI (None)."""
    everyone = user is None or admins is None or user in admins
    return deps.store.campaigns.scheduled(None if everyone else user, team=team)


# -- starting ---------------------------------------------------------------------


def release(
    campaign_id: int,
    deps: Deps,
    start: Callable[[int], object],
    *,
    now: float | None = None,
) -> Released:
    """THE decision, for a recorded campaign allowed to go: start now or wait.

    ``deps`` are those of the campaign's sender account. A campaign whose time
    is ahead stays (or becomes) ``scheduled``: ``WAITING``. One with no time,
    or whose time came, is checked again if it was scheduled (``REFUSED`` when
    it can no longer go), moved to ``running`` by a conditional update (only
    one of two racing processes wins; the loser gets ``GONE``) and handed to
    ``start`` (the runner's, or the CLI's own send): ``STARTED``.
    """
    now = deps.clock() if now is None else now
    row = deps.store.campaigns.get(campaign_id)
    if row is None or row.status in (CANCELLED, CampaignStatus.COMPLETED):
        return Released.GONE
    if row.scheduled_at is not None and row.scheduled_at > now:
        if row.status == SCHEDULED:
            return Released.WAITING
        changed = deps.store.campaigns.update_if(campaign_id, row.status, status=SCHEDULED)
        return Released.WAITING if changed else Released.GONE
    if row.status == RUNNING:  # recorded to go at once
        start(campaign_id)
        return Released.STARTED
    if row.scheduled_at is not None:
        refusal = recheck(row, deps)
        if refusal is not None:
            return _refuse(row, deps, refusal)
    if not deps.store.campaigns.update_if(
        campaign_id, row.status, status=RUNNING, paused_reason=None
    ):
        return Released.GONE
    deps.store.audit.record("system", "campaign.schedule_started", campaign_id=campaign_id)
    start(campaign_id)
    return Released.STARTED


def start_due(
    deps: Deps,
    deps_for: Callable[[str], Deps],
    start: Callable[[int], object],
    *,
    now: float | None = None,
) -> dict[int, Released]:
    """Release every scheduled campaign whose time came; what became of each."""
    now = deps.clock() if now is None else now
    outcomes = {}
    for campaign_id in deps.store.campaigns.scheduled_due(now):
        row = deps.store.campaigns.get(campaign_id)
        if row is not None:
            outcomes[campaign_id] = release(campaign_id, deps_for(row.account), start, now=now)
    return outcomes


def recheck(campaign: Campaign, deps: Deps) -> str | None:
    """Preflight again, as of now: None when it may go, else why not.

    What preflight drops now (an address unsubscribed or bounced since) is
    skipped with the reason; a refusal of the whole campaign (the template gone
    or broken, sensitive data, missing marketing settings) is returned.
    """
    store = deps.store
    queued = store.outbox.messages(campaign.id, [MessageState.QUEUED])
    if not queued:
        return None
    try:
        files = attachments.load(campaign.common_vars, deps.attachment_files)
        common = {k: v for k, v in campaign.common_vars.items() if k not in _FILE_KEYS}
        recipients = [Recipient(m.email, m.name, dict(m.variables), source="") for m in queued]
        columns = sorted({k for m in queued for k in m.variables})
        request = CampaignRequest(
            template=campaign.template,
            recipients=RecipientList(recipients, [], [], columns),
            requested_by=campaign.requested_by,
            common_vars=common,
            subject=campaign.subject or None,
            attachments=files or None,
            team=campaign.team,
        )
        plan = preflight.preflight(request, deps)
    except MailboltError as exc:
        return str(exc)
    dropped = {s.text.lower(): s.reason for s in plan.suppressed}
    for message in queued:
        reason = dropped.get(message.email.lower())
        if reason:
            store.outbox.mark_skipped(message.id, reason)
    return None


def _refuse(row: Campaign, deps: Deps, reason: str) -> Released:
    """The campaign can no longer go as checked: cancelled with the reason shown."""
    store = deps.store
    why = f"{NOT_STARTED}: {reason}"
    if not store.campaigns.update_if(
        row.id, row.status, status=CANCELLED, paused_reason=why, finished_at=deps.clock()
    ):
        return Released.GONE
    for message in store.outbox.messages(row.id, [MessageState.QUEUED]):
        store.outbox.mark_skipped(message.id, why)
    store.audit.record("system", "campaign.schedule_refused", campaign_id=row.id, reason=reason)
    attachments.release(row.id, store, deps.attachment_files)
    return Released.REFUSED


_FILE_KEYS = frozenset({ATTACHMENTS_COLUMN})
