"""Approval by a second person: which campaigns need it, who may give it, and the
one way an approved campaign is handed on to be sent.

Why it looks like this:
- The policy is a pure function of the settings' numbers (``needs_approval``), so
  the preview, the CLI and the tests ask the same question and get the same words.
- A campaign that needs approval is recorded ``awaiting_approval``: nothing sends
  it (the runner's resume and due checks skip it, ``send_loop.run`` refuses it),
  so a crash, a restart or a retry button cannot send it early.
- Every decision is checked here, on the server, on every click: the campaign
  exists and still waits, the person is an approver, and is not the requester.
  The store makes the move itself conditional, so two approvers at once, or a
  double click, decide once; and it refuses a requester's decision on its own.
- An approval is bound to a digest of what will be sent (template files, subject,
  values, recipients, From, attachments). ``_release`` checks it again; a campaign
  changed after the request or the approval waits for a new decision.
- ``_release`` is the one place an approved campaign moves on; scheduling
  (``scheduled``) will hook in there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from bot.channels import NO_CHANNELS, ChannelMap
from bot.errors import PolicyError, UserInputError
from bot.handlers import attachments, preflight, scope
from bot.handlers.campaign import CampaignRequest, Deps, Plan, message_variables
from bot.models import Recipient, RecipientList
from bot.records import Approval, ApprovalDecision, Campaign, CampaignStatus, MessageState

AWAITING = CampaignStatus.AWAITING_APPROVAL
#: What ``send_loop.run`` and the CLI say about a campaign nobody approved yet.
WAITING = "waiting for approval"


class GroupMembers(Protocol):
    """The part of ``bot.ports.Directory`` approval needs: a user group's members."""

    def group_members(self, group_id: str) -> list[str]: ...


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which campaigns need a second person, who may approve, where they are asked.

    Built from ``APPROVAL_REQUIRED``, ``APPROVAL_MIN_RECIPIENTS``, ``APPROVERS``
    and ``APPROVAL_CHANNEL`` (checked in ``bot.config``).
    """

    required: str = "never"
    min_recipients: int = 0
    approvers: frozenset[str] = frozenset()
    channels: ChannelMap = NO_CHANNELS

    @property
    def active(self) -> bool:
        """Some campaign may need approval."""
        return self.required != "never" or self.min_recipients > 0


def needs_approval(policy: ApprovalPolicy, category: str, recipients: int) -> str:
    """Why a campaign of ``category`` to ``recipients`` people needs approval, in
    words; empty when it does not."""
    reasons = []
    if policy.required == "always":
        reasons.append("every campaign needs approval (APPROVAL_REQUIRED=always)")
    elif policy.required == "marketing" and category == "marketing":
        reasons.append("marketing email needs approval (APPROVAL_REQUIRED=marketing)")
    if policy.min_recipients and recipients >= policy.min_recipients:
        reasons.append(
            f"{recipients:,} recipients: {policy.min_recipients:,} or more need approval "
            "(APPROVAL_MIN_RECIPIENTS)"
        )
    return "; ".join(reasons)


def channel_for(policy: ApprovalPolicy, team: str) -> str:
    """Where campaign requests of workspace ``team`` are posted (``""``: the CLI's
    own campaigns, which use the default); ``""`` when that workspace has none."""
    return policy.channels.for_team(team)


def no_channel(policy: ApprovalPolicy, team: str, reason: str) -> str:
    """Why a campaign of workspace ``team`` that needs approval (``reason``) cannot
    be asked about: no approval channel for it; ``""`` when there is one.

    Checked before anything is recorded (the preview, the CLI), because a request
    that can never be posted would wait forever, and nothing else would say why.
    """
    if not reason or channel_for(policy, team):
        return ""
    whose = f"Slack workspace {team}" if team else "campaigns without a workspace"
    example = f"{team}:C0123ABCD" if team else "a channel ID without a workspace"
    return (
        f"This campaign needs approval ({reason}), but there is no approval channel for "
        f"{whose} to ask in: an admin adds {example} to the APPROVAL_CHANNEL setting and "
        "invites me to that channel."
    )


def require_channel(policy: ApprovalPolicy, team: str, reason: str) -> None:
    """``PolicyError`` (``no_channel``'s words) when the request could not be posted:
    called before a campaign that needs approval is recorded."""
    problem = no_channel(policy, team, reason)
    if problem:
        raise PolicyError(f"{problem} Nothing was sent or recorded.")


def is_approver(policy: ApprovalPolicy, user: str, directory: GroupMembers | None) -> bool:
    """``user`` is named in APPROVERS, or is a member of a user group named there."""
    if user in policy.approvers:
        return True
    groups = sorted(a for a in policy.approvers if a.startswith("S"))
    if not groups or directory is None:
        return False
    return any(user in directory.group_members(group) for group in groups)


def approvers_text(policy: ApprovalPolicy) -> str:
    """APPROVERS as Slack shows them: ``<@U…>`` and ``<!subteam^S…>``."""
    return ", ".join(
        f"<!subteam^{a}>" if a.startswith("S") else f"<@{a}>" for a in sorted(policy.approvers)
    )


# -- what is approved ------------------------------------------------------------------


def campaign_digest(campaign: Campaign, deps: Deps) -> str:
    """A digest of everything that decides what the campaign sends.

    The template's files (as they are now), subject, category, common values
    (attachments included: their manifest names each file by its content), the
    sending account, and every recipient with their values. Message states are
    left out: sending moves them, and that changes nothing that is sent.
    """
    digest = hashlib.sha256()

    def add(value: object) -> None:
        digest.update(json.dumps(value, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\0")

    add([campaign.template, campaign.subject, campaign.category, campaign.account])
    add(campaign.common_vars)
    catalogue = deps.catalogue.for_team(campaign.team)
    info = catalogue.get(campaign.template)
    for name in (info.html, info.text):
        path = catalogue.file_path(name) if name else None
        add(hashlib.sha256(path.read_bytes()).hexdigest() if path and path.is_file() else "")
    for message in deps.store.outbox.messages(campaign.id):
        add([message.position, message.email, message.name, message.variables])
    return digest.hexdigest()


def record(
    plan: Plan, deps: Deps, reason: str, when: tuple[float, str] | None = None
) -> tuple[int, bool]:
    """Record the plan as a campaign awaiting approval, and its request (``when``:
    the time it is scheduled for once approved, and its zone).

    Idempotent like ``preflight.record``: a campaign already recorded under the
    same key keeps its request (one is made if it has none).
    """
    campaign_id, created = preflight.record(plan, deps, status=AWAITING, when=when)
    store = deps.store
    if store.approvals.get(campaign_id) is None:
        campaign = store.campaigns.get(campaign_id)
        assert campaign is not None
        store.approvals.request(
            campaign_id, campaign.requested_by, campaign_digest(campaign, deps), reason
        )
    return campaign_id, created


# -- deciding --------------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    """A decision that was taken, and whether the campaign may start now."""

    approval: Approval
    campaign: Campaign
    released: bool = False


def check_decider(
    campaign_id: int,
    user: str,
    policy: ApprovalPolicy,
    deps: Deps,
    directory: GroupMembers | None,
    *,
    team: str | None = None,
) -> tuple[Campaign, Approval]:
    """The campaign and its pending request, if ``user`` (of workspace ``team``;
    None: the operator) may decide it now.

    Raises ``PolicyError`` (not an approver, own campaign) or ``UserInputError``
    (no such campaign, also another workspace's; already decided) with words for
    the person who clicked.
    """
    campaign = scope.campaign_of(deps.store, campaign_id, team)
    approval = deps.store.approvals.get(campaign_id)
    if campaign is None or approval is None:
        raise UserInputError(f"There is no campaign #{campaign_id} waiting for approval.")
    if not is_approver(policy, user, directory):
        raise PolicyError(
            f"Only the approvers ({approvers_text(policy) or 'nobody is set'}) may decide "
            f"on campaign #{campaign_id}."
        )
    if user == approval.requested_by or user == campaign.requested_by:
        raise PolicyError(
            f"Nobody approves their own campaign: someone else among the approvers must "
            f"decide on campaign #{campaign_id}."
        )
    if approval.decision != ApprovalDecision.PENDING or campaign.status != AWAITING:
        raise UserInputError(_already(campaign, approval))
    return campaign, approval


def _already(campaign: Campaign, approval: Approval) -> str:
    if approval.decision == ApprovalDecision.PENDING:
        return f"Campaign #{campaign.id} is not waiting for approval any more ({campaign.status})."
    return (
        f"Campaign #{campaign.id} was already {approval.decision.value} "
        f"by <@{approval.decided_by}>."
    )


def decide(
    campaign_id: int,
    user: str,
    decision: ApprovalDecision,
    policy: ApprovalPolicy,
    deps: Deps,
    directory: GroupMembers | None,
    note: str = "",
    *,
    team: str | None = None,
) -> Decided:
    """Approve or reject campaign ``campaign_id`` as ``user`` of workspace ``team``
    (None: the operator); an approval releases it.

    Raises as ``check_decider`` does, also when another approver decided first.
    """
    check_decider(campaign_id, user, policy, deps, directory, team=team)
    note = note.strip()
    if decision == ApprovalDecision.REJECTED and not note:
        raise UserInputError("Say why it is rejected: the requester reads it.", field="reason")
    if not deps.store.approvals.decide(campaign_id, user, decision, note):
        campaign = deps.store.campaigns.get(campaign_id)
        approval = deps.store.approvals.get(campaign_id)
        assert campaign is not None and approval is not None
        raise UserInputError(_already(campaign, approval))
    released = decision == ApprovalDecision.APPROVED and _release(campaign_id, deps, user)
    campaign = deps.store.campaigns.get(campaign_id)
    approval = deps.store.approvals.get(campaign_id)
    assert campaign is not None and approval is not None
    return Decided(approval, campaign, released)


def withdraw(
    campaign_id: int,
    user: str,
    deps: Deps,
    admins: Collection[str] | None,
    *,
    team: str | None = None,
) -> Campaign:
    """Take a request for approval back (its requester, or an admin; ``admins``
    None: the machine's operator on the command line). The campaign is cancelled
    and nothing is sent; an approver's later click finds it decided. Another
    workspace's campaign (``team``) is "no such campaign"."""
    campaign = scope.campaign_of(deps.store, campaign_id, team)
    approval = deps.store.approvals.get(campaign_id)
    if campaign is None or approval is None:
        raise UserInputError(f"Campaign #{campaign_id} is not waiting for approval.")
    if admins is not None and user != campaign.requested_by and user not in admins:
        raise UserInputError(
            f"Only the person who asked for campaign #{campaign_id} and the admins may "
            "withdraw the request."
        )
    if not deps.store.approvals.withdraw(campaign_id, user):
        raise UserInputError(_already(campaign, approval))
    attachments.release(campaign_id, deps.store, deps.attachment_files)
    found = deps.store.campaigns.get(campaign_id)
    assert found is not None
    return found


def _release(campaign_id: int, deps: Deps, actor: str) -> bool:
    """THE hand-over of an approved campaign; True when it may start now (it is
    ``running``, for the runner to start). One with a time becomes ``scheduled``
    and keeps it: ``schedule.start_due`` starts it at its time, checked again,
    or within seconds when the approval came after the time. False (and nothing
    moves) when it is not approved, was released already, or changed since the
    request (it then waits for a new decision).
    """
    if not still_as_approved(campaign_id, deps):
        return False
    if not deps.store.approvals.release(campaign_id, actor):
        return False
    campaign = deps.store.campaigns.get(campaign_id)
    return campaign is not None and campaign.status == CampaignStatus.RUNNING


def still_as_approved(campaign_id: int, deps: Deps) -> bool:
    """False if the campaign differs from what its request showed: the approval is
    then void, and the campaign waits for a new decision on what it is now."""
    store = deps.store
    approval = store.approvals.get(campaign_id)
    campaign = store.campaigns.get(campaign_id)
    if approval is None or campaign is None:
        return True  # never needed approval
    now = campaign_digest(campaign, deps)
    if now == approval.digest:
        return True
    store.approvals.reopen(
        campaign_id,
        now,
        "changed after it was submitted for approval: it needs approval again",
    )
    return False


def release_approved(deps: Deps) -> list[int]:
    """Release approved campaigns left waiting (a restart between the two steps)."""
    return [c for c in deps.store.approvals.approved_waiting() if _release(c, deps, "mailbolt")]


def refuse_unapproved(campaign: Campaign, deps: Deps) -> str:
    """Why ``send_loop.run`` must not send ``campaign`` now; empty if it may.

    The last check before anything is sent: a campaign still awaiting approval,
    or one changed after it was approved, is not sent.
    """
    if campaign.status == AWAITING:
        return WAITING
    if campaign.status in (CampaignStatus.RUNNING, CampaignStatus.PAUSED) and not still_as_approved(
        campaign.id, deps
    ):
        return WAITING
    return ""


# -- what approvers look at ------------------------------------------------------------


def first_message_plan(campaign_id: int, deps: Deps) -> Plan:
    """The campaign's first recipient and message, as the preview showed them:
    for the approver's Preview and "Send me a test"."""
    campaign = deps.store.campaigns.get(campaign_id)
    if campaign is None:
        raise UserInputError(f"There is no campaign #{campaign_id}.")
    rows = deps.store.outbox.messages(
        campaign_id, [MessageState.QUEUED, MessageState.DEFERRED], limit=1
    )
    if not rows:
        raise UserInputError(f"Campaign #{campaign_id} has no message left to show.")
    row = rows[0]
    first = Recipient(row.email, row.name, dict(row.variables))
    renderer = deps.catalogue.for_team(campaign.team).renderer(
        campaign.template, subject_override=campaign.subject or None
    )
    common = dict(campaign.common_vars)
    files = attachments.load(common, deps.attachment_files)
    variables = message_variables(
        deps, first.email, first.name, first.variables, common, campaign_id, campaign.category
    )
    rendered = renderer.render(variables, who=first.label)
    request = CampaignRequest(
        template=campaign.template,
        recipients=RecipientList([first]),
        requested_by=campaign.requested_by,
        common_vars=common,
        subject=campaign.subject or None,
        attachments=files or None,
        team=campaign.team,
    )
    return Plan(request, renderer, [first], [], [], rendered)


def counts_line(campaign: Campaign, deps: Deps) -> str:
    """``120 recipients (3 left out)``: who gets it, and who is skipped already."""
    counts = deps.store.outbox.counts(campaign.id)
    to_send = campaign.total - counts[MessageState.SKIPPED]
    skipped = counts[MessageState.SKIPPED]
    left_out = f" ({skipped:,} left out)" if skipped else ""
    return f"{to_send:,} recipient(s){left_out}"
