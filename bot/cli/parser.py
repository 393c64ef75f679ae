"""The ``python -m bot`` parser, built from argparse and nothing heavy.

Owns every command's arguments. A command's code (and Slack, SQLite, Jinja,
rich, Google's libraries behind it) is imported only when that command runs, so
``--help`` and quick commands start in a few tens of milliseconds.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from bot.cli.args import CAMPAIGN_ID, POSITIVE, add_team_filter, team_id, whole

DESCRIPTION = "``python -m bot``: the command line."


class _run:
    """``func`` of a parser: imports ``bot.cli.<module>`` on call, then runs ``name``."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, args: argparse.Namespace, settings: Any) -> int:
        command = getattr(importlib.import_module(f"bot.cli.{self.module}"), self.name)
        return int(command(args, settings))

    def __repr__(self) -> str:
        return f"bot.cli.{self.module}.{self.name}"


def _days(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 3650:
        raise argparse.ArgumentTypeError("must be between 1 and 3650")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    parser.set_defaults(needs_settings=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in (
        register_core,
        register_gmail,
        register_compliance,
        register_results,
        register_serve,
        register_accounts,
        register_schedule,
    ):
        register(sub)
    return parser


def register_core(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = sub.add_parser("send", help="send a template to a list of recipients")
    send.add_argument("--template", metavar="NAME", help="catalogue name (see `templates`)")
    send.add_argument(
        "--recipients", metavar="FILE", help="a .csv file, or a text file of addresses"
    )
    send.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable for every recipient (repeatable)",
    )
    send.add_argument("--subject", metavar="TEXT", help="override the template's subject")
    send.add_argument(
        "--attach",
        action="append",
        default=[],
        metavar="FILE",
        help="attach FILE to every message (repeatable); a CSV column 'attachments' "
        "adds files per row, paths relative to the CSV",
    )
    send.add_argument("--dry-run", action="store_true", help="render and check only")
    send.add_argument("--limit", type=POSITIVE, metavar="N", help="send to at most N recipients")
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
    send.add_argument(
        "--from",
        dest="sender",
        metavar="ADDRESS",
        default="",
        help="the sender account to send from (see `accounts list`; default: the `auth` one)",
    )
    send.add_argument(
        "--at",
        metavar="WHEN",
        help='start later: "YYYY-MM-DD HH:MM" in this machine\'s time zone, or followed by '
        "a zone (Europe/Paris) or offset (+01:00); within a year",
    )
    send.add_argument(
        "--team",
        type=team_id,
        default="",
        metavar="T",
        help="file the campaign under Slack workspace T: its unsubscribes and bounces apply, "
        "only T sees it (default: the operator's own, seen by every workspace)",
    )
    send.set_defaults(func=_run("core_cmds", "cmd_send"))

    preview = sub.add_parser("preview", help="write one recipient's rendered HTML and text")
    preview.add_argument("--template", required=True, metavar="NAME")
    preview.add_argument("--recipients", required=True, metavar="FILE")
    preview.add_argument(
        "--row", type=POSITIVE, default=1, metavar="N", help="1-based recipient number"
    )
    preview.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    preview.add_argument("--subject", metavar="TEXT")
    preview.add_argument(
        "--team",
        type=team_id,
        default="",
        metavar="T",
        help="render Slack workspace T's version of the template",
    )
    preview.add_argument(
        "--out", default="data/preview", metavar="DIR", help="folder for the files"
    )
    preview.set_defaults(func=_run("core_cmds", "cmd_preview"))

    templates = sub.add_parser("templates", help="list the template catalogue")
    templates.add_argument(
        "--team",
        type=team_id,
        default="",
        metavar="T",
        help="the templates Slack workspace T sees: the shared ones and its own",
    )
    templates.set_defaults(func=_run("template_cmds", "cmd_templates"))

    status = sub.add_parser("status", help="recent campaigns, or one campaign's counts")
    status.add_argument("campaign", type=CAMPAIGN_ID, nargs="?", metavar="CAMPAIGN")
    status.add_argument(
        "--last", type=POSITIVE, default=10, metavar="N", help="how many campaigns (10)"
    )
    add_team_filter(status, "campaigns")
    status.set_defaults(func=_run("core_cmds", "cmd_status"))

    resolve = sub.add_parser("resolve", help="decide about uncertain or failed messages")
    resolve.add_argument("campaign", type=CAMPAIGN_ID, metavar="CAMPAIGN")
    resolve.add_argument("--resend", action="store_true", help="send uncertain ones again")
    resolve.add_argument("--skip", action="store_true", help="give uncertain ones up")
    resolve.add_argument("--retry-failed", action="store_true", help="queue failed ones again")
    resolve.set_defaults(func=_run("core_cmds", "cmd_resolve"))

    approvals = sub.add_parser("approvals", help="campaigns waiting for a second person's approval")
    add_team_filter(approvals, "campaigns")
    approvals.set_defaults(func=_run("approval_cmds", "cmd_approvals"))

    config = sub.add_parser("config", help="print the effective settings, secrets masked")
    config.add_argument("--example", action="store_true", help="print a commented .env.example")
    config.set_defaults(func=_run("core_cmds", "cmd_config"), needs_settings=False)


def register_gmail(subparsers: Any) -> None:
    """Add ``auth`` and ``quota`` to the ``python -m bot`` parser."""
    auth = subparsers.add_parser(
        "auth",
        help="authorize mailbolt to send from a Gmail account",
        description="Sign in with Google and store the grant in GMAIL_TOKEN_FILE (mode 0600).",
    )
    auth.add_argument(
        "--no-browser",
        action="store_true",
        help="print the sign-in URL instead of opening a browser (headless servers)",
    )
    auth.add_argument(
        "--check", action="store_true", help="check that the saved grant still works, then exit"
    )
    auth.add_argument(
        "--port",
        type=whole(0, 65535),
        default=0,
        help="local port for Google's redirect (default: any free)",
    )
    auth.set_defaults(func=_run("gmail_cmds", "cmd_auth"))

    quota = subparsers.add_parser(
        "quota",
        help="Gmail quota used in the last minute and day, and what is left",
        description="Counts what mailbolt spent, from its own database.",
    )
    quota.add_argument(
        "--campaign", type=CAMPAIGN_ID, metavar="ID", help="estimate this campaign's rest"
    )
    quota.add_argument("--messages", type=whole(0), metavar="N", help="estimate sending N messages")
    quota.add_argument(
        "--from",
        dest="sender",
        metavar="ADDRESS",
        default="",
        help="the sender account to show (see `accounts list`; default: the `auth` one)",
    )
    quota.set_defaults(func=_run("gmail_cmds", "cmd_quota"))


def register_compliance(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    unsub = sub.add_parser("unsubscribes", help="the marketing unsubscribe list")
    actions = unsub.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="everyone who unsubscribed")
    _unsubscribe_team_filter(listing)
    listing.set_defaults(func=_run("compliance_cmds", "cmd_list"))

    add = actions.add_parser("add", help="stop marketing mail to an address")
    add.add_argument("address", metavar="ADDR")
    _unsubscribe_team(add, "from Slack workspace T only (default: from every workspace)")
    add.set_defaults(func=_run("compliance_cmds", "cmd_add"))

    remove = actions.add_parser(
        "remove", help="allow marketing mail again (only at the person's request)"
    )
    remove.add_argument("address", metavar="ADDR")
    _unsubscribe_team(
        remove, "lift Slack workspace T's unsubscribe (default: the every-workspace one)"
    )
    remove.set_defaults(func=_run("compliance_cmds", "cmd_remove"))

    export = actions.add_parser("export", help="write the list as spreadsheet-safe CSV")
    export.add_argument("--out", metavar="FILE", help="write to FILE (mode 0600); default stdout")
    _unsubscribe_team_filter(export)
    export.set_defaults(func=_run("compliance_cmds", "cmd_export"))

    report = sub.add_parser("stats", help="delivery and bounce rates")
    report.add_argument(
        "campaign_id",
        type=CAMPAIGN_ID,
        nargs="?",
        metavar="CAMPAIGN",
        help="one campaign, all time",
    )
    report.add_argument("--campaign", type=CAMPAIGN_ID, metavar="ID", help="the same, as an option")
    report.add_argument(
        "--days", type=_days, default=7, help="campaigns that sent in the last N days (7)"
    )
    report.add_argument(
        "--scan", action="store_true", help="read new bounce reports first (BOUNCE_SCAN=on)"
    )
    add_team_filter(report, "campaigns")
    report.set_defaults(func=_run("compliance_cmds", "cmd_stats"))


def register_results(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = sub.add_parser(
        "export",
        help="a campaign's per-recipient results as spreadsheet-safe CSV",
        description="Columns: address, name, state, time (UTC), gmail_message_id, error.",
    )
    export.add_argument("campaign", type=CAMPAIGN_ID, metavar="CAMPAIGN")
    export.add_argument(
        "--output", metavar="FILE", help="write to FILE (mode 0600); default stdout"
    )
    export.set_defaults(func=_run("results_cmds", "cmd_export"))

    audit = sub.add_parser("audit", help="who sent, cancelled, retried, resolved or exported what")
    audit.add_argument("--campaign", type=CAMPAIGN_ID, metavar="ID", help="one campaign only")
    audit.add_argument(
        "--limit", type=whole(1, 10_000), default=50, metavar="N", help="newest N entries (50)"
    )
    audit.add_argument(
        "--since", metavar="WHEN", help="from a date/time (UTC) or a span back: 24h, 7d"
    )
    add_team_filter(audit, "entries")
    audit.set_defaults(func=_run("results_cmds", "cmd_audit"))


def register_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve_parser = sub.add_parser("serve", help="run the Slack app and the web server")
    serve_parser.add_argument(
        "--port", type=whole(0, 65535), help="HTTP port, 0 for any free one (default: PORT, 3000)"
    )
    serve_parser.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104 - a server Slack must reach
        help="interface to listen on (default: all)",
    )
    serve_parser.add_argument(
        "--no-send",
        action="store_true",
        help="answer Slack, unsubscribe and OAuth only; `python -m bot worker` sends",
    )
    serve_parser.set_defaults(func=_run("serve_cmds", "cmd_serve"))

    worker = sub.add_parser(
        "worker", help="send queued mail beside other workers (needs DATABASE_URL)"
    )
    worker.set_defaults(func=_run("worker_cmds", "cmd_worker"))


def register_accounts(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    accounts = sub.add_parser("accounts", help="sender accounts: list, link, allow, remove")
    actions = accounts.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="every sender account and who may use it")
    add_team_filter(listing, "accounts (and the command line's, which serve all)")
    listing.set_defaults(func=_run("accounts_cmds", "cmd_list"))

    link = actions.add_parser(
        "link",
        help="link a shared team address (sign in with Google as that address)",
        description="Sign in as the team address; its grant is kept encrypted in the database.",
    )
    link.add_argument("name", metavar="NAME", help="a short name for it, e.g. team")
    link.add_argument("--no-browser", action="store_true", help="print the sign-in URL instead")
    link.add_argument("--port", type=whole(0, 65535), default=0, help="local port for Google")
    _access_options(link)
    link.set_defaults(func=_run("accounts_cmds", "cmd_link"))

    allow = actions.add_parser("allow", help="say who may send from a shared account")
    allow.add_argument("name", metavar="NAME", help="its name or address")
    _access_options(allow)
    allow.add_argument(
        "--only", action="store_true", help="replace the lists instead of adding to them"
    )
    allow.add_argument(
        "--not-everyone",
        action="store_true",
        help="close it to everyone but the users and groups listed",
    )
    allow.set_defaults(func=_run("accounts_cmds", "cmd_allow"))

    remove = actions.add_parser("remove", help="revoke a sender account's grant and forget it")
    remove.add_argument("name", metavar="NAME", help="its name or address")
    remove.set_defaults(func=_run("accounts_cmds", "cmd_remove"))


def register_schedule(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scheduled = sub.add_parser(
        "scheduled", help="campaigns that start later (send --at): list, cancel, move"
    )
    scheduled.set_defaults(func=_run("schedule_cmds", "cmd_scheduled"))
    actions = scheduled.add_subparsers(dest="action", metavar="ACTION")

    listing = actions.add_parser("list", help="every scheduled campaign, soonest first")
    add_team_filter(listing, "campaigns")
    listing.set_defaults(func=_run("schedule_cmds", "cmd_scheduled"))

    cancel = actions.add_parser("cancel", help="cancel a scheduled campaign; nothing is sent")
    cancel.add_argument("campaign", type=CAMPAIGN_ID, metavar="CAMPAIGN")
    cancel.set_defaults(func=_run("schedule_cmds", "cmd_cancel"))

    move = actions.add_parser("move", help="give a scheduled campaign a new time")
    move.add_argument("campaign", type=CAMPAIGN_ID, metavar="CAMPAIGN")
    move.add_argument("when", metavar="WHEN", help='"YYYY-MM-DD HH:MM" [zone or offset]')
    move.set_defaults(func=_run("schedule_cmds", "cmd_move"))


def _unsubscribe_team_filter(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--team",
        type=team_id,
        default=None,
        metavar="T",
        help="only those holding for Slack workspace T (its own and every workspace's)",
    )


def _unsubscribe_team(parser: argparse.ArgumentParser, words: str) -> None:
    parser.add_argument("--team", type=team_id, default="", metavar="T", help=words)


def _access_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--user", action="append", default=[], metavar="U…", help="a Slack user id (repeatable)"
    )
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="S…",
        help="a Slack user group id (repeatable)",
    )
    parser.add_argument(
        "--everyone", action="store_true", help="everyone allowed to send may use it"
    )
