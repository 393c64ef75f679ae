"""The hand-written MIME writer, checked by parsing its output with the stdlib."""

from __future__ import annotations

import email
from email import policy

import pytest

from bot.errors import UserInputError
from bot.handlers.compose import Envelope, build_message, format_address
from bot.models import RenderedMessage

ENV = Envelope("Mailbolt Team", "team@mailbolt.example", "help@mailbolt.example")
PARTS = RenderedMessage("Hello Zoë", "<p style='color:#333'>Hi Zoë</p>", "Hi Zoë\nBye")


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


def build(**overrides):
    args = {
        "to_address": "zoe@example.net",
        "to_name": "Zoë Dubois",
        "rendered": PARTS,
        "message_id": "<abc@mailbolt.example>",
    }
    args.update(overrides)
    return build_message(ENV, **args)


def test_one_recipient_multipart_alternative_with_both_parts():
    msg = parse(build())
    assert msg["To"].addresses[0].addr_spec == "zoe@example.net"
    assert msg["To"].addresses[0].display_name == "Zoë Dubois"
    assert msg["From"].addresses[0].addr_spec == "team@mailbolt.example"
    assert msg["Reply-To"] == "help@mailbolt.example"
    assert msg["Subject"] == "Hello Zoë"
    assert msg["Message-ID"] == "<abc@mailbolt.example>"
    assert msg["Date"].datetime is not None
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hi Zoë\nBye"
    assert "Hi Zoë" in msg.get_body(("html",)).get_content()
    assert msg["Cc"] is None and msg["Bcc"] is None


def test_lines_are_crlf_and_short():
    raw = build(
        rendered=RenderedMessage(" ".join(["word"] * 40), "<p>" + "x" * 500 + "</p>", "y" * 300)
    )
    for line in raw.split(b"\r\n"):
        assert b"\n" not in line
        assert len(line) <= 78
    assert parse(raw)["Subject"] == " ".join(["word"] * 40)


def test_idn_domain_is_punycoded_and_quoted_names_survive():
    msg = parse(build(to_address="alice@bücher.de", to_name='Smith, "Al"'))
    assert msg["To"].addresses[0].addr_spec == "alice@xn--bcher-kva.de"
    assert msg["To"].addresses[0].display_name == 'Smith, "Al"'


@pytest.mark.parametrize("field", ["subject", "to_name"])
@pytest.mark.parametrize("value", ["Hi\r\nBcc: evil@example.com", "Hi\nBcc: x@y", "a\rb", "a\x00"])
def test_crlf_in_subject_or_name_is_refused(field, value):
    kwargs = (
        {"to_name": value}
        if field == "to_name"
        else {"rendered": RenderedMessage(value, "<p>x</p>", "x")}
    )
    with pytest.raises(UserInputError, match="line break or control character"):
        build(**kwargs)


@pytest.mark.parametrize(
    "subject",
    [
        "A 💩 subject=?UTF-8?Q?=0A?=Bcc: injected@example.com",
        "plain=?UTF-8?Q?=0A?=Bcc: injected@example.com",
        "=?UTF-8?Q?=0D=0A?=Bcc: injected@example.com",
    ],
)
def test_encoded_word_cannot_smuggle_a_header(subject):
    """CVE-2024-6923: the stdlib on 3.11.7 turns this into a real Bcc header."""
    raw = build(
        rendered=RenderedMessage(subject, "<p>x</p>", "x"),
        to_name="=?UTF-8?Q?=0A?=Bcc: a@b.example",
    )
    msg = parse(raw)
    assert msg["Bcc"] is None
    assert b"\r\nBcc:" not in raw
    assert msg["Subject"] == subject
    assert msg["To"].addresses[0].addr_spec == "zoe@example.net"


def test_extra_headers_must_be_single_line_ascii():
    with pytest.raises(UserInputError):
        build(extra_headers={"List-Unsubscribe": "<https://x>\nBcc: y"})
    with pytest.raises(UserInputError):
        build(extra_headers={"List-Unsubscribe": "<https://bücher>"})


def test_empty_subject_is_refused():
    with pytest.raises(UserInputError, match="subject is empty"):
        build(rendered=RenderedMessage("  ", "<p>x</p>", "x"))


def test_address_with_angle_brackets_is_refused():
    with pytest.raises(UserInputError):
        format_address("x", "a>b@example.com")


def test_message_ids_are_unique_and_use_sender_domain():
    ids = {ENV.new_message_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.endswith("@mailbolt.example>") for i in ids)
