"""A real templates folder with two workspaces' own templates, for the
``test_templates_workspace_*`` tests.

The shared folder is a copy of the bundled templates. ``T0AAA/`` has its own
``base.html.j2`` (a layout marked ``A-LAYOUT``), its own ``welcome`` (replacing the
shared one) and ``a_offer`` (A's only). ``T0BBB/`` has ``b_offer`` (B's only).
"""

from __future__ import annotations

import shutil
from pathlib import Path

BUNDLED = Path(__file__).resolve().parent.parent / "templates"
TEAM_A = "T0AAA"
TEAM_B = "T0BBB"

A_LAYOUT = "A-LAYOUT"
A_WELCOME = "A-WELCOME"
A_OFFER = "A-OFFER"
B_OFFER = "B-OFFER"

_A_BASE = (
    "<html><head><title>{% block title %}{% endblock %}</title></head><body>"
    f"<p>{A_LAYOUT}</p>{{% block content %}}{{% endblock %}}"
    "{% block footer_note %}{% endblock %}"
    "{% if unsubscribe_url %}<p>{{ postal_address }}</p>"
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>{% endif %}'
    "</body></html>"
)
_OWN_PAGE = (
    '{{% extends "base.html.j2" %}}'
    "{{% block content %}}<p>{mark} {{{{ headline }}}}</p>{{% endblock %}}"
)


def _entry(name: str, subject: str, html: str, *, required: str = '["headline"]') -> str:
    return (
        f'[{name}]\ndescription = "{name} of the workspace"\ncategory = "transactional"\n'
        f'subject = "{subject}"\nrequired = {required}\nhtml = "{html}"\n'
    )


def templates_with_workspaces(root: Path) -> Path:
    """``root/templates``: the bundled templates plus ``T0AAA/`` and ``T0BBB/``."""
    folder = root / "templates"
    shutil.copytree(BUNDLED, folder)
    a = folder / TEAM_A
    a.mkdir()
    (a / "base.html.j2").write_text(_A_BASE, encoding="utf-8")
    (a / "welcome.html.j2").write_text(_OWN_PAGE.format(mark=A_WELCOME), encoding="utf-8")
    (a / "a_offer.html.j2").write_text(_OWN_PAGE.format(mark=A_OFFER), encoding="utf-8")
    (a / "catalogue.toml").write_text(
        _entry("welcome", "A welcome: {{ headline }}", "welcome.html.j2")
        + _entry("a_offer", "A offer: {{ headline }}", "a_offer.html.j2"),
        encoding="utf-8",
    )
    b = folder / TEAM_B
    b.mkdir()
    (b / "b_offer.html.j2").write_text(_OWN_PAGE.format(mark=B_OFFER), encoding="utf-8")
    (b / "catalogue.toml").write_text(
        _entry("b_offer", "B offer: {{ headline }}", "b_offer.html.j2"), encoding="utf-8"
    )
    return folder
