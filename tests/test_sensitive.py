"""The sensitive-data scan: each pattern, its false positives, and preflight refusing.

Secrets here are test values (published test card numbers, AWS's documented
example key); tokens are assembled at run time so that no secret scanner
mistakes this file for a leak.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import PolicyError
from bot.handlers import campaign, preflight, sensitive
from bot.handlers.sensitive import (
    AWS_KEY,
    CARD,
    GOOGLE_KEY,
    PASSWORD,
    PRIVATE_KEY,
    SLACK_TOKEN,
    SSN,
    find_sensitive,
    is_card_number,
    luhn_ok,
)
from bot.models import Recipient, RecipientList, RenderedMessage
from bot.wiring import build_deps

SLACK = "xo" + "xb-" + "1234567890-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
SLACK_APP = "xa" + "pp-1-A0123456789-1234567890123-" + "abcdef0123456789"
GOOGLE = "AI" + "za" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
AWS = "AK" + "IA" + "IOSFODNN7EXAMPLE"
AWS_TEMP = "AS" + "IA" + "Y34FZKBOKMUTVV7A"


@pytest.mark.parametrize(
    "text, kind",
    [
        ("Card: 4242 4242 4242 4242, thanks", CARD),  # Visa test card
        ("4242-4242-4242-4242", CARD),
        ("pay with 4111111111111111.", CARD),
        ("5555 5555 5555 4444", CARD),  # Mastercard
        ("2223 0031 2200 3222", CARD),  # Mastercard 2-series
        ("amex 3782 822463 10005", CARD),  # 15 digits, grouped 4-6-5
        ("6011 1111 1111 1117", CARD),  # Discover
        ("3530111333300000", CARD),  # JCB
        ("30569309025904", CARD),  # Diners, 14 digits
        ("6200000000000005", CARD),  # UnionPay
        ("Password: hunter2", PASSWORD),
        ("your password is: Tr0ub4dor&3", PASSWORD),
        ("passwd=s3cret", PASSWORD),
        ("PWD : letmein", PASSWORD),
        ("Passcode: 8812", PASSWORD),
        ("https://intranet.example/login?user=bob&password=hunter2", PASSWORD),
        (f"token {SLACK} here", SLACK_TOKEN),
        (SLACK_APP, SLACK_TOKEN),
        (f"key={GOOGLE}", GOOGLE_KEY),
        (f"aws_access_key_id = {AWS}", AWS_KEY),
        (AWS_TEMP, AWS_KEY),
        ("-----BEGIN RSA PRIVATE KEY-----", PRIVATE_KEY),
        ("-----BEGIN PRIVATE KEY-----", PRIVATE_KEY),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", PRIVATE_KEY),
        ("-----BEGIN ENCRYPTED PRIVATE KEY-----", PRIVATE_KEY),
        ("-----BEGIN PGP PRIVATE KEY BLOCK-----", PRIVATE_KEY),
        ("SSN 078-05-1120.", SSN),
        ("ssn:123-45-6789", SSN),
    ],
)
def test_each_pattern_is_found(text, kind):
    assert find_sensitive(text) == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "Order 1234567890123456 has shipped",  # no card network starts with 1
        "4242 4242 4242 4241",  # fails Luhn
        "Tracking 1Z999AA10123456784",  # glued to letters
        "ID 42424242424242424242",  # 20 digits: an ID, not a card
        "ref 4242 4242 4242 4242 4242",  # 20 digits in groups
        "Invoice 2024-000123-4242424242",  # glued across single dashes
        "Call +1 415-555-0132 or (415) 555 0132, or +44 20 7946 0958",
        "Due 2024-01-15, paid 15-01-2024 10:30",
        "Timestamp 1700000000123",
        "ISBN 978-3-16-148410-0",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "Account 123456789",  # undashed nine digits are not taken for an SSN
        "000-12-3456 666-12-3456 912-34-5678 123-00-4567 123-45-0000",  # invalid SSNs
        "Forgot your password? Reset it any time.",
        "Password: ********",
        "password: ••••••",
        "Reset your password: https://mailbolt.example/reset?t=abc",
        "xoxo, Anna",
        "AKIA is not a key; AKIAIOSFODNN7EXAMPLEX is too long",
        "-----BEGIN PUBLIC KEY----- -----BEGIN CERTIFICATE-----",
        "https://mailbolt.example/unsubscribe/v1.7.Ym9iMUBleGFtcGxlLmNvbQ.Cw5UirY-5Uh9IV33Bsf9bg",
    ],
)
def test_false_positives_are_not_flagged(text):
    assert find_sensitive(text) == []


def test_an_order_number_that_passes_luhn_is_still_not_a_card():
    order = "1000000000000008"
    assert luhn_ok(order)
    assert not is_card_number(order)
    assert find_sensitive(f"Order {order}") == []


def test_card_lengths_follow_the_network():
    visa_15 = "424242424242424"  # a Visa prefix, but Visa issues 13, 16 or 19 digits
    assert luhn_ok(visa_15)
    assert not is_card_number(visa_15)
    assert is_card_number("4222222222222")  # 13-digit Visa


def test_several_values_in_one_text_are_each_reported():
    text = "Card 4242 4242 4242 4242  SSN 078-05-1120\nPassword: x"
    assert sorted(find_sensitive(text)) == sorted([CARD, SSN, PASSWORD])


# -- whole messages ------------------------------------------------------------


def message(subject="Hello", text="Hi Bob\n", html="<p>Hi Bob</p>") -> RenderedMessage:
    return RenderedMessage(subject=subject, html=html, text=text)


def test_finding_names_the_variable_and_part_but_never_the_value():
    variables = {"note": "Paid with 4242 4242 4242 4242", "email": "bob@example.com"}
    rendered = message(text="Hi Bob\nPaid with 4242 4242 4242 4242\n")
    findings = sensitive.Scanner().scan(rendered, variables)
    assert [str(f) for f in findings] == [
        "a payment card number in the text part (from the variable 'note')"
    ]
    assert "4242" not in str(findings[0])


def test_a_label_in_the_template_and_a_value_in_a_variable():
    """ "Your password: {{ pw }}": the variable alone looks harmless."""
    variables = {"pw": "Tr0ub4dor&3"}
    assert find_sensitive(variables["pw"]) == []
    rendered = message(
        text="Your password: Tr0ub4dor&3\n", html="<p>Your password: Tr0ub4dor&amp;3</p>"
    )
    findings = sensitive.Scanner().scan(rendered, variables)
    assert {(f.part, f.variable) for f in findings} == {("text part", "pw"), ("HTML part", "pw")}


def test_a_secret_written_into_the_template_is_blamed_on_the_template():
    rendered = message(text=f"Use key {AWS}\n", html=f"<p>Use key {AWS}</p>")
    findings = sensitive.Scanner().scan(rendered, {"first_name": "Bob"})
    assert {str(f) for f in findings} == {
        "an AWS access key in the text part (from the template itself)",
        "an AWS access key in the HTML part (from the template itself)",
    }


def test_html_a_number_split_by_tags_and_a_secret_in_a_link_are_found():
    split = message(html="<p>4242 4242 <b>4242</b> <i>4242</i></p>")
    assert [f.kind for f in sensitive.Scanner().scan(split, {})] == [CARD]
    link = message(html='<a href="https://x.example/?user=bob&amp;passwd=s3cret">log in</a>')
    assert [f.kind for f in sensitive.Scanner().scan(link, {})] == [PASSWORD]


def test_numbers_in_css_are_not_read_as_text():
    html = '<p style="margin: 0 0 16px; width: 4242 4242 4242 4242px">Hi</p>'
    assert sensitive.Scanner().scan(message(html=html), {}) == []


def test_a_clean_line_is_remembered_and_a_dirty_one_never_is():
    scanner = sensitive.Scanner()
    clean = message(text="Hello\nBye\n")
    assert scanner.scan(clean, {}) == []
    assert {"Hello", "Bye"} <= scanner.clean_text
    dirty = message(text="Hello\nssn 078-05-1120\n")
    assert len(scanner.scan(dirty, {})) == 1
    assert len(scanner.scan(dirty, {})) == 1, "a hit must be found every time"
    assert "ssn 078-05-1120" not in scanner.clean_text


# -- preflight -----------------------------------------------------------------


def write_template(folder: Path, text: str, html: str, subject: str = "Hello") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalogue.toml").write_text(
        "[notice]\n"
        'description = "A notice."\n'
        'category = "transactional"\n'
        f"subject = {subject!r}\n"
        'html = "notice.html.j2"\n'
        'text = "notice.txt.j2"\n',
        encoding="utf-8",
    )
    (folder / "notice.html.j2").write_text(html, encoding="utf-8")
    (folder / "notice.txt.j2").write_text(text, encoding="utf-8")
    return folder


def people(*rows: dict[str, str]) -> RecipientList:
    columns = sorted({k for row in rows for k in row} - {"email"})
    recipients = [
        Recipient(row["email"], "", {k: v for k, v in row.items() if k != "email"}, i + 2, "csv")
        for i, row in enumerate(rows)
    ]
    return RecipientList(recipients, columns=columns)


def request(recipients: RecipientList, template: str = "notice") -> campaign.CampaignRequest:
    return campaign.CampaignRequest(template=template, recipients=recipients, requested_by="test")


@pytest.fixture
def notice_deps(settings, store, tmp_path):
    folder = write_template(
        tmp_path / "templates",
        text="Hi {{ email }}\n{{ note }}\n",
        html="<p>Hi {{ email }}</p><p>{{ note }}</p>",
    )
    return build_deps(settings.replace(templates_dir=folder), store)


def test_preflight_refuses_a_card_in_a_column_naming_rows_not_values(notice_deps, store):
    recipients = people(
        {"email": "ann@example.com", "note": "Thanks for your order 1234567890123456"},
        {"email": "bob@example.com", "note": "Card on file: 4242 4242 4242 4242"},
        {"email": "cy@example.com", "note": "ssn 078-05-1120"},
    )
    with pytest.raises(PolicyError) as caught:
        preflight.preflight(request(recipients), notice_deps)
    error = caught.value
    shown = str(error) + "\n".join(error.details)
    assert "2 message(s)" in str(error)
    assert "line 3 (bob@example.com): a payment card number in the text part" in shown
    assert "from the variable 'note'" in shown
    assert "line 4 (cy@example.com): a US social security number" in shown
    assert "ann@example.com" not in shown
    assert "4242" not in shown and "1120" not in shown
    assert error.field == "recipients"
    assert store.campaigns.recent() == [], "nothing may be recorded"


def test_preflight_refuses_a_key_in_the_template_itself(settings, store, tmp_path):
    folder = write_template(
        tmp_path / "templates", text=f"Hi\nAPI key: {GOOGLE}\n", html="<p>Hi</p>"
    )
    deps = build_deps(settings.replace(templates_dir=folder), store)
    with pytest.raises(PolicyError, match="from the template itself") as caught:
        preflight.preflight(request(people({"email": "ann@example.com"})), deps)
    assert caught.value.field == "template"
    assert GOOGLE not in str(caught.value)


def test_preflight_refuses_a_secret_in_the_subject(settings, store, tmp_path):
    folder = write_template(
        tmp_path / "templates", text="Hi\n", html="<p>Hi</p>", subject="Your code {{ code }}"
    )
    deps = build_deps(settings.replace(templates_dir=folder), store)
    recipients = people({"email": "ann@example.com", "code": "pwd: abc123"})
    with pytest.raises(
        PolicyError, match=r"a password in the subject \(from the variable 'code'\)"
    ):
        preflight.preflight(request(recipients), deps)


def test_preflight_passes_clean_mail_through_the_bundled_templates(settings, store):
    deps = build_deps(settings, store)
    recipients = people(
        *(
            {
                "email": f"p{i}@example.com",
                "headline": "Order 1234567890123456 shipped",
                "body": "Call +1 415-555-0132 before 2024-01-15.",
            }
            for i in range(50)
        )
    )
    plan = preflight.preflight(request(recipients, template="newsletter"), deps)
    assert len(plan.to_send) == 50
