"""Every header stays a valid header, whatever the values hold.

No line of a message exceeds RFC 5322's 998 characters, and the standard
library's parser reads back exactly the subject and names that went in, for
5,000-character subjects and names, long non-ASCII text and long unbroken
tokens. Names and subjects holding invisible or direction-changing characters
are refused with the line they came from, from a CSV, a paste, ``--var`` or a
typed subject.
"""

from __future__ import annotations

import email
import email.header
import email.utils
from email import policy as email_policy

import pytest

from bot.errors import UserInputError
from bot.handlers.compose import Envelope, build_message
from bot.models import RenderedMessage
from tests.test_trust_reserved_values import Cli, said

MAX_LINE = 998
LONG_TEXTS = {
    "5,000 letters, no space": "a" * 5000,
    "5,000 chars of words": ("word " * 1000).strip(),
    "long non-ASCII": "Zoë déjà vu " * 400 + "fin",
    "CJK": "日本語のテキスト" * 600,
    "a long token among words": "see " + "x" * 3000 + " and " + "y" * 1500,
    "emoji": "👩‍💻 🇫🇷 " * 700,
    "spaces that folding could lose": "a  b   c " + "d" * 80 + "  e",
    "looks like an encoded word": "=?utf-8?q?hello?= " * 300,
    "specials": 'He said "hi" (twice); <not an address>, ok? ' * 100,
}
SHORT_NAMES = ["Zoë Dubois", "Wei, Chen", 'Bob "Bobby" Jones', "Ann O'Brien", "李小龙"]


def lines_of(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n")


def display_name(raw: bytes) -> str:
    """The To display name as RFC 2047 decodes it, with the standard library.

    ``policy.default``'s address parser puts a space between two adjacent encoded
    words in a phrase, which RFC 2047 §6.2 says to ignore (CPython 3.11); the
    header module's decoder follows the RFC, so the name is read with it.
    """
    msg = email.message_from_bytes(raw, policy=email_policy.compat32)
    to = msg["To"].replace("\r\n", "")
    phrase = to.rpartition("<")[0].strip()
    decoded = str(email.header.make_header(email.header.decode_header(phrase)))
    return email.utils.unquote(decoded) if decoded.startswith('"') else decoded


def build(subject: str, name: str = "Ann", from_name: str = "Mailbolt") -> bytes:
    return build_message(
        Envelope(from_name, "team@mailbolt.example"),
        to_address="ann@example.com",
        to_name=name,
        rendered=RenderedMessage(subject, "<p>Hi</p>", "Hi"),
        message_id="<1@mailbolt.example>",
        extra_headers={
            "List-Unsubscribe": "<https://mail.example.com/unsubscribe/v1." + "t" * 60 + ">",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


@pytest.mark.parametrize("what", list(LONG_TEXTS))
def test_long_subjects_fold_within_998_and_read_back_exactly(what):
    subject = LONG_TEXTS[what]
    raw = build(subject)
    assert max(len(line) for line in lines_of(raw)) <= MAX_LINE
    msg = email.message_from_bytes(raw, policy=email_policy.default)
    assert str(msg["Subject"]) == subject
    assert msg["To"].addresses[0].addr_spec == "ann@example.com"


@pytest.mark.parametrize("what", [*LONG_TEXTS, *SHORT_NAMES])
def test_long_names_fold_within_998_and_read_back_exactly(what):
    name = LONG_TEXTS.get(what, what)
    raw = build("Hello", name=name, from_name=name)
    assert max(len(line) for line in lines_of(raw)) <= MAX_LINE
    assert display_name(raw) == name
    msg = email.message_from_bytes(raw, policy=email_policy.default)
    assert msg["To"].addresses[0].addr_spec == "ann@example.com"
    assert msg["From"].addresses[0].addr_spec == "team@mailbolt.example"
    assert str(msg["Subject"]) == "Hello"


def test_no_value_can_add_a_header():
    """CVE-2024-6923: an encoded word hiding a newline never becomes a header."""
    sneaky = "=?utf-8?q?hi=0D=0ABcc:_victim@example.com?= " * 50
    for raw in (build(sneaky), build("Hello", name=sneaky)):
        msg = email.message_from_bytes(raw, policy=email_policy.default)
        assert msg["Bcc"] is None
        assert sorted(set(msg.keys())) == sorted(
            {
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "List-Unsubscribe",
                "List-Unsubscribe-Post",
                "MIME-Version",
                "Content-Type",
            }
        )


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u200b", "\ufeff", "\u00ad", "\x85"])
def test_invisible_characters_cannot_reach_a_header(char):
    with pytest.raises(UserInputError, match=r"invisible or direction-changing|control"):
        build(f"Invoice {char}fdp.exe")
    with pytest.raises(UserInputError, match=r"invisible or direction-changing|control"):
        build("Hello", name=f"Ann{char}")


# -- through the CLI ---------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path) -> Cli:
    return Cli(tmp_path)


def test_a_5000_character_subject_from_a_csv_goes_out_valid(cli):
    headline = "Sale " + "x" * 5000  # one unbroken ASCII token: nowhere to fold it
    name = cli.csv(f"email,name,headline,body\nann@example.com,Ann Lee,{headline},Body\n")
    result = cli.run("send", "--template", "newsletter", "--recipients", name)
    assert result.returncode == 0, said(result)
    (eml,) = (cli.folder / "outbox").glob("*.eml")
    raw = eml.read_bytes()
    assert max(len(line) for line in lines_of(raw)) <= MAX_LINE
    assert str(email.message_from_bytes(raw, policy=email_policy.default)["Subject"]) == headline


BAD_CHARS = {
    "RIGHT-TO-LEFT OVERRIDE": "\u202e",
    "LEFT-TO-RIGHT EMBEDDING": "\u202a",
    "RIGHT-TO-LEFT ISOLATE": "\u2067",
    "POP DIRECTIONAL ISOLATE": "\u2069",
    "ZERO WIDTH SPACE": "\u200b",
    "ZERO WIDTH NON-JOINER": "\u200c",
    "RIGHT-TO-LEFT MARK": "\u200f",
    "WORD JOINER": "\u2060",
    "ZERO WIDTH NO-BREAK SPACE": "\ufeff",
    "SOFT HYPHEN": "\u00ad",
    "ARABIC LETTER MARK": "\u061c",
}


@pytest.mark.parametrize("char_name", list(BAD_CHARS))
def test_a_csv_name_with_an_invisible_character_is_refused_with_its_line(cli, char_name):
    char = BAD_CHARS[char_name]
    name = cli.csv(
        f"email,name,team\nann@example.com,Ann Lee,Acme\nbob@example.com,Bob{char}moc.exe,Acme\n"
    )
    result = cli.run(
        "send", "--template", "welcome", "--recipients", name, "--var", "start_url=https://a.ex"
    )
    assert result.returncode == 2, said(result)
    assert "line 3" in said(result) and char_name in said(result)
    assert cli.sent() == []


def test_a_pasted_name_with_an_invisible_character_is_refused_with_its_line(cli):
    (cli.folder / "people.txt").write_text(
        "ann@example.com\nBob\u202e Smith <bob@example.com>\n", encoding="utf-8"
    )
    result = cli.run(
        "send", "--template", "welcome", "--recipients", "people.txt",
        "--var", "team=Acme", "--var", "start_url=https://a.example",
    )  # fmt: skip
    assert result.returncode == 2, said(result)
    assert "line 2" in said(result) and "RIGHT-TO-LEFT OVERRIDE" in said(result)


def test_a_subject_value_with_an_invisible_character_is_refused_with_its_line(cli):
    name = cli.csv(
        "email,headline,body\nann@example.com,Fine news,Body\n"
        "bob@example.com,Invoice\u2066 gpj.exe,Body\n"
    )
    result = cli.run("send", "--template", "newsletter", "--recipients", name)
    assert result.returncode == 2, said(result)
    assert "line 3 (bob@example.com)" in said(result) and "U+2066" in said(result)


def test_a_var_or_typed_subject_with_an_invisible_character_is_refused(cli):
    people = cli.csv("email,body\nann@example.com,Body\n")
    result = cli.run(
        "send", "--template", "newsletter", "--recipients", people,
        "--var", "headline=Sale\u200b today",
    )  # fmt: skip
    assert result.returncode == 2, said(result)
    assert "U+200B" in said(result) and "line 2 (ann@example.com)" in said(result)
    result = cli.run(
        "send", "--template", "newsletter", "--recipients", people,
        "--var", "headline=Sale", "--subject", "Your \u202eorder",
    )  # fmt: skip
    assert result.returncode == 2, said(result)
    assert "U+202E" in said(result)
    assert cli.sent() == []


def test_emoji_sequences_are_not_mistaken_for_hidden_characters(cli):
    subject = "👩‍💻 Team news 🏴󠁧󠁢󠁳󠁣󠁴󠁿"
    name = cli.csv(f"email,name,headline,body\nann@example.com,Ann 👩‍🔬,{subject},Body\n")
    result = cli.run("send", "--template", "newsletter", "--recipients", name)
    assert result.returncode == 0, said(result)
    (msg,) = cli.sent()
    assert msg["Subject"] == subject
