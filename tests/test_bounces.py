"""Bounce reports: the DSN parser and matcher on bytes, then the whole scan against the
loopback Gmail fake (real googleapiclient, real TLS), suppression and delivery stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.config import Settings
from bot.errors import AuthError, UserInputError
from bot.handlers import campaign, policy, preflight, send_loop
from bot.handlers.bounce_parse import (
    HARD,
    SOFT,
    UNMATCHED,
    DeliveryReport,
    FailedRecipient,
    match_bounce,
    normalize_message_id,
    parse_dsn,
)
from bot.handlers.stats import bounce_alert, campaign_stats, stats
from bot.models import Recipient, RecipientList
from bot.ports import NoPacing
from bot.records import Message, MessageState
from bot.wiring import Wiring, build_deps
from tests.fakes.gmail_fake import READONLY_SCOPE, SEND_SCOPE, FakeGmail

ORIGINAL_ID = "<4f1c2e0d9b8a@mailbolt.example>"


def dsn(
    *blocks: dict[str, str],
    returned: str = "headers",
    message_id: str = ORIGINAL_ID,
    report_type: str = "delivery-status",
) -> bytes:
    """A DSN as mailer-daemon writes it; ``returned`` is ``headers``, ``message`` or ``none``."""
    recipients = "".join(
        "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in block.items()) for block in blocks
    )
    original = f"From: team@mailbolt.example\r\nTo: x@example.com\r\nMessage-ID: {message_id}\r\n"
    returned_part = {
        "headers": f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n{original}\r\n",
        "message": f"--B\r\nContent-Type: message/rfc822\r\n\r\n{original}\r\nHello\r\n",
        "none": "",
    }[returned]
    return (
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n"
        "To: team@mailbolt.example\r\nSubject: Delivery Status Notification (Failure)\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; boundary="B"; report-type={report_type}\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message wasn't delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; googlemail.com\r\n{recipients}"
        f"{returned_part}--B--\r\n"
    ).encode()


def failed(to: str, status: str = "5.1.1", action: str = "failed", **more: str) -> dict[str, str]:
    block = {"Final-Recipient": f"rfc822; {to}", "Action": action, "Status": status}
    block["Diagnostic-Code"] = f"smtp; 550 {status} The email account that you tried to reach"
    return {**block, **more}


# -- parsing -------------------------------------------------------------------


@pytest.mark.parametrize("returned", ["headers", "message"])
def test_a_hard_bounce_with_the_returned_message_id(returned):
    report = parse_dsn(dsn(failed("Bob@Example.com"), returned=returned))
    assert report == DeliveryReport(
        ORIGINAL_ID,
        (
            FailedRecipient(
                "bob@example.com",
                "",
                HARD,
                "5.1.1",
                "smtp; 550 5.1.1 The email account that you tried to reach",
            ),
        ),
    )


def test_status_classes_and_actions():
    report = parse_dsn(
        dsn(
            failed("a@example.com", "5.2.1"),
            failed("b@example.com", "4.2.2"),  # mailbox full, the server gave up: soft
            failed("c@example.com", "4.4.1", action="delayed"),  # still trying: no bounce
            failed("d@example.com", "2.0.0", action="delivered"),
            {
                "Final-Recipient": "rfc822; e@example.com",
                "Action": "failed",
                "Diagnostic-Code": "smtp; 550-5.1.1 No such user",
            },  # status only in the text
        )
    )
    assert [(f.recipient, f.kind, f.status) for f in report.failures] == [
        ("a@example.com", HARD, "5.2.1"),
        ("b@example.com", SOFT, "4.2.2"),
        ("e@example.com", HARD, "5.1.1"),
    ]


def test_long_diagnostics_are_one_bounded_line():
    report = parse_dsn(
        dsn(failed("a@example.com", **{"Diagnostic-Code": "smtp; 550 " + "x" * 900}))
    )
    (failure,) = report.failures
    assert len(failure.diagnostic) == 300 and "\n" not in failure.diagnostic


@pytest.mark.parametrize(
    "raw",
    [
        b"From: mailer-daemon@example.com\r\nSubject: Undelivered\r\n\r\nSorry, no such user.\r\n",
        dsn(failed("a@example.com"), report_type="disposition-notification"),
        b"\x00\xff not a message at all",
        b"",
    ],
)
def test_anything_but_a_delivery_status_report_is_not_a_dsn(raw):
    assert parse_dsn(raw) is None


def test_message_ids_are_normalized():
    assert normalize_message_id(" <abc@x.example>\r\n ") == "<abc@x.example>"
    assert normalize_message_id("abc@x.example") == "<abc@x.example>"
    assert normalize_message_id("<abc@x.example> (sent by mailbolt)") == "<abc@x.example>"
    assert normalize_message_id(None) is None
    assert normalize_message_id("") is None


# -- matching ------------------------------------------------------------------


def lookup(rows: dict[str, Message]):
    return rows.get


ROW = Message(
    id=7,
    campaign_id=3,
    position=0,
    email="Bob@example.com",
    name="",
    variables={},
    state=MessageState.SENT,
    message_id=ORIGINAL_ID,
)


def test_matched_by_message_id_and_recipient():
    bounce = match_bounce(parse_dsn(dsn(failed("bob@example.com"))), lookup({ORIGINAL_ID: ROW}))
    assert (bounce.message_row_id, bounce.campaign_id, bounce.email, bounce.kind) == (
        7,
        3,
        "bob@example.com",
        HARD,
    )


def test_not_matched_without_our_message_id_or_for_another_recipient():
    ours = lookup({ORIGINAL_ID: ROW})
    assert match_bounce(parse_dsn(dsn(failed("bob@example.com"), returned="none")), ours) is None
    other_id = dsn(failed("bob@example.com"), message_id="<someone-else@gmail.com>")
    assert match_bounce(parse_dsn(other_id), ours) is None
    forwarded_to = dsn(failed("bob.personal@elsewhere.example"))
    assert match_bounce(parse_dsn(forwarded_to), ours) is None, "a forward target is not ours"


def test_a_failed_forward_matches_through_original_recipient():
    raw = dsn(
        failed("bob.personal@elsewhere.example", **{"Original-Recipient": "rfc822;bob@example.com"})
    )
    bounce = match_bounce(parse_dsn(raw), lookup({ORIGINAL_ID: ROW}))
    assert bounce is not None and bounce.email == "bob@example.com"


def test_hard_outweighs_soft_for_the_same_recipient():
    raw = dsn(failed("bob@example.com", "4.2.2"), failed("bob@example.com", "5.1.1"))
    assert match_bounce(parse_dsn(raw), lookup({ORIGINAL_ID: ROW})).kind == HARD


# -- the store -----------------------------------------------------------------


def test_record_bounce_dedupes_and_never_downgrades(store, settings):
    deps = build_deps(settings, store)
    plan = preflight.preflight(
        campaign.CampaignRequest(
            template="welcome",
            recipients=RecipientList([Recipient("bob@example.com", "Bob", {}, 2)]),
            requested_by="test",
            common_vars={"team": "Mailbolt", "start_url": "https://mailbolt.example"},
        ),
        deps,
    )
    campaign_id, _ = preflight.record(plan, deps)
    (row,) = store.outbox.messages(campaign_id)
    assert store.suppressions.record_bounce(
        "g1", kind=HARD, message_row_id=row.id, email="Bob@example.com"
    )
    assert not store.suppressions.record_bounce(
        "g1", kind=HARD, message_row_id=row.id, email="b@x.example"
    )
    assert store.suppressions.record_bounce(
        "g2", kind=SOFT, message_row_id=row.id, email="bob@example.com"
    )
    assert store.suppressions.record_bounce("g3", kind=UNMATCHED)
    assert store.outbox.messages(campaign_id)[0].bounce == HARD
    assert store.suppressions.known_bounce_reports(["g1", "g3", "g9"]) == {"g1", "g3"}
    assert store.suppressions.hard_bounced_among(["BOB@example.com", "ann@example.com"]) == {
        "bob@example.com"
    }


# -- end to end with the Gmail fake --------------------------------------------


@pytest.fixture
def fake(gmail_fake: FakeGmail) -> FakeGmail:
    return gmail_fake


def gmail_settings(settings: Settings, fake: FakeGmail, tmp_path: Path, scopes) -> Settings:
    configured = settings.replace(
        mail_transport="gmail",
        bounce_scan=True,
        gmail_token_file=tmp_path / "data" / "token.json",
        gmail_api_url=fake.api_url,
        google_token_uri=fake.token_uri,
        public_base_url="https://mail.example.com",
    )
    path = configured.gmail_token_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fake.grant(scopes)))
    path.chmod(0o600)
    return configured


@pytest.fixture
def reader(settings, fake, tmp_path) -> Settings:
    return gmail_settings(settings, fake, tmp_path, (SEND_SCOPE, READONLY_SCOPE))


NEWS = {"headline": "Spring news", "body": "We shipped it."}
PEOPLE = ["ann@example.com", "bob@example.com", "cy@example.com", "dee@example.com"]


def send_news(settings: Settings, store, emails: list[str]) -> int:
    deps = build_deps(settings, store)
    deps.pacer = NoPacing()  # the fake's quota is not under test here
    request = campaign.CampaignRequest(
        template="newsletter",
        recipients=RecipientList([Recipient(e, "", {}, i + 2) for i, e in enumerate(emails)]),
        requested_by="test",
        common_vars=NEWS,
    )
    campaign_id, _ = preflight.record(preflight.preflight(request, deps), deps)
    assert send_loop.run(campaign_id, deps).counts["sent"] == len(emails)
    return campaign_id


def sent_to(fake: FakeGmail, address: str):
    return next(m for m in fake.sent if m.addresses("To") == [address])


def test_scan_records_bounces_and_the_next_campaign_suppresses_hard_ones(reader, store, fake):
    campaign_id = send_news(reader, store, PEOPLE)
    fake.bounce(sent_to(fake, "bob@example.com"), "bob@example.com", "5.1.1")
    fake.bounce(sent_to(fake, "cy@example.com"), "cy@example.com", "4.2.2")
    fake.bounce(sent_to(fake, "dee@example.com"), "someone.else@example.com", "5.1.1")
    fake.add_message(dsn(failed("x@example.com"), message_id="<by-hand@gmail.com>"))
    fake.add_message(b"From: ann@example.com\r\nSubject: thanks!\r\n\r\nLovely news.\r\n")

    result = Wiring(reader, store).scan_bounces()
    assert (result.reports, result.new, result.hard, result.soft, result.unmatched) == (
        4,
        4,
        1,
        1,
        2,
    )
    assert result.campaigns == {campaign_id}
    bounces = {r.email: r.bounce for r in store.outbox.messages(campaign_id)}
    assert bounces == {
        "ann@example.com": None,
        "bob@example.com": HARD,
        "cy@example.com": SOFT,
        "dee@example.com": None,
    }

    recipients = [Recipient(e, "", {}, i + 2) for i, e in enumerate(PEOPLE)]
    for category in ("marketing", "transactional"):
        keep, dropped = policy.suppress(store, recipients, category)
        assert [r.text for r in dropped] == ["bob@example.com"], category
        assert dropped[0].reason == "bounced permanently before"
        assert "cy@example.com" in [r.email for r in keep], "a soft bounce is not suppressed"


def test_a_second_scan_fetches_only_new_reports(reader, store, fake):
    send_news(reader, store, PEOPLE[:2])
    fake.bounce(sent_to(fake, "bob@example.com"), "bob@example.com")
    Wiring(reader, store).scan_bounces()

    def gets() -> int:
        paths = fake.requests_by_path.items()
        return sum(n for p, n in paths if "/messages/" in p and not p.endswith("/send"))

    before = gets()
    again = Wiring(reader, store).scan_bounces()
    assert (again.reports, again.new) == (1, 0)
    assert gets() == before, "a known report is not downloaded again"
    assert len([r for r in store.outbox.messages(store.campaigns.recent()[0].id) if r.bounce]) == 1


def test_stats_and_the_alert_over_five_percent(reader, store, fake):
    campaign_id = send_news(reader, store, PEOPLE)
    quiet = stats(store, campaign_id=campaign_id)
    assert (quiet.sent, quiet.delivered, quiet.bounce_rate) == (4, 4, 0.0)
    assert bounce_alert(quiet) is None

    fake.bounce(sent_to(fake, "bob@example.com"), "bob@example.com", "5.1.1")
    fake.bounce(sent_to(fake, "cy@example.com"), "cy@example.com", "4.2.2")
    alerts: list[str] = []
    job = Wiring(reader, store).bounce_job(
        lambda campaign, text: alerts.append(f"{campaign}|{text}")
    )
    job()
    job()
    assert len(alerts) == 1, "one alert per campaign"
    assert alerts[0].startswith(f"{campaign_id}|Campaign {campaign_id} (newsletter): 2 of 4 ")

    now = stats(store, campaign_id=campaign_id)
    assert (now.sent, now.delivered, now.hard_bounces, now.soft_bounces) == (4, 2, 1, 1)
    assert now.delivery_rate == 0.5
    assert now.summary() == (
        f"Campaign {campaign_id}: 4 sent, 2 delivered (50.0%), 2 bounced (50.0%: 1 hard, 1 soft)"
    )
    blind = stats(store, campaign_id=campaign_id, bounces_known=False)
    assert blind.summary().endswith("(bounce scanning is off)")
    week = stats(store, days=7)
    assert (week.scope, week.sent, week.bounced) == ("Last 7 days", 4, 2)
    assert [s.campaign_id for s in campaign_stats(store, days=7)] == [campaign_id]
    store.clock = lambda: fake.clock() + 8 * 86_400
    assert stats(store, days=7).sent == 0, "older mail falls out of the window"


def test_scan_without_the_read_scope_says_what_to_do(settings, store, fake, tmp_path):
    send_only = gmail_settings(settings, fake, tmp_path, (SEND_SCOPE,))
    with pytest.raises(AuthError, match=r"gmail\.readonly.*python -m bot auth"):
        Wiring(send_only, store).scan_bounces()
    alerts: list[str] = []
    Wiring(send_only, store).bounce_job(
        lambda campaign, text: alerts.append(text)
    )()  # logs, never raises into the server
    assert alerts == []


def test_scan_is_refused_while_bounce_scan_is_off(reader, store, fake):
    with pytest.raises(UserInputError, match="BOUNCE_SCAN=on"):
        Wiring(reader.replace(bounce_scan=False), store).scan_bounces()
    assert fake.requests_by_path == {}
