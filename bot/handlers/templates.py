"""The template catalogue: which templates exist and what each one is.

This module owns ``catalogue.toml``: reading and validating it (every problem
named at once), listing templates for pickers, and handing out a ``Renderer``
(``bot.handlers.rendering``) for one template. Template names are only ever
catalogue keys, never paths.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import TemplateError
from bot.handlers.values import SYSTEM_VARIABLES
from bot.models import TemplateInfo

if TYPE_CHECKING:
    import css_inline

    from bot.handlers.rendering import Renderer

# SYSTEM_VARIABLES (declared in bot.handlers.values) are supplied to every render by
# the sender; a catalogue's ``required`` lists only the rest. ``unsubscribe_url``
# is the empty string for transactional templates.

CATEGORIES = ("transactional", "marketing")
CATALOGUE_FILE = "catalogue.toml"
HTML_SUFFIX = ".html.j2"
TEXT_SUFFIX = ".txt.j2"

_CATALOGUE_KEYS = frozenset({"description", "category", "subject", "required", "html", "text"})
_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class TemplateCatalogue:
    """The templates listed in ``catalogue.toml``, validated once when loaded.

    The catalogue file is read at construction; template files are (re)read each
    time a renderer is created, so an edited template takes effect on the next
    campaign without a restart.
    """

    def __init__(self, templates_dir: Path):
        self.templates_dir = Path(templates_dir)
        self._templates = _load_catalogue(self.templates_dir)
        self._inliner: css_inline.CSSInliner | None = None

    def list(self) -> builtins.list[TemplateInfo]:
        """Every template, sorted by name (for pickers and ``templates`` listings)."""
        return [self._templates[name] for name in sorted(self._templates)]

    def get(self, name: str) -> TemplateInfo:
        """The template called ``name``; anything else, including a path, is unknown."""
        info = self._templates.get(name)
        if info is None:
            shown = name if len(name) <= 60 else name[:57] + "…"
            available = ", ".join(sorted(self._templates))
            raise TemplateError(
                f"There is no template called {shown!r}. Available templates: {available}.",
                field="template",
            )
        return info

    def renderer(self, name: str, subject_override: str | None = None) -> Renderer:
        """Compile template ``name`` once for a whole campaign.

        ``subject_override`` (from the Slack form or the CLI) replaces the catalogue
        subject; a blank one means "use the catalogue subject". Raises
        ``TemplateError`` for any syntax error, missing file or missing marketing
        footer, before a single message is rendered.
        """
        info = self.get(name)
        override = (subject_override or "").strip()
        if override:
            info = dataclasses.replace(info, subject=override)
        # Imported here: listing templates (``python -m bot templates``, pickers) needs
        # neither Jinja nor the CSS inliner, and starts faster without them.
        import css_inline

        from bot.handlers.rendering import Renderer

        if self._inliner is None:
            # One inliner for every message: building it per message would be wasted
            # work. keep_at_rules keeps the @media rules (they cannot be inlined) in
            # <head>; no remote stylesheets, so rendering never touches the network.
            self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        return Renderer(info, self.templates_dir, self._inliner, user_subject=bool(override))


def _load_catalogue(templates_dir: Path) -> dict[str, TemplateInfo]:
    path = templates_dir / CATALOGUE_FILE
    if not path.is_file():
        raise TemplateError(
            f"The template catalogue {path} does not exist. Set TEMPLATES_DIR to the folder "
            f"that holds {CATALOGUE_FILE} (see templates/README.md).",
            field="template",
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path} is not valid TOML: {exc}", field="template") from exc
    problems: builtins.list[str] = []
    templates: dict[str, TemplateInfo] = {}
    for name, entry in data.items():
        info = _catalogue_entry(templates_dir, name, entry, problems)
        if info is not None:
            templates[name] = info
    if not data:
        problems.append("it lists no templates")
    if problems:
        raise TemplateError(
            f"{path} has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems),
            field="template",
            details=problems,
        )
    return templates


def _catalogue_entry(
    templates_dir: Path, name: str, entry: Any, problems: builtins.list[str]
) -> TemplateInfo | None:
    """Validate one ``[name]`` table, appending every problem found (not just the first)."""
    before = len(problems)
    if not isinstance(entry, dict):
        problems.append(f"{name!r} must be a table ([{name}]) with description, category, ...")
        return None
    if not _TEMPLATE_NAME.match(name):
        problems.append(f"[{name}]: names use lowercase letters, digits, '_' and '-' only")
    unknown = sorted(set(entry) - _CATALOGUE_KEYS)
    if unknown:
        problems.append(f"[{name}]: unknown key(s) {', '.join(unknown)}")
    for key in ("description", "subject"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            problems.append(f"[{name}]: {key} must be a non-empty string")
    category = entry.get("category")
    if category not in CATEGORIES:
        problems.append(
            f"[{name}]: category is {category!r}; it must be one of {', '.join(CATEGORIES)}"
        )
    required = entry.get("required", [])
    if not isinstance(required, list) or not all(isinstance(v, str) for v in required):
        problems.append(f"[{name}]: required must be a list of variable names")
        required = []
    for variable in required:
        if not _IDENTIFIER.match(variable):
            problems.append(f"[{name}]: required variable {variable!r} is not a valid name")
        elif variable in SYSTEM_VARIABLES:
            problems.append(
                f"[{name}]: {variable!r} is always supplied by the system; remove it from required"
            )
    if len(set(required)) != len(required):
        problems.append(f"[{name}]: required lists a variable twice")
    html = _template_file(templates_dir, name, "html", entry.get("html"), HTML_SUFFIX, problems)
    text = None
    if "text" in entry:
        text = _template_file(templates_dir, name, "text", entry["text"], TEXT_SUFFIX, problems)
    if len(problems) > before or html is None:
        return None
    return TemplateInfo(
        name=name,
        description=entry["description"].strip(),
        category="marketing" if category == "marketing" else "transactional",  # checked above
        subject=entry["subject"],
        required=tuple(required),
        html=html,
        text=text,
    )


def _template_file(
    templates_dir: Path,
    name: str,
    key: str,
    filename: Any,
    suffix: str,
    problems: builtins.list[str],
) -> str | None:
    """A plain file name in the templates folder; the suffix decides HTML escaping."""
    if not isinstance(filename, str) or not filename:
        problems.append(f"[{name}]: {key} must name a {suffix} file")
        return None
    if Path(filename).name != filename or filename.startswith("."):
        problems.append(f"[{name}]: {key} = {filename!r} must be a file name, not a path")
        return None
    if not filename.endswith(suffix):
        problems.append(f"[{name}]: {key} = {filename!r} must end in {suffix}")
        return None
    if not (templates_dir / filename).is_file():
        problems.append(f"[{name}]: {key} file {filename} does not exist in {templates_dir}")
        return None
    return filename
