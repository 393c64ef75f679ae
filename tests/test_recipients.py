"""Recipient parsing: every input shape a person can paste, export or select."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator

import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest

from bot.errors import UserInputError
from bot.handlers import recipient_dns
from bot.handlers.recipient_csv import parse_csv
from bot.handlers.recipient_paste import parse_text
from bot.handlers.recipients import enforce_limit, from_slack_users, summarize
from bot.models import Recipient, RecipientList, Rejected


def emails(result: RecipientList) -> list[str]:
    return [r.email for r in result.recipients]


def problems(items: list[Rejected]) -> list[tuple[int, str, str]]:
    return [(r.line, r.text, r.reason) for r in items]


# --- pasted text ------------------------------------------------------------


def test_paste_accepts_every_separator_and_keeps_line_numbers() -> None:
    result = parse_text("a@example.com, b@example.com; c@example.com\nd@example.com\te@example.com")
    assert emails(result) == [f"{c}@example.com" for c in "abcde"]
    assert [r.line for r in result.recipients] == [1, 1, 1, 2, 2]
    assert all(r.source == "paste" for r in result.recipients)
    assert result.rejected == result.duplicates == []


def test_paste_line_numbers_count_crlf_and_blank_lines() -> None:
    result = parse_text("a@example.com\r\n\r\n,,;\r\n  b@example.com  ,\n\nc@example.com")
    assert [(r.email, r.line) for r in result.recipients] == [
        ("a@example.com", 1),
        ("b@example.com", 4),
        ("c@example.com", 6),
    ]
    assert result.rejected == []


def test_paste_reads_display_names() -> None:
    result = parse_text(
        'Bob Jones <bob@example.com>, "Smith, Ann" <ann@example.com>; <cy@example.com>\n'
        '"Dee \\"DJ\\" Lee" <dee@example.com>'
    )
    assert [(r.name, r.email) for r in result.recipients] == [
        ("Bob Jones", "bob@example.com"),
        ("Smith, Ann", "ann@example.com"),
        ("", "cy@example.com"),
        ('Dee "DJ" Lee', "dee@example.com"),
    ]


def test_paste_tab_inside_quotes_does_not_split_but_is_refused_in_a_name() -> None:
    result = parse_text('"Ops\tTeam" <ops@example.com>, z@example.com')
    assert emails(result) == ["z@example.com"]
    assert problems(result.rejected) == [
        (1, '"Ops\tTeam" <ops@example.com>', "has a line break or control character in its name")
    ]


def test_paste_quoted_name_with_semicolon_stays_together() -> None:
    result = parse_text('"Ops; Night Shift" <ops@example.com>, z@example.com')
    assert [(r.name, r.email) for r in result.recipients] == [
        ("Ops; Night Shift", "ops@example.com"),
        ("", "z@example.com"),
    ]


def test_paste_normalizes_domain_case() -> None:
    assert emails(parse_text("Alice.Smith@EXAMPLE.Com")) == ["Alice.Smith@example.com"]


def test_paste_rejects_malformed_and_empty_addresses_with_line_numbers() -> None:
    result = parse_text("ok@example.com\nbob@\nBob <>\nno-at-sign.example.com, x@localhost")
    assert emails(result) == ["ok@example.com"]
    rejected = problems(result.rejected)
    assert [(line, text) for line, text, _ in rejected] == [
        (2, "bob@"),
        (3, "Bob <>"),
        (4, "no-at-sign.example.com"),
        (4, "x@localhost"),
    ]
    assert rejected[0][2] == "is not a valid address: There must be something after the @-sign."
    assert rejected[1][2] == "has no email address"
    assert all(reason.startswith("is not a valid address: ") for _, _, reason in rejected[2:])


def test_paste_unclosed_quote_spoils_only_its_own_line() -> None:
    result = parse_text('"Bob <bob@example.com>, alice@example.com\ncarol@example.com')
    assert emails(result) == ["carol@example.com"]
    assert problems(result.rejected) == [
        (1, '"Bob <bob@example.com>, alice@example.com', 'has an unclosed quote (")')
    ]


def test_paste_quoted_name_without_address_is_rejected() -> None:
    result = parse_text('"Bob" bob@example.com')
    assert problems(result.rejected) == [
        (1, '"Bob" bob@example.com', "has a quoted name but no <address> after it")
    ]


def test_paste_duplicates_are_case_insensitive_and_name_the_first_line() -> None:
    result = parse_text("Bob@Example.com\nann@example.com\nbob@EXAMPLE.COM, Ann@example.com")
    assert emails(result) == ["Bob@example.com", "ann@example.com"]
    assert problems(result.duplicates) == [
        (3, "bob@example.com", "is a duplicate of line 1"),
        (3, "Ann@example.com", "is a duplicate of line 2"),
    ]
    assert result.rejected == []


def test_paste_rejects_overlong_entry() -> None:
    long = "a" * 300 + "@" + "b" * 30 + ".com"
    result = parse_text(f"{long}\nok@example.com")
    assert emails(result) == ["ok@example.com"]
    assert problems(result.rejected) == [(1, long[:320] + "…", "is longer than 320 characters")]


def test_paste_over_one_megabyte_asks_for_a_csv() -> None:
    text = "someone@example.com,\n" * 500_000  # 10.5 MB
    with pytest.raises(UserInputError) as caught:
        parse_text(text)
    assert caught.value.field == "recipients"
    assert "1 MB" in str(caught.value)
    assert "CSV" in str(caught.value)


def test_paste_counts_bytes_not_characters() -> None:
    text = "é" * 600_000  # 600,000 characters, 1.2 MB of UTF-8
    with pytest.raises(UserInputError, match=r"1\.2 MB"):
        parse_text(text)


def test_paste_over_the_recipient_limit() -> None:
    text = "\n".join(f"user{i}@example.com" for i in range(2345))
    with pytest.raises(UserInputError) as caught:
        parse_text(text)
    message = str(caught.value)
    assert "2,345 recipients" in message
    assert "limit of 2,000" in message
    assert "MAX_RECIPIENTS_PER_CAMPAIGN" in message
    assert caught.value.field == "recipients"


def test_limit_counts_after_dedupe() -> None:
    text = "a@example.com, b@example.com, c@example.com, A@example.com"
    assert emails(parse_text(text, max_recipients=3)) == [f"{c}@example.com" for c in "abc"]
    with pytest.raises(UserInputError, match="4 recipients, more than the limit of 3"):
        parse_text(text + ", d@example.com", max_recipients=3)


def test_far_too_many_entries_fail_before_validation() -> None:
    # None of these is valid, so only the early count check can refuse them.
    text = ",".join(f"not-an-address-{i}" for i in range(16))
    with pytest.raises(UserInputError, match="16 entries, far more than the limit of 3"):
        parse_text(text, max_recipients=3)


def test_empty_paste_is_an_empty_list() -> None:
    assert parse_text(" \n, ;\n") == RecipientList()


# --- header injection ---------------------------------------------------------


def test_encoded_word_in_display_name_is_rejected() -> None:
    result = parse_text("=?UTF-8?Q?=0A?=Bcc: x@y.example <victim@example.com>, ok@example.com")
    assert emails(result) == ["ok@example.com"]
    assert problems(result.rejected) == [
        (
            1,
            "=?UTF-8?Q?=0A?=Bcc: x@y.example <victim@example.com>",
            "has '=?' in its name, which could smuggle extra mail headers",
        )
    ]


def test_encoded_word_in_address_is_rejected() -> None:
    result = parse_text("=?utf-8?q?=0a?=@example.com")
    assert result.recipients == []
    assert result.rejected[0].reason == "contains '=?', which could smuggle extra mail headers"


def test_quoted_encoded_word_in_display_name_is_rejected() -> None:
    result = parse_text('"Ann =?UTF-8?Q?=0D=0A?=Bcc: x@y.example" <ann@example.com>')
    assert result.recipients == []
    assert "=?" in result.rejected[0].reason


@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r", "\x0b", "\x00", "\u2028", "\x85"])
def test_line_breaks_in_csv_names_and_addresses_are_rejected(breaker: str) -> None:
    data = (
        f'email,name\n"ann@example.com","Ann{breaker}Bcc: spy@example.net"\n'
        f'"bob@example.com{breaker}Bcc: spy@example.net",Bob\ncy@example.com,Cy\n'
    ).encode()
    if breaker == "\x00":
        with pytest.raises(UserInputError, match="binary"):
            parse_csv(data)
        return
    result = parse_csv(data)
    assert emails(result) == ["cy@example.com"]
    rejected = problems(result.rejected)
    assert rejected[0][2] == "has a line break or control character in its name"
    assert rejected[1][2] == "contains a line break or control character"


def test_control_character_in_pasted_name_is_rejected() -> None:
    result = parse_text("Ann\x1bSmith <ann@example.com>")
    assert result.rejected[0].reason == "has a line break or control character in its name"


# --- CSV ----------------------------------------------------------------------


def test_csv_columns_become_variables() -> None:
    data = (
        b"Email,Name,First Name,Company-Name,plan_tier\n"
        b"ann@example.com,Ann Lee,Ann,Acme,gold\n"
        b"bob@example.com,,Bob,Initech, silver \n"
    )
    result = parse_csv(data)
    assert result.columns == ["first_name", "company_name", "plan_tier"]
    ann, bob = result.recipients
    assert (ann.email, ann.name, ann.line, ann.source) == ("ann@example.com", "Ann Lee", 2, "csv")
    assert ann.variables == {"first_name": "Ann", "company_name": "Acme", "plan_tier": "gold"}
    assert (bob.name, bob.variables["plan_tier"]) == ("", "silver")


@pytest.mark.parametrize("header", ["e-mail", "E-Mail", " Email Address ", "EMAIL"])
def test_csv_email_column_aliases(header: str) -> None:
    result = parse_csv(f"{header},name\nann@example.com,Ann\n".encode())
    assert [(r.email, r.name) for r in result.recipients] == [("ann@example.com", "Ann")]
    assert result.columns == []


def test_csv_email_cell_may_carry_a_display_name() -> None:
    result = parse_csv(b'email\n"Lee, Ann <ann@example.com>"\n')
    assert [(r.name, r.email) for r in result.recipients] == [("Lee, Ann", "ann@example.com")]


def test_csv_name_column_wins_over_name_in_email_cell() -> None:
    result = parse_csv(b"email,name\nAnnie <ann@example.com>,Ann Lee\n")
    assert result.recipients[0].name == "Ann Lee"


def test_csv_with_bom_semicolons_and_crlf() -> None:
    data = (
        b"\xef\xbb\xbfemail;name;city\r\n"
        b"ann@example.com;Ann;K\xc3\xb6ln\r\n"
        b"bob@example.com;Bob;Oslo\r\n"
    )
    result = parse_csv(data)
    assert [(r.email, r.name, r.variables, r.line) for r in result.recipients] == [
        ("ann@example.com", "Ann", {"city": "Köln"}, 2),
        ("bob@example.com", "Bob", {"city": "Oslo"}, 3),
    ]


def test_csv_with_tabs() -> None:
    result = parse_csv(b"name\temail\nAnn, Lee\tann@example.com\n")
    assert [(r.name, r.email) for r in result.recipients] == [("Ann, Lee", "ann@example.com")]


def test_csv_delimiter_ignores_commas_inside_quoted_headers() -> None:
    # Read with ";" the quoted header is one column, whose name no template can use.
    with pytest.raises(UserInputError, match="the column 'Greeting, informal' cannot be used"):
        parse_csv(b'email;"Greeting, informal"\nann@example.com;Hi, Ann\n')


def test_csv_google_sheets_export() -> None:
    # Google Sheets "Download > CSV": no BOM, commas, CRLF between rows, no final
    # newline, quotes only where a field needs them.
    data = (
        b"email,name,first_name,note\r\n"
        b'ann@example.com,"Lee, Ann",Ann,"Says ""hi"""\r\n'
        b"bob@example.com,Bob Stone,Bob,"
    )
    result = parse_csv(data)
    assert [(r.email, r.name, r.line) for r in result.recipients] == [
        ("ann@example.com", "Lee, Ann", 2),
        ("bob@example.com", "Bob Stone", 3),
    ]
    assert result.recipients[0].variables == {"first_name": "Ann", "note": 'Says "hi"'}
    assert result.recipients[1].variables == {"first_name": "Bob", "note": ""}


def test_csv_excel_export_in_a_semicolon_locale() -> None:
    # Excel "CSV UTF-8" with German regional settings: BOM, semicolons, CRLF after
    # every row, and formatted-but-empty columns exported as trailing separators.
    data = (
        b"\xef\xbb\xbfE-Mail;Name;Betrag;;\r\n"
        b"juergen@example.de;J\xc3\xbcrgen M\xc3\xbcller;12,50;;\r\n"
        b'ann@example.com;"Lee; Ann";3,00;;\r\n'
        b";;;;\r\n"
    )
    result = parse_csv(data)
    assert result.columns == ["betrag"]
    assert [(r.email, r.name, r.variables) for r in result.recipients] == [
        ("juergen@example.de", "Jürgen Müller", {"betrag": "12,50"}),
        ("ann@example.com", "Lee; Ann", {"betrag": "3,00"}),
    ]
    assert result.rejected == []


def test_csv_embedded_newline_keeps_later_line_numbers_right() -> None:
    data = (
        b"email,name,address\n"
        b'ann@example.com,Ann,"1 High St\nFlat 2\nBristol"\n'
        b"bob@\n"
        b"\n"
        b"bob@example.com,Bob,Here\n"
        b"ANN@example.com,Ann again,There\n"
    )
    result = parse_csv(data)
    assert [(r.email, r.line) for r in result.recipients] == [
        ("ann@example.com", 2),
        ("bob@example.com", 7),
    ]
    assert result.recipients[0].variables["address"] == "1 High St\nFlat 2\nBristol"
    assert problems(result.rejected) == [(5, "bob@", "has 1 fields but the header has 3")]
    assert problems(result.duplicates) == [(8, "ANN@example.com", "is a duplicate of line 2")]


def test_csv_ragged_rows_are_rejected_with_their_line() -> None:
    data = (
        b"email,name,city,plan\n"
        b"ann@example.com,Ann,Oslo,gold,extra\n"
        b"bob@example.com,Bob\n"
        b"cy@example.com,Cy,Rome,free,\n"
    )
    result = parse_csv(data)
    assert emails(result) == ["cy@example.com"]
    assert problems(result.rejected) == [
        (2, "ann@example.com,Ann,Oslo,gold,extra", "has 5 fields but the header has 4"),
        (3, "bob@example.com,Bob", "has 2 fields but the header has 4"),
    ]


def test_csv_invalid_and_empty_addresses_are_rejected_with_their_line() -> None:
    data = b"email,name\nann@example.com,Ann\nnot an address,Bob\n,Cy\n  ,Dee\n"
    result = parse_csv(data)
    assert emails(result) == ["ann@example.com"]
    rejected = problems(result.rejected)
    assert [(line, text) for line, text, _ in rejected] == [
        (3, "not an address"),
        (4, ",Cy"),
        (5, "  ,Dee"),
    ]
    assert rejected[0][2].startswith("is not a valid address: ")
    assert rejected[1][2] == rejected[2][2] == "has no email address"


def test_csv_rejects_unsafe_names() -> None:
    data = b'email,name\nann@example.com,"=?UTF-8?Q?=0A?=Bcc: x@y.example"\n'
    result = parse_csv(data)
    assert result.recipients == []
    assert "=?" in result.rejected[0].reason


def test_csv_missing_email_column_names_the_columns_found() -> None:
    with pytest.raises(UserInputError) as caught:
        parse_csv(b"Name,Phone\nAnn,123\n", filename="people.csv")
    assert caught.value.field == "csv"
    assert str(caught.value) == (
        "people.csv has no email column. Columns found: 'Name', 'Phone'. "
        "Add a column named 'email'."
    )


def test_csv_without_header_row_says_so() -> None:
    with pytest.raises(UserInputError, match="first row must be a header"):
        parse_csv(b"ann@example.com,Ann\nbob@example.com,Bob\n")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"email,Amount ($)", "the column 'Amount ($)' cannot be used in a template"),
        (b"email,2nd name", "the column '2nd name' cannot be used in a template"),
        (b"email,None", "the column 'None' cannot be used in a template"),
        (b"email,First Name,first-name", "'First Name' and 'first-name' both mean 'first_name'"),
        (b"Email,E-mail", "'Email' and 'E-mail' both mean 'email'"),
        (b"email,,city", "column 2 of the header has no name"),
    ],
)
def test_csv_bad_headers(header: bytes, message: str) -> None:
    with pytest.raises(UserInputError, match=re.escape(message)) as caught:
        parse_csv(header + b"\nann@example.com,x,y\n")
    assert caught.value.field == "csv"


def test_csv_latin1_is_refused_not_guessed() -> None:
    data = b"email,name\nann@example.com,Ann\njose@example.com,Jos\xe9\n"
    with pytest.raises(UserInputError) as caught:
        parse_csv(data, filename="people.csv")
    message = str(caught.value)
    assert "not UTF-8" in message
    assert "line 3" in message
    assert "CSV UTF-8" in message
    assert (caught.value.field, caught.value.line) == ("csv", 3)


@pytest.mark.parametrize("data", [b"", b"\r\n\n  \n", b"\xef\xbb\xbf", b",,,\r\n,,\r\n"])
def test_csv_empty_file(data: bytes) -> None:
    with pytest.raises(UserInputError, match="is empty") as caught:
        parse_csv(data)
    assert caught.value.field == "csv"


@pytest.mark.parametrize("data", [b"email,name\n", b"email,name", b"email,name\r\n\r\n,\r\n"])
def test_csv_header_only_has_no_rows(data: bytes) -> None:
    with pytest.raises(UserInputError, match="has no rows"):
        parse_csv(data)


def test_csv_with_nul_bytes_is_binary() -> None:
    with pytest.raises(UserInputError) as caught:
        parse_csv(b"email\nann@example.com\nb\x00b@example.com\n")
    assert "binary" in str(caught.value)
    assert caught.value.line == 3


def test_binary_garbage_is_not_called_a_text_encoding_problem() -> None:
    with pytest.raises(UserInputError, match="binary data"):
        parse_csv(b"%PDF-1.7\n\x8f\x01\x02\x03stream\x05\x06")


def test_excel_workbook_and_utf16_get_specific_advice() -> None:
    with pytest.raises(UserInputError, match="Excel workbook"):
        parse_csv(b"PK\x03\x04\x14\x00\x06\x00")
    with pytest.raises(UserInputError, match="UTF-16"):
        parse_csv("email\nann@example.com\n".encode("utf-16"))


def test_csv_over_ten_megabytes() -> None:
    data = b"email\n" + b"a@example.com\n" * 720_000
    with pytest.raises(UserInputError, match=r"10\.1 MB; the limit is 10 MB"):
        parse_csv(data)


def test_csv_unclosed_quote_names_the_line() -> None:
    data = b'email,name\nann@example.com,Ann\nbob@example.com,"Bob\ncy@example.com,Cy\n'
    with pytest.raises(UserInputError, match="line 3: a quoted field starts here") as caught:
        parse_csv(data)
    assert caught.value.line == 3


def test_csv_over_the_recipient_limit() -> None:
    data = b"email\n" + b"".join(b"u%d@example.com\n" % i for i in range(4))
    with pytest.raises(UserInputError, match=r"people\.csv has 4 recipients") as caught:
        parse_csv(data, max_recipients=3, filename="people.csv")
    assert caught.value.field == "csv"


def test_csv_far_over_the_limit_fails_early() -> None:
    data = b"email\n" + b"bad\n" * 20
    with pytest.raises(UserInputError, match="20 rows, far more than the limit of 3"):
        parse_csv(data, max_recipients=3)


def test_ten_thousand_rows() -> None:
    rows = b"".join(
        b"user%d@example%d.com,User %d,%d\r\n" % (i, i % 40, i, i) for i in range(10_000)
    )
    result = parse_csv(
        b"email,name,number\r\n" + rows + b"USER7@example7.com,Again,7\r\n", max_recipients=10_000
    )
    assert len(result.recipients) == 10_000
    assert result.recipients[-1].line == 10_001
    assert problems(result.duplicates) == [
        (10_002, "USER7@example7.com", "is a duplicate of line 9")
    ]


# --- Slack users ----------------------------------------------------------------


def slack_user(uid: str, name: str, email: str | None, **flags: bool) -> dict:
    profile = {"real_name": name, "display_name": name.split()[0]}
    if email is not None:
        profile["email"] = email
    return {"id": uid, "real_name": name, "profile": profile, **flags}


def test_slack_users() -> None:
    result = from_slack_users(
        [
            slack_user("U1", "Ann Lee", "Ann@Example.com"),
            slack_user("U2", "Bob Stone", None),
            slack_user("U3", "Build Bot", "bot@example.com", is_bot=True),
            slack_user("U4", "Cy Old", "cy@example.com", deleted=True),
            slack_user("U5", "Dee Ray", ""),
            slack_user("U6", "Ann Alias", "ann@example.com"),
            {"id": "U7", "profile": {"display_name": "eve", "email": "eve@"}},
        ]
    )
    assert result.recipients == [Recipient("Ann@example.com", "Ann Lee", source="slack")]
    assert result.recipients[0].source == "slack"
    assert result.recipients[0].line == 0
    rejected = problems(result.rejected)
    assert [(line, text) for line, text, _ in rejected] == [
        (0, "<@U2>"),
        (0, "<@U3>"),
        (0, "<@U4>"),
        (0, "<@U5>"),
        (0, "<@U7>"),
    ]
    assert rejected[0][2].startswith("(Bob Stone) has no email address visible to this app")
    assert rejected[1][2] == "(Build Bot) is a bot"
    assert rejected[2][2] == "(Cy Old) has a deactivated Slack account"
    assert "(Dee Ray)" in rejected[3][2]
    assert rejected[4][2].startswith("is not a valid address: ")
    assert problems(result.duplicates) == [(0, "ann@example.com", "is a duplicate of Ann Lee")]


def test_sources_merge_and_the_limit_applies_to_the_total() -> None:
    merged = parse_text("ann@example.com, bob@example.com").extend(
        from_slack_users([slack_user("U1", "Cy", "cy@example.com")])
    )
    assert emails(merged) == ["ann@example.com", "bob@example.com", "cy@example.com"]
    enforce_limit(merged, 3)
    with pytest.raises(UserInputError, match="The campaign has 3 recipients"):
        enforce_limit(merged, 2)


# --- summarize --------------------------------------------------------------------


def test_summarize_truncates() -> None:
    items = [Rejected(i, f"bad{i}@", "is not a valid address") for i in range(1, 18)]
    assert summarize(items) == (
        "line 1: 'bad1@' is not a valid address; line 2: 'bad2@' is not a valid address; "
        "line 3: 'bad3@' is not a valid address; line 4: 'bad4@' is not a valid address; "
        "line 5: 'bad5@' is not a valid address; and 12 more"
    )
    assert summarize(items[:2], limit=2).endswith("line 2: 'bad2@' is not a valid address")
    assert summarize([]) == ""


def test_summarize_shows_slack_people_without_line_zero() -> None:
    assert summarize([Rejected(0, "<@U2>", "(Bob) is a bot")]) == "<@U2> (Bob) is a bot"


# --- deliverability against a local DNS server --------------------------------------


class DnsServer:
    """A loopback UDP DNS server; ``answer`` builds the reply or returns None (silence)."""

    def __init__(self, answer: Callable[[dns.message.Message], dns.message.Message | None]):
        self.answer = answer
        self.questions: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(wire)
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True)
            self.questions.append(f"{name} {dns.rdatatype.to_text(question.rdtype)}")
            reply = self.answer(query)
            if reply is not None:
                self.sock.sendto(reply.to_wire(), peer)

    def resolver(self, lifetime: float) -> dns.resolver.Resolver:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        resolver.lifetime = lifetime
        resolver.cache = dns.resolver.LRUCache()
        return resolver


@pytest.fixture
def dns_server(request: pytest.FixtureRequest) -> Iterator[DnsServer]:
    server = DnsServer(request.param)
    server.thread.start()
    yield server
    server.stopping.set()
    server.thread.join()
    server.sock.close()


def mail_for_good_domains(query: dns.message.Message) -> dns.message.Message:
    reply = dns.message.make_response(query)
    question = query.question[0]
    if question.name.to_text().startswith("good."):
        reply.answer.append(
            dns.rrset.from_text(question.name, 300, "IN", "MX", f"10 mx.{question.name}")
        )
    elif question.name.to_text().startswith("odd."):
        reply.set_rcode(dns.rcode.YXDOMAIN)  # an answer that says nothing about mail
    else:
        reply.set_rcode(dns.rcode.NXDOMAIN)
    return reply


@pytest.mark.parametrize("dns_server", [mail_for_good_domains], indirect=True)
def test_deliverability_rejects_missing_domains_once_per_domain(
    dns_server: DnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recipient_dns, "_resolver", dns_server.resolver(lifetime=2))
    result = parse_text(
        "a@good.example.com\nb@gone.example.net\nc@good.example.com\nd@Gone.Example.net\n"
        "e@odd.example.org",
        check_deliverability=True,
    )
    assert emails(result) == ["a@good.example.com", "c@good.example.com", "e@odd.example.org"]
    assert problems(result.rejected) == [
        (
            2,
            "b@gone.example.net",
            "is not a valid address: The domain name gone.example.net does not exist.",
        ),
        (
            4,
            "d@gone.example.net",
            "is not a valid address: The domain name gone.example.net does not exist.",
        ),
    ]
    assert sorted(dns_server.questions) == [
        "gone.example.net MX",
        "good.example.com MX",
        "odd.example.org MX",
    ]


@pytest.mark.parametrize("dns_server", [lambda query: None], indirect=True)
def test_dns_timeouts_never_reject_and_stop_after_three_domains(
    dns_server: DnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recipient_dns, "_resolver", dns_server.resolver(lifetime=0.3))
    # Two addresses share the first domain: it is asked about once, not twice.
    text = "\n".join(f"user{i}@domain{max(i - 1, 0)}.example.com" for i in range(7))
    result = parse_text(text, check_deliverability=True)
    assert len(result.recipients) == 7
    assert result.rejected == []
    asked = {question.split()[0] for question in dns_server.questions}
    assert asked == {f"domain{i}.example.com" for i in range(3)}


def test_one_shared_resolver_with_a_three_second_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recipient_dns, "_resolver", None)
    first = recipient_dns._dns_resolver()
    assert first is recipient_dns._dns_resolver()
    assert first.lifetime == 3
    assert first is not dns.resolver.get_default_resolver()
