"""``send --at`` and ``scheduled``: the real command line, in a subprocess."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.records import CampaignStatus
from tests.test_cli import outbox, run, write

PASTE = "ann@example.com\nbo@example.org\n"
PARIS = ZoneInfo("Europe/Paris")


def _send_at(tmp_path: Path, when: str, *extra: str, env: dict[str, str] | None = None):
    recipients = write(tmp_path, "to.txt", PASTE)
    return run(
        tmp_path,
        "send",
        "--template",
        "welcome",
        "--recipients",
        str(recipients),
        "--var",
        "start_url=https://mailbolt.example/start",
        "--var",
        "team=Acme",
        "--at",
        when,
        *extra,
        env=env,
    )


def _in_paris(hours: float) -> datetime:
    """A wall-clock time in Paris ``hours`` from now, to the minute."""
    moment = datetime.now(PARIS) + timedelta(hours=hours)
    return moment.replace(second=0, microsecond=0)


def _words(moment: datetime, zone: str) -> str:
    """``Tuesday 3 March, 09:00 Europe/Paris`` (with the year when it is not this one)."""
    year = "" if moment.year == datetime.now(moment.tzinfo).year else f" {moment.year}"
    return f"{moment:%A} {moment.day} {moment:%B}{year}, {moment:%H:%M} {zone}"


def _campaign_id(stdout: str) -> str:
    return stdout.split("Campaign ", 1)[1].split(" ", 1)[0]


def test_send_at_records_it_scheduled_and_says_when_and_how_to_change_it(tmp_path):
    moment = _in_paris(3)
    result = _send_at(tmp_path, f"{moment:%Y-%m-%d %H:%M} Europe/Paris")
    assert result.returncode == 0, result.stderr
    assert _words(moment, "Europe/Paris") in result.stdout.replace("\n", " ")
    campaign = _campaign_id(result.stdout)
    assert f"python -m bot scheduled cancel {campaign}" in result.stdout
    assert "python -m bot serve" in result.stdout  # nothing runs to start it
    assert outbox(tmp_path) == []

    listed = run(tmp_path, "scheduled")
    assert listed.returncode == 0, listed.stderr
    assert campaign in listed.stdout and "Europe/Paris" in listed.stdout
    status = run(tmp_path, "status", campaign)
    assert "scheduled: for" in status.stdout and "Europe/Paris" in status.stdout
    # A resume before its time sends nothing: it waits for its time.
    resumed = run(tmp_path, "send", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert outbox(tmp_path) == []


def test_a_time_without_a_zone_is_the_machines_and_an_offset_is_kept(tmp_path):
    moment = _in_paris(5)
    local = _send_at(tmp_path, f"{moment:%Y-%m-%d %H:%M}", env={"TZ": "Europe/Paris"})
    assert local.returncode == 0, local.stderr
    assert _words(moment, "Europe/Paris") in local.stdout.replace("\n", " ")
    utc = moment.astimezone(UTC)
    offset = _send_at(tmp_path, f"{utc:%Y-%m-%d %H:%M}+00:00")
    assert offset.returncode == 0, offset.stderr
    assert f"{utc:%H:%M} UTC" in offset.stdout


def test_move_and_cancel_do_what_they_say_and_are_audited(tmp_path):
    first = _send_at(tmp_path, f"{_in_paris(2):%Y-%m-%d %H:%M} Europe/Paris")
    campaign = _campaign_id(first.stdout)
    later = _in_paris(30)
    moved = run(tmp_path, "scheduled", "move", campaign, f"{later:%Y-%m-%d %H:%M} Europe/Paris")
    assert moved.returncode == 0, moved.stderr
    assert f"{later:%H:%M} Europe/Paris" in moved.stdout
    assert f"{later:%H:%M} Europe/Paris" in run(tmp_path, "scheduled").stdout

    cancelled = run(tmp_path, "scheduled", "cancel", campaign)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled; nothing was sent" in cancelled.stdout
    assert "No campaigns are scheduled" in run(tmp_path, "scheduled").stdout
    assert "cancelled" in run(tmp_path, "status", campaign).stdout
    again = run(tmp_path, "scheduled", "cancel", campaign)
    assert again.returncode == 2 and "not scheduled any more" in again.stderr
    audit = run(tmp_path, "audit", "--campaign", campaign).stdout
    assert "campaign.schedule_moved" in audit and "campaign.schedule_cancelled" in audit
    assert outbox(tmp_path) == []


def test_times_in_the_past_too_far_ahead_or_unreadable_are_refused_and_record_nothing(tmp_path):
    past = _in_paris(-1)
    refused = _send_at(tmp_path, f"{past:%Y-%m-%d %H:%M} Europe/Paris")
    assert refused.returncode == 2
    assert "has already passed" in refused.stderr
    far = _in_paris(24 * 367)
    refused = _send_at(tmp_path, f"{far:%Y-%m-%d %H:%M} Europe/Paris")
    assert refused.returncode == 2 and "more than a year ahead" in refused.stderr
    refused = _send_at(tmp_path, "tomorrow at nine")
    assert refused.returncode == 2 and "is not a date and time" in refused.stderr
    refused = _send_at(tmp_path, f"{_in_paris(48):%Y-%m-%d}")  # no time: not midnight
    assert refused.returncode == 2 and "is not a date and time" in refused.stderr
    refused = _send_at(tmp_path, f"{_in_paris(3):%Y-%m-%d %H:%M} Mars/Olympus")
    assert refused.returncode == 2 and "is not a time zone" in refused.stderr
    # The hour the clocks skip in spring (the last Sunday of March, 02:30 in Paris).
    year = datetime.now(PARIS).year + 1
    last_sunday = max(date(year, 3, d) for d in range(25, 32) if date(year, 3, d).weekday() == 6)
    refused = _send_at(tmp_path, f"{last_sunday} 02:30 Europe/Paris")
    assert refused.returncode == 2 and "does not exist in Europe/Paris" in refused.stderr
    assert "No campaigns are scheduled" in run(tmp_path, "scheduled").stdout
    moved = run(tmp_path, "scheduled", "move", "1", f"{_in_paris(3):%Y-%m-%d %H:%M}")
    assert moved.returncode == 2 and "no campaign #1" in moved.stderr.lower()


def test_send_resume_after_its_time_checks_it_again_and_sends_it(tmp_path):
    """Without a server, ``send --resume`` after the time starts it. The database is
    as ``send --at`` left it once the time has passed (the time is set back, since
    the CLI refuses a past time)."""
    from bot.store import Store

    scheduled = _send_at(tmp_path, f"{_in_paris(2):%Y-%m-%d %H:%M} Europe/Paris")
    campaign = int(_campaign_id(scheduled.stdout))
    store = Store(tmp_path / "data" / "sendmail.db")
    try:
        assert store.campaigns.update_if(
            campaign, CampaignStatus.SCHEDULED, scheduled_at=datetime.now(UTC).timestamp() - 60
        )
    finally:
        store.close()
    resumed = run(tmp_path, "send", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert len(outbox(tmp_path)) == 2
    assert "completed" in run(tmp_path, "status", str(campaign)).stdout
    assert "campaign.schedule_started" in run(tmp_path, "audit", "--campaign", str(campaign)).stdout
