"""GmailTransport through the real googleapiclient/google-auth/httplib2 stack,
against the loopback fake in tests/fakes/gmail_fake.py (TLS, real sockets)."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import threading
import time
from pathlib import Path

import google_auth_httplib2
import httplib2
import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.http import MediaIoBaseUpload

from bot.config import Settings
from bot.errors import (
    AuthError,
    PermanentSendError,
    QuotaDeferred,
    TransientSendError,
    UncertainSendError,
)
from bot.mail.gmail import (
    MAX_MESSAGE_BYTES,
    SIMPLE_SEND_LIMIT,
    GmailTransport,
    build_transport,
    classify_http_error,
)
from bot.mail.google_auth import load_credentials
from bot.models import OutgoingMessage
from tests.fakes.gmail_fake import READONLY_SCOPE, SEND_SCOPE, FakeGmail

SEND_PATH = "/gmail/v1/users/me/messages/send"
UPLOAD_PATH = "/upload/gmail/v1/users/me/messages/send"


@pytest.fixture
def fake(gmail_fake: FakeGmail) -> FakeGmail:
    return gmail_fake


@pytest.fixture
def gmail_settings(settings: Settings, fake: FakeGmail, tmp_path: Path) -> Settings:
    return settings.replace(
        mail_transport="gmail",
        gmail_token_file=tmp_path / "data" / "token.json",
        gmail_api_url=fake.api_url,
        google_token_uri=fake.token_uri,
    )


def write_grant(path: Path, info: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    path.chmod(0o600)


def transport_for(
    fake: FakeGmail, settings: Settings, scopes=(SEND_SCOPE,), **grant
) -> GmailTransport:
    write_grant(settings.gmail_token_file, fake.grant(scopes, **grant))
    return build_transport(settings)


_counter = iter(range(1_000_000))


def message(to: str = "bob@example.com", body: bytes = b"Hello Bob.\r\n") -> OutgoingMessage:
    n = next(_counter)
    message_id = f"<msg-{n}.{time.monotonic_ns()}@mailbolt.example>"
    raw = (
        f"From: Team <team@mailbolt.example>\r\nTo: {to}\r\nSubject: Hi\r\n"
        f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode() + body
    return OutgoingMessage(n, 1, to, message_id, raw)


def bare(msg: OutgoingMessage) -> str:
    return msg.message_id.strip("<>")


# -- delivery ------------------------------------------------------------------


def test_send_posts_the_raw_message_as_json(fake: FakeGmail, gmail_settings: Settings) -> None:
    transport = transport_for(fake, gmail_settings)
    msg = message()
    gmail_id = transport.send(msg)
    assert [m.id for m in fake.sent] == [gmail_id]
    assert fake.sent[0].raw == msg.raw
    assert fake.sent[0].message["To"] == "bob@example.com"
    assert fake.requests_by_path == {SEND_PATH: 1}


def test_large_messages_go_through_the_upload_endpoint(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    transport = transport_for(fake, gmail_settings)
    msg = message(body=b"x" * (SIMPLE_SEND_LIMIT + 1))
    transport.send(msg)
    assert fake.requests_by_path == {UPLOAD_PATH: 1}
    assert fake.sent[0].raw == msg.raw


def test_a_message_over_35_mib_is_refused_before_any_request(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    transport = transport_for(fake, gmail_settings)
    msg = message(body=b"x" * MAX_MESSAGE_BYTES)
    with pytest.raises(PermanentSendError, match="at most 35 MiB"):
        transport.send(msg)
    assert fake.requests_by_path == {}


def test_concurrent_sends_from_eight_threads(fake: FakeGmail, gmail_settings: Settings) -> None:
    fake.latency_ms = 20  # keeps requests overlapping
    fake.units_per_minute = 1_000_000
    transport = transport_for(fake, gmail_settings)
    messages = [message(to=f"user{i}@example.com") for i in range(80)]
    errors: list[BaseException] = []

    def worker(batch: list[OutgoingMessage]) -> None:
        for msg in batch:
            try:
                transport.send(msg)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(messages[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert fake.accepted_by_message_id == {bare(m): 1 for m in messages}


# -- no hidden re-sends ----------------------------------------------------------


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
def test_accepted_then_response_lost_is_uncertain_and_sent_once(
    fake: FakeGmail, gmail_settings: Settings, rst: bool
) -> None:
    transport = transport_for(fake, gmail_settings)
    transport.send(message())  # a warm keep-alive connection, as mid-campaign
    msg = message()
    fake.drop_next_response(rst=rst)
    with pytest.raises(UncertainSendError, match="held as uncertain"):
        transport.send(msg)
    assert fake.accepted_by_message_id[bare(msg)] == 1
    assert fake.requests_by_path[SEND_PATH] == 2
    assert transport.send(message())  # the thread recovers on a fresh connection


def test_stock_httplib2_would_have_sent_it_twice(fake: FakeGmail) -> None:
    """The hazard the transport guards against, shown on the same fake.

    Even ``httplib2.RETRIES = 1`` does not help: the lost-response branch re-sends
    "regardless of the number of RETRIES set".
    """
    info = fake.grant()
    http = google_auth_httplib2.AuthorizedHttp(
        Credentials(info["token"]), http=httplib2.Http(ca_certs=str(fake.ca_file))
    )
    service = build("gmail", "v1", http=http, client_options={"api_endpoint": fake.api_url})
    msg = message()
    fake.drop_next_response()
    raw = base64.urlsafe_b64encode(msg.raw).decode()
    service.users().messages().send(userId="me", body={"raw": raw}).execute()
    assert fake.accepted_by_message_id[bare(msg)] == 2


def test_a_response_that_never_comes_is_uncertain(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    write_grant(gmail_settings.gmail_token_file, fake.grant())
    credentials = load_credentials(gmail_settings)
    transport = GmailTransport(credentials, api_url=fake.api_url, timeout=0.5)
    msg = message()
    fake.stall_next(3)
    with pytest.raises(UncertainSendError):
        transport.send(msg)
    assert fake.accepted_by_message_id[bare(msg)] == 1


def test_connection_reset_before_sending_is_transient(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    transport = transport_for(fake, gmail_settings)
    fake.reset_next_connection()
    with pytest.raises(TransientSendError, match="was not sent"):
        transport.send(message())
    assert fake.sent == []
    assert fake.requests_by_path == {}


def test_reset_while_the_body_is_still_being_written_is_transient(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    transport = transport_for(fake, gmail_settings)
    fake.reset_next_request()  # RST after the headers; 30 MB cannot all be in flight yet
    with pytest.raises(TransientSendError, match="was not sent"):
        transport.send(message(body=b"x" * 30_000_000))
    assert fake.sent == []


def test_nobody_listening_is_transient(gmail_settings: Settings, fake: FakeGmail) -> None:
    transport = transport_for(fake, gmail_settings)
    fake.stop()
    with pytest.raises(TransientSendError, match="was not sent"):
        transport.send(message())


def test_a_keepalive_connection_closed_while_idle_is_replaced_not_uncertain(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    fake.idle_timeout = 0.2
    transport = transport_for(fake, gmail_settings)
    transport.send(message())
    while fake.connections_closed == 0:  # the server hangs up on the idle connection
        time.sleep(0.05)
    msg = message()
    transport.send(msg)
    assert fake.accepted_by_message_id[bare(msg)] == 1


# -- error classification ---------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "error"),
    [
        ("400", PermanentSendError),
        ("403", PermanentSendError),
        ("500", TransientSendError),
        ("503", TransientSendError),
        ("429", TransientSendError),
    ],
)
def test_error_responses_are_classified(
    fake: FakeGmail, gmail_settings: Settings, preset: str, error: type
) -> None:
    transport = transport_for(fake, gmail_settings)
    fake.fail_next(preset=preset)
    with pytest.raises(error):
        transport.send(message())
    assert fake.requests_by_path[SEND_PATH] == 1  # one attempt, no hidden retries


def test_invalid_recipient_is_permanent_with_a_readable_reason(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    transport = transport_for(fake, gmail_settings)
    with pytest.raises(PermanentSendError, match=r"Invalid To header.*recipient's address"):
        transport.send(message(to="not-an-address"))


def test_retry_after_is_surfaced(fake: FakeGmail, gmail_settings: Settings) -> None:
    transport = transport_for(fake, gmail_settings)
    fake.fail_next(503, reason="backendError", message="Try later.", retry_after=7)
    with pytest.raises(TransientSendError) as caught:
        transport.send(message())
    assert caught.value.retry_after == 7


def test_the_per_minute_quota_answers_429_with_retry_after(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    fake.units_per_minute = 200  # two sends a minute
    transport = transport_for(fake, gmail_settings)
    transport.send(message())
    transport.send(message())
    with pytest.raises(TransientSendError, match="rateLimitExceeded") as caught:
        transport.send(message())
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 60
    assert fake.too_many_requests == 1
    assert len(fake.sent) == 2


def test_the_daily_sending_cap_defers_until_gmail_says(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    fake.daily_send_limit = 1
    transport = transport_for(fake, gmail_settings)
    transport.send(message())
    first = fake.sent[0].internal_date / 1000
    with pytest.raises(QuotaDeferred, match="daily sending limit") as caught:
        transport.send(message())
    assert caught.value.resume_after == pytest.approx(first + 86_400, abs=0.01)


def test_daily_limit_as_403_defers(fake: FakeGmail, gmail_settings: Settings) -> None:
    transport = transport_for(fake, gmail_settings)
    fake.fail_next(403, reason="dailyLimitExceeded", message="Daily Limit Exceeded")
    with pytest.raises(QuotaDeferred) as caught:
        transport.send(message())
    assert caught.value.resume_after is None


def test_a_gateway_timeout_on_send_is_uncertain(fake: FakeGmail, gmail_settings: Settings) -> None:
    transport = transport_for(fake, gmail_settings)
    fake.fail_next(504, reason="backendError", message="Deadline exceeded.")
    with pytest.raises(UncertainSendError):
        transport.send(message())


def test_a_grant_without_the_send_scope_pauses_with_auth_error(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    transport = transport_for(fake, gmail_settings, scopes=(READONLY_SCOPE,))
    with pytest.raises(AuthError, match=r"insufficientPermissions.*python -m bot auth"):
        transport.send(message())
    assert fake.sent == []


def test_too_many_concurrent_requests_is_transient(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    fake.max_concurrent = 1
    transport = transport_for(fake, gmail_settings)
    fake.stall_next(1.0)  # holds the only slot while the second send arrives
    first = threading.Thread(target=transport.send, args=(message(),))
    first.start()
    while not fake.sent:
        time.sleep(0.01)
    with pytest.raises(TransientSendError, match="Too many concurrent requests"):
        transport.send(message())
    first.join()
    assert len(fake.sent) == 1


def test_random_faults_never_duplicate_or_lose_track(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    """Every outcome is either a Gmail id (sent once) or an error saying whether
    the message may have gone; an accepted message is never reported as not sent."""
    fake.units_per_minute = 1_000_000
    fake.chaos({"500": 0.1, "503": 0.1, "drop": 0.1, "reset": 0.1}, seed=7)
    transport = transport_for(fake, gmail_settings)
    outcomes: dict[str, str] = {}
    for _ in range(60):
        msg = message()
        try:
            transport.send(msg)
            outcomes[bare(msg)] = "sent"
        except UncertainSendError:
            outcomes[bare(msg)] = "uncertain"
        except TransientSendError:
            outcomes[bare(msg)] = "not sent"
    accepted = fake.accepted_by_message_id
    assert set(outcomes.values()) == {"sent", "uncertain", "not sent"}
    assert all(count == 1 for count in accepted.values())
    assert {k for k, v in outcomes.items() if v == "sent"} <= set(accepted)
    assert not {k for k, v in outcomes.items() if v == "not sent"} & set(accepted)


def test_classify_reads_http_date_retry_after() -> None:
    error = classify_http_error(
        503, {"retry-after": "Thu, 26 Nov 2026 10:00:30 GMT"}, b"", sending=True, now=1795687200.0
    )
    assert isinstance(error, TransientSendError)
    assert error.retry_after == pytest.approx(30)


def test_classify_survives_a_non_json_body() -> None:
    error = classify_http_error(502, {}, b"<html>Bad Gateway</html>", sending=True)
    assert isinstance(error, TransientSendError)
    assert error.retry_after is None


# -- credentials ---------------------------------------------------------------------


def test_401_refreshes_once_then_succeeds_and_saves_the_new_token(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    transport = transport_for(fake, gmail_settings)
    old = json.loads(gmail_settings.gmail_token_file.read_text())["token"]
    fake.expire_access_tokens()  # the client still believes its token is valid
    msg = message()
    transport.send(msg)
    assert fake.accepted_by_message_id[bare(msg)] == 1
    assert fake.requests_by_path == {SEND_PATH: 2, "/token": 1}
    saved = json.loads(gmail_settings.gmail_token_file.read_text())
    assert saved["token"] != old
    assert saved["refresh_token"]
    assert stat.S_IMODE(os.stat(gmail_settings.gmail_token_file).st_mode) == 0o600


def test_an_expired_token_is_refreshed_before_sending(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    transport = transport_for(fake, gmail_settings, expires_in=-10)
    transport.send(message())
    assert fake.requests_by_path == {"/token": 1, SEND_PATH: 1}


def test_a_revoked_grant_becomes_auth_error_with_instructions(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    transport = transport_for(fake, gmail_settings)
    fake.revoke()
    fake.expire_access_tokens()
    with pytest.raises(AuthError) as caught:
        transport.send(message())
    text = str(caught.value)
    assert "invalid_grant" in text and "python -m bot auth" in text
    assert "7 days" in text and '"Testing"' in text
    assert fake.sent == []


def test_still_401_after_refreshing_is_auth_error(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    transport = transport_for(fake, gmail_settings)
    fake.fail_next(401, reason="authError", message="Invalid Credentials", times=2)
    with pytest.raises(AuthError, match="python -m bot auth"):
        transport.send(message())
    assert fake.requests_by_path == {SEND_PATH: 2, "/token": 1}


def test_build_transport_without_a_grant_says_what_to_run(gmail_settings: Settings) -> None:
    with pytest.raises(AuthError, match=r"No Gmail authorization.*`python -m bot auth`"):
        build_transport(gmail_settings)


def test_sender_address(fake: FakeGmail, gmail_settings: Settings) -> None:
    assert transport_for(fake, gmail_settings).sender_address() == "team@mailbolt.example"
    learned = transport_for(fake, gmail_settings.replace(sender_address=""))
    assert learned.sender_address() == fake.email_address
    info = fake.grant()
    info.pop("account")
    write_grant(gmail_settings.gmail_token_file, info)
    unknown = build_transport(gmail_settings.replace(sender_address=""))
    with pytest.raises(AuthError, match="SENDER_ADDRESS"):
        unknown.sender_address()


# -- find_sent ---------------------------------------------------------------------------


def test_find_sent_with_a_read_scope(fake: FakeGmail, gmail_settings: Settings) -> None:
    transport = transport_for(fake, gmail_settings, scopes=(SEND_SCOPE, READONLY_SCOPE))
    msg = message()
    gmail_id = transport.send(msg)
    assert transport.find_sent(msg.message_id) == gmail_id
    assert transport.find_sent("<never-sent@mailbolt.example>") is None


def test_find_sent_without_a_read_scope_cannot_tell(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    transport = transport_for(fake, gmail_settings)
    with pytest.raises(NotImplementedError, match="GMAIL_RECONCILE=on"):
        transport.find_sent("<x@mailbolt.example>")
    assert fake.requests_by_path == {}


def test_find_sent_on_a_lost_response_is_transient(
    fake: FakeGmail, gmail_settings: Settings
) -> None:
    transport = transport_for(fake, gmail_settings, scopes=(SEND_SCOPE, READONLY_SCOPE))
    fake.drop_next_response(method="list")
    with pytest.raises(TransientSendError):
        transport.find_sent("<x@mailbolt.example>")


# -- the fake itself, through the real client -------------------------------------------------


def test_fake_serves_multipart_uploads_bounces_and_metadata_scope_rules(fake: FakeGmail) -> None:
    info = fake.grant((SEND_SCOPE, READONLY_SCOPE))
    http = google_auth_httplib2.AuthorizedHttp(
        Credentials(info["token"]), http=httplib2.Http(ca_certs=str(fake.ca_file))
    )
    gmail = build("gmail", "v1", http=http, client_options={"api_endpoint": fake.api_url})
    messages = gmail.users().messages()
    msg = message()
    media = MediaIoBaseUpload(io.BytesIO(msg.raw), mimetype="message/rfc822")
    messages.send(userId="me", body={}, media_body=media).execute()
    assert fake.sent[0].raw == msg.raw

    fake.bounce(fake.sent[0], "bob@example.com")
    listed = messages.list(userId="me", q="from:mailer-daemon newer_than:2d").execute()
    dsn = messages.get(userId="me", id=listed["messages"][0]["id"], format="full").execute()
    parts = {p["mimeType"]: p for p in dsn["payload"]["parts"]}
    status = base64.urlsafe_b64decode(parts["message/delivery-status"]["body"]["data"] + "==")
    assert b"Status: 5.1.1" in status
    original = base64.urlsafe_b64decode(parts["text/rfc822-headers"]["body"]["data"] + "==")
    assert msg.message_id.encode() in original
    assert gmail.users().getProfile(userId="me").execute()["emailAddress"] == fake.email_address


def test_fake_profile_needs_a_read_scope_like_gmail(fake: FakeGmail) -> None:
    info = fake.grant((SEND_SCOPE,))
    http = google_auth_httplib2.AuthorizedHttp(
        Credentials(info["token"]), http=httplib2.Http(ca_certs=str(fake.ca_file))
    )
    gmail = build("gmail", "v1", http=http, client_options={"api_endpoint": fake.api_url})
    from googleapiclient.errors import HttpError

    with pytest.raises(HttpError) as caught:
        gmail.users().getProfile(userId="me").execute()
    assert caught.value.status_code == 403
