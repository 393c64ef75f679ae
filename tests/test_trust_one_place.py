"""One place per fact: ``name=value`` values and time formats are written once.

The CLI's ``--var`` and the Slack "values" field read values by one rule
(``bot.handlers.values.parse_name_values``; the Slack side is covered in
tests/test_slack_flow.py), and every time a person reads comes from ``bot.timefmt``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from bot.timefmt import duration, rough_duration, utc_iso, utc_minute
from tests.conftest import ROOT
from tests.test_cli import CSV, run, write

MOMENT = datetime(2026, 3, 1, 14, 5, 9, tzinfo=UTC)


def test_cli_var_is_refused_with_the_same_sentence_as_the_slack_field(tmp_path):
    recipients = write(tmp_path, "list.csv", CSV)
    result = run(
        tmp_path, "send", "--template", "welcome", "--recipients", str(recipients),
        "--var", "team Acme",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--var 'team Acme' should look like name=value, e.g. team=Mailbolt." in result.stderr


def test_moments_are_shown_in_utc_to_the_minute():
    assert utc_minute(MOMENT.timestamp()) == "2026-03-01 14:05 UTC"
    assert utc_minute(MOMENT) == "2026-03-01 14:05 UTC"
    # An aware moment in another zone is the same instant, shown in UTC.
    assert utc_minute(MOMENT.astimezone(timezone(timedelta(hours=2)))) == "2026-03-01 14:05 UTC"
    assert utc_iso(MOMENT.timestamp()) == "2026-03-01T14:05:09Z"
    assert utc_iso(None) == ""


def test_durations_measured_and_estimated():
    assert [duration(s) for s in (12, 187, 3900)] == ["12 s", "3 min 07 s", "1 h 05 min"]
    assert [rough_duration(s) for s in (59, 720, 9000)] == [
        "under a minute",
        "about 12 min",
        "about 2.5 h",
    ]


def test_no_module_but_timefmt_writes_a_date_format():
    """A second strftime pattern is a second, drifting copy of the format."""
    pattern = re.compile(r"%Y-%m-%d|%H:%M")
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "bot").rglob("*.py"))
        if path.name != "timefmt.py" and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
