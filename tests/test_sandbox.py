"""The sandbox transport and the one-sender lock."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot.errors import MailboltError
from bot.mail.sandbox import SandboxTransport
from bot.models import OutgoingMessage
from bot.wiring import SenderLock


def message(row_id=1, mid="<m1@x>") -> OutgoingMessage:
    return OutgoingMessage(row_id, 7, "ann@example.com", mid, b"Subject: hi\r\n\r\nbody\r\n")


def test_writes_one_file_per_send_and_never_overwrites(tmp_path):
    sandbox = SandboxTransport(tmp_path / "out")
    first = sandbox.send(message())
    second = sandbox.send(message())  # a duplicate send must be visible, not hidden
    assert first != second
    files = sorted((tmp_path / "out").glob("*.eml"))
    assert len(files) == 2
    assert files[0].read_bytes() == b"Subject: hi\r\n\r\nbody\r\n"
    assert files[0].name.startswith("0007-000001-ann_example.com-")
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_find_sent_by_message_id(tmp_path):
    sandbox = SandboxTransport(tmp_path / "out")
    assert sandbox.find_sent("<m1@x>") is None
    provider_id = sandbox.send(message())
    assert sandbox.find_sent("<m1@x>") == provider_id
    assert sandbox.find_sent("<other@x>") is None


def test_sender_lock_is_exclusive_across_processes(tmp_path):
    db = tmp_path / "s.db"
    lock = SenderLock(db)
    lock.acquire()
    code = f"from bot.wiring import SenderLock\nSenderLock({str(db)!r}).acquire()"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.returncode != 0
    assert "Another mailbolt process (`python -m bot send`, pid " in other.stderr
    assert "is sending from this database" in other.stderr
    lock.release()
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.returncode == 0, other.stderr


def test_sender_lock_error_message(tmp_path):
    held = SenderLock(tmp_path / "s.db")
    held.acquire()
    with pytest.raises(MailboltError, match="Wait for it to finish"):
        # flock is per open file description: a second open in one process conflicts too
        SenderLock(tmp_path / "s.db").acquire()
    held.release()
