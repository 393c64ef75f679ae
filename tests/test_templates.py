"""The template catalogue and renderer, on the bundled templates and on real broken files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.errors import TemplateError
from bot.handlers.template_compile import paragraphs
from bot.handlers.templates import SYSTEM_VARIABLES, TemplateCatalogue

BUNDLED = Path(__file__).resolve().parent.parent / "templates"

SYSTEM = {
    "email": "bob@example.com",
    "name": "Bob Stone",
    "first_name": "Bob",
    "from_name": "Acme Team",
    "sender_address": "team@acme.example",
    "postal_address": "Acme Inc., 1 Main Street, Springfield",
    "unsubscribe_url": "https://mail.acme.example/unsubscribe?t=abc&c=7",
}

SAMPLES = {
    "welcome": {"team": "Acme", "start_url": "https://acme.example/start"},
    "newsletter": {
        "headline": "Our autumn update",
        "body": "We shipped three things.\n\nHere is what changed.",
    },
    "event_invitation": {
        "event_name": "Launch party",
        "event_date": "Friday 5 December, 18:00",
        "event_place": "Rooftop, Building 2",
        "rsvp_url": "https://acme.example/rsvp",
    },
}

WHO = "line 4 (bob@example.com)"


def variables(template: str, **extra: str) -> dict[str, str]:
    """System variables as the sender supplies them, plus the template's samples."""
    base = dict(SYSTEM)
    if template == "welcome":
        base["unsubscribe_url"] = ""
    return {**base, **SAMPLES.get(template, {}), **extra}


def make_catalogue(tmp_path: Path, entries: str, files: dict[str, str]) -> TemplateCatalogue:
    """A real templates folder: catalogue.toml plus the given template files."""
    (tmp_path / "catalogue.toml").write_text(entries, encoding="utf-8")
    for name, source in files.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    return TemplateCatalogue(tmp_path)


def entry(name: str, *, category: str = "transactional", subject: str = "Hi", **keys: str) -> str:
    lines = [
        f"[{name}]",
        'description = "test"',
        f'category = "{category}"',
        f"subject = {subject!r}",
        f'html = "{keys.pop("html", name + ".html.j2")}"',
    ]
    lines += [f"{key} = {value}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"


PAGE = (
    "<html><head><style>p {{ color: #111111; }}"
    " @media (max-width: 600px) {{ p {{ color: #000000 !important; }} }}</style></head>"
    '<body><!-- preheader:start --><div class="preheader">Peek text</div>'
    "<!-- preheader:end -->{body}</body></html>"
)


# -- the catalogue -----------------------------------------------------------------


def test_bundled_catalogue_lists_templates_sorted_with_their_metadata():
    infos = TemplateCatalogue(BUNDLED).list()

    assert [i.name for i in infos] == ["event_invitation", "newsletter", "welcome"]
    by_name = {i.name: i for i in infos}
    assert by_name["welcome"].category == "transactional"
    assert by_name["newsletter"].category == "marketing"
    assert by_name["event_invitation"].category == "marketing"
    assert by_name["welcome"].required == ("team", "start_url")
    assert by_name["welcome"].text == "welcome.txt.j2"
    assert all(not set(i.required) & SYSTEM_VARIABLES for i in infos)


def test_unknown_template_is_named_and_available_ones_listed():
    catalogue = TemplateCatalogue(BUNDLED)

    with pytest.raises(TemplateError) as err:
        catalogue.get("welcom")

    assert err.value.field == "template"
    assert "'welcom'" in str(err.value)
    assert "event_invitation, newsletter, welcome" in str(err.value)


@pytest.mark.parametrize(
    "name", ["../x", "/etc/passwd", "../templates/welcome", "welcome.html.j2", "base", ""]
)
def test_names_that_look_like_paths_or_files_are_unknown(name):
    catalogue = TemplateCatalogue(BUNDLED)

    with pytest.raises(TemplateError, match="There is no template called"):
        catalogue.renderer(name)


def test_missing_catalogue_says_where_it_looked(tmp_path):
    with pytest.raises(TemplateError, match=r"catalogue\.toml does not exist.*TEMPLATES_DIR"):
        TemplateCatalogue(tmp_path)


def test_malformed_toml_is_reported_with_its_position(tmp_path):
    (tmp_path / "catalogue.toml").write_text("[welcome\ncategory = 1\n", encoding="utf-8")

    with pytest.raises(TemplateError, match=r"not valid TOML.*line 1"):
        TemplateCatalogue(tmp_path)


def test_every_catalogue_problem_is_reported_at_once(tmp_path):
    entries = (
        entry("a", category="spam")
        + entry("b", html="missing.html.j2")
        + entry("c", html="../etc/passwd.html.j2")
        + entry("d", html="d.txt.j2")
        + entry("e", required='["email", "company"]')
        + '[f]\ndescription = "x"\ncategory = "marketing"\nsubject = "x"\nhtml = "a.html.j2"\n'
        + 'requires = ["x"]\n'
    )
    files = {"a.html.j2": "<p>a</p>", "d.txt.j2": "d", "e.html.j2": "<p>e</p>"}

    with pytest.raises(TemplateError) as err:
        make_catalogue(tmp_path, entries, files)

    details = "\n".join(err.value.details)
    assert "[a]: category is 'spam'" in details
    assert "[b]: html file missing.html.j2 does not exist" in details
    assert "[c]: html = '../etc/passwd.html.j2' must be a file name, not a path" in details
    assert "[d]: html = 'd.txt.j2' must end in .html.j2" in details
    assert "[e]: 'email' is always supplied by the system" in details
    assert "[f]: unknown key(s) requires" in details
    assert len(err.value.details) == 6


# -- compile-time checks ------------------------------------------------------------


def test_html_syntax_error_names_file_and_line_when_the_renderer_is_made(tmp_path):
    catalogue = make_catalogue(
        tmp_path, entry("broken"), {"broken.html.j2": "<p>\nfine\n<p>{{ name }</p>\n"}
    )

    with pytest.raises(TemplateError) as err:
        catalogue.renderer("broken")

    assert "broken.html.j2 line 3" in str(err.value)
    assert err.value.line == 3
    assert err.value.field == "template"


def test_syntax_error_in_the_parent_layout_is_found_before_any_render(tmp_path):
    catalogue = make_catalogue(
        tmp_path,
        entry("child"),
        {
            "layout.html.j2": "<html>\n<body>\n{% block content %}{% endblok %}\n</body>",
            "child.html.j2": '{% extends "layout.html.j2" %}{% block content %}x{% endblock %}',
        },
    )

    with pytest.raises(TemplateError, match=r"layout\.html\.j2 line 3"):
        catalogue.renderer("child")


def test_text_syntax_error_and_missing_parent_are_reported(tmp_path):
    catalogue = make_catalogue(
        tmp_path,
        entry("t", text='"t.txt.j2"') + entry("orphan"),
        {
            "t.html.j2": "<p>ok</p>",
            "t.txt.j2": "line one\n{% for x in %}\n",
            "orphan.html.j2": '{% extends "gone.html.j2" %}',
        },
    )

    with pytest.raises(TemplateError, match=r"t\.txt\.j2 line 2"):
        catalogue.renderer("t")
    with pytest.raises(TemplateError, match=r"uses 'gone\.html\.j2', which is not a file"):
        catalogue.renderer("orphan")


def test_subject_syntax_error_names_the_subject(tmp_path):
    catalogue = make_catalogue(
        tmp_path, entry("s", subject="Hi {{ name }"), {"s.html.j2": "<p>x</p>"}
    )

    with pytest.raises(
        TemplateError, match=r"subject of template 's' has a syntax error on line 1"
    ):
        catalogue.renderer("s")


def test_marketing_template_without_footer_is_refused(tmp_path):
    catalogue = make_catalogue(
        tmp_path,
        entry("promo", category="marketing", text='"promo.txt.j2"'),
        {
            "promo.html.j2": "<p>{{ postal_address }} <a href='{{ unsubscribe_url }}'>u</a></p>",
            "promo.txt.j2": "Buy now. {{ postal_address }}",
        },
    )

    with pytest.raises(TemplateError, match=r"never shows \{\{ unsubscribe_url \}\} in its text"):
        catalogue.renderer("promo")


def test_renderer_keeps_its_compiled_snapshot_when_files_change(tmp_path):
    catalogue = make_catalogue(
        tmp_path,
        entry("snap", subject="Hi {{ first_name }}"),
        {
            "layout.html.j2": "<html><body>{% block content %}{% endblock %}</body></html>",
            "snap.html.j2": '{% extends "layout.html.j2" %}{% block content %}v1{% endblock %}',
        },
    )
    renderer = catalogue.renderer("snap")
    (tmp_path / "snap.html.j2").write_text("v2 {{ broken", encoding="utf-8")
    (tmp_path / "layout.html.j2").unlink()

    html = renderer.render(variables("snap"), WHO).html

    assert "v1" in html
    with pytest.raises(TemplateError):
        catalogue.renderer("snap")


# -- rendering -------------------------------------------------------------------


@pytest.fixture
def card(tmp_path) -> TemplateCatalogue:
    """One template with no text file, a subject and a body that echo variables."""
    body = (
        '<p>Hello {{ name }}, from {{ company }}.</p><a href="{{ link }}">Open the docs</a>'
        "<table><tr><td>When</td><td>Friday</td></tr></table><p>Bye,<br>Ann</p>"
    )
    return make_catalogue(
        tmp_path,
        entry("card", subject="Welcome {{ name }} to {{ company }}", required='["company"]'),
        {"card.html.j2": PAGE.format(body=body)},
    )


def card_vars(**extra: str) -> dict[str, str]:
    return variables("card", company="Acme", link="https://docs.example/start?a=1&b=2", **extra)


def test_missing_required_variable_names_recipient_and_variable(card):
    values = card_vars()
    del values["company"]

    with pytest.raises(TemplateError) as err:
        card.renderer("card").render(values, WHO)

    assert str(err.value).startswith(
        "line 4 (bob@example.com): the template 'card' needs the variable 'company', "
        "which this recipient does not have"
    )
    assert err.value.field == "recipients"


def test_undefined_variable_in_the_body_names_it_and_where_it_is_used(card):
    values = card_vars()
    del values["link"]

    with pytest.raises(TemplateError) as err:
        card.renderer("card").render(values, WHO)

    message = str(err.value)
    assert "line 4 (bob@example.com)" in message
    assert "needs the variable 'link'" in message
    assert "card.html.j2 line 1" in message


def test_html_is_escaped_but_subject_and_text_are_not(tmp_path):
    catalogue = make_catalogue(
        tmp_path,
        entry("esc", subject="Hi {{ name }}", text='"esc.txt.j2"'),
        {"esc.html.j2": "<p>{{ name }}</p>", "esc.txt.j2": "Hi {{ name }}"},
    )
    evil = "<script>alert(1)</script> & Co"

    rendered = catalogue.renderer("esc").render(variables("esc", name=evil), WHO)

    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in rendered.html
    assert "<script>" not in rendered.html
    assert rendered.subject == f"Hi {evil}"
    assert rendered.text == f"Hi {evil}\n"


def test_css_is_inlined_and_media_queries_kept(card):
    html = card.renderer("card").render(card_vars(), WHO).html

    assert re.search(r'<p style="color: #111111;?">Hello', html)
    assert "@media (max-width: 600px)" in html
    assert "p { color: #111111; }" not in html


def test_text_is_converted_from_html_when_there_is_no_text_file(card):
    text = card.renderer("card").render(card_vars(), WHO).text

    assert "Hello Bob Stone, from Acme." in text
    assert "[Open the docs](https://docs.example/start?a=1&b=2)" in text
    assert "When Friday\n" in text
    assert "Bye,\nAnn" in text
    assert "Peek text" not in text
    assert "<" not in text and "color" not in text


@pytest.mark.parametrize("bad", ["Bob\r\nBcc: eve@example.com", "Bob\nStone", "Bob\u2028", "B\x00"])
def test_subject_with_line_break_or_control_character_is_rejected(card, bad):
    with pytest.raises(TemplateError) as err:
        card.renderer("card").render(card_vars(name=bad), WHO)

    assert "line 4 (bob@example.com)" in str(err.value)
    assert "subjects must be one line" in str(err.value)
    assert err.value.field == "subject"


def test_subject_with_an_encoded_word_is_rejected(card):
    with pytest.raises(TemplateError, match="encoded-word"):
        card.renderer("card").render(card_vars(name="=?UTF-8?Q?=0A?=Bcc: eve@x.com"), WHO)


def test_empty_subject_is_rejected(tmp_path):
    catalogue = make_catalogue(
        tmp_path, entry("blank", subject="{{ first_name }}"), {"blank.html.j2": "<p>x</p>"}
    )

    with pytest.raises(TemplateError, match=r"subject .* came out empty"):
        catalogue.renderer("blank").render(variables("blank", first_name="  "), WHO)


def test_sandbox_blocks_access_to_python_internals(tmp_path):
    catalogue = make_catalogue(
        tmp_path,
        entry("evil"),
        {"evil.html.j2": "<p>{{ ''.__class__.__mro__[1].__subclasses__() }}</p>"},
    )

    with pytest.raises(TemplateError) as err:
        catalogue.renderer("evil").render(variables("evil"), WHO)

    assert "sandbox forbids" in str(err.value)
    assert "__class__" in str(err.value)


def test_subject_override_replaces_the_catalogue_subject(card):
    renderer = card.renderer("card", subject_override="  News for {{ first_name | upper }} ")

    assert renderer.info.subject == "News for {{ first_name | upper }}"
    assert renderer.render(card_vars(), WHO).subject == "News for BOB"
    assert card.renderer("card", subject_override="  ").info.subject.startswith("Welcome")


@pytest.mark.parametrize(
    "override",
    [
        "{{ 'x' * 999999999 }}",
        "{% for i in range(99999) %}x{% endfor %}",
        "{{ name.__class__ }}",
        "{{ name | center(999999999) }}",
        "{{ lipsum() }}",
    ],
)
def test_subject_override_may_only_use_variables_and_simple_filters(card, override):
    with pytest.raises(TemplateError) as err:
        card.renderer("card", subject_override=override)

    assert err.value.field == "subject"


def test_variables_used_lists_subject_layout_body_and_text_variables():
    used = TemplateCatalogue(BUNDLED).renderer("welcome").variables_used()

    assert {"team", "start_url", "first_name", "email", "from_name"} <= used
    assert "postal_address" in used  # from the base layout's footer
    assert "paragraph" not in used


def test_variables_used_leaves_out_imported_macros(tmp_path):
    catalogue = make_catalogue(
        tmp_path,
        entry("m"),
        {
            "parts.html.j2": "{% macro shout(text) %}<b>{{ text | upper }}</b>{% endmacro %}",
            "layout.html.j2": "<html><body>{% block content %}{% endblock %}</body></html>",
            "m.html.j2": '{% extends "layout.html.j2" %}{% from "parts.html.j2" import shout %}'
            "{% block content %}{{ shout(team) }}{% endblock %}",
        },
    )
    renderer = catalogue.renderer("m")

    assert renderer.variables_used() == {"team"}
    assert "<b>ACME</b>" in renderer.render(variables("m", team="Acme"), WHO).html


def test_paragraphs_filter_splits_on_blank_lines():
    assert paragraphs("One\nline two\n\n  \n\nThree \r\n\r\nFour") == [
        "One\nline two",
        "Three",
        "Four",
    ]


# -- the bundled templates ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_bundled_template_renders_with_its_sample_variables(name):
    catalogue = TemplateCatalogue(BUNDLED)
    renderer = catalogue.renderer(name)

    rendered = renderer.render(variables(name), WHO)

    assert set(renderer.info.required) == set(SAMPLES[name])
    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert '<html lang="en"' in rendered.html
    assert 'style="' in rendered.html
    assert "Bob" in rendered.text and "{{" not in rendered.text
    for value in SAMPLES[name].values():
        first_line = value.split("\n")[0]
        assert first_line in rendered.text
        assert first_line.replace("&", "&amp;") in rendered.html


@pytest.mark.parametrize("name", ["newsletter", "event_invitation"])
def test_marketing_templates_show_postal_address_and_unsubscribe_link_in_both_parts(name):
    rendered = TemplateCatalogue(BUNDLED).renderer(name).render(variables(name), WHO)

    assert SYSTEM["postal_address"] in rendered.html
    assert SYSTEM["postal_address"] in rendered.text
    assert 'href="https://mail.acme.example/unsubscribe?t=abc&amp;c=7"' in rendered.html
    assert f"Unsubscribe: {SYSTEM['unsubscribe_url']}" in rendered.text


def test_marketing_template_refuses_to_render_without_an_unsubscribe_link():
    renderer = TemplateCatalogue(BUNDLED).renderer("newsletter")

    with pytest.raises(TemplateError, match="needs a non-empty 'unsubscribe_url'"):
        renderer.render(variables("newsletter", unsubscribe_url=""), WHO)


def test_transactional_welcome_has_no_unsubscribe_link_and_falls_back_to_there():
    rendered = (
        TemplateCatalogue(BUNDLED)
        .renderer("welcome")
        .render(variables("welcome", first_name="", name=""), WHO)
    )

    assert rendered.subject == "Welcome to Acme, there!"
    assert "Unsubscribe" not in rendered.html
    assert "Welcome to Acme, there!" in rendered.text
    assert 'href="https://acme.example/start"' in rendered.html


def test_newsletter_splits_body_into_paragraphs_and_shows_optional_button():
    values = variables("newsletter", cta_url="https://acme.example/blog", cta_label="Read it")

    rendered = TemplateCatalogue(BUNDLED).renderer("newsletter").render(values, WHO)

    assert re.search(r"<p[^>]*>We shipped three things\.</p>", rendered.html)
    assert re.search(r"<p[^>]*>Here is what changed\.</p>", rendered.html)
    assert re.search(r'<a [^>]*href="https://acme.example/blog"[^>]*>Read it</a>', rendered.html)
    assert "Read it: https://acme.example/blog" in rendered.text
