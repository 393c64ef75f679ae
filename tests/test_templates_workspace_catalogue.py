"""Templates per workspace: ``TEMPLATES_DIR/<TEAM_ID>/`` holds a workspace's own,
seen by that workspace only, on top of the shared ones (real folders, real Jinja)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import TemplateError
from bot.handlers.templates import TemplateCatalogue
from tests.templates_workspace_folders import (
    A_LAYOUT,
    A_OFFER,
    A_WELCOME,
    TEAM_A,
    TEAM_B,
    templates_with_workspaces,
)
from tests.test_templates import variables

SHARED = {"event_invitation", "newsletter", "welcome"}
WHO = "line 2 (bob@example.com)"


@pytest.fixture
def catalogue(tmp_path: Path) -> TemplateCatalogue:
    return TemplateCatalogue(templates_with_workspaces(tmp_path))


def names(catalogue: TemplateCatalogue) -> set[str]:
    return {info.name for info in catalogue.list()}


def test_a_workspace_sees_the_shared_templates_and_its_own(catalogue):
    assert names(catalogue.for_team(TEAM_A)) == SHARED | {"a_offer"}
    assert names(catalogue.for_team(TEAM_B)) == SHARED | {"b_offer"}
    assert catalogue.for_team(TEAM_A).own == {"welcome", "a_offer"}


def test_the_shared_catalogue_and_a_workspace_without_a_folder_see_the_shared_only(catalogue):
    assert names(catalogue) == SHARED
    assert names(catalogue.for_team("")) == SHARED
    assert names(catalogue.for_team(None)) == SHARED
    assert names(catalogue.for_team("T0CCC")) == SHARED


def test_a_workspace_folder_is_never_listed_as_a_template(catalogue):
    for team in ("", TEAM_A, TEAM_B):
        listed = names(catalogue.for_team(team))
        assert TEAM_A not in listed and TEAM_B not in listed


def test_another_workspaces_template_is_unknown_like_one_that_does_not_exist(catalogue):
    with pytest.raises(TemplateError) as theirs:
        catalogue.for_team(TEAM_B).renderer("a_offer")
    with pytest.raises(TemplateError) as nobody:
        catalogue.for_team(TEAM_B).renderer("z_offer")
    assert str(theirs.value) == str(nobody.value).replace("z_offer", "a_offer")
    assert "a_offer" not in str(theirs.value).split("Available templates:")[1]
    with pytest.raises(TemplateError):
        catalogue.get("a_offer")  # the shared catalogue does not know it either


def test_a_workspaces_own_template_replaces_the_shared_one_of_that_name(catalogue):
    values = {**variables("welcome"), "headline": "Hello"}
    mine = catalogue.for_team(TEAM_A).renderer("welcome").render(values, WHO)
    assert A_WELCOME in mine.html and mine.subject == "A welcome: Hello"
    theirs = catalogue.for_team(TEAM_B).renderer("welcome").render(variables("welcome"), WHO)
    assert A_WELCOME not in theirs.html and theirs.subject.startswith("Welcome to Acme")


def test_extends_finds_the_workspaces_own_layout_first_also_for_shared_templates(catalogue):
    values = {**variables("newsletter")}
    a = catalogue.for_team(TEAM_A).renderer("newsletter").render(values, WHO)
    b = catalogue.for_team(TEAM_B).renderer("newsletter").render(values, WHO)
    assert A_LAYOUT in a.html
    assert A_LAYOUT not in b.html
    own = catalogue.for_team(TEAM_A).renderer("a_offer")
    assert A_OFFER in own.render({**variables("welcome"), "headline": "x"}, WHO).html


def test_a_template_cannot_reach_another_workspaces_files_by_path(tmp_path):
    folder = templates_with_workspaces(tmp_path)
    for reach in (f"{TEAM_B}/b_offer.html.j2", f"./{TEAM_B}/b_offer.html.j2"):
        (folder / TEAM_A / "peek.html.j2").write_text(f'{{% include "{reach}" %}}')
        (folder / TEAM_A / "catalogue.toml").write_text(
            '[peek]\ndescription = "d"\ncategory = "transactional"\nsubject = "s"\n'
            'html = "peek.html.j2"\n'
        )
        with pytest.raises(TemplateError, match="not a file in the templates folder"):
            TemplateCatalogue(folder).for_team(TEAM_A).renderer("peek")
    # Nor can a shared template, whichever workspace renders it.
    (folder / "peek.html.j2").write_text(f'{{% include "{TEAM_B}/b_offer.html.j2" %}}')
    (folder / "catalogue.toml").write_text(
        (folder / "catalogue.toml").read_text()
        + '[peek2]\ndescription = "d"\ncategory = "transactional"\nsubject = "s"\n'
        'html = "peek.html.j2"\n'
    )
    for team in ("", TEAM_B):
        with pytest.raises(TemplateError, match="not a file in the templates folder"):
            TemplateCatalogue(folder).for_team(team).renderer("peek2")


def test_two_workspaces_same_named_files_never_mix_in_the_compiled_cache(tmp_path):
    """Both have their own ``base.html.j2`` and ``welcome``; compiled one after the
    other in one process, each renders its own."""
    folder = templates_with_workspaces(tmp_path)
    b = folder / TEAM_B
    (b / "base.html.j2").write_text(
        (folder / TEAM_A / "base.html.j2").read_text().replace(A_LAYOUT, "B-LAYOUT")
    )
    (b / "welcome.html.j2").write_text(
        (folder / TEAM_A / "welcome.html.j2").read_text().replace(A_WELCOME, "B-WELCOME")
    )
    (b / "catalogue.toml").write_text(
        (b / "catalogue.toml").read_text()
        + (folder / TEAM_A / "catalogue.toml").read_text().split("[a_offer]")[0]
    )
    catalogue = TemplateCatalogue(folder)
    values = {**variables("welcome"), "headline": "x"}
    for _ in range(2):
        a = catalogue.for_team(TEAM_A).renderer("welcome").render(values, WHO).html
        b_html = catalogue.for_team(TEAM_B).renderer("welcome").render(values, WHO).html
        assert A_WELCOME in a and A_LAYOUT in a and "B-" not in a
        assert "B-WELCOME" in b_html and "B-LAYOUT" in b_html and A_LAYOUT not in b_html


def test_a_workspace_folder_with_only_a_layout_needs_no_catalogue(tmp_path):
    folder = templates_with_workspaces(tmp_path)
    (folder / TEAM_B / "catalogue.toml").unlink()
    (folder / TEAM_B / "base.html.j2").write_text(
        (folder / TEAM_A / "base.html.j2").read_text().replace(A_LAYOUT, "B-LAYOUT")
    )
    catalogue = TemplateCatalogue(folder).for_team(TEAM_B)
    assert names(catalogue) == SHARED
    assert "B-LAYOUT" in catalogue.renderer("welcome").render(variables("welcome"), WHO).html


def test_broken_workspace_catalogues_are_all_named_when_the_catalogue_is_loaded(tmp_path):
    """At load (``serve``'s start, any command), not when a person opens the form."""
    folder = templates_with_workspaces(tmp_path)
    (folder / TEAM_B / "catalogue.toml").write_text(
        '[b_offer]\ndescription = "d"\ncategory = "promo"\nsubject = "s"\nhtml = "nope.html.j2"\n'
    )
    (folder / TEAM_A / "catalogue.toml").write_text("[a_offer\n")
    with pytest.raises(TemplateError) as error:
        TemplateCatalogue(folder)
    assert "category is 'promo'" in str(error.value)
    assert "nope.html.j2 does not exist" in str(error.value)
    assert str(folder / TEAM_B / "catalogue.toml") in str(error.value)
    assert f"{folder / TEAM_A / 'catalogue.toml'} is not valid TOML" in str(error.value)
    (folder / TEAM_A / "catalogue.toml").unlink()
    (folder / TEAM_B / "catalogue.toml").unlink()
    assert names(TemplateCatalogue(folder).for_team(TEAM_B)) == SHARED


def test_names_not_shaped_like_a_team_id_are_never_made_into_a_folder(tmp_path):
    folder = templates_with_workspaces(tmp_path)
    catalogue = TemplateCatalogue(folder)
    (folder / "notes").mkdir()  # not a workspace's: never read as a catalogue
    catalogue = TemplateCatalogue(folder)
    for team in ("../T0AAA", "t0aaa", "T0AAA/", "..", "/etc", "notes"):
        assert catalogue.for_team(team) is catalogue


def test_the_workspace_catalogue_is_kept(catalogue):
    assert catalogue.for_team(TEAM_A) is catalogue.for_team(TEAM_A)
    assert catalogue.for_team(TEAM_A).for_team(TEAM_B) is catalogue.for_team(TEAM_B)


def test_file_path_is_the_workspace_file_first(catalogue):
    a = catalogue.for_team(TEAM_A)
    assert a.file_path("welcome.html.j2") == catalogue.templates_dir / TEAM_A / "welcome.html.j2"
    assert a.file_path("newsletter.html.j2") == catalogue.templates_dir / "newsletter.html.j2"
    assert catalogue.file_path("a_offer.html.j2") is None
