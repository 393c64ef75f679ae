""" "Add to Slack" refuses what is not one browser's own, fresh, consented install,
with a page that says so, and stores nothing."""

from __future__ import annotations

import time
from urllib.error import HTTPError
from urllib.parse import parse_qs, urlencode, urlparse
from urllib.request import Request, urlopen

import pytest

from tests.fakes.slack_fake import SlackFake, running_mailbolt
from tests.fakes.workspaces import TEAM_A, Browser, Page

TEAM_X = "T0XXX"


@pytest.fixture
def fake():
    with SlackFake() as slack:
        yield slack


@pytest.fixture
def mailbolt(settings, fake):
    with running_mailbolt(settings, fake, many_workspaces=True) as running:
        fake.consent_as(team=TEAM_X, user="U0X1")
        yield running


def _back_from_slack(browser: Browser, mailbolt) -> str:
    """Start the install and consent; the URL Slack sends the browser back to."""
    consent = browser.start(mailbolt)
    assert consent.status == 302 and "slack-app-oauth-state" in consent_cookie(browser)
    back = browser.get(consent.location)
    assert back.status == 302
    return back.location


def consent_cookie(browser: Browser) -> str:
    return " ".join(c.name for c in browser.cookies)


def _refused(page: Page, words: str, mailbolt) -> None:
    assert page.status >= 400, page
    assert "Not installed" in page.text and words in page.text, page.text
    assert "Traceback" not in page.text
    assert mailbolt.deps.store.installations.all() == []


def test_a_state_from_another_browser_is_refused(fake, mailbolt):
    back = _back_from_slack(Browser(), mailbolt)
    _refused(Browser().get(back), "started in another browser", mailbolt)
    assert fake.calls_to("oauth.v2.access") == []


def test_a_replayed_state_is_refused(fake, mailbolt):
    browser = Browser()
    back = _back_from_slack(browser, mailbolt)
    cookies = list(browser.cookies)
    assert browser.get(back).status == 200
    assert [i.team for i in mailbolt.deps.store.installations.all()] == [TEAM_X]
    mailbolt.deps.store.installations.delete(TEAM_X)
    for cookie in cookies:  # even with the cookie put back, the state was used
        browser.cookies.set_cookie(cookie)
    _refused(browser.get(back), "expired or was already used", mailbolt)
    assert len(fake.calls_to("oauth.v2.access")) == 1


def test_a_forged_code_is_refused(fake, mailbolt):
    browser = Browser()
    back = urlparse(_back_from_slack(browser, mailbolt))
    query = {k: v[0] for k, v in parse_qs(back.query).items()}
    forged = back._replace(query=urlencode({**query, "code": "code-forged"})).geturl()
    _refused(browser.get(forged), "Slack did not accept the install", mailbolt)
    assert [c.error for c in fake.calls_to("oauth.v2.access")] == ["invalid_code"]


def test_an_expired_state_is_refused(fake, mailbolt):
    browser = Browser()
    back = _back_from_slack(browser, mailbolt)
    later = time.time() + 601
    mailbolt.deps.store.clock = lambda: later
    _refused(browser.get(back), "expired or was already used", mailbolt)
    assert fake.calls_to("oauth.v2.access") == []


def test_a_cancelled_consent_installs_nothing(fake, mailbolt):
    fake.refuse_consent()
    browser = Browser()
    back = _back_from_slack(browser, mailbolt)
    assert "error=access_denied" in back
    _refused(browser.get(back), "cancelled", mailbolt)


def test_the_installed_page_escapes_what_slack_says(fake, mailbolt):
    fake.consent_as(team=TEAM_A, user="U0A1", name="<script>alert(1)</script>")
    page = Browser().install(mailbolt)
    assert page.status == 200
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text


def test_an_install_without_every_scope_says_which_are_missing(settings):
    with (
        SlackFake(scopes="commands,chat:write,users:read") as fake,
        running_mailbolt(settings, fake, many_workspaces=True) as mailbolt,
    ):
        fake.consent_as(team=TEAM_X, user="U0X1", name="Xeno")
        page = Browser().install(mailbolt)
    assert page.status == 200 and "mailbolt is installed in Xeno" in page.text
    assert "It was not granted users:read.email, files:read" in page.text


def test_a_callback_made_up_by_hand_is_refused_and_says_nothing_back(fake, mailbolt):
    """What an attacker can send the redirect page: Slack's own error words made up,
    an unknown state, a huge one. Nothing is echoed unescaped, nothing stored, no
    code is exchanged."""
    base = f"{mailbolt.server.url}/slack/oauth_redirect?"
    browser = Browser()
    crafted = [
        urlencode({"error": "<script>alert(1)</script>", "state": "x"}),
        urlencode({"code": "forged", "state": "not-a-state-we-issued"}),
        urlencode({"code": "forged", "state": "s" * 20_000}),
        "",
    ]
    for query in crafted:
        page = browser.get(base + query)
        assert page.status >= 400, (query[:60], page)
        assert "<script>" not in page.text and "Traceback" not in page.text
    assert mailbolt.deps.store.installations.all() == []
    assert fake.calls_to("oauth.v2.access") == []


def test_the_install_pages_take_no_posts(fake, mailbolt):
    request = Request(f"{mailbolt.server.url}/slack/install", data=b"x", method="POST")
    try:
        urlopen(request, timeout=10)
        status = 200
    except HTTPError as error:
        status = error.code
    assert status == 405


def test_with_one_workspace_there_is_no_install_page(settings, fake):
    with running_mailbolt(settings, fake) as single:
        page = Browser().get(f"{single.server.url}/slack/install")
        assert page.status == 404
        assert single.deps.store.installations.all() == []
