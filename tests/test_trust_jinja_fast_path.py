"""The renderer's fast path over Jinja internals behaves like ``Template.render``.

``bot.handlers.rendering.fast_render`` calls ``Template.new_context(shared=True)``,
``Template.root_render_func`` and ``Environment.concat``: internals Jinja does not
promise to keep. These tests pin exactly what we rely on, so a Jinja upgrade that
changes them fails here instead of in a campaign (design rule: a dependency's
private API is used only with a test that pins its behaviour).
"""

from __future__ import annotations

import inspect

import jinja2
import pytest

from bot.handlers import campaign
from bot.handlers.rendering import fast_render
from bot.handlers.template_compile import environment
from bot.wiring import build_deps
from tests.conftest import ROOT
from tests.test_trust_bundled_templates import COMMON

TEMPLATES = ROOT / "templates"


def _parts(settings) -> list[tuple[str, jinja2.Template, dict]]:
    """Every part (subject, HTML, text) of every bundled template, with real values."""
    deps = build_deps(settings.replace(public_base_url="https://mailbolt.example"))
    env = environment(TEMPLATES)
    parts = []
    for info in deps.catalogue.list():
        variables = campaign.message_variables(
            deps,
            "wei.chen@example.com",
            "Chen, Wei",
            {"team": "Mailbolt"},
            COMMON[info.name],
            7,
            info.category,
        )
        parts.append((f"{info.name} subject", env.from_string(info.subject), variables))
        for filename in filter(None, (info.html, info.text)):
            parts.append((f"{info.name} {filename}", env.get_template(filename), variables))
    assert len(parts) >= 7  # three templates, each with subject, HTML and text
    return parts


def test_fast_path_equals_template_render_for_every_bundled_template(settings):
    for name, template, variables in _parts(settings):
        expected = template.render(variables)
        assert fast_render(template, dict(template.globals), variables) == expected, name
        # The snapshot of globals is reused across recipients: a second render is the same.
        snapshot = dict(template.globals)
        fast_render(template, snapshot, variables)
        assert fast_render(template, snapshot, variables) == expected, name


def test_fast_path_raises_what_the_slow_path_explains():
    """Errors must surface (the renderer then renders the documented way to name the line)."""
    env = environment(TEMPLATES)
    template = env.from_string("Hi {{ first_name }}")
    with pytest.raises(jinja2.UndefinedError):
        fast_render(template, dict(template.globals), {})
    with pytest.raises(jinja2.UndefinedError):
        template.render({})


def test_the_jinja_internals_exist_with_the_signatures_we_call():
    new_context = inspect.signature(jinja2.Template.new_context)
    assert list(new_context.parameters)[:3] == ["self", "vars", "shared"]
    assert new_context.parameters["shared"].default is False

    template = jinja2.Environment(autoescape=True).from_string("{{ a }}-{{ b }}")
    render_func = template.root_render_func
    assert callable(render_func)
    params = list(inspect.signature(render_func).parameters.values())
    assert params[0].name == "context"  # called with the context alone
    assert all(p.default is not inspect.Parameter.empty for p in params[1:])
    context = template.new_context({"a": 1, "b": 2}, shared=True)
    assert isinstance(context, jinja2.runtime.Context)
    chunks = render_func(context)
    assert inspect.isgenerator(chunks)  # an iterable of strings, joined by concat
    assert template.environment.concat(chunks) == "1-2"
    assert template.environment.concat(["x", "y"]) == "xy"
    # shared=True: the globals are not merged in again, only what we pass is seen.
    template.globals["b"] = "global"
    alone = template.new_context({"a": 1}, shared=True)
    assert template.environment.concat(render_func(alone)) == "1-"
