"""The bundled templates and sample read well and carry no spam-filter signals.

Every bundled template is rendered (for real: CSS inlined) for every row of the
sample and for every shape a row can have (no name, "Family, Given", quotes,
one word), then checked as a reader and a spam filter see it: no punctuation
artifacts ("Wei,!", "Hi ,"), every text/background pair at WCAG AA contrast
computed from the CSS the message actually carries, no text smaller than 10 px,
no hidden text, no all-caps subjects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest

from bot.handlers import campaign
from bot.handlers.recipient_csv import parse_csv
from bot.models import Recipient, RenderedMessage
from bot.wiring import build_deps
from tests.conftest import ROOT

SAMPLE = ROOT / "data" / "samples" / "welcome.csv"
#: Values for every recipient, as `make demo` and a typical sender give them.
COMMON = {
    "welcome": {"start_url": "https://mailbolt.example/start"},
    "newsletter": {
        "headline": "Our spring update",
        "body": "We shipped three things.\n\nHere they are.",
        "cta_url": "https://mailbolt.example/news",
    },
    "event_invitation": {
        "event_name": "Summer party",
        "event_date": "Friday 12 June, 18:00",
        "event_place": "The roof terrace",
        "rsvp_url": "https://mailbolt.example/rsvp",
    },
}
#: Row shapes beyond the sample's: (name column, team column).
SHAPES = [
    ("", "Mailbolt"),
    ("Wei, Chen", "Mailbolt"),
    ('Bob "Bobby" Jones', "Mailbolt"),
    ("Cher", "Mailbolt"),
    ("O'Brien, Siobhán", "Mailbolt"),
    ("Dr. Ann Lee", "Mailbolt"),
    (",", "Mailbolt"),
    ("  ", "Mailbolt"),
]
#: Punctuation that gives a template away: a value was missing or brought its own.
ARTIFACTS = re.compile(r",\s*[,!?.;:]|\s[,!?.;:](?!\w)|\(\s*\)|!{2,}|\?{2,}")
AA = 4.5
MIN_FONT_PX = 10.0


def rows() -> list[Recipient]:
    sample = parse_csv(SAMPLE.read_bytes(), filename=SAMPLE.name).recipients
    extra = "email,name,team\n" + "".join(
        f'shape{i}@example.com,"{name.replace(chr(34), chr(34) * 2)}",{team}\n'
        for i, (name, team) in enumerate(SHAPES)
    )
    shapes = parse_csv(extra.encode(), filename="shapes.csv").recipients
    assert len(shapes) == len(SHAPES)
    return sample + shapes


def rendered_messages(settings) -> list[tuple[str, Recipient, RenderedMessage]]:
    deps = build_deps(settings.replace(public_base_url="https://mailbolt.example"))
    out = []
    for info in deps.catalogue.list():
        renderer = deps.catalogue.renderer(info.name)
        for recipient in rows():
            variables = campaign.message_variables(
                deps,
                recipient.email,
                recipient.name,
                recipient.variables,
                COMMON[info.name],
                1,
                info.category,
            )
            out.append((info.name, recipient, renderer.render(variables, who=recipient.label)))
    return out


@pytest.fixture
def messages(settings):
    return rendered_messages(settings)


def test_every_bundled_template_is_covered(settings):
    names = {info.name for info in build_deps(settings).catalogue.list()}
    assert names == set(COMMON), "add the new template's values to COMMON"


# -- words ----------------------------------------------------------------------------


def test_the_sample_greets_everyone_without_stray_punctuation(messages):
    problems = []
    for name, recipient, message in messages:
        for part, text in (
            ("subject", message.subject),
            ("text", message.text),
            ("HTML", Page.read(message.html).visible_text()),
        ):
            for match in ARTIFACTS.finditer(text):
                around = text[max(0, match.start() - 25) : match.end() + 10]
                problems.append(f"{name} / {recipient.name!r} / {part}: …{around}…")
    assert problems == []


def test_the_demo_row_with_a_comma_in_the_name_is_greeted_by_the_given_name(messages):
    subjects = {r.email: m.subject for n, r, m in messages if n == "welcome"}
    assert subjects["chen.wei@example.com"] == "Welcome to Mailbolt, Chen!"
    assert subjects["shape0@example.com"] == "Welcome to Mailbolt, there!"
    assert subjects["bob@example.org"] == "Welcome to Mailbolt, Bob!"


def test_no_subject_shouts(messages):
    for name, _, message in messages:
        letters = [c for c in message.subject if c.isalpha()]
        capitals = sum(c.isupper() for c in letters)
        assert capitals <= len(letters) / 2, f"{name}: {message.subject!r} is mostly capitals"
        assert not re.search(r"[!?]{2,}|\$\$|FREE|URGENT", message.subject), message.subject


# -- what a spam filter looks at in the HTML --------------------------------------------


def test_every_text_colour_meets_wcag_aa_against_its_background(messages):
    seen: dict[tuple[str, str], str] = {}
    for name, _, message in messages:
        for run in Page.read(message.html).runs:
            pair = (run.color, run.background)
            if pair not in seen:
                seen[pair] = f"{name}: {run.text[:40]!r}"
    assert len(seen) >= 3, "the walk found the layout's colours"
    low = {
        f"{fg} on {bg} = {contrast(fg, bg):.2f}:1 ({where})": None
        for (fg, bg), where in seen.items()
        if contrast(fg, bg) < AA
    }
    assert list(low) == []


def test_no_tiny_or_hidden_text(messages):
    problems = set()
    for name, _, message in messages:
        for run in Page.read(message.html).runs:
            if run.font_px is not None and run.font_px < MIN_FONT_PX:
                problems.add(f"{name}: {run.font_px}px text {run.text[:30]!r}")
            if run.hidden:
                problems.add(f"{name}: hidden text {run.text[:30]!r} ({run.hidden})")
    assert sorted(problems) == []


def test_the_inspection_catches_what_it_is_for():
    """The checks above would see light grey on white, tiny and hidden text."""
    page = Page.read(
        '<body style="background-color: #ffffff"><p style="color: #cccccc">grey</p>'
        '<div style="display: none">hidden</div><span style="font-size: 1px">tiny</span>'
        '<table bgcolor="#111111"><tr><td style="color:#222">dark on dark</td></tr></table>'
        "</body>"
    )
    runs = {run.text: run for run in page.runs}
    assert contrast(runs["grey"].color, runs["grey"].background) < AA
    assert runs["hidden"].hidden == "display: none"
    assert runs["tiny"].font_px == 1.0
    assert contrast(runs["dark on dark"].color, runs["dark on dark"].background) < AA
    assert ARTIFACTS.search("Welcome to Mailbolt, Wei,!")
    assert ARTIFACTS.search("Hi , welcome")
    assert not ARTIFACTS.search("Welcome to Mailbolt, Chen! Questions? Just reply.")


# -- a small renderer of what the CSS says ------------------------------------------------


def contrast(fg: str, bg: str) -> float:
    """WCAG 2.x contrast ratio of two #rrggbb colours."""
    light, dark = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def luminance(color: str) -> float:
    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(color[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


NAMED = {"white": "#ffffff", "black": "#000000", "transparent": None}
VOID = {"meta", "br", "img", "hr", "link", "input", "col", "area", "base", "wbr", "source"}


def normalize_color(value: str) -> str | None:
    value = value.strip().lower().split("!")[0].strip()
    if value in NAMED:
        return NAMED[value]
    match = re.fullmatch(r"#([0-9a-f]{3}|[0-9a-f]{6})", value)
    if not match:
        match = re.search(r"#([0-9a-f]{6}|[0-9a-f]{3})\b", value)  # background: #fff url(...)
        if not match:
            return None
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return f"#{digits}"


def declarations(style: str) -> dict[str, str]:
    out = {}
    for item in style.split(";"):
        key, sep, value = item.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip().lower()
    return out


@dataclass
class Run:
    text: str
    color: str
    background: str
    font_px: float | None
    hidden: str


@dataclass
class Box:
    tag: str
    color: str
    background: str
    font_px: float | None
    hidden: str


class Page(HTMLParser):
    """Walks inlined HTML keeping the inherited colour, background, size and visibility."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack = [Box("root", "#000000", "#ffffff", 16.0, "")]
        self.runs: list[Run] = []
        self.shown: list[str] = []
        self.in_head = False

    @classmethod
    def read(cls, markup: str) -> Page:
        page = cls()
        page.feed(markup)
        page.close()
        return page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "head":
            self.in_head = True
        if tag in VOID:
            return
        parent = self.stack[-1]
        attributes = {k: v or "" for k, v in attrs}
        style = declarations(attributes.get("style", ""))
        color = normalize_color(style.get("color", "")) or parent.color
        background = (
            normalize_color(style.get("background-color", ""))
            or normalize_color(style.get("background", ""))
            or normalize_color(attributes.get("bgcolor", ""))
            or parent.background
        )
        font_px = parent.font_px
        size = style.get("font-size", "")
        if size.endswith("px"):
            font_px = float(size[:-2])
        elif size.endswith("pt"):
            font_px = float(size[:-2]) * 4 / 3
        hidden = parent.hidden
        for key, bad in (
            ("display", "none"),
            ("visibility", "hidden"),
            ("opacity", "0"),
            ("max-height", "0"),
            ("mso-hide", "all"),
        ):
            if style.get(key, "").split("!")[0].strip() == bad:
                hidden = hidden or f"{key}: {bad}"
        if "hidden" in attributes:
            hidden = hidden or "hidden attribute"
        self.stack.append(Box(tag, color, background, font_px, hidden))

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.in_head = False
        if tag in VOID:
            return
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if self.in_head:
            return
        box = self.stack[-1]
        hidden = box.hidden or ("font-size: 0" if box.font_px == 0 else "")
        if box.color == box.background:
            hidden = hidden or "text in its background colour"
        if not hidden:
            self.shown.append(data)
        if text:
            self.runs.append(Run(text, box.color, box.background, box.font_px, hidden))

    def visible_text(self) -> str:
        """What a reader sees, as one line (text split by tags is joined as shown)."""
        return " ".join("".join(self.shown).split())
