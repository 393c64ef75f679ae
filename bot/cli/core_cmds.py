"""``send``, ``preview``, ``status``, ``resolve`` and ``config``: the core commands.

``templates`` lives in ``template_cmds`` so that listing starts fast.

Output goes to stdout as tables a person reads; problems go to stderr. Exit codes:
0 everything sent, 1 something not sent (failed, deferred, uncertain, paused),
2 bad input and nothing sent or recorded.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from bot.cli import parser
from bot.cli.args import several_teams, team_label
from bot.cli.console import make_console
from bot.config import Settings, env_example, read_settings
from bot.errors import Remedy, UserInputError
from bot.handlers import campaign, preflight, resolution, scope, send_loop
from bot.handlers.display import Display, NextStep, display_state
from bot.handlers.values import ATTACHMENTS_COLUMN, parse_name_values
from bot.models import RecipientList
from bot.records import FINAL_STATES, MESSAGE_STATES, CampaignStatus, MessageState
from bot.timefmt import utc_minute
from bot.wiring import (
    HANDS_OVER_TO,
    ROLE_WORKER,
    AnySenderLock,
    SenderBusy,
    Wiring,
    sender_active,
    sender_lock,
)

if TYPE_CHECKING:
    from bot.handlers.attachments import AttachmentSet

out = make_console()
err = make_console(stderr=True)


def read_recipients(path: str, settings: Settings) -> RecipientList:
    """A ``.csv`` file is parsed as CSV; anything else as pasted addresses."""
    file = Path(path)
    if not file.is_file():
        raise UserInputError(f"The recipients file {path} does not exist.", field="--recipients")
    from bot.handlers import drafts  # the same gathering as the Slack form's

    data = file.read_bytes()
    check, most = settings.check_deliverability, settings.max_recipients_per_campaign
    if file.suffix.lower() == ".csv":
        csv = drafts.CsvUpload(file.name, data)
        return drafts.gather_recipients(
            csv=csv, check_deliverability=check, max_recipients=most
        ).recipients
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path} is not UTF-8 text.", field="--recipients") from exc
    return drafts.gather_recipients(
        paste=text, check_deliverability=check, max_recipients=most
    ).recipients


def _attachments(
    args: argparse.Namespace, recipients: RecipientList
) -> tuple[AttachmentSet | None, RecipientList]:
    """``--attach`` files (for everyone) and the CSV column's files (per row, paths
    relative to the CSV's folder), read and checked; the rows then name files."""
    from bot.handlers import attachments

    csv_folder = Path(args.recipients).parent if args.recipients.lower().endswith(".csv") else None
    uses_column = any(
        r.variables.get(ATTACHMENTS_COLUMN, "").strip() for r in recipients.recipients
    )
    if not args.attach and not uses_column:
        return None, recipients
    files, rows = attachments.from_paths(
        [Path(p) for p in args.attach], recipients.recipients, csv_folder
    )
    merged = RecipientList(rows, recipients.rejected, recipients.duplicates, recipients.columns)
    return files, merged


def _report_input(
    recipients: RecipientList, plan: campaign.Plan | None, *, skip_invalid: bool
) -> None:
    out.print(f"[bold]{len(recipients.recipients)}[/] valid recipient(s)")
    for title, items in (
        ("invalid, skipped" if skip_invalid else "invalid", recipients.rejected),
        ("duplicate, skipped", recipients.duplicates),
        ("suppressed", plan.suppressed if plan else []),
    ):
        if items:
            out.print(f"[yellow]{len(items)} {title}:[/]")
            for item in items[:10]:
                out.print(f"  {item}")
            if len(items) > 10:
                out.print(f"  … and {len(items) - 10} more")


def remedy_hint(exc: UserInputError) -> str:
    """The CLI's words for the way out an error names (Slack has its own)."""
    if exc.remedy is Remedy.SKIP_INVALID:
        return "Pass --skip-invalid to send to the valid addresses only."
    if exc.remedy is Remedy.SET_VARIABLE:
        return f"Or pass --var {exc.remedy_arg}=VALUE to give every recipient the same value."
    return ""


def next_step_text(shown: Display, campaign_id: int) -> str:
    """The CLI command for a campaign's next step."""
    if shown.next_step is NextStep.RESUME:
        return "run `python -m bot send --resume` to continue"
    if shown.next_step is NextStep.RESOLVE_UNCERTAIN:
        return f"decide with `python -m bot resolve {campaign_id} --resend|--skip`"
    if shown.next_step is NextStep.RETRY_FAILED:
        return (
            f"to try them again: `python -m bot resolve {campaign_id} --retry-failed`, "
            "then `python -m bot send --resume`"
        )
    if shown.next_step is NextStep.WAIT:
        after = f" after {utc_minute(shown.resume_at)}" if shown.resume_at else ""
        return (
            "resumes by itself while `python -m bot serve` runs, or run "
            f"`python -m bot send --resume`{after}"
        )
    return ""


def _state_words(shown: Display) -> str:
    """The state in a few words; a pause's reason is printed once, below the table."""
    if shown.state == "deferred" and shown.resume_at:
        return f"deferred until {utc_minute(shown.resume_at)}"
    if shown.state == "paused":
        return "paused"
    return shown.label


def _summary(result: campaign.Result) -> Table:
    table = Table()
    table.add_column("state")
    table.add_column("messages", justify="right")
    for state in MESSAGE_STATES:
        if result.counts[state]:
            table.add_row(state, str(result.counts[state]))
    return table


def _print_result(
    result: campaign.Result, settings: Settings, *, sender_active: bool = False
) -> None:
    shown = display_state(
        result.status,
        result.reason,
        result.counts,
        sender_active=sender_active,
        deferred_until=result.resume_at,
    )
    # A line of its own, not the table's title: a title is wrapped to the table's width.
    out.print(f"Campaign {result.campaign_id}: {_state_words(shown)}", markup=False)
    out.print(_summary(result))
    for email, reason in result.failures:
        out.print(f"[red]failed[/] {escape(email)}: {escape(reason)}")
    if result.reason and shown.state != "paused":
        out.print(f"[yellow]{escape(result.reason)}[/]")
    if shown.state == "paused":
        out.print(f"[yellow]Paused:[/] {escape(result.reason)}")
    if step := next_step_text(shown, result.campaign_id):
        out.print(f"Next: {step}.", markup=False)
    if settings.mail_transport == "sandbox" and result.counts["sent"]:
        out.print(f"Sandbox: the messages are .eml files in [bold]{settings.sandbox_outbox}/[/]")


def _progress_bar(label: str, todo: int) -> Progress:
    """A bar on a terminal for a campaign worth watching; nothing otherwise."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=out,
        disable=todo < 20 or not out.is_terminal,
    )


def _run_with_progress(campaign_id: int, deps: campaign.Deps, *, resume: bool) -> campaign.Result:
    counts = deps.store.outbox.counts(campaign_id)
    # The whole campaign is the total and the settled messages the count, so the
    # bar never passes its total, however a resume moves messages between states.
    total = sum(counts.values()) - counts[MessageState.SKIPPED]
    done_states = (
        MessageState.SENT,
        MessageState.FAILED,
        MessageState.DEFERRED,
        MessageState.UNCERTAIN,
    )
    todo = (
        counts[MessageState.QUEUED] + counts[MessageState.DEFERRED] + counts[MessageState.SENDING]
    )
    with _progress_bar("sending", todo) as bar:
        task = bar.add_task("send", total=total, completed=sum(counts[s] for s in done_states))

        def progress(now: dict[str, int]) -> None:
            bar.update(task, completed=min(total, sum(now[s] for s in done_states)))

        return send_loop.run(
            campaign_id,
            deps,
            progress=progress,
            cancel=threading.Event(),
            resume=resume,
            notice=lambda text: err.print(text, markup=False),
        )


def _sending_deps(wiring: Wiring, sender: str, team: str = "") -> campaign.Deps:
    """``--from``: the named sender account (it must exist and be active), else the
    default one. CLI users administer the machine, so no per-person check; but a
    campaign filed under a workspace (``--team``) may not send from another's."""
    if not sender:
        return wiring.default_deps()
    from bot.handlers.senders import cli_account

    account = cli_account(wiring.senders, sender)
    if team and not scope.sees_account(account, team):
        raise UserInputError(
            f"The sender account {account.address} belongs to Slack workspace "
            f"{account.team}, not {team}: a campaign of {team} cannot send from it.",
            field="--from",
        )
    return wiring.deps_for(account.address)


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    wiring = Wiring(settings)
    if args.resume:
        return _resume(wiring.default_deps(), settings, wiring.deps_for)
    team = getattr(args, "team", "") or ""
    if settings.many_workspaces and not team:
        raise UserInputError(
            "mailbolt serves many Slack workspaces: say which one this campaign belongs "
            "to with --team T… (its unsubscribes apply, and only its people see it).",
            field="--team",
        )
    deps = _sending_deps(wiring, getattr(args, "sender", ""), team)
    if not args.template or not args.recipients:
        raise UserInputError("send needs --template and --recipients (or --resume).")
    from bot.handlers import drafts

    when = None
    if getattr(args, "at", None):  # checked first: a bad time is refused before the work
        from bot.cli.schedule_cmds import parse_at

        when = parse_at(args.at)

    recipients = read_recipients(args.recipients, settings)
    files, recipients = _attachments(args, recipients)
    request = drafts.build_request(
        recipients,
        template=args.template,
        requested_by="cli",
        common_vars=parse_name_values(args.var, field="--var", option="--var"),
        subject=args.subject,
        skip_invalid=args.skip_invalid,
        limit=args.limit,
        attachments=files,
        team=team,
    )
    try:
        plan = preflight.preflight(request, deps)
    except UserInputError:
        _report_input(recipients, None, skip_invalid=args.skip_invalid)
        raise
    _report_input(recipients, plan, skip_invalid=args.skip_invalid)
    if files:
        from bot.handlers import attachments

        out.print(f"Attachments: {attachments.summary(files, plan.to_send)}", markup=False)
    if plan.over_limit:
        out.print(f"--limit {args.limit}: {len(plan.over_limit)} recipient(s) left out")
    from bot.cli import approval_cmds

    needs_approval = approval_cmds.reason_for(plan, settings)
    if needs_approval:
        out.print(f"Needs approval: {needs_approval}.", markup=False)
    if args.dry_run:
        deps.store.audit.record(
            "cli", "campaign.dry_run", template=args.template, recipients=len(plan.to_send)
        )
        out.print(f"Dry run: {len(plan.to_send)} message(s) rendered and checked; nothing sent.")
        if plan.first:
            out.print(f"First subject: {plan.first.subject}")
        return 0
    if needs_approval:
        at = (when.at, when.zone) if when is not None else None
        return approval_cmds.send_for_approval(
            plan, deps, settings, needs_approval, _follow, when=at
        )
    if when is not None:
        from bot.cli.schedule_cmds import announce_scheduled
        from bot.handlers import schedule

        campaign_id, _ = schedule.schedule(plan, deps, when)
        announce_scheduled(campaign_id, when, plan, deps, settings)
        return 0
    lock = sender_lock(settings)
    try:
        lock.acquire()
    except SenderBusy as busy:
        if busy.role not in HANDS_OVER_TO:
            raise
        # Recording needs no lock; the server (or a worker) notices the campaign and
        # sends it.
        campaign_id, _ = preflight.record(plan, deps)
        return _follow(campaign_id, deps, settings, lock, handed_to=busy)
    try:
        campaign_id, _ = preflight.record(plan, deps)
        result = _run_with_progress(campaign_id, deps, resume=False)
    finally:
        lock.release()
    _print_result(result, settings)
    return result.exit_code


#: How often a CLI send following the server's work reads the store.
FOLLOW_POLL_SECONDS = 0.5


def _handed_over_done(deps: campaign.Deps, campaign_id: int) -> bool:
    """The server finished its run of the campaign: stopped, completed, or left
    only deferred messages (``paused_reason`` is written when a run ends)."""
    row = deps.store.campaigns.get(campaign_id)
    if row is None or row.status != CampaignStatus.RUNNING:
        return True
    counts = deps.store.outbox.counts(campaign_id)
    return not (counts[MessageState.QUEUED] or counts[MessageState.SENDING]) and bool(
        row.paused_reason
    )


def _follow(
    campaign_id: int,
    deps: campaign.Deps,
    settings: Settings,
    lock: AnySenderLock,
    *,
    handed_to: SenderBusy,
) -> int:
    """Show the server's progress on a handed-over campaign, then the usual report.

    The hand-off is announced inside the ``try``: a Ctrl-C any time after the
    person reads "Ctrl-C stops following" must stop following, not print the
    advice for an interrupted send of one's own.
    """
    done_states = (*FINAL_STATES, "deferred", "uncertain")
    try:
        who = (
            "the workers (`python -m bot worker`)"
            if handed_to.role == ROLE_WORKER
            else f"the running server (pid {handed_to.pid})"
        )
        out.print(
            f"Campaign {campaign_id} handed to {who}; "
            "following its progress. Ctrl-C stops following, not the sending."
        )
        todo = len(deps.store.outbox.ready_messages(campaign_id))
        start = sum(deps.store.outbox.counts(campaign_id)[s] for s in done_states)
        with _progress_bar("sending (server)", todo) as bar:
            task = bar.add_task("send", total=todo)
            while not _handed_over_done(deps, campaign_id):
                if not lock.held_by_other():
                    out.print(
                        f"[yellow]The server stopped before campaign {campaign_id} finished.[/] "
                        "Its messages are kept: run `python -m bot send --resume`, or start "
                        "the server again."
                    )
                    _print_result(resolution.counts_result(campaign_id, deps), settings)
                    return 1
                counts = deps.store.outbox.counts(campaign_id)
                done = sum(counts[s] for s in done_states) - start
                bar.update(task, completed=min(todo, done))
                time.sleep(FOLLOW_POLL_SECONDS)
    except KeyboardInterrupt:
        out.print(
            f"Stopped following. The server keeps sending campaign {campaign_id}; "
            f"see how far it got with `python -m bot status {campaign_id}`."
        )
        return 130
    result = resolution.counts_result(campaign_id, deps)
    _print_result(result, settings)
    return result.exit_code


def _resume(
    deps: campaign.Deps,
    settings: Settings,
    deps_for: Callable[[str], campaign.Deps] | None = None,
) -> int:
    lock = sender_lock(settings)
    try:
        lock.acquire()
    except SenderBusy as busy:
        if busy.role not in HANDS_OVER_TO:
            raise
        who = (
            "Workers (`python -m bot worker`) are running and resume unfinished campaigns "
            "by themselves"
            if busy.role == ROLE_WORKER
            else f"`python -m bot serve` is running (pid {busy.pid}) and resumes unfinished "
            "campaigns by itself"
        )
        out.print(
            f"{who} (deferred ones when they fall due, re-queued ones within a minute). "
            "Follow them with `python -m bot status`."
        )
        return 0
    try:
        from bot.handlers import schedule

        # Scheduled campaigns whose time came, checked again, join the unfinished ones.
        schedule.start_due(deps, deps_for or (lambda account: deps), lambda campaign_id: None)
        ids = deps.store.campaigns.unfinished()
        if not ids:
            out.print("Nothing to resume.")
            return 0
        code = 0
        for campaign_id in ids:
            row = deps.store.campaigns.get(campaign_id)
            own = deps_for(row.account) if deps_for and row else deps  # its own account
            result = _run_with_progress(campaign_id, own, resume=True)
            _print_result(result, settings)
            code = max(code, result.exit_code)
        return code
    finally:
        lock.release()


def cmd_resolve(args: argparse.Namespace, settings: Settings) -> int:
    if sum((args.resend, args.skip, args.retry_failed)) != 1:
        raise UserInputError("Choose one of --resend, --skip or --retry-failed.")
    deps = Wiring(settings).deps(sending=False)
    if args.retry_failed:
        n = resolution.retry_failed(args.campaign, deps, "cli")
        if not n:
            out.print(f"Campaign {args.campaign} has no failed messages; nothing changed.")
            return 0
        out.print(f"{n} failed message(s) queued again; run `python -m bot send --resume`.")
        return 0
    n = resolution.resolve_uncertain(args.campaign, deps, "cli", resend=args.resend)
    if not n:
        out.print(f"Campaign {args.campaign} has no uncertain messages; nothing changed.")
        return 0
    if args.resend:
        out.print(f"{n} uncertain message(s) queued again; run `python -m bot send --resume`.")
    else:
        out.print(f"{n} uncertain message(s) skipped.")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    store = Wiring(settings).store  # status needs no templates and no mail account
    active = sender_active(settings)
    if args.campaign is not None:
        if args.team is not None:
            scope.campaign_of(store, args.campaign, args.team)
        result = resolution.stored_result(store, args.campaign)
        row = store.campaigns.get(args.campaign)
        if row is not None and row.status == CampaignStatus.SCHEDULED:
            shown = display_state(
                row.status,
                None,
                result.counts,
                sender_active=active,
                scheduled_at=row.scheduled_at,
                schedule_zone=row.schedule_zone,
            )
            out.print(f"Campaign {row.id}: {shown.label} ({row.total} message(s))", markup=False)
            out.print(
                f"Next: cancel with `python -m bot scheduled cancel {row.id}`, or move with "
                f'`python -m bot scheduled move {row.id} "YYYY-MM-DD HH:MM"`.',
                markup=False,
            )
            return 0
        _print_result(result, settings, sender_active=active)
        return 0
    rows = store.campaigns.recent(limit=args.last, team=args.team)
    teams = several_teams(r.team for r in rows)  # the operator sees every workspace's
    table = Table(title="Recent campaigns")
    for col in ("id", "template", "state", "by", "messages", "next step"):
        table.add_column(col)
    if teams:
        table.add_column("workspace")
    for row in rows:
        counts = store.outbox.counts(row.id)
        shown = display_state(
            row.status,
            row.paused_reason,
            counts,
            sender_active=active,
            deferred_until=store.outbox.deferred_until(row.id)
            if counts[MessageState.DEFERRED]
            else None,
            scheduled_at=row.scheduled_at,
            schedule_zone=row.schedule_zone,
        )
        table.add_row(
            str(row.id),
            row.template,
            _state_words(shown),
            row.requested_by,
            str(row.total),
            next_step_text(shown, row.id),
            *([team_label(row.team)] if teams else []),
        )
    out.print(table)
    return 0


def cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    deps = Wiring(settings).deps()
    recipients = read_recipients(args.recipients, settings)
    if not 1 <= args.row <= len(recipients.recipients):
        raise UserInputError(
            f"--row must be between 1 and {len(recipients.recipients)}.", field="--row"
        )
    recipient = recipients.recipients[args.row - 1]
    catalogue = deps.catalogue.for_team(args.team)
    renderer = catalogue.renderer(args.template, subject_override=args.subject)
    variables = campaign.message_variables(
        deps,
        recipient.email,
        recipient.name,
        recipient.variables,
        parse_name_values(args.var, field="--var", option="--var"),
        0,
        renderer.info.category,
    )
    rendered = renderer.render(variables, who=recipient.label)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{args.template}-row{args.row}"
    Path(f"{stem}.html").write_text(rendered.html, encoding="utf-8")
    Path(f"{stem}.txt").write_text(rendered.text, encoding="utf-8")
    out.print(f"To: {recipient.email}\nSubject: {rendered.subject}")
    out.print(f"Wrote {stem}.html and {stem}.txt")
    return 0


def cmd_config(args: argparse.Namespace, settings: Settings | None) -> int:
    """Show every setting, and mark the bad ones: most needed when one is wrong.

    Runs without loading ``Settings`` (which refuses bad values), so a bad value
    never hides the table that helps fix it. Exit 2 when any value is bad.
    """
    if args.example:
        sys.stdout.write(env_example())
        return 0
    readings = read_settings()
    table = Table(title="Effective settings (secrets masked)")
    for col in ("setting", "value", "", "problem"):
        table.add_column(col)
    for r in readings:
        source = "default" if r.is_default else "set"
        if r.problem:
            table.add_row(
                Text(f"✗ {r.spec.env}", "bold red"),
                r.shown,
                source,
                Text(r.problem, "red"),
            )
        else:
            table.add_row(r.spec.env, r.shown, source, "")
    out.print(table)
    bad = [r for r in readings if r.problem]
    if bad:
        err.print(f"{len(bad)} setting(s) marked ✗ must be fixed:", style="bold red")
        for r in bad:
            err.print(f"  - {r.problem_line}", markup=False)
        return 2
    return 0


#: Kept here so a parser can be built from this group alone (tests do).
register = parser.register_core
