"""``unsubscribes list|add|remove|export`` and ``stats``, parsed and run like the CLI does.

The commands are registered on a fresh parser (as ``bot/__main__.py`` does) and
run against a real SQLite file; campaigns go through the sandbox transport.
"""

from __future__ import annotations

import argparse
import csv
import io
import stat

import pytest

from bot.cli import compliance_cmds
from bot.cli.compliance_cmds import export_csv
from bot.errors import UserInputError
from bot.handlers import campaign, preflight, send_loop
from bot.handlers.export import safe_cell
from bot.models import Recipient, RecipientList
from bot.store import Store
from bot.wiring import build_deps


def run(settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot")
    compliance_cmds.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args, settings)


def addresses(settings) -> list[str]:
    return [r.email for r in Store(settings.database_path).suppressions.unsubscribes()]


# -- unsubscribes --------------------------------------------------------------


def test_add_list_remove(settings, capsys):
    assert run(settings, "unsubscribes", "list") == 0
    assert "Nobody has unsubscribed." in capsys.readouterr().out
    assert run(settings, "unsubscribes", "add", " Bob@Example.COM ") == 0
    assert "Bob@example.com will get no more marketing mail." in capsys.readouterr().out
    assert addresses(settings) == ["bob@example.com"]
    assert run(settings, "unsubscribes", "add", "bob@example.com") == 0
    assert "already unsubscribed" in capsys.readouterr().out
    assert run(settings, "unsubscribes", "list") == 0
    listing = capsys.readouterr().out
    assert "bob@example.com" in listing and "cli" in listing
    assert run(settings, "unsubscribes", "remove", "BOB@example.com") == 0
    assert addresses(settings) == []
    assert run(settings, "unsubscribes", "remove", "bob@example.com") == 1
    assert "is not on the unsubscribe list" in capsys.readouterr().out
    actions = [r.action for r in Store(settings.database_path).audit.recent()]
    assert actions == ["unsubscribe.removed", "unsubscribe.added"]


@pytest.mark.parametrize("bad", ["not-an-address", "bob@localhost", "a@b@example.com", ""])
def test_add_refuses_an_invalid_address(settings, bad):
    with pytest.raises(UserInputError, match="is not a valid email address"):
        run(settings, "unsubscribes", "add", bad)
    assert addresses(settings) == []


# -- export --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, shown",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("bob@example.com", "bob@example.com"),
        ("a=1", "a=1"),
        (None, ""),
        (7, "7"),
    ],
)
def test_safe_cell(value, shown):
    assert safe_cell(value) == shown


def test_export_neutralises_formulas_and_reads_back(settings, tmp_path, capsys):
    store = Store(settings.database_path)
    assert run(settings, "unsubscribes", "add", "=1+2@example.com") == 0  # a valid address
    assert run(settings, "unsubscribes", "add", "--", "-cmd@example.com") == 0
    store.suppressions.add_unsubscribe(
        "carol@example.com", source='=HYPERLINK("http://x")', campaign_id=4
    )
    store.suppressions.add_unsubscribe("dan@example.com", source="@evil", campaign_id=None)
    capsys.readouterr()

    target = tmp_path / "exports" / "unsubscribes.csv"
    assert run(settings, "unsubscribes", "export", "--out", str(target)) == 0
    assert "Wrote 4 address(es)" in capsys.readouterr().out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600, "personal data"
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), "a BOM, so spreadsheets read UTF-8"
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["email", "source", "campaign_id", "unsubscribed_at"]
    by_email = {r[0]: r for r in rows[1:]}
    assert set(by_email) == {
        "'=1+2@example.com",
        "'-cmd@example.com",
        "carol@example.com",
        "dan@example.com",
    }
    assert by_email["carol@example.com"][1:3] == ['\'=HYPERLINK("http://x")', "4"]
    assert by_email["dan@example.com"][1:3] == ["'@evil", ""]
    for row in rows[1:]:
        assert row[3].endswith("Z") and row[3][:2] == "20"
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)
    assert all(line.startswith('"') for line in data.decode("utf-8-sig").splitlines())

    assert run(settings, "unsubscribes", "export") == 0
    assert capsys.readouterr().out == export_csv(store.suppressions.unsubscribes())


# -- stats ---------------------------------------------------------------------

NEWS = {"headline": "Spring news", "body": "We shipped it."}


def sent_campaign(settings, store, emails: list[str]) -> int:
    deps = build_deps(settings, store)
    request = campaign.CampaignRequest(
        template="newsletter",
        recipients=RecipientList([Recipient(e, "", {}, i + 2) for i, e in enumerate(emails)]),
        requested_by="test",
        common_vars=NEWS,
    )
    campaign_id, _ = preflight.record(preflight.preflight(request, deps), deps)
    send_loop.run(campaign_id, deps)
    return campaign_id


def test_stats_per_campaign_and_over_days_with_the_bounce_alert(settings, store, capsys):
    people = [f"p{i}@example.com" for i in range(10)]
    campaign_id = sent_campaign(settings, store, people)
    rows = store.outbox.messages(campaign_id)
    store.suppressions.record_bounce(
        "g1", kind="hard", message_row_id=rows[0].id, email=rows[0].email
    )
    on = settings.replace(bounce_scan=True)

    assert run(on, "stats", "--campaign", str(campaign_id)) == 0
    shown = capsys.readouterr().out
    assert f"Campaign {campaign_id}" in shown
    assert "9 (90.0%)" in shown and "10.0%" in shown
    assert "warning:" in shown and "1 of 10 messages bounced (10.0%" in shown
    assert "Bounce scanning is off" not in shown

    assert run(on, "stats", "--days", "7") == 0
    shown = capsys.readouterr().out
    assert "Last 7 days" in shown and "all" in shown and "newsletter" in shown


def test_stats_says_when_bounces_cannot_be_known(settings, store, capsys):
    sent_campaign(settings, store, ["a@example.com"])
    assert run(settings, "stats") == 0
    shown = capsys.readouterr().out
    assert "1 (100.0%)" in shown
    assert "Bounce scanning is off" in shown and "BOUNCE_SCAN=on" in shown


def test_stats_input_errors(settings, capsys):
    with pytest.raises(UserInputError, match="There is no campaign #99"):
        run(settings, "stats", "--campaign", "99")
    with pytest.raises(SystemExit):
        run(settings, "stats", "--days", "0")
    assert "must be between 1 and 3650" in capsys.readouterr().err
    with pytest.raises(UserInputError, match="BOUNCE_SCAN=on"):
        run(settings, "stats", "--scan")
