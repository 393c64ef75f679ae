"""One-click unsubscribe end to end: real HTTP to the WSGI app served by waitress.

The links under test are the ones the real campaign pipeline put into real
``.eml`` files written by the sandbox transport.
"""

from __future__ import annotations

import base64
import email
import http.client
import re
from collections.abc import Iterator
from email import policy as email_policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.handlers import campaign, preflight, send_loop
from bot.handlers.unsubscribe import load_secret, make_token
from bot.models import Recipient, RecipientList
from bot.web import WebServer
from bot.web_unsubscribe import make_unsubscribe_app, mask_address
from bot.wiring import build_deps

NEWS = {"headline": "Spring news", "body": "We shipped it."}
WELCOME = {"team": "Mailbolt", "start_url": "https://mailbolt.example/start"}


class Server:
    """The app on 127.0.0.1:<free port>, in a thread, for one test: the server
    ``serve`` runs, with its own socket map (waitress's global one is shared by
    every server in the process, and one closing it took another's trigger)."""

    def __init__(self, app):
        self.server = WebServer(app, "127.0.0.1", 0, threads=2).start()
        self.port = self.server.port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def one_click(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """What Gmail sends (RFC 8058 section 3.2)."""
        return self.request(
            "POST",
            path,
            b"List-Unsubscribe=One-Click",
            {"Content-Type": "application/x-www-form-urlencoded"},
        )

    def close(self) -> None:
        self.server.stop(timeout=10)


@pytest.fixture
def server(settings, store) -> Iterator[Server]:
    srv = Server(make_unsubscribe_app(settings, store))
    yield srv
    srv.close()


@pytest.fixture
def site(settings, server):
    """Settings whose PUBLIC_BASE_URL is the running server (the app needs only the key)."""
    return settings.replace(public_base_url=server.base)


def people(*emails: str) -> RecipientList:
    return RecipientList([Recipient(e, "", {}, i + 2, "csv") for i, e in enumerate(emails)])


def send(settings, store, template: str, *emails: str) -> list[email.message.EmailMessage]:
    """Run a real campaign through the sandbox; return the messages it wrote."""
    deps = build_deps(settings, store)
    outbox = Path(settings.sandbox_outbox)
    before = set(outbox.glob("*.eml")) if outbox.exists() else set()
    request = campaign.CampaignRequest(
        template=template,
        recipients=people(*emails),
        requested_by="test",
        common_vars=NEWS if template == "newsletter" else WELCOME,
    )
    plan = preflight.preflight(request, deps)
    campaign_id, _ = preflight.record(plan, deps)
    send_loop.run(campaign_id, deps)
    return [
        email.message_from_bytes(p.read_bytes(), policy=email_policy.default)
        for p in sorted(set(outbox.glob("*.eml")) - before)
    ]


def https_link(msg) -> str:
    return re.search(r"<(https?://[^>]+)>", str(msg["List-Unsubscribe"])).group(1)


def recipient(msg) -> str:
    return msg["To"].addresses[0].addr_spec


# -- headers -------------------------------------------------------------------


def test_every_marketing_message_carries_one_click_headers(settings, store):
    configured = settings.replace(public_base_url="https://mail.example.com")
    messages = send(configured, store, "newsletter", "a@example.com", "b@example.com", "c@ex.org")
    assert len(messages) == 3
    for msg in messages:
        header = str(msg["List-Unsubscribe"])
        links = re.findall(r"<([^>]+)>", header)
        assert links[0].startswith("https://mail.example.com/unsubscribe/v1.")
        assert len(links) == 1, "no mailto: opt-out that nothing would read"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        for part in ("plain", "html"):
            assert links[0] in msg.get_body((part,)).get_content(), f"{part} footer link"
    assert len({https_link(m) for m in messages}) == 3, "one personal link per recipient"


def test_transactional_mail_has_no_unsubscribe_headers(settings, store):
    (msg,) = send(settings, store, "welcome", "a@example.com")
    assert msg["List-Unsubscribe"] is None and msg["List-Unsubscribe-Post"] is None


# -- the endpoint, driven by the links in real messages ------------------------


def test_get_shows_a_confirmation_and_changes_nothing(site, store, server):
    (msg,) = send(site, store, "newsletter", "bob@example.com")
    path = urlsplit(https_link(msg)).path
    for method in ("GET", "HEAD", "GET"):
        status, headers, body = server.request(method, path)
        assert status == 200
        assert (body == b"") == (method == "HEAD")
    assert store.suppressions.unsubscribes() == []
    status, _, body = server.request("HEAD", "/unsubscribe/forged")
    assert (status, body) == (400, b"")
    status, headers, body = server.request("GET", path)
    page = body.decode()
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert '<html lang="en">' in page and "<h1>Unsubscribe from Mailbolt Team</h1>" in page
    assert '<form method="post">' in page and "<button" in page
    assert "Unsubscribe b…@example.com" in page
    assert "bob@example.com" not in page, "the page shows the address masked"


def test_one_click_post_unsubscribes_and_the_next_campaign_skips_the_address(site, store, server):
    first = send(site, store, "newsletter", "ann@example.com", "bob@example.com")
    bob = next(m for m in first if recipient(m) == "bob@example.com")
    status, _, body = server.one_click(urlsplit(https_link(bob)).path)
    assert status == 200
    assert "You’re unsubscribed" in body.decode()
    (row,) = store.suppressions.unsubscribes()
    assert row.email == "bob@example.com" and row.source == "one-click"
    assert row.campaign_id == store.campaigns.recent()[0].id

    second = send(site, store, "newsletter", "ann@example.com", "bob@example.com")
    assert [recipient(m) for m in second] == ["ann@example.com"]
    skipped = store.outbox.messages(store.campaigns.recent()[0].id, ["skipped"])
    assert [(r.email, r.last_error) for r in skipped] == [("bob@example.com", "has unsubscribed")]
    (welcome,) = send(site, store, "welcome", "bob@example.com")
    assert recipient(welcome) == "bob@example.com", "transactional mail still arrives"


def test_a_replayed_post_is_harmless(site, store, server):
    (msg,) = send(site, store, "newsletter", "bob@example.com")
    path = urlsplit(https_link(msg)).path
    assert server.one_click(path)[0] == 200
    status, _, body = server.one_click(path)
    assert status == 200
    assert "already unsubscribed" in body.decode()
    assert len(store.suppressions.unsubscribes()) == 1
    status, _, body = server.request("GET", path)
    assert "already unsubscribed" in body.decode() and "<form" not in body.decode()
    actions = [row.action for row in store.audit.recent()]
    assert actions.count("unsubscribe.added") == 1


def test_the_page_button_works_without_the_one_click_body(site, store, server):
    (msg,) = send(site, store, "newsletter", "bob@example.com")
    status, _, _ = server.request("POST", urlsplit(https_link(msg)).path)
    assert status == 200
    assert [r.email for r in store.suppressions.unsubscribes()] == ["bob@example.com"]


def test_a_forged_token_for_another_address_gets_400(site, store, server):
    messages = send(site, store, "newsletter", "ann@example.com", "bob@example.com")
    ann = next(m for m in messages if recipient(m) == "ann@example.com")
    version, campaign_id, _, tag = urlsplit(https_link(ann)).path.rsplit("/", 1)[1].split(".")
    victim = base64.urlsafe_b64encode(b"bob@example.com").rstrip(b"=").decode()
    forged = f"/unsubscribe/{version}.{campaign_id}.{victim}.{tag}"
    for attempt in (
        forged,
        forged[:-2] + "AA",
        "/unsubscribe/v1.1.bm9ib2R5.AAAA",
        "/unsubscribe/x",
    ):
        status, headers, body = server.one_click(attempt)
        assert status == 400, attempt
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert b"not valid" in body
        assert server.request("GET", attempt)[0] == 400
    assert store.suppressions.unsubscribes() == []


def test_a_token_signed_with_another_key_gets_400(site, store, server, tmp_path):
    other = load_secret("", tmp_path / "elsewhere")
    status, _, _ = server.one_click(f"/unsubscribe/{make_token(other, 'bob@example.com', 1)}")
    assert status == 400
    assert store.suppressions.unsubscribes() == []


def test_other_methods_are_refused(site, store, server):
    (msg,) = send(site, store, "newsletter", "bob@example.com")
    path = urlsplit(https_link(msg)).path
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        status, headers, _ = server.request(method, path)
        assert status == 405, method
        assert headers["Allow"] == "GET, HEAD, POST"
    assert store.suppressions.unsubscribes() == []


def test_an_oversized_body_is_refused_before_anything_is_recorded(site, store, server):
    (msg,) = send(site, store, "newsletter", "bob@example.com")
    status, _, _ = server.request("POST", urlsplit(https_link(msg)).path, b"x" * 10_000)
    assert status == 413
    assert store.suppressions.unsubscribes() == []


def test_the_app_accepts_a_path_with_the_prefix_already_stripped(site, store, server):
    """``bot/web.py`` may mount the app with or without the ``/unsubscribe`` prefix."""
    (msg,) = send(site, store, "newsletter", "bob@example.com")
    token = urlsplit(https_link(msg)).path.rsplit("/", 1)[1]
    assert server.one_click(f"/{token}")[0] == 200
    assert [r.email for r in store.suppressions.unsubscribes()] == ["bob@example.com"]


def test_masking_keeps_only_the_first_letter_and_the_domain():
    assert mask_address("bob@example.com") == "b…@example.com"
    assert mask_address("x@ex.org") == "x…@ex.org"
