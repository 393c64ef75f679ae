"""The README's command list and settings table cannot drift from the code."""

from __future__ import annotations

from bot.__main__ import build_parser
from bot.cli.docs import _subcommands, blocks, render
from bot.config import SPECS
from tests.conftest import ROOT

README = ROOT / "README.md"


def test_readme_generated_blocks_match_the_code():
    text = README.read_text(encoding="utf-8")
    assert render(text) == text, (
        "README.md is out of date with the parser or SPECS: "
        "run `python -m bot.cli.docs --write README.md`"
    )


def test_every_command_and_setting_is_in_the_readme():
    text = README.read_text(encoding="utf-8")
    for generated in blocks().values():
        assert generated in text
    for spec in SPECS:
        assert f"| `{spec.env}` |" in text
    names = {sub.prog.removeprefix("python -m bot ") for sub, _ in _subcommands(build_parser())}
    for name in names:
        assert f"python -m bot {name}" in text
    assert {"send", "status", "config", "stats", "unsubscribes add"} <= names


def test_every_setting_says_what_it_allows():
    assert [spec.env for spec in SPECS if not spec.allowed] == []
