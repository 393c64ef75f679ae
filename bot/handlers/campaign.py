"""A campaign from request to results: preflight, record, send, resume.

The send loop is an outbox over SQLite. For each message it commits
``queued → sending`` before calling the transport and ``sending → sent/failed/…``
after, so a crash at any point leaves the message in a state that says what is
known. ``sending`` found at start-up means "may have left": it becomes
``uncertain`` and is reconciled by Message-ID or held for a person, never
re-sent blindly.

Retrying lives here, not in the transports, so every transport (sandbox, Gmail,
the fakes) gets the same bounded, jittered, ``Retry-After``-honouring policy and
every attempt is counted in the store.
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
    MailboltError,
    PermanentSendError,
    PolicyError,
    QuotaDeferred,
    Remedy,
    StorageError,
    TemplateError,
    TransientSendError,
    UncertainSendError,
    UserInputError,
)
from bot.handlers import policy, quota, sensitive, values
from bot.handlers.compose import Envelope, build_message
from bot.handlers.quota import LIST_UNITS, SEND_UNITS
from bot.handlers.templates import Renderer, TemplateCatalogue
from bot.handlers.unsubscribe import make_token, unsubscribe_url
from bot.models import OutgoingMessage, Recipient, RecipientList, Rejected, RenderedMessage
from bot.ports import Pacer, StoreParts, Transport
from bot.records import (
    SANDBOX_ACCOUNT,
    Campaign,
    CampaignChanges,
    CampaignStatus,
    Message,
    MessageState,
    NewMessage,
)

# Short names for the enum members this module uses throughout.
CANCELLED, COMPLETED, PAUSED, RUNNING = (
    CampaignStatus.CANCELLED,
    CampaignStatus.COMPLETED,
    CampaignStatus.PAUSED,
    CampaignStatus.RUNNING,
)
DEFERRED, FAILED, QUEUED, SENDING, SENT, SKIPPED, UNCERTAIN = (
    MessageState.DEFERRED,
    MessageState.FAILED,
    MessageState.QUEUED,
    MessageState.SENDING,
    MessageState.SENT,
    MessageState.SKIPPED,
    MessageState.UNCERTAIN,
)

log = logging.getLogger(__name__)

#: Why the messages a cancel left unsent are skipped (told apart from suppressions).
CANCELLED_REASON = "the campaign was cancelled"
MAX_LISTED_ERRORS = 10


@dataclass(frozen=True)
class RetryPolicy:
    """How long a transient send error is retried: bounded, jittered, exponential."""

    max_attempts: int = 5
    max_elapsed: float = 300.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0


@dataclass
class Policy:
    """The rules a campaign is held to: numbers and texts from settings, no objects."""

    postal_address: str = ""
    unsubscribe_base: str = ""
    public_links: bool = False
    """Messages go to real inboxes, so links in them must work from anywhere."""
    daily_limit: int | None = None
    reconcile_grace: float = 0.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class Deps:
    """The collaborators the use cases work with, and the policy they apply (no globals).

    Built by ``bot.wiring.Wiring.deps``; tests replace a collaborator or a policy
    number on the instance.
    """

    store: StoreParts
    catalogue: TemplateCatalogue
    transport: Callable[[], Transport]
    pacer: Pacer
    envelope: Envelope
    #: Who sends: ``SANDBOX_ACCOUNT`` or the Gmail address. Quota use and the daily
    #: limit are counted per account.
    account: str = SANDBOX_ACCOUNT
    unsubscribe_secret: bytes = b""
    policy: Policy = field(default_factory=Policy)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time


@dataclass
class CampaignRequest:
    """What a person asked for, from the CLI or the Slack modal."""

    template: str
    recipients: RecipientList
    requested_by: str
    common_vars: dict[str, str] = field(default_factory=dict)
    subject: str | None = None
    skip_invalid: bool = False
    limit: int | None = None
    team: str = ""
    idempotency_key: str | None = None
    status_channel: str = ""
    correlation_id: str = ""


@dataclass
class Plan:
    """The outcome of preflight: exactly what would be sent, and what would not."""

    request: CampaignRequest
    renderer: Renderer
    to_send: list[Recipient]
    suppressed: list[Rejected]
    over_limit: list[Recipient]
    first: RenderedMessage | None

    @property
    def category(self) -> str:
        return self.renderer.info.category


@dataclass
class Result:
    """Final or intermediate counts of one campaign."""

    campaign_id: int
    status: str
    counts: dict[str, int]
    reason: str = ""
    resume_at: float | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """CLI convention: 0 all sent, 1 something not sent."""
        bad = sum(self.counts[s] for s in (FAILED, UNCERTAIN, DEFERRED, QUEUED, SENDING))
        return 0 if bad == 0 and self.status == COMPLETED else 1


# -- variables -----------------------------------------------------------------


def first_name_of(name: str) -> str:
    """The word to greet someone by: ``Ann Lee`` → ``Ann``; ``Wei, Chen`` → ``Chen``.

    A comma means "Family, Given" (how address books and CRMs export names), and
    punctuation around the word is dropped, so "Welcome, Wei,!" cannot happen.
    Empty when the name has no letters; templates then fall back ("Hi there").
    """
    family, comma, given = name.partition(",")
    words = (given if comma and given.strip() else family).split()
    word = _strip_punctuation(words[0]) if words else ""
    return word if any(c.isalpha() for c in word) else ""


def _strip_punctuation(word: str) -> str:
    """``"Wei,"`` → ``Wei``; ``(Bobby)`` → ``Bobby``; inner marks stay (``O'Brien``)."""
    start, end = 0, len(word)
    while start < end and unicodedata.category(word[start]).startswith("P"):
        start += 1
    while end > start and unicodedata.category(word[end - 1]).startswith("P"):
        end -= 1
    return word[start:end]


def message_variables(
    deps: Deps,
    recipient_email: str,
    name: str,
    row_vars: Mapping[str, Any],
    common: Mapping[str, str],
    campaign_id: int,
    category: str,
) -> dict[str, Any]:
    """The variables one message is rendered with: common, then row, then mailbolt's.

    What mailbolt sets (sender, postal address, unsubscribe link, the recipient's
    address and name) comes last, so no value can replace it; preflight refuses
    such values outright, naming them (``values.check_common_names``).
    """
    link = ""
    if category == "marketing":
        token = make_token(deps.unsubscribe_secret, recipient_email, campaign_id)
        link = unsubscribe_url(deps.policy.unsubscribe_base, token)
    return {
        **common,
        **row_vars,
        "from_name": deps.envelope.from_name,
        "sender_address": deps.envelope.from_address,
        "postal_address": deps.policy.postal_address,
        "email": recipient_email,
        "name": name,
        "first_name": row_vars.get("first_name") or first_name_of(name),
        "unsubscribe_url": link,
    }


def list_unsubscribe_headers(deps: Deps, variables: Mapping[str, Any]) -> dict[str, str]:
    """RFC 2369/8058 headers for marketing mail: the one-click https link only.

    No ``mailto:`` alternative: nothing reads the replies it would bring (the
    grant may not even read mail), and an opt-out that is advertised but never
    honoured is worse than none.
    """
    link = variables.get("unsubscribe_url")
    if not link:
        return {}
    return {
        "List-Unsubscribe": f"<{link}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


# -- preflight -----------------------------------------------------------------


def _check_required(
    renderer: Renderer, recipients: RecipientList, common: Mapping[str, str]
) -> None:
    """Name a missing column once, instead of failing on every recipient."""
    have = set(recipients.columns) | set(common) | {"name", "email", "first_name"}
    missing = [v for v in renderer.info.required if v not in have]
    if missing and recipients.recipients:
        names = ", ".join(f"'{m}'" for m in missing)
        raise TemplateError(
            f"The template '{renderer.info.name}' needs {names}: add a CSV column or give "
            "a value for all recipients.",
            field="variables",
            remedy=Remedy.SET_VARIABLE,
            remedy_arg=missing[0],
        )


def _check_link_values(
    renderer: Renderer, common: Mapping[str, str], recipients: list[Recipient]
) -> None:
    """Values that become links are http, https or mailto URLs; name each one that is not.

    A value is a link when the template puts it where a link begins
    (``href="{{ x }}"``) or its name says so (``start_url``, ``cta_link``).
    """
    used = renderer.link_variables()
    names = set(common)
    for recipient in recipients:
        names.update(recipient.variables)
    links = {n for n in names if n in used or values.is_url_name(n)} - values.SYSTEM_VARIABLES
    if not links:
        return
    for name in sorted(links & set(common)):
        problem = values.link_problem(str(common[name]))
        if problem:
            raise UserInputError(f"The value {name!r} {problem}.", field="variables")
    problems: list[str] = []
    first_line: int | None = None
    for recipient in recipients:
        for name in sorted(links & set(recipient.variables)):
            problem = values.link_problem(str(recipient.variables[name]))
            if problem:
                problems.append(f"{recipient.label}, column {name!r}: the value {problem}")
                first_line = first_line or recipient.line or None
        if len(problems) >= MAX_LISTED_ERRORS:
            break
    if problems:
        raise UserInputError(
            f"{problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + ".",
            field="csv",
            line=first_line,
            details=problems,
        )


def preflight(request: CampaignRequest, deps: Deps) -> Plan:
    """Render and check every message; raise before anything is recorded or sent."""
    renderer = deps.catalogue.renderer(request.template, subject_override=request.subject)
    recipients = request.recipients
    if recipients.rejected and not request.skip_invalid:
        listed = [str(r) for r in recipients.rejected[:MAX_LISTED_ERRORS]]
        more = len(recipients.rejected) - len(listed)
        raise UserInputError(
            f"{len(recipients.rejected)} recipient line(s) are not usable"
            + (f" ({more} more not shown)" if more > 0 else "")
            + ". Fix them, or skip the invalid addresses.",
            field="recipients",
            line=recipients.rejected[0].line,
            details=listed,
            remedy=Remedy.SKIP_INVALID,
        )
    if request.limit is not None and request.limit < 1:
        raise UserInputError(
            f"The limit must be 1 or more (got {request.limit}); nothing was recorded.",
            field="limit",
        )
    if not recipients.recipients:
        raise UserInputError("There are no valid recipients.", field="recipients")
    values.check_common_names(request.common_vars)
    values.check_column_names(recipients.columns, filename="The recipient list")
    _check_required(renderer, recipients, request.common_vars)
    policy.check_marketing_settings(
        renderer.info,
        deps.policy.postal_address,
        unsubscribe_base=deps.policy.unsubscribe_base,
        public_links=deps.policy.public_links,
    )
    _check_link_values(renderer, request.common_vars, recipients.recipients)
    category = renderer.info.category
    to_send, suppressed = policy.suppress(deps.store, recipients.recipients, category)
    over_limit: list[Recipient] = []
    if request.limit is not None and len(to_send) > request.limit:
        to_send, over_limit = to_send[: request.limit], to_send[request.limit :]
    errors: list[str] = []
    first: RenderedMessage | None = None
    guard = sensitive.SensitiveGuard(common=frozenset(request.common_vars))
    for recipient in to_send:
        variables = message_variables(
            deps,
            recipient.email,
            recipient.name,
            recipient.variables,
            request.common_vars,
            0,
            category,
        )
        try:
            if first is None:  # built for real: the preview, and a check of the headers
                rendered = renderer.render(variables, who=recipient.label)
                build_message(
                    deps.envelope,
                    to_address=recipient.email,
                    to_name=recipient.name,
                    rendered=rendered,
                    message_id="<preflight@mailbolt.invalid>",
                    extra_headers=list_unsubscribe_headers(deps, variables),
                )
                first = rendered
            else:
                rendered = renderer.render(variables, who=recipient.label, check_only=True)
        except MailboltError as exc:
            text = str(exc)
            errors.append(text if recipient.email in text else f"{recipient.label}: {text}")
            if len(errors) >= MAX_LISTED_ERRORS:
                break
            continue
        guard.check(rendered, variables, recipient.label)
    if errors:
        raise TemplateError(
            f"The template '{renderer.info.name}' could not be rendered for every recipient; "
            f"nothing was sent. {errors[0]}",
            field="template",
            details=errors,
        )
    guard.raise_if_found()
    return Plan(request, renderer, to_send, suppressed, over_limit, first)


def record(plan: Plan, deps: Deps) -> tuple[int, bool]:
    """Store the campaign: one queued row per recipient, suppressed rows as skipped."""
    req = plan.request
    rows: list[NewMessage] = [
        NewMessage(
            email=r.email,
            name=r.name,
            variables=r.variables,
            message_id=deps.envelope.new_message_id(),
        )
        for r in plan.to_send
    ]
    emails = {r.email for r in plan.to_send}
    for s in plan.suppressed:
        if s.text not in emails:
            rows.append(
                NewMessage(
                    email=s.text,
                    state=SKIPPED,
                    last_error=s.reason,
                    message_id=deps.envelope.new_message_id(),
                )
            )
    return deps.store.campaigns.create(
        requested_by=req.requested_by,
        template=plan.renderer.info.name,
        category=plan.category,
        subject=req.subject or "",
        common_vars=req.common_vars,
        messages=rows,
        team=req.team,
        idempotency_key=req.idempotency_key,
        status_channel=req.status_channel,
        correlation_id=req.correlation_id,
        account=deps.account,
    )


# -- sending -------------------------------------------------------------------


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


class _Budget:
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
class _Run:
    campaign_id: int
    category: str
    common: dict[str, str]
    renderer: Renderer
    budget: _Budget
    cancel: threading.Event
    stop_reason: str = ""
    stop_status: str = ""
    resume_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    scanner: sensitive.Scanner = field(default_factory=sensitive.Scanner)

    def stop(self, status: str, reason: str, resume_at: float | None = None) -> None:
        with self.lock:
            if not self.stop_status:
                self.stop_status, self.stop_reason, self.resume_at = status, reason, resume_at

    halt: threading.Event = field(default_factory=threading.Event)
    fault: StorageError | None = None

    @property
    def stopped(self) -> bool:
        return bool(self.stop_status) or self.cancel.is_set() or self.halt.is_set()


def _render_raw(run: _Run, deps: Deps, row: Message) -> bytes:
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
    return build_message(
        deps.envelope,
        to_address=row.email,
        to_name=row.name or "",
        rendered=rendered,
        message_id=row.message_id,
        extra_headers=list_unsubscribe_headers(deps, variables),
    )


class _StopWhenRunStops(stop_base):
    """Retrying ends as soon as the run is cancelled, halted or stopped."""

    def __init__(self, run: _Run):
        self.run = run

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.run.stopped


def _retrying(deps: Deps, run: _Run) -> Retrying:
    """Bounded retries of transient errors: full jitter, never sooner than Retry-After."""
    retry = deps.policy.retry
    jitter = wait_random_exponential(multiplier=retry.backoff_base, max=retry.backoff_cap)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return max(jitter(state), getattr(exc, "retry_after", None) or 0.0)

    return Retrying(
        retry=retry_if_exception_type(TransientSendError),
        stop=stop_any(
            stop_after_attempt(retry.max_attempts),
            stop_after_delay(retry.max_elapsed),
            _StopWhenRunStops(run),
        ),
        wait=wait,
        sleep=deps.sleep,
        reraise=True,
    )


def _send_one(run: _Run, deps: Deps, transport: Transport, row: Message) -> None:
    store = deps.store
    reason = policy.suppression_reason(store, row.email, run.category)
    if reason:
        store.outbox.mark_skipped(row.id, reason)
        return
    if not run.budget.take():
        resume = run.budget.resume_at()
        store.outbox.mark_deferred(row.id, resume, "the daily sending limit is reached")
        run.stop(RUNNING, "the daily sending limit is reached", resume)
        return
    try:
        raw = _render_raw(run, deps, row)
    except (TemplateError, UserInputError) as exc:
        store.outbox.mark_failed(row.id, str(exc))
        return
    # Wait for the quota slot *before* claiming: a claimed message counts as in
    # flight, and after a crash every claimed one is in doubt.
    deps.pacer.acquire(SEND_UNITS)
    if not store.outbox.claim(row.id, deps.account):
        return  # someone else has it, or it was cancelled meanwhile
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
        if run.stopped:  # cancelled or shutting down mid-retry: certainly not sent
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


def reconcile_uncertain(
    campaign_id: int,
    deps: Deps,
    transport: Transport,
    notice: Callable[[str], None] | None = None,
) -> int:
    """Settle ``uncertain`` messages by looking for their Message-ID among sent mail.

    Found → ``sent``; certainly absent → ``queued`` again; when the transport
    cannot tell (no read scope, or the lookup itself failed), the message stays
    ``uncertain`` for a person or a later resume to decide. ``AuthError`` is left
    to the caller, which pauses the campaign. Returns how many were settled.
    """
    settled = 0
    rows = deps.store.outbox.messages(campaign_id, [UNCERTAIN])
    if not rows:
        return 0
    say = notice or (lambda _text: None)
    if not getattr(transport, "can_read", True):
        # No lookup is possible, so waiting for a send to become searchable is pointless.
        say(
            f"{len(rows)} uncertain message(s) cannot be looked up: the mail account's "
            "authorization cannot read sent mail. They stay uncertain until a person decides."
        )
        return 0
    rows.sort(key=lambda r: r.claimed_at or 0)
    latest = max(r.claimed_at or 0 for r in rows) + deps.policy.reconcile_grace - deps.clock()
    if latest > 0:
        say(
            f"Waiting up to {latest:.0f} s before looking up {len(rows)} uncertain "
            "message(s) in sent mail: a send from the stopped process may still be in "
            "progress (GMAIL_RECONCILE_GRACE_SECONDS)."
        )
    for row in rows:
        # A request the dead process handed over may still be processed, or not
        # yet searchable: "not found" only means "not sent" after the grace.
        wait = (row.claimed_at or 0) + deps.policy.reconcile_grace - deps.clock()
        if wait > 0:
            deps.sleep(wait)
        deps.pacer.acquire(LIST_UNITS)
        try:
            found = transport.find_sent(row.message_id)
        except (NotImplementedError, TransientSendError):
            return settled
        deps.store.quota.record_units(LIST_UNITS, "messages.list", account=deps.account)
        if found:
            deps.store.outbox.mark_sent(row.id, found)
        else:
            deps.store.outbox.requeue(row.id, None, from_states=(UNCERTAIN,))
        settled += 1
    return settled


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
    renderer = deps.catalogue.renderer(campaign.template, subject_override=campaign.subject or None)
    if resume:
        store.outbox.recover_in_flight(campaign_id)
    try:
        transport = deps.transport()
        if resume:
            reconcile_uncertain(campaign_id, deps, transport, notice)
    except AuthError as exc:
        store.campaigns.update(campaign_id, status=PAUSED, paused_reason=str(exc))
        return counts_result(campaign_id, deps)
    store.campaigns.update(
        campaign_id,
        status=RUNNING,
        paused_reason=None,
        started_at=campaign.started_at or deps.clock(),
    )
    state = _Run(
        campaign_id,
        campaign.category,
        campaign.common_vars,
        renderer,
        _Budget(deps),
        cancel or threading.Event(),
        halt=halt or threading.Event(),
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


def _finish(state: _Run, deps: Deps, campaign_id: int) -> Result:
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
    failures = [
        (r.email, r.last_error or "") for r in store.outbox.messages(campaign_id, [FAILED], limit=5)
    ]
    return Result(campaign_id, status, counts, state.stop_reason, resume_at, failures)


# -- test sends ----------------------------------------------------------------

TEST_MARK = "[TEST]"


@dataclass
class TrialSend:
    """What became of "send a test to me": ``state`` is sent, failed, uncertain or
    not_sent (refused before anything left); ``detail`` says why, in words."""

    state: str
    to: str
    detail: str = ""
    test_id: int | None = None


def send_test(
    plan: Plan, deps: Deps, *, to: Recipient, requested_by: str, reference: str
) -> TrialSend:
    """Send exactly the previewed first message to ``to``, marked as a test.

    The body, subject and values are those of the first recipient shown in the
    preview; only the address it goes to differs, the subject starts with
    ``[TEST]``, and an unsubscribe link names the tester (clicking it must not
    unsubscribe the real recipient). It is recorded as a test send, not as a
    campaign: it is audited and spends the account's quota and daily limit, but
    does not show in campaign lists or delivery statistics. One per ``reference``.
    """
    store = deps.store
    earlier = store.test_sends.by_reference(reference)
    if earlier is not None and earlier.state in (SENT, SENDING, UNCERTAIN):
        return TrialSend("not_sent", to.email, "a test of this preview was already sent")
    if not plan.to_send or plan.first is None:
        return TrialSend("not_sent", to.email, "nobody in the preview would get a message")
    first = plan.to_send[0]
    variables = message_variables(
        deps, first.email, first.name, first.variables, plan.request.common_vars, 0, plan.category
    )
    if variables["unsubscribe_url"]:
        token = make_token(deps.unsubscribe_secret, to.email, 0)
        variables["unsubscribe_url"] = unsubscribe_url(deps.policy.unsubscribe_base, token)
    rendered = plan.renderer.render(variables, who=first.label)
    rendered = RenderedMessage(f"{TEST_MARK} {rendered.subject}", rendered.html, rendered.text)
    if daily_left(deps) == 0:
        return TrialSend("not_sent", to.email, "the daily sending limit is reached")
    message_id = deps.envelope.new_message_id()
    raw = build_message(
        deps.envelope,
        to_address=to.email,
        to_name=to.name,
        rendered=rendered,
        message_id=message_id,
        extra_headers={**list_unsubscribe_headers(deps, variables), "X-Mailbolt-Test": "yes"},
    )
    deps.pacer.acquire(SEND_UNITS)
    test_id = store.test_sends.start(
        account=deps.account,
        requested_by=requested_by,
        email=to.email,
        template=plan.renderer.info.name,
        subject=rendered.subject,
        message_id=message_id,
        reference=reference,
    )
    outcome = TrialSend(SENT, to.email, test_id=test_id)
    provider_id = ""
    try:
        store.quota.record_units(SEND_UNITS, "messages.send", account=deps.account)
        provider_id = deps.transport().send(OutgoingMessage(test_id, 0, to.email, message_id, raw))
    except UncertainSendError as exc:
        outcome = TrialSend(UNCERTAIN, to.email, str(exc), test_id)
    except MailboltError as exc:  # transient, permanent, quota, authorization: not sent
        outcome = TrialSend(FAILED, to.email, str(exc), test_id)
    store.test_sends.finish(
        test_id, MessageState(outcome.state), provider_id=provider_id, error=outcome.detail
    )
    return outcome


def cancelled_count(campaign_id: int, deps: Deps) -> int:
    """Messages a cancel left unsent (skipped for that reason, not suppressed)."""
    return sum(
        1
        for row in deps.store.outbox.messages(campaign_id, [SKIPPED])
        if row.last_error == CANCELLED_REASON
    )


def _existing(campaign_id: int, deps: Deps) -> Campaign:
    """The campaign's row; a campaign that does not exist is the person's mistake."""
    return _campaign_row(deps.store, campaign_id)


def _campaign_row(store: StoreParts, campaign_id: int) -> Campaign:
    campaign = store.campaigns.get(campaign_id)
    if campaign is None:
        raise UserInputError(f"There is no campaign {campaign_id}.", field="campaign")
    return campaign


def counts_result(campaign_id: int, deps: Deps) -> Result:
    """The current picture of a campaign without sending anything."""
    return stored_result(deps.store, campaign_id)


def stored_result(store: StoreParts, campaign_id: int) -> Result:
    """``counts_result`` from the store alone: needs no templates and no mail account."""
    campaign = _campaign_row(store, campaign_id)
    failures = [
        (r.email, r.last_error or "") for r in store.outbox.messages(campaign_id, [FAILED], limit=5)
    ]
    counts = store.outbox.counts(campaign_id)
    return Result(
        campaign_id,
        campaign.status,
        counts,
        campaign.paused_reason or "",
        store.outbox.deferred_until(campaign_id) if counts[DEFERRED] else None,
        failures,
    )


def retry_failed(campaign_id: int, deps: Deps, actor: str) -> int:
    """Put failed messages back in the queue (a person decided to try again)."""
    _existing(campaign_id, deps)
    rows = deps.store.outbox.messages(campaign_id, [FAILED])
    for row in rows:
        deps.store.outbox.requeue(row.id, None, from_states=(FAILED,))
    deps.store.audit.record(
        actor, "campaign.retry_failed", campaign_id=campaign_id, count=len(rows)
    )
    return len(rows)


def resolve_uncertain(campaign_id: int, deps: Deps, actor: str, *, resend: bool) -> int:
    """A person's choice for messages nobody can prove were sent: re-send or skip.

    Re-sent messages go back in the queue and through the same daily budget and
    deferral as any send; their uncertain attempt keeps counting against the day.
    """
    _existing(campaign_id, deps)
    rows = deps.store.outbox.messages(campaign_id, [UNCERTAIN])
    for row in rows:
        if resend:
            deps.store.outbox.resend_uncertain(row.id)
        else:
            deps.store.outbox.mark_skipped(row.id, f"skipped by {actor}: delivery unknown")
    deps.store.audit.record(
        actor, "campaign.resolve_uncertain", campaign_id=campaign_id, resend=resend, count=len(rows)
    )
    return len(rows)


__all__ = [
    "SENDING",
    "CampaignRequest",
    "Deps",
    "Plan",
    "Result",
    "preflight",
    "reconcile_uncertain",
    "record",
    "resolve_uncertain",
    "retry_failed",
    "run",
]
