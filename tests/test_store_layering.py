"""The handler layer sees the store only through ``bot.ports`` (design.md's rule)."""

from __future__ import annotations

import ast

from tests.conftest import ROOT


def imported_modules(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_no_handler_imports_a_concrete_store():
    offenders = {
        path.name: sorted(
            m for m in imported_modules(path.read_text()) if m.startswith("bot.store")
        )
        for path in (ROOT / "bot" / "handlers").glob("*.py")
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}
    assert {"bot.store"} & imported_modules((ROOT / "bot" / "ports.py").read_text()) == set()
