"""Many workspaces against the Slack fake: a browser that goes through "Add to
Slack", and mailbolt running with two workspaces installed.

``install(mailbolt, team=…, user=…)`` is the whole dance through the real server:
``GET /slack/install`` (a cookie and a redirect to the fake's consent page), the
consent (``SlackFake.consent_as``), the redirect back to ``/slack/oauth_redirect``.
``Browser`` does it a step at a time, for tests that tamper with a step.
"""

from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.fakes.slack_fake import Mailbolt, SlackFake, running_mailbolt

TEAM_A = "T0AAA"
TEAM_B = "T0BBB"
USER_A = "U0A1"
USER_B = "U0B1"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Page:
    status: int
    location: str
    text: str


class _LoopbackIsSecure(http.cookiejar.DefaultCookiePolicy):
    """As browsers do, a ``Secure`` cookie is sent to http://127.0.0.1 (a secure context)."""

    def return_ok_secure(self, cookie: Any, request: Any) -> bool:
        host = urllib.parse.urlparse(request.get_full_url()).hostname
        return host in ("127.0.0.1", "localhost") or super().return_ok_secure(cookie, request)


class Browser:
    """One browser: its own cookies, redirects followed by hand."""

    def __init__(self) -> None:
        self.cookies = http.cookiejar.CookieJar(policy=_LoopbackIsSecure())
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirects()
        )

    def get(self, url: str) -> Page:
        try:
            with self._opener.open(url, timeout=30) as response:
                return Page(
                    response.status, response.headers.get("Location") or "", _text(response)
                )
        except urllib.error.HTTPError as error:
            return Page(error.code, error.headers.get("Location") or "", _text(error))

    def start(self, mailbolt: Mailbolt) -> Page:
        """``GET /slack/install``: the redirect to Slack's consent page."""
        return self.start_at(mailbolt.server.url)

    def start_at(self, server_url: str) -> Page:
        return self.get(f"{server_url}/slack/install")

    def install(self, mailbolt: Mailbolt) -> Page:
        """The whole dance; the page shown at the end."""
        consent = self.start(mailbolt)
        assert consent.status == 302, consent
        back = self.get(consent.location)
        assert back.status == 302, back
        return self.get(back.location)


def _text(response: Any) -> str:
    return response.read().decode("utf-8", "replace")


def install(mailbolt: Mailbolt, *, team: str, user: str) -> Page:
    """``user`` installs mailbolt into ``team`` from a fresh browser."""
    mailbolt.fake.consent_as(team=team, user=user)
    return Browser().install(mailbolt)


@contextmanager
def two_workspaces(settings: Any, fake: SlackFake, **kwargs: Any) -> Iterator[Mailbolt]:
    """mailbolt with ``TEAM_A`` and ``TEAM_B`` installed through the OAuth flow;
    ``USER_A`` and ``USER_B`` are people of each (with e-mail addresses)."""
    fake.add_user(USER_A, "a1@a.example", "Ada One", team=TEAM_A)
    fake.add_user(USER_B, "b1@b.example", "Bea One", team=TEAM_B)
    with running_mailbolt(settings, fake, many_workspaces=True, **kwargs) as mailbolt:
        for team, user in ((TEAM_A, USER_A), (TEAM_B, USER_B)):
            page = install(mailbolt, team=team, user=user)
            assert page.status == 200, page
        yield mailbolt
