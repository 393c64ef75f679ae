"""The template catalogue: which templates exist and what each one is.

This module owns ``catalogue.toml``: reading and validating it (every problem
named at once), listing templates for pickers, and handing out a ``Renderer``
(``bot.handlers.rendering``) for one template. Template names are only ever
catalogue keys, never paths.

Each Slack workspace may have templates of its own: ``TEMPLATES_DIR/<TEAM_ID>/``
(a folder named by the team ID, e.g. ``templates/T0AAA/``) holds a
``catalogue.toml`` and template files in the same format. A workspace sees the
shared templates plus its own, its own replacing a shared one of the same name,
and its files are looked up in its folder first (so its own ``base.html.j2``
dresses the shared templates too). ``TemplateCatalogue.for_team`` is the one
lookup; nothing else builds a path from a team ID.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import TemplateError
from bot.handlers.team_ids import TEAM_ID
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


def is_workspace_folder(name: str) -> bool:
    """Whether a name in the templates folder is a workspace's own folder (``T0AAA``)."""
    return bool(TEAM_ID.match(name))


class TemplateCatalogue:
    """The templates listed in ``catalogue.toml``, validated once when loaded.

    The catalogue files are read at construction (the shared one and every
    workspace folder's, so a broken one stops ``serve`` at start, not a person's
    form later); template files are (re)read each time a renderer is created, so
    an edited template takes effect on the next campaign without a restart. Built
    with a folder, it is the shared catalogue; ``for_team`` gives a workspace's.
    """

    def __init__(
        self, templates_dir: Path, *, team: str = "", shared: TemplateCatalogue | None = None
    ):
        """The shared catalogue of ``templates_dir``; with ``team`` and ``shared``
        (only ``for_team`` passes them), workspace ``team``'s, on top of ``shared``."""
        self.templates_dir = Path(templates_dir)
        self.team = team if shared is not None else ""
        own = self.templates_dir / self.team
        self.search_path: tuple[Path, ...] = (own, self.templates_dir) if self.team else (own,)
        self._shared = shared
        loaded = _load_catalogue(self.search_path, own_folder=bool(self.team))
        # A workspace's own entries replace the shared ones of the same name.
        self._templates: dict[str, TemplateInfo] = (
            {**shared._templates, **loaded} if shared is not None else loaded
        )
        # The names of the workspace's own templates (none in the shared catalogue).
        self.own = frozenset(loaded) if self.team else frozenset()
        self._inliner: css_inline.CSSInliner | None = None
        self._teams: dict[str, TemplateCatalogue] = {}
        if shared is None:
            self._teams = _load_workspaces(self)

    def for_team(self, team: str | None) -> TemplateCatalogue:
        """The catalogue workspace ``team`` sees: the shared templates plus its own.

        ``''`` or ``None`` (the command line without ``--team``, a campaign of no
        workspace) and a workspace with no folder of its own get the shared
        catalogue. Anything not shaped like a team ID is never made into a path.
        All were read with the shared one: a new workspace folder, like an edited
        ``catalogue.toml``, takes effect after a restart.
        """
        root = self._shared or self
        return root._teams.get(team or "", root)

    def file_path(self, filename: str) -> Path | None:
        """The file ``filename`` as this catalogue's renderer would read it (the
        workspace's folder first), or None when there is none."""
        for folder in self.search_path:
            if (folder / filename).is_file():
                return folder / filename
        return None

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
        return Renderer(info, self.search_path, self._inliner, user_subject=bool(override))


def _load_workspaces(shared: TemplateCatalogue) -> dict[str, TemplateCatalogue]:
    """Every workspace folder's catalogue (``TEMPLATES_DIR/T0AAA/``), on top of
    ``shared``; the problems of all of them named in one error."""
    found: dict[str, TemplateCatalogue] = {}
    problems: builtins.list[str] = []
    folders = sorted(p for p in shared.templates_dir.iterdir() if p.is_dir())
    for folder in folders:
        if not is_workspace_folder(folder.name):
            continue
        try:
            found[folder.name] = TemplateCatalogue(
                shared.templates_dir, team=folder.name, shared=shared
            )
        except TemplateError as exc:
            problems.append(str(exc))
    if problems:
        raise TemplateError("\n".join(problems), field="template", details=problems)
    return found


def _load_catalogue(
    search_path: tuple[Path, ...], *, own_folder: bool = False
) -> dict[str, TemplateInfo]:
    """The entries of ``search_path[0]``'s catalogue; their files may be in any
    folder of ``search_path``. A workspace's folder (``own_folder``) may have no
    catalogue, or an empty one: it may only replace files such as the layout."""
    templates_dir = search_path[0]
    path = templates_dir / CATALOGUE_FILE
    if own_folder and not path.is_file():
        return {}
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
        info = _catalogue_entry(search_path, name, entry, problems)
        if info is not None:
            templates[name] = info
    if not data and not own_folder:
        problems.append("it lists no templates")
    if problems:
        raise TemplateError(
            f"{path} has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems),
            field="template",
            details=problems,
        )
    return templates


def _catalogue_entry(
    search_path: tuple[Path, ...], name: str, entry: Any, problems: builtins.list[str]
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
    html = _template_file(search_path, name, "html", entry.get("html"), HTML_SUFFIX, problems)
    text = None
    if "text" in entry:
        text = _template_file(search_path, name, "text", entry["text"], TEXT_SUFFIX, problems)
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
    search_path: tuple[Path, ...],
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
    if not any((folder / filename).is_file() for folder in search_path):
        where = " or ".join(str(folder) for folder in search_path)
        problems.append(f"[{name}]: {key} file {filename} does not exist in {where}")
        return None
    return filename
