"""Attachments through the real ``python -m bot send`` and the loopback Gmail fake.

Every message the fake receives is parsed back with the standard library
(``email.message_from_bytes(policy=email.policy.default)``), so the tests check
what a mail program would see: which recipient got which file, byte for byte,
under which name.
"""

from __future__ import annotations

import email
import email.policy
import io
import os
import time
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.store import Store
from tests.fakes.gmail_fake import FakeGmail
from tests.test_gmail_e2e import SENDER, UNPACED, Mailbolt, text

UPLOAD_PATH = "/upload/gmail/v1/users/me/messages/send"
HEADER = "email,name,team,start_url,attachments\r\n"


@pytest.fixture
def fake() -> FakeGmail:
    with FakeGmail(email_address=SENDER, units_per_minute=UNPACED) as server:
        yield server


@pytest.fixture
def mailbolt(tmp_path: Path, fake: FakeGmail) -> Mailbolt:
    box = Mailbolt(tmp_path, fake)
    box.grant()
    return box


def pdf(label: str, size: int = 0) -> bytes:
    """Bytes that are a PDF by their content (``%PDF-``), optionally ``size`` long."""
    head = f"%PDF-1.7\n% {label}\n".encode()
    return head + os.urandom(max(0, size - len(head)))


def write_csv(folder: Path, rows: list[tuple[str, str]]) -> None:
    """``r.csv`` for the ``welcome`` template: (address, attachments cell) per row."""
    lines = "".join(
        f"{address},Person {i},Acme,https://start.example,{cell}\r\n"
        for i, (address, cell) in enumerate(rows)
    )
    (folder / "r.csv").write_text(HEADER + lines, encoding="utf-8")


def received(fake: FakeGmail) -> dict[str, EmailMessage]:
    """Each message the fake accepted, parsed by the standard library, by To address."""
    parsed: dict[str, EmailMessage] = {}
    for sent in fake.sent:
        message = email.message_from_bytes(sent.raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        (address,) = sent.addresses("To")
        parsed[address] = message
    return parsed


def files_of(message: EmailMessage) -> dict[str, bytes]:
    """File name → the exact bytes, as a mail program decodes them."""
    return {
        part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()
    }


def send(mailbolt: Mailbolt, *extra: str):
    return mailbolt.run("send", "--template", "welcome", "--recipients", "r.csv", *extra)


def test_per_recipient_attachments_arrive_on_the_right_messages_only(
    mailbolt: Mailbolt, fake: FakeGmail
) -> None:
    folder = mailbolt.folder
    (folder / "docs").mkdir()
    ann_invoice, shared, note = pdf("ann"), pdf("everyone"), "Grüße, Bob\n".encode()
    (folder / "docs" / "invoice-ann.pdf").write_bytes(ann_invoice)
    (folder / "docs" / "Résumé Bob.txt").write_bytes(note)
    (folder / "terms.pdf").write_bytes(shared)
    write_csv(
        folder,
        [
            ("ann@example.com", "docs/invoice-ann.pdf"),
            ("bob@example.com", "docs/Résumé Bob.txt ; docs/invoice-ann.pdf"),
            ("cid@example.com", ""),
        ],
    )

    result = send(mailbolt, "--attach", "terms.pdf")

    assert result.returncode == 0, text(result)
    shown = "terms.pdf (everyone, 20 bytes), invoice-ann.pdf (2 recipients, 15 bytes)"
    assert f"Attachments: {shown}" in text(result)
    got = received(fake)
    assert set(got) == {"ann@example.com", "bob@example.com", "cid@example.com"}
    assert files_of(got["ann@example.com"]) == {
        "terms.pdf": shared,
        "invoice-ann.pdf": ann_invoice,
    }
    assert files_of(got["bob@example.com"]) == {
        "terms.pdf": shared,
        "Résumé Bob.txt": note,
        "invoice-ann.pdf": ann_invoice,
    }
    assert files_of(got["cid@example.com"]) == {"terms.pdf": shared}
    # The non-ASCII name travels as an RFC 2231 parameter, never as raw UTF-8.
    bob_raw = next(s.raw for s in fake.sent if "bob@example.com" in s.addresses("To"))
    assert b"filename*0*=utf-8''R%C3%A9sum%C3%A9%20Bob.txt" in bob_raw
    assert bob_raw.isascii()
    parts = {p.get_filename(): p for p in got["bob@example.com"].iter_attachments()}
    assert parts["invoice-ann.pdf"].get_content_type() == "application/pdf"
    assert parts["Résumé Bob.txt"].get_content() == note.decode()  # declared as UTF-8
    # The text and HTML bodies are still there, next to the files.
    assert got["cid@example.com"].get_body(("plain",)) is not None
    assert got["cid@example.com"].get_body(("html",)) is not None


def test_a_30_mb_set_is_refused_in_preflight_naming_the_files(
    mailbolt: Mailbolt, fake: FakeGmail
) -> None:
    folder = mailbolt.folder
    names = ["part-1.pdf", "part-2.pdf", "part-3.pdf"]
    for name in names:
        (folder / name).write_bytes(pdf(name, 10_000_000))
    write_csv(folder, [("ann@example.com", "")])

    result = send(mailbolt, *[arg for name in names for arg in ("--attach", name)])

    assert result.returncode == 2, text(result)
    out = text(result)
    assert "larger than Gmail accepts" in out
    assert all(name in out for name in names)
    assert "39.2 MiB" in out  # base64 with line breaks: 30 MB on disk is 41 MB sent
    assert fake.sent == []
    store = Store(mailbolt.database)
    try:
        assert store.campaigns.recent() == []  # refused before anything was recorded
    finally:
        store.close()


@pytest.mark.parametrize(
    "cell",
    ["../secret.txt", "/etc/passwd", "docs/../../secret.txt", "link/secret.txt"],
    ids=["dotdot", "absolute", "nested-dotdot", "symlink-out"],
)
def test_a_csv_cannot_attach_files_outside_its_folder(
    tmp_path: Path, fake: FakeGmail, cell: str
) -> None:
    (tmp_path / "secret.txt").write_text("the admin's secret\n")
    campaign = tmp_path / "campaign"
    (campaign / "docs").mkdir(parents=True)
    (campaign / "link").symlink_to(tmp_path)
    mailbolt = Mailbolt(campaign, fake)
    mailbolt.grant()
    write_csv(campaign, [("ann@example.com", cell)])

    result = send(mailbolt)

    assert result.returncode == 2, text(result)
    out = text(result)
    assert "line 2 (ann@example.com)" in out
    assert "absolute path" in out or "leads out of the CSV's folder" in out
    assert fake.sent == []


def _zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00", "Gmail blocks that type"),
        ("tool.js", b"alert(1)\n", "Gmail blocks that type"),
        ("bundle.zip", _zip(**{"readme.txt": b"hi", "run.js": b"x"}), "contains run.js"),
        ("nested.zip", _zip(**{"inner.zip": _zip(**{"a.bat": b"x"})}), "contains a.bat"),
        ("invoice.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "is a Windows program"),
        ("photo.png", pdf("not a png"), "named like a PNG image but its content is a PDF"),
    ],
    ids=["exe", "js", "zip-member", "zip-in-zip", "exe-named-pdf", "pdf-named-png"],
)
def test_blocked_types_and_lying_extensions_are_refused(
    mailbolt: Mailbolt, fake: FakeGmail, name: str, content: bytes, expected: str
) -> None:
    (mailbolt.folder / name).write_bytes(content)
    write_csv(mailbolt.folder, [("ann@example.com", "")])

    result = send(mailbolt, "--attach", name)

    assert result.returncode == 2, text(result)
    assert name in text(result) and expected in text(result)
    assert fake.sent == []


def test_a_file_the_column_names_but_nobody_attached_is_refused(
    mailbolt: Mailbolt, fake: FakeGmail
) -> None:
    write_csv(mailbolt.folder, [("ann@example.com", ""), ("bob@example.com", "missing.pdf")])

    result = send(mailbolt)

    assert result.returncode == 2, text(result)
    assert "line 3 (bob@example.com)" in text(result) and "missing.pdf" in text(result)
    assert fake.sent == []


def test_sensitive_data_in_a_text_attachment_names_the_file_and_recipient(
    mailbolt: Mailbolt, fake: FakeGmail
) -> None:
    (mailbolt.folder / "notes.csv").write_text("order,card\n1,4111 1111 1111 1111\n")
    write_csv(mailbolt.folder, [("ann@example.com", ""), ("bob@example.com", "notes.csv")])

    result = send(mailbolt)

    assert result.returncode == 2, text(result)
    out = text(result)
    assert "notes.csv" in out and "line 3 (bob@example.com)" in out
    assert "a payment card number" in out
    assert "4111" not in out  # the value itself is never repeated
    assert fake.sent == []


def test_a_large_attachment_goes_through_the_upload_endpoint(
    mailbolt: Mailbolt, fake: FakeGmail
) -> None:
    big = pdf("big", 6_000_000)
    (mailbolt.folder / "big.pdf").write_bytes(big)
    write_csv(mailbolt.folder, [("ann@example.com", ""), ("bob@example.com", "")])

    result = send(mailbolt, "--attach", "big.pdf")

    assert result.returncode == 0, text(result)
    assert fake.requests_by_path[UPLOAD_PATH] == 2
    assert all(files_of(m) == {"big.pdf": big} for m in received(fake).values())


def test_a_paused_campaign_resumes_with_its_stored_attachments(
    mailbolt: Mailbolt, fake: FakeGmail
) -> None:
    mailbolt.grant(expires_in=-60)
    fake.revoke()  # the send pauses before any message leaves
    report = pdf("report")
    (mailbolt.folder / "report.pdf").write_bytes(report)
    write_csv(mailbolt.folder, [("ann@example.com", "report.pdf"), ("bob@example.com", "")])

    paused = send(mailbolt)
    assert paused.returncode == 1, text(paused)
    assert mailbolt.campaign().status == "paused"
    stored = mailbolt.folder / "data" / "attachments"
    assert stored.stat().st_mode & 0o777 == 0o700
    assert [p.stat().st_mode & 0o777 for p in stored.iterdir()] == [0o600]
    (mailbolt.folder / "report.pdf").unlink()  # the campaign kept its own copy

    mailbolt.grant()
    resumed = mailbolt.run("send", "--resume")

    assert resumed.returncode == 0, text(resumed)
    got = received(fake)
    assert files_of(got["ann@example.com"]) == {"report.pdf": report}
    assert files_of(got["bob@example.com"]) == {}
    assert list(stored.iterdir()) == []  # every message sent: the copy is removed


@pytest.mark.parametrize(
    "name",
    ["two\nlines.pdf", 'say "hi".pdf', "back\\slash.pdf", "rtl\u202efdp.exe.pdf"],
    ids=["newline", "quote", "backslash", "bidi-override"],
)
def test_a_file_name_that_could_break_a_header_is_refused(
    mailbolt: Mailbolt, fake: FakeGmail, name: str
) -> None:
    (mailbolt.folder / name).write_bytes(pdf("x"))
    write_csv(mailbolt.folder, [("ann@example.com", "")])

    result = send(mailbolt, "--attach", name)

    assert result.returncode == 2, text(result)
    assert "An attachment name" in text(result)
    assert fake.sent == []


def test_a_long_non_ascii_name_keeps_every_header_line_within_78(
    mailbolt: Mailbolt, fake: FakeGmail
) -> None:
    name = "Überweisungsbestätigung für das Geschäftsjahr 2026 — Zusammenfassung (endgültig).pdf"
    (mailbolt.folder / name).write_bytes(pdf("long"))
    write_csv(mailbolt.folder, [("ann@example.com", "")])

    result = send(mailbolt, "--attach", name)

    assert result.returncode == 0, text(result)
    (sent,) = fake.sent
    assert all(len(line) <= 78 for line in sent.raw.split(b"\r\n")), "a line over 78"
    assert files_of(received(fake)["ann@example.com"]) == {name: pdf("long")}


def test_a_file_shared_with_a_campaign_that_can_still_retry_is_kept(
    mailbolt: Mailbolt, fake: FakeGmail
) -> None:
    report = pdf("report")
    (mailbolt.folder / "report.pdf").write_bytes(report)
    stored = mailbolt.folder / "data" / "attachments"
    write_csv(mailbolt.folder, [("ann@example.com", "")])
    fake.fail_next(400, reason="invalidArgument", message="Injected permanent failure.")
    first = send(mailbolt, "--attach", "report.pdf")
    assert first.returncode == 1, text(first)  # campaign 1: ann failed, may be retried
    write_csv(mailbolt.folder, [("bob@example.com", "")])
    second = send(mailbolt, "--attach", "report.pdf")
    assert second.returncode == 0, text(second)  # campaign 2 is done with the same file

    assert len(list(stored.iterdir())) == 1  # still needed by campaign 1's retry
    (mailbolt.folder / "report.pdf").unlink()
    retried = mailbolt.run("resolve", "1", "--retry-failed")
    assert retried.returncode == 0, text(retried)
    resumed = mailbolt.run("send", "--resume")

    assert resumed.returncode == 0, text(resumed)
    assert files_of(received(fake)["ann@example.com"]) == {"report.pdf": report}
    assert list(stored.iterdir()) == []


def test_old_files_no_campaign_needs_are_pruned_and_others_kept(
    mailbolt: Mailbolt, fake: FakeGmail
) -> None:
    from bot.attachment_files import FileAttachments
    from bot.handlers.attachments import ORPHAN_SECONDS, prune

    mailbolt.grant(expires_in=-60)
    fake.revoke()  # campaign 1 pauses with its file: it may still be sent
    (mailbolt.folder / "kept.pdf").write_bytes(pdf("kept"))
    write_csv(mailbolt.folder, [("ann@example.com", "")])
    assert send(mailbolt, "--attach", "kept.pdf").returncode == 1
    folder = mailbolt.folder / "data" / "attachments"
    files = FileAttachments(folder)
    orphan = files.put(pdf("a preview nobody sent"))
    long_ago = time.time() - ORPHAN_SECONDS - 60
    for path in folder.iterdir():
        os.utime(path, (long_ago, long_ago))
    store = Store(mailbolt.database)
    try:
        removed = prune(store, files, time.time())
    finally:
        store.close()

    assert removed == [orphan]
    assert [p.read_bytes() for p in folder.iterdir()] == [pdf("kept")]
