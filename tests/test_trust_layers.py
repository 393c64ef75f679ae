"""The mail adapters only send or read: they run no use case and write no store.

Read from the source (``ast``), so a lazy import inside a function counts too.
The one handler module an adapter may use is ``bot.handlers.quota``, where the
quota costs the pacer spends live.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

ALLOWED_FROM_HANDLERS = {"bot.handlers.quota"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_mail_adapters_import_no_use_case_and_no_store() -> None:
    for path in sorted((ROOT / "bot" / "mail").glob("*.py")):
        for name in _imports(path):
            above = name.startswith(("bot.handlers", "bot.store", "bot.slack", "bot.wiring"))
            assert not above or name in ALLOWED_FROM_HANDLERS, f"{path.name} imports {name}"
