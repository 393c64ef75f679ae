"""``send``, ``preview``, ``templates``, ``status`` and ``config``: the core commands.

Output goes to stdout as tables a person reads; problems go to stderr. Exit codes:
0 everything sent, 1 something not sent (failed, deferred, uncertain, paused),
2 bad input and nothing sent or recorded.
"""

from __future__ import annotations

import argparse
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bot.config import Settings, env_example
from bot.errors import UserInputError
from bot.handlers import campaign
from bot.handlers.recipients import parse_csv, parse_text
from bot.models import RecipientList
from bot.records import FINAL_STATES, MESSAGE_STATES
from bot.wiring import SenderLock, build_deps

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _parse_vars(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UserInputError(f"--var {pair!r} must look like name=value.", field="--var")
        values[key.strip()] = value
    return values


def read_recipients(path: str, settings: Settings) -> RecipientList:
    """A ``.csv`` file is parsed as CSV; anything else as pasted addresses."""
    file = Path(path)
    if not file.is_file():
        raise UserInputError(f"The recipients file {path} does not exist.", field="--recipients")
    data = file.read_bytes()
    options = {
        "check_deliverability": settings.check_deliverability,
        "max_recipients": settings.max_recipients_per_campaign,
    }
    if file.suffix.lower() == ".csv":
        return parse_csv(data, filename=file.name, **options)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path} is not UTF-8 text.", field="--recipients") from exc
    return parse_text(text, **options)


def _report_input(recipients: RecipientList, plan: campaign.Plan | None) -> None:
    out.print(f"[bold]{len(recipients.recipients)}[/] valid recipient(s)")
    for title, items in (
        ("invalid, skipped", recipients.rejected),
        ("duplicate, skipped", recipients.duplicates),
        ("suppressed", plan.suppressed if plan else []),
    ):
        if items:
            out.print(f"[yellow]{len(items)} {title}:[/]")
            for item in items[:10]:
                out.print(f"  {item}")
            if len(items) > 10:
                out.print(f"  … and {len(items) - 10} more")


def _summary(result: campaign.Result) -> Table:
    table = Table(title=f"Campaign {result.campaign_id}: {result.status}")
    table.add_column("state")
    table.add_column("messages", justify="right")
    for state in MESSAGE_STATES:
        if result.counts[state]:
            table.add_row(state, str(result.counts[state]))
    return table


def _print_result(result: campaign.Result, settings: Settings) -> None:
    out.print(_summary(result))
    for email, reason in result.failures:
        out.print(f"[red]failed[/] {email}: {reason}")
    if result.reason:
        out.print(f"[yellow]{result.reason}[/]")
    if result.counts["deferred"] and result.resume_at:
        when = datetime.fromtimestamp(result.resume_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        out.print(f"{result.counts['deferred']} message(s) deferred until {when}.")
    if result.counts["deferred"]:
        out.print(
            "Deferred messages resume with `python -m bot send --resume` (or by "
            "themselves while `python -m bot serve` runs)."
        )
    if result.counts["uncertain"]:
        out.print(
            "Uncertain messages may or may not have been sent; choose with "
            f"`python -m bot resolve {result.campaign_id} --resend|--skip`."
        )
    if settings.mail_transport == "sandbox" and result.counts["sent"]:
        out.print(f"Sandbox: the messages are .eml files in [bold]{settings.sandbox_outbox}/[/]")


def _run_with_progress(campaign_id: int, deps: campaign.Deps, *, resume: bool) -> campaign.Result:
    todo = len(deps.store.outbox.ready_messages(campaign_id))
    done_states = (*FINAL_STATES, "deferred", "uncertain")
    start = sum(deps.store.outbox.counts(campaign_id)[s] for s in done_states)
    with Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=out,
        disable=todo < 20,
    ) as bar:
        task = bar.add_task("send", total=todo)

        def progress(counts: dict[str, int]) -> None:
            bar.update(task, completed=sum(counts[s] for s in done_states) - start)

        return campaign.run(
            campaign_id, deps, progress=progress, cancel=threading.Event(), resume=resume
        )


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    deps = build_deps(settings)
    if args.resume:
        return _resume(deps, settings)
    if not args.template or not args.recipients:
        raise UserInputError("send needs --template and --recipients (or --resume).")
    recipients = read_recipients(args.recipients, settings)
    request = campaign.CampaignRequest(
        template=args.template,
        recipients=recipients,
        requested_by="cli",
        common_vars=_parse_vars(args.var),
        subject=args.subject,
        skip_invalid=args.skip_invalid,
        limit=args.limit,
    )
    try:
        plan = campaign.preflight(request, deps)
    except UserInputError:
        _report_input(recipients, None)
        raise
    _report_input(recipients, plan)
    if plan.over_limit:
        out.print(f"--limit {args.limit}: {len(plan.over_limit)} recipient(s) left out")
    if args.dry_run:
        deps.store.audit.record(
            "cli", "campaign.dry_run", template=args.template, recipients=len(plan.to_send)
        )
        out.print(f"Dry run: {len(plan.to_send)} message(s) rendered and checked; nothing sent.")
        if plan.first:
            out.print(f"First subject: {plan.first.subject}")
        return 0
    lock = SenderLock(settings.database_path)
    lock.acquire()
    try:
        campaign_id, _ = campaign.record(plan, deps)
        result = _run_with_progress(campaign_id, deps, resume=False)
    finally:
        lock.release()
    _print_result(result, settings)
    return result.exit_code


def _resume(deps: campaign.Deps, settings: Settings) -> int:
    lock = SenderLock(settings.database_path)
    lock.acquire()
    try:
        ids = deps.store.campaigns.unfinished()
        if not ids:
            out.print("Nothing to resume.")
            return 0
        code = 0
        for campaign_id in ids:
            result = _run_with_progress(campaign_id, deps, resume=True)
            _print_result(result, settings)
            code = max(code, result.exit_code)
        return code
    finally:
        lock.release()


def cmd_resolve(args: argparse.Namespace, settings: Settings) -> int:
    deps = build_deps(settings)
    if args.retry_failed:
        n = campaign.retry_failed(args.campaign, deps, "cli")
        out.print(f"{n} failed message(s) queued again; run `python -m bot send --resume`.")
        return 0
    if args.resend == args.skip:
        raise UserInputError("Choose --resend or --skip (or --retry-failed).")
    n = campaign.resolve_uncertain(args.campaign, deps, "cli", resend=args.resend)
    action = "queued to send again" if args.resend else "skipped"
    out.print(f"{n} uncertain message(s) {action}.")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    deps = build_deps(settings)
    if args.campaign is not None:
        _print_result(campaign.counts_result(args.campaign, deps), settings)
        return 0
    table = Table(title="Recent campaigns")
    for col in ("id", "template", "status", "by", "messages"):
        table.add_column(col)
    for row in deps.store.campaigns.recent(limit=args.last):
        table.add_row(str(row.id), row.template, row.status, row.requested_by, str(row.total))
    out.print(table)
    return 0


def cmd_templates(args: argparse.Namespace, settings: Settings) -> int:
    deps = build_deps(settings)
    table = Table(title=f"Templates in {settings.templates_dir}/")
    for col in ("name", "category", "description", "required variables"):
        table.add_column(col)
    for info in deps.catalogue.list():
        table.add_row(info.name, info.category, info.description, ", ".join(info.required))
    out.print(table)
    return 0


def cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    deps = build_deps(settings)
    recipients = read_recipients(args.recipients, settings)
    if not 1 <= args.row <= len(recipients.recipients):
        raise UserInputError(
            f"--row must be between 1 and {len(recipients.recipients)}.", field="--row"
        )
    recipient = recipients.recipients[args.row - 1]
    renderer = deps.catalogue.renderer(args.template, subject_override=args.subject)
    variables = campaign.message_variables(
        deps,
        recipient.email,
        recipient.name,
        recipient.variables,
        _parse_vars(args.var),
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


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    if args.example:
        sys.stdout.write(env_example())
        return 0
    table = Table(title="Effective settings (secrets masked)")
    for col in ("setting", "value", ""):
        table.add_column(col)
    for name, shown, is_default in settings.masked():
        table.add_row(name, shown, "default" if is_default else "set")
    out.print(table)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    send = sub.add_parser("send", help="send a template to a list of recipients")
    send.add_argument("--template", help="catalogue name (see `templates`)")
    send.add_argument("--recipients", help="a .csv file, or a text file of addresses")
    send.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable for every recipient (repeatable)",
    )
    send.add_argument("--subject", help="override the template's subject")
    send.add_argument("--dry-run", action="store_true", help="render and check only")
    send.add_argument("--limit", type=int, help="send to at most N recipients")
    send.add_argument(
        "--skip-invalid",
        action="store_true",
        help="send to the valid addresses even if some lines are invalid",
    )
    send.add_argument(
        "--resume",
        action="store_true",
        help="continue unfinished campaigns (after a crash, pause or deferral)",
    )
    send.set_defaults(func=cmd_send)

    preview = sub.add_parser("preview", help="write one recipient's rendered HTML and text")
    preview.add_argument("--template", required=True)
    preview.add_argument("--recipients", required=True)
    preview.add_argument("--row", type=int, default=1, help="1-based recipient number")
    preview.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    preview.add_argument("--subject")
    preview.add_argument("--out", default="data/preview", help="folder for the files")
    preview.set_defaults(func=cmd_preview)

    templates = sub.add_parser("templates", help="list the template catalogue")
    templates.set_defaults(func=cmd_templates)

    status = sub.add_parser("status", help="recent campaigns, or one campaign's counts")
    status.add_argument("campaign", type=int, nargs="?")
    status.add_argument("--last", type=int, default=10)
    status.set_defaults(func=cmd_status)

    resolve = sub.add_parser("resolve", help="decide about uncertain or failed messages")
    resolve.add_argument("campaign", type=int)
    resolve.add_argument("--resend", action="store_true", help="send uncertain ones again")
    resolve.add_argument("--skip", action="store_true", help="give uncertain ones up")
    resolve.add_argument("--retry-failed", action="store_true", help="queue failed ones again")
    resolve.set_defaults(func=cmd_resolve)

    config = sub.add_parser("config", help="print the effective settings, secrets masked")
    config.add_argument("--example", action="store_true", help="print a commented .env.example")
    config.set_defaults(func=cmd_config)
