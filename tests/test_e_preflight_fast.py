"""Preflight's fast paths decide exactly as the full checks do.

Two shortcuts make preflight cheap (bench/preflight.py): an address on a domain
email-validator already accepted skips the domain work, and a row of a template
that is "text with the values put in" is checked from the lines that hold its
values instead of being rendered. Both are only sound if they never call clean
what the full check would refuse; these tests compare them on crafted input,
including secrets and links split over two values, which only become dangerous
once joined by the template.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import email_validator
import pytest

from bot.config import Settings
from bot.errors import MailboltError, PolicyError, TemplateError
from bot.handlers import campaign, preflight, recipients, sensitive
from bot.handlers.recipient_csv import parse_csv
from bot.handlers.rendering import Renderer
from bot.handlers.templates import TemplateCatalogue
from bot.models import Recipient, RecipientList
from bot.wiring import build_deps
from tests.conftest import ROOT

# -- addresses ---------------------------------------------------------------------

DOMAINS = [
    "example.com",
    "EXAMPLE.ORG",
    "bücher.example",
    "xn--bcher-kva.example",
    "sub.domain.example.co.uk",
    "a" * 63 + ".example",
    ("b" * 60 + ".") * 3 + "example",  # 190 characters: long addresses pass the limit
]
LOCALS = [
    "ann",
    "Ann.Lee",
    "Postmaster",
    "INFO",
    "a+tag",
    "o'brien",
    "x_y-z",
    "#!$%&'*+-/=?^_`{|}~",
    ".ann",
    "ann.",
    "a..b",
    'x."quoted"',
    "ü",
    "a b",
    "a" * 64,
    "a" * 65,
    "a" * 70,
    "",
    "a@b",
]


def _expected(address: str) -> str:
    """What email-validator says: the normalized address, or 'invalid: <reason>'."""
    try:
        valid = email_validator.validate_email(
            address, check_deliverability=False, allow_smtputf8=False
        )
    except email_validator.EmailNotValidError as err:
        return f"invalid: {err}"
    return valid.normalized


def _ours(address: str) -> str:
    result = recipients.accept(address, 1, "paste")
    if isinstance(result, Recipient):
        return result.email
    return "invalid: " + result.reason.removeprefix("is not a valid address: ")


def test_an_address_on_a_known_domain_is_judged_as_email_validator_judges_it() -> None:
    """The domain is learned from one accepted address; every other address must
    still get email-validator's verdict and normalized form."""
    rng = random.Random(9)
    atext = "abcXYZ019!#$%&'*+-/=?^_`{|}~."
    locals_ = LOCALS + [
        "".join(rng.choice(atext) for _ in range(rng.randint(1, 80))) for _ in range(400)
    ]
    for domain in DOMAINS:
        assert _ours(f"warm@{domain}") == _expected(f"warm@{domain}")
        for local in locals_:
            address = f"{local}@{domain}"
            if "=?" in address:  # refused by our own header rule before any validation
                continue
            assert _ours(address) == _expected(address), address


# -- rows --------------------------------------------------------------------------

HTML = """<html><head><title>{{ who }}</title>
<style>body { margin: 0; }</style></head><body>
<p>Hello {{ who }}</p>
<a href="{{ scheme }}{{ rest }}">go</a>
<a href="{{ scheme }}:{{ rest }}">go too</a>
<a {{ attr }}="javascript:void(0)">x</a>
<p>pass{{ word }}: {{ secret }}</p>
<p>{{ c1 }} {{ c2 }} {{ c3 }} {{ c4 }}</p>
<p>{{ key1 }}{{ key2 }}</p>
{% if flag %}<p>Password: hunter2</p>{% endif %}
<a href=
"{{ url }}">far</a>
<a title="x" href
   ="{{ url2 }}">farther</a>
<p>{{ note or "nothing" }}</p>
</body></html>
"""
TEXT = """Hi {{ who }}
Password{{ pwsep }} {{ pw }}
{{ c1 }}-{{ c2 }}-{{ c3 }}-{{ c4 }}
{{ ssn1 }}-{{ ssn2 }}-{{ ssn3 }}
"""
SUBJECT = "Hi {{ who }}{{ tail }}"
BENIGN = {
    "who": "Ann",
    "scheme": "https",
    "rest": "//ok.example/x?a=1&b=2",
    "attr": "title",
    "word": "port",
    "secret": "ok",
    "c1": "1",
    "c2": "2",
    "c3": "3",
    "c4": "4",
    "key1": "AI",
    "key2": "rport",
    "flag": "",
    "url": "https://a.example",
    "url2": "mailto:b@b.example",
    "note": "n",
    "pwsep": " reminder",
    "pw": "is on file",
    "ssn1": "12",
    "ssn2": "34",
    "ssn3": "56",
    "tail": "!",
}
CRAFTED: list[dict[str, str]] = [
    {"scheme": "javascript", "rest": ":alert(1)"},  # a link made of two values
    {"scheme": "javascript", "rest": "alert(1)"},  # ... around the template's ':'
    {"scheme": "&#106;avascript", "rest": ":alert(1)"},
    {"scheme": "java\tscript", "rest": ":alert(1)"},
    {"scheme": " data", "rest": ":text/html,x"},
    {"attr": "href"},  # the value names the attribute; the template gives the link
    {"attr": "src"},
    {"url": "javascript:alert(1)"},  # the '=' is on the line before
    {"url2": "vbscript:x"},  # the attribute's name is on the line before
    {"word": "word", "secret": "hunter2"},  # "password: hunter2" from two values
    {"pwsep": ":", "pw": "hunter2"},
    {"pw": "is: hunter2"},
    {"c1": "4111", "c2": "1111", "c3": "1111", "c4": "1111"},  # a card over four values
    {"key1": "AIza", "key2": "x" * 35},
    {"key1": "AI", "key2": "za" + "y" * 35},
    {"secret": "xoxb-1234567890-abcdef"},
    {"ssn1": "078", "ssn2": "05", "ssn3": "1120"},
    {"flag": "yes"},  # a branch the fast path's picture of the template does not have
    {"who": "Ann\nBcc: x@evil.example"},
    {"who": "=?utf-8", "tail": "?q?x?="},  # an encoded word from two values
    {"tail": "\u202e"},
    {"tail": "\u200b"},
    {"note": ""},
    {"who": "", "tail": ""},
    {"who": "\x1e0<\x1f"},  # the fast path's own marker
    {"who": "{0}{1}", "tail": "{name}"},
    {"who": "<b>Ann</b>", "rest": "//ok.example/?q=<x>&amp;"},
    {"secret": "AKIAABCDEFGHIJKLMNOP"},
    {"secret": "-----BEGIN RSA PRIVATE KEY-----"},
]
# Crafted rows that are harmless after all, kept to try the fast path's edges.
BENIGN_CHANGES = [
    {"pw": "is: hunter2"},  # "Password reminder is: …" is not "password: …"
    {"note": ""},
    {"who": "", "tail": ""},
    {"who": "\x1e0<\x1f"},
    {"who": "{0}{1}", "tail": "{name}"},
    {"who": "<b>Ann</b>", "rest": "//ok.example/?q=<x>&amp;"},
]
FRAGMENTS = [
    "javascript",
    ":",
    "alert(1)",
    "4111",
    "1111",
    "AI",
    "za" + "x" * 35,
    "word",
    "hunter2",
    "078",
    "05",
    "1120",
    "https",
    "//ok",
    "&#106;",
    "\t",
    "\u200b",
    "=?",
    "?q?",
    "href",
    "=",
    '"',
    "x",
    "",
    " ",
]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("templates")
    (folder / "catalogue.toml").write_text(
        "[crafted]\n"
        'description = "Values in every risky position."\n'
        'category = "transactional"\n'
        f"subject = {SUBJECT!r}\n"
        'html = "crafted.html.j2"\n'
        'text = "crafted.txt.j2"\n',
        encoding="utf-8",
    )
    (folder / "crafted.html.j2").write_text(HTML, encoding="utf-8")
    (folder / "crafted.txt.j2").write_text(TEXT, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def values_deps(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """What ``message_variables`` needs (sender, postal address), built once."""
    folder = tmp_path_factory.mktemp("values")
    settings = Settings.defaults(
        database_path=folder / "s.db",
        sandbox_outbox=folder / "out",
        templates_dir=ROOT / "templates",
        postal_address="Mailbolt Inc., 1 Harbour Street, Bristol",
        sender_address="team@mailbolt.example",
    )
    return build_deps(settings)


def _variables(deps: Any, row: dict[str, str], email: str = "ann@example.com") -> dict:
    return campaign.message_variables(deps, email, "", row, {}, 0, "transactional")


@pytest.fixture(scope="module")
def full_check(crafted: Path) -> Callable[[dict[str, Any]], str]:
    """The full check, with nothing remembered from other rows: what preflight does
    for the first row. One renderer serves every row: the crafted template splits
    attributes over lines, so the renderer checks each message's whole HTML."""
    renderer = TemplateCatalogue(crafted).renderer("crafted")

    def verdict(variables: dict[str, Any]) -> str:
        try:
            rendered = renderer.render(variables, who="row", check_only=True)
        except MailboltError as exc:
            return f"refused: {exc}"
        findings = sensitive.Scanner().scan(rendered, variables)
        return f"found: {findings}" if findings else "clean"

    return verdict


def _checker(folder: Path, sample: dict[str, Any]) -> Any:
    renderer: Renderer = TemplateCatalogue(folder).renderer("crafted")
    varying = frozenset(BENIGN) | {"email", "name", "first_name", "unsubscribe_url"}
    checker = renderer.row_checker(sample, varying)
    assert checker is not None, "the crafted template is of the shape the fast path covers"
    return checker


def test_the_fast_path_passes_only_rows_the_full_check_passes(
    values_deps, crafted, full_check
) -> None:
    checker = _checker(crafted, _variables(values_deps, BENIGN))
    for change in CRAFTED:
        variables = _variables(values_deps, {**BENIGN, **change})
        full = full_check(variables)
        if checker.clean(variables):
            assert full == "clean", f"fast path passed {change!r}; full check: {full}"
        assert full != "clean" or change in BENIGN_CHANGES, f"not a dangerous row: {change}"


def test_random_mixes_of_dangerous_fragments_are_never_passed_by_the_fast_path(
    values_deps, crafted, full_check
) -> None:
    checker = _checker(crafted, _variables(values_deps, BENIGN))
    rng = random.Random(2026)
    passed = refused = 0
    for _ in range(400):
        row = dict(BENIGN)
        for name in rng.sample(sorted(BENIGN), rng.randint(1, 4)):
            row[name] = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 3)))
        variables = _variables(values_deps, row)
        full = full_check(variables)
        if checker.clean(variables):
            assert full == "clean", f"fast path passed {row!r}; full check: {full}"
            passed += 1
        else:
            refused += full != "clean"
    assert passed > 50 and refused > 50, "both kinds of row were tried"


def test_benign_rows_take_the_fast_path(values_deps, crafted, full_check) -> None:
    """Not vacuous: ordinary values are passed by the fast path, not all re-rendered."""
    checker = _checker(crafted, _variables(values_deps, BENIGN))
    for i in range(20):
        row = {**BENIGN, "who": f"Person {i}", "rest": f"//ok.example/u?{i}", "c1": str(i)}
        variables = _variables(values_deps, row, email=f"p{i}@example.com")
        assert full_check(variables) == "clean"
        assert checker.clean(variables)


DEEP = {"who": "Ann", "attr": "title", "word": "port", "secret": "ok", "tail": "!"}
DEEP = {**DEEP, "c1": "1", "c2": "2", "c3": "3", "c4": "4"}


@pytest.fixture(scope="module")
def deep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A template whose dangers only appear when values meet template text."""
    folder = tmp_path_factory.mktemp("deep")
    (folder / "catalogue.toml").write_text(
        '[deep]\ndescription = "Deep."\ncategory = "transactional"\n'
        'subject = "Hi {{ who }}{{ tail }}"\nhtml = "deep.html.j2"\ntext = "deep.txt.j2"\n',
        encoding="utf-8",
    )
    (folder / "deep.html.j2").write_text(
        "<p>Hello {{ who }}</p>\n"
        '<a {{ attr }}="javascript:void(0)">x</a>\n'
        "<p>pass{{ word }}: {{ secret }}</p>\n"
        "<p>{{ c1 }} {{ c2 }} {{ c3 }} {{ c4 }}</p>\n",
        encoding="utf-8",
    )
    (folder / "deep.txt.j2").write_text("Hi {{ who }}\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("change", "refusal", "says"),
    [
        ({"attr": "href"}, TemplateError, "javascript: link"),
        ({"c1": "4111", "c2": "1111", "c3": "1111", "c4": "1111"}, PolicyError, "card"),
        ({"word": "word", "secret": "hunter2"}, PolicyError, "a password"),
        ({"who": "=?utf-8", "tail": "?q?x?="}, TemplateError, "encoded-word"),
    ],
)
def test_a_dangerous_row_deep_in_a_list_is_refused_with_its_line(
    settings, deep, change, refusal, says
) -> None:
    """Row 250 of 400 goes through the fast path's filter and is still caught, by line."""
    lines = [",".join(["email", *DEEP])]
    for i in range(400):
        row = {**DEEP, "who": f"Person {i}", **(change if i == 248 else {})}
        lines.append(",".join([f"p{i}@example.com", *(_csv(row[k]) for k in DEEP)]))
    people = parse_csv(("\r\n".join(lines) + "\r\n").encode(), max_recipients=1000)
    assert isinstance(people, RecipientList)
    deps = build_deps(settings.replace(templates_dir=deep))
    with pytest.raises(refusal) as caught:
        preflight.preflight(campaign.CampaignRequest("deep", people, "test"), deps)
    shown = str(caught.value) + "\n".join(getattr(caught.value, "details", []) or [])
    assert says in shown
    assert "line 250" in shown and "p248@example.com" in shown
    assert "p247@example.com" not in shown and "p249@example.com" not in shown


def _csv(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def test_bundled_welcome_takes_the_fast_path_for_a_plain_csv(settings) -> None:
    deps = build_deps(settings.replace(templates_dir=ROOT / "templates"))
    renderer = deps.catalogue.renderer("welcome")
    row = {"team": "Acme", "start_url": "https://acme.example/start?u=1"}
    sample = campaign.message_variables(
        deps, "a@example.com", "Ann Lee", row, {}, 0, "transactional"
    )
    varying = frozenset(row) | {"email", "name", "first_name", "unsubscribe_url"}
    checker = renderer.row_checker(sample, varying)
    assert checker is not None
    other = campaign.message_variables(
        deps,
        "bo@example.com",
        "Bo Chen",
        {**row, "start_url": "https://acme.example/b"},
        {},
        0,
        "transactional",
    )
    assert checker.clean(other)
    bad = {**row, "start_url": "javascript:alert(1)"}
    worse = campaign.message_variables(deps, "c@example.com", "Cy", bad, {}, 0, "transactional")
    assert not checker.clean(worse)


@pytest.mark.parametrize("who", ["{{ who }}", "{{ who|upper }}"], ids=["fast", "full"])
def test_a_value_naming_a_link_attribute_whose_value_is_on_the_next_line_is_refused(
    settings, tmp_path, who
) -> None:
    """``<a {{ attr }}\\n ="javascript:…">``: the name comes from row 3, the link from the
    template's next line. Checking only the lines that changed since row 1 missed it."""
    folder = tmp_path / "split"
    folder.mkdir()
    (folder / "catalogue.toml").write_text(
        '[split]\ndescription = "Split."\ncategory = "transactional"\n'
        'subject = "Hi"\nhtml = "split.html.j2"\n',
        encoding="utf-8",
    )
    (folder / "split.html.j2").write_text(
        f'<p>Hello {who}</p>\n<a {{{{ attr }}}}\n   ="javascript:void(0)">x</a>\n',
        encoding="utf-8",
    )
    rows = ["email,who,attr", "a@example.com,Ann,title", "b@example.com,Bo,title"]
    rows.append("c@example.com,Cy,href")
    people = parse_csv(("\r\n".join(rows) + "\r\n").encode(), max_recipients=10)
    deps = build_deps(settings.replace(templates_dir=folder))
    with pytest.raises(TemplateError, match="javascript: link") as caught:
        preflight.preflight(campaign.CampaignRequest("split", people, "test"), deps)
    assert "c@example.com" in str(caught.value)


@pytest.mark.parametrize(
    "html",
    [
        "{% filter upper %}<p>{{ who }}</p>{% endfilter %}",
        "<p>{{ who|upper }}</p>",
        "<p>{{ who ~ '!' }}</p>",
        "<p>{{ (who or 'x')|upper }}</p>",
        "{% if who == 'Ann' %}<p>hi</p>{% endif %}",
        "{% set who = 'x' %}<p>{{ who }}</p>",
        "{% for c in who %}<p>{{ c }}</p>{% endfor %}",
        "<p>{{ who is defined }}</p>",
        "<p>{{ lipsum(1) }}{{ who }}</p>",
        "{% autoescape false %}<p>{{ who }}</p>{% endautoescape %}",
    ],
)
def test_templates_not_made_of_text_and_values_get_no_fast_path(
    values_deps, tmp_path, html
) -> None:
    """Where the output is not the template text with the values put in, every row
    is rendered in full."""
    folder = tmp_path / "shape"
    folder.mkdir()
    (folder / "catalogue.toml").write_text(
        '[shape]\ndescription = "Shape."\ncategory = "transactional"\n'
        'subject = "Hi"\nhtml = "shape.html.j2"\n',
        encoding="utf-8",
    )
    (folder / "shape.html.j2").write_text(html, encoding="utf-8")
    renderer = TemplateCatalogue(folder).renderer("shape")
    sample = _variables(values_deps, {"who": "Ann"})
    varying = frozenset({"who", "email", "name", "first_name", "unsubscribe_url"})
    assert renderer.row_checker(sample, varying) is None


def test_a_marketing_template_takes_the_fast_path_with_its_footer_checked(settings) -> None:
    """Each recipient's unsubscribe link differs; the footer check still runs per row."""
    deps = build_deps(settings.replace(public_base_url="https://mailbolt.example"))
    renderer = deps.catalogue.renderer("event_invitation")
    row = {
        "event_name": "Launch",
        "event_date": "Friday",
        "event_place": "Hall 2",
        "rsvp_url": "https://events.example/rsvp",
    }

    def variables(email: str, changes: dict[str, str]) -> dict[str, Any]:
        return campaign.message_variables(
            deps, email, "Ann Lee", {**row, **changes}, {}, 7, "marketing"
        )

    sample = variables("a@example.com", {})
    varying = frozenset(row) | {"email", "name", "first_name", "unsubscribe_url"}
    checker = renderer.row_checker(sample, varying)
    assert checker is not None
    other = variables("b@example.com", {"event_place": "Hall 3"})
    assert other["unsubscribe_url"] != sample["unsubscribe_url"]
    assert checker.clean(other)
    assert not checker.clean(variables("c@example.com", {"event_place": "pwd: hunter2"}))
    assert not checker.clean(variables("d@example.com", {"rsvp_url": "javascript:alert(1)"}))
