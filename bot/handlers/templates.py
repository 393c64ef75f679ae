"""The template catalogue and the renderer that personalizes one template per recipient.

Template files are written by an admin; recipients' variables and a subject typed
into Slack are not. So template names are only ever catalogue keys (never paths),
templates run in Jinja's sandbox with HTML autoescaping, and everything that can
be checked before the first message (syntax, missing files, the marketing footer)
is checked when a renderer is created: a broken template stops a campaign before
anything is sent, instead of failing on recipient 4,711.
"""

from __future__ import annotations

import builtins
import dataclasses
import html as html_lib
import re
import tomllib
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import css_inline
import html2text
import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from markupsafe import escape

from bot.errors import TemplateError
from bot.handlers.values import (
    SYSTEM_VARIABLES,
    URL_SCHEMES,
    describe_invisible,
    invisible_character,
    url_scheme,
)
from bot.models import RenderedMessage, TemplateInfo

# SYSTEM_VARIABLES (declared in bot.handlers.values) are supplied to every render by
# the sender; a catalogue's ``required`` lists only the rest. ``unsubscribe_url``
# is the empty string for transactional templates.

CATEGORIES = ("transactional", "marketing")
MARKETING_FOOTER = ("postal_address", "unsubscribe_url")
"""Variables a marketing email must visibly show in both parts (anti-spam law)."""

CATALOGUE_FILE = "catalogue.toml"
HTML_SUFFIX = ".html.j2"
TEXT_SUFFIX = ".txt.j2"
MAX_SUBJECT_OVERRIDE = 250

_CATALOGUE_KEYS = frozenset({"description", "category", "subject", "required", "html", "text"})
_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_UNDEFINED = re.compile(r"'([^']+)' is undefined")
# C0/C1 control characters (CR, LF, tab, ...) and the Unicode line/paragraph separators.
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# An RFC 2047 encoded word: on unpatched Pythons (CVE-2024-6923) one can smuggle a newline.
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bq]\?", re.IGNORECASE)
# The base layout marks its hidden inbox-preview line so the text fallback can drop it.
_BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")
_PREHEADER = re.compile(r"<!-- preheader:start -->.*?<!-- preheader:end -->", re.DOTALL)
_CELL_END = re.compile(r"</t[dh]>", re.IGNORECASE)
# Attributes whose value a mail program follows or loads as a URL.
_LINK_ATTRIBUTES = r"(?:href|src|action|formaction|background|poster|cite|longdesc|xlink:href)"
# An attribute's value (the closing quote is not required: only its start matters),
# and the name of a link attribute right before the '='.
_ATTRIBUTE_VALUE = re.compile(r"""=[ \t\r\n\f]*(?:"([^"]*)|'([^']*)|([^\s"'=<>`]+))""")
_PLAIN_LINK = re.compile(r"(?:https?://|mailto:)[^&]*\Z", re.IGNORECASE)
_LINK_NAME_BEFORE = re.compile(rf"(?<![\w:-]){_LINK_ATTRIBUTES}\s*\Z", re.IGNORECASE)
_MULTILINE_LINK = re.compile(rf"""{_LINK_ATTRIBUTES}\s*=\s*(?:"[^"]*\n|'[^']*\n)""", re.I)
MAX_CLEAN_LINES = 50_000
"""Bound on one renderer's memory of HTML lines found free of bad links."""
# Template text that ends where such an attribute's value begins: href=" or src='.
_LINK_VALUE_STARTS = re.compile(rf"""(?<![\w:-]){_LINK_ATTRIBUTES}\s*=\s*["']?\s*\Z""", re.I)
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUN = re.compile(r"\n{3,}")

# What a subject typed by a person may use: variables, constants, `or`/`if` fallbacks
# and a few filters. The sandbox does not bound CPU or memory ({{ "x" * 10**10 }}),
# so a subject from the Slack form gets no loops, arithmetic or calls.
_USER_SUBJECT_NODES = (
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Filter,
    nodes.Test,
    nodes.Or,
    nodes.And,
    nodes.Not,
    nodes.CondExpr,
)
_USER_SUBJECT_FILTERS = frozenset({"upper", "lower", "title", "capitalize", "trim", "default", "d"})
_USER_SUBJECT_TESTS = frozenset({"defined", "undefined", "none"})


class TemplateCatalogue:
    """The templates listed in ``catalogue.toml``, validated once when loaded.

    The catalogue file is read at construction; template files are (re)read each
    time a renderer is created, so an edited template takes effect on the next
    campaign without a restart.
    """

    def __init__(self, templates_dir: Path):
        self.templates_dir = Path(templates_dir)
        self._templates = _load_catalogue(self.templates_dir)
        # One inliner for every message: building it per message would be wasted work.
        # keep_at_rules keeps the @media rules (they cannot be inlined) in <head>;
        # no remote stylesheets, so rendering never touches the network.
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)

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
        return Renderer(info, self.templates_dir, self._inliner, user_subject=bool(override))


class Renderer:
    """One template compiled for one campaign: ``render`` is called once per recipient.

    It owns its own Jinja environment, so the campaign is rendered from one
    consistent snapshot of the files even if someone edits them mid-send.
    """

    def __init__(
        self,
        info: TemplateInfo,
        templates_dir: Path,
        inliner: css_inline.CSSInliner,
        *,
        user_subject: bool = False,
    ):
        self.info = info
        self._inliner = inliner
        env = _environment(templates_dir)
        # A subject typed by a person gets an environment of its own without Jinja's
        # globals (range, dict, lipsum, cycler, joiner, namespace): only the values.
        subject_env = _bare_environment() if user_subject else env
        subject_tree = _parse_subject(subject_env, info, user_subject=user_subject)
        self._global_snapshots: dict[int, dict[str, Any]] = {}
        self._subject = subject_env.from_string(subject_tree)
        self._html, html_trees = _load_file(env, info, info.html)
        self._text: jinja2.Template | None
        self._text, text_trees = _load_file(env, info, info.text) if info.text else (None, [])
        self._html_variables = _undeclared(html_trees)
        self._text_variables = _undeclared(text_trees)
        self._variables = self._html_variables | self._text_variables | _undeclared([subject_tree])
        self._link_variables = _link_variables(html_trees)
        # Lines of HTML already found free of bad links: most of a message is the
        # layout, the same for every recipient, and is checked once per campaign.
        # Only sound while a link's value starts on its attribute's line.
        self._clean_lines: set[str] | None = None if _multiline_links(html_trees) else set()
        if info.category == "marketing":
            self._check_footer_is_there()

    def variables_used(self) -> set[str]:
        """Every variable the subject, HTML (with its layout) and text refer to.

        Includes optional ones (used under ``is defined``) and the system variables,
        so a form can show which columns the template can use.
        """
        return set(self._variables)

    def link_variables(self) -> frozenset[str]:
        """Variables whose value begins a link (``href="{{ start_url }}"``) in the HTML.

        Their value decides what kind of link it is, so it must be an http, https
        or mailto URL; preflight checks every recipient's value before rendering.
        """
        return self._link_variables

    def render(
        self, variables: Mapping[str, Any], who: str, *, check_only: bool = False
    ) -> RenderedMessage:
        """Personalize the message for one recipient.

        ``variables`` holds the recipient's columns plus the system variables;
        ``who`` names the recipient in errors, e.g. ``line 4 (bob@example.com)``.
        ``check_only`` (preflight) runs every check but skips the two costly
        finishing steps, CSS inlining and the HTML-to-text fallback (~150 µs a
        message together): the HTML is returned as rendered and a missing text
        template leaves ``text`` empty. Sending renders again with both.
        """
        for name in self.info.required:
            if name not in variables:
                raise self._missing_variable(name, who, where=None)
        subject = self._render_part(self._subject, variables, who).strip()
        self._check_subject(subject, who)
        raw_html = self._render_part(self._html, variables, who)
        self._check_links(raw_html, variables, who)
        if self._text is not None:
            text = self._render_part(self._text, variables, who).strip() + "\n"
        elif check_only:
            text = ""
        else:
            text = _html_to_text(raw_html)
        if self.info.category == "marketing":
            self._check_footer_rendered(variables, raw_html, text or raw_html, who)
        if check_only:
            return RenderedMessage(subject=subject, html=raw_html, text=text)
        try:
            html = self._inliner.inline(raw_html)
        except css_inline.InlineError as exc:
            raise TemplateError(
                f"The CSS in template {self.info.name!r} could not be inlined: {exc}",
                field="template",
            ) from exc
        return RenderedMessage(subject=subject, html=html, text=text)

    def _render_part(
        self, template: jinja2.Template, variables: Mapping[str, Any], who: str
    ) -> str:
        """Render fast; on any error, render again the documented way to explain it.

        ``Template.render`` rebuilds its context from ``Template.globals`` (a
        ChainMap) on every call, about 40 % of a render here. The fast path merges
        a snapshot of the globals with the variables in C and calls the compiled
        render function directly. It skips Jinja's traceback rewriting, so when it
        fails the slow path runs to get an error that names the template line.
        """
        try:
            context = template.new_context({**self._globals(template), **variables}, shared=True)
            return template.environment.concat(template.root_render_func(context))  # type: ignore[attr-defined]
        except Exception:  # noqa: S110 - explained by the slow path below
            pass
        try:
            return template.render(variables)
        except jinja2.UndefinedError as exc:
            match = _UNDEFINED.fullmatch(str(exc))
            if match is None:  # e.g. an attribute missing on a value that exists
                raise self._runtime_error(exc, who) from exc
            raise self._missing_variable(match.group(1), who, where=_location(exc)) from exc
        except SecurityError as exc:
            raise TemplateError(
                f"{who}: the template {self.info.name!r} tried something the sandbox forbids "
                f"({_location(exc)}): {exc}",
                field="template",
            ) from exc
        except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
            raise self._runtime_error(exc, who) from exc

    def _globals(self, template: jinja2.Template) -> dict[str, Any]:
        """A plain-dict snapshot of a template's globals, made once per template."""
        snapshot = self._global_snapshots.get(id(template))
        if snapshot is None:
            snapshot = self._global_snapshots[id(template)] = dict(template.globals)
        return snapshot

    def _missing_variable(self, name: str, who: str, where: str | None) -> TemplateError:
        used_at = f" (used in {where})" if where else ""
        if name in SYSTEM_VARIABLES:
            message = (
                f"{who}: the template {self.info.name!r} needs the system variable {name!r}"
                f"{used_at}, which the sender did not supply."
            )
        else:
            message = (
                f"{who}: the template {self.info.name!r} needs the variable {name!r}, which "
                f"this recipient does not have{used_at}. Add a {name!r} column for every "
                f"recipient, or choose another template."
            )
        return TemplateError(message, field="recipients")

    def _runtime_error(self, exc: Exception, who: str) -> TemplateError:
        return TemplateError(
            f"{who}: the template {self.info.name!r} failed ({_location(exc)}): {exc}",
            field="template",
        )

    def _check_subject(self, subject: str, who: str) -> None:
        if not subject:
            raise TemplateError(
                f"{who}: the subject of template {self.info.name!r} came out empty; "
                f"every message needs a subject. Check this recipient's variables.",
                field="subject",
            )
        bad = _NOT_ONE_LINE.search(subject)
        if bad:
            raise TemplateError(
                f"{who}: the subject contains a line break or control character "
                f"({bad.group()!r}); subjects must be one line. Check this recipient's variables.",
                field="subject",
            )
        code = invisible_character(subject)
        if code is not None:
            raise TemplateError(
                f"{who}: the subject contains the invisible or direction-changing character "
                f"{describe_invisible(code)}, which can make it read differently from what "
                f"it says. Check this recipient's variables.",
                field="subject",
            )
        if _ENCODED_WORD.search(subject):
            raise TemplateError(
                f"{who}: the subject contains an encoded-word marker ('=?charset?Q?'), "
                f"which mail programs would decode; remove it from the subject or variables.",
                field="subject",
            )

    def _check_links(self, html: str, variables: Mapping[str, Any], who: str) -> None:
        """Every link in the rendered HTML is http, https or mailto (or relative).

        The values were checked before rendering; this catches a value that
        reaches a link some other way (a filter, a ``set``, two values joined).
        """
        clean = self._clean_lines
        if clean is None or any("\n" in str(v) for v in variables.values()):
            self._check_link_text(html, variables, who)
            return
        lines = set(html.split("\n")) - clean
        if not lines:
            return
        self._check_link_text("\n".join(lines), variables, who)
        if len(clean) + len(lines) > MAX_CLEAN_LINES:
            clean.clear()
        clean.update(lines)

    def _check_link_text(self, html: str, variables: Mapping[str, Any], who: str) -> None:
        # Every attribute value is found by one fast search; only a value that
        # can hold a scheme (a ':' or an entity) costs a look at its attribute.
        for match in _ATTRIBUTE_VALUE.finditer(html):
            target = match.group(match.lastindex or 1)
            if (":" not in target and "&" not in target) or _PLAIN_LINK.match(target):
                continue
            start = match.start()
            if not _LINK_NAME_BEFORE.search(html, max(0, start - 40), start):
                continue
            scheme = url_scheme(target)
            if scheme is None or scheme in URL_SCHEMES:
                continue
            source = _source_of(html_lib.unescape(target), variables)
            raise TemplateError(
                f"{who}: the template {self.info.name!r} would contain a {scheme}: link "
                f"(from {source}); only https://, http:// and mailto: links are allowed.",
                field="template" if source == "the template itself" else "recipients",
            )

    def _check_footer_is_there(self) -> None:
        """Refuse a marketing template that never shows the address or unsubscribe link."""
        parts = [("HTML", self.info.html, self._html_variables)]
        if self.info.text:
            parts.append(("text", self.info.text, self._text_variables))
        for part, filename, used in parts:
            missing = [name for name in MARKETING_FOOTER if name not in used]
            if missing:
                shown = " and ".join("{{ " + name + " }}" for name in missing)
                raise TemplateError(
                    f"The marketing template {self.info.name!r} never shows {shown} in its "
                    f"{part} part ({filename}). Marketing email must show the postal address "
                    f"and an unsubscribe link; see templates/README.md.",
                    field="template",
                )

    def _check_footer_rendered(
        self, variables: Mapping[str, Any], html: str, text: str, who: str
    ) -> None:
        """The static check can be defeated by an ``{% if %}``; this one cannot."""
        for name in MARKETING_FOOTER:
            value = str(variables.get(name) or "").strip()
            if not value:
                raise TemplateError(
                    f"{who}: the marketing template {self.info.name!r} needs a non-empty "
                    f"{name!r}; marketing email must show the postal address and an "
                    f"unsubscribe link.",
                    field="template",
                )
            for part, body, shown in (("HTML", html, str(escape(value))), ("text", text, value)):
                if shown not in body:
                    raise TemplateError(
                        f"{who}: the marketing template {self.info.name!r} rendered its {part} "
                        f"part without the {name!r} footer; see templates/README.md.",
                        field="template",
                    )


def _source_of(target: str, variables: Mapping[str, Any]) -> str:
    """Which value a link came from, for an error message that names it."""
    for name, value in variables.items():
        text = str(value).strip()
        if text and (text in target or target.strip() in text):
            return f"the value {name!r}"
    return "the template itself"


def _link_variables(trees: builtins.list[nodes.Template]) -> frozenset[str]:
    """Names used right where a link attribute's value begins, in ``trees``."""
    found: set[str] = set()
    for tree in trees:
        for output in tree.find_all(nodes.Output):
            before = ""
            for node in output.nodes:
                if isinstance(node, nodes.TemplateData):
                    before = node.data
                    continue
                if _LINK_VALUE_STARTS.search(before):
                    names = [node] if isinstance(node, nodes.Name) else []
                    names += node.find_all(nodes.Name)
                    found.update(n.name for n in names if n.ctx == "load")
                before = ""
    return frozenset(found)


def _multiline_links(trees: builtins.list[nodes.Template]) -> bool:
    """Whether a template writes a link attribute whose value goes on past a line end."""
    for tree in trees:
        text = "\x00".join(node.data for node in tree.find_all(nodes.TemplateData))
        if _MULTILINE_LINK.search(text):
            return True
    return False


def _bare_environment() -> SandboxedEnvironment:
    """A sandbox for text a person typed: no loader, no globals, no autoescaping."""
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.globals.clear()
    return env


def _environment(templates_dir: Path) -> SandboxedEnvironment:
    """A sandboxed environment where only ``*.html.j2``-style files are HTML-escaped.

    ``default_for_string=False`` keeps the subject (compiled from a string) unescaped:
    a subject is a header, not HTML. ``auto_reload=False``: the renderer compiles
    each file once and never looks at the disk again.
    """
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=jinja2.select_autoescape(
            ["html", "htm", "xml", "html.j2"], default_for_string=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["paragraphs"] = paragraphs
    return env


def paragraphs(text: str) -> builtins.list[str]:
    """The ``paragraphs`` filter: split a multi-line variable on blank lines.

    A filter rather than ``body.split(...)`` in the template: every method call
    goes through the sandbox's checks, which made rendering twice as slow.
    """
    return [part.strip() for part in _BLANK_LINE.split(str(text)) if part.strip()]


def _parse_subject(
    env: SandboxedEnvironment, info: TemplateInfo, *, user_subject: bool
) -> nodes.Template:
    field = "subject" if user_subject else "template"
    if user_subject and len(info.subject) > MAX_SUBJECT_OVERRIDE:
        raise TemplateError(
            f"The subject is {len(info.subject)} characters long; keep it under "
            f"{MAX_SUBJECT_OVERRIDE}.",
            field=field,
        )
    try:
        tree = env.parse(info.subject)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"The subject of template {info.name!r} has a syntax error on line {exc.lineno}: "
            f"{exc.message or exc}. Write variables as {{{{ first_name }}}}.",
            field=field,
            line=exc.lineno,
        ) from exc
    if user_subject:
        _check_user_subject(tree)
        code = invisible_character(info.subject)
        if code is not None:
            what = (
                "a line break or control character"
                if _NOT_ONE_LINE.search(info.subject)
                else f"the invisible or direction-changing character {describe_invisible(code)}"
            )
            raise TemplateError(
                f"The subject contains {what}; subjects must be one line of visible text.",
                field=field,
            )
    return tree


def _check_user_subject(tree: nodes.Template) -> None:
    for node in tree.find_all(nodes.Node):
        allowed = isinstance(node, _USER_SUBJECT_NODES)
        if isinstance(node, nodes.Filter):
            allowed = node.name in _USER_SUBJECT_FILTERS
        elif isinstance(node, nodes.Test):
            allowed = node.name in _USER_SUBJECT_TESTS
        if not allowed:
            raise TemplateError(
                "A custom subject may only use variables such as {{ first_name }}, fallbacks "
                "such as {{ first_name or 'there' }}, and the filters "
                + ", ".join(sorted(_USER_SUBJECT_FILTERS - {"d"}))
                + ".",
                field="subject",
            )


def _load_file(
    env: SandboxedEnvironment, info: TemplateInfo, filename: str
) -> tuple[jinja2.Template, builtins.list[nodes.Template]]:
    """Compile ``filename`` and every file it extends, includes or imports.

    Jinja loads a parent layout lazily, at the first render; loading the whole
    tree here moves its syntax errors to before the first message, and warms the
    environment's cache so rendering never reads a file.
    """
    trees: dict[str, nodes.Template] = {}
    pending = [filename]
    while pending:
        name = pending.pop()
        if name in trees:
            continue
        try:
            env.get_template(name)
            source, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
            trees[name] = env.parse(source, name=name)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(
                f"The template {info.name!r} uses {exc.name!r}, which is not a file in "
                f"the templates folder.",
                field="template",
            ) from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"The template {info.name!r} has a syntax error in {exc.name or name} "
                f"line {exc.lineno}: {exc.message or exc}. Fix the file; nothing was sent.",
                field="template",
                line=exc.lineno,
            ) from exc
        pending.extend(ref for ref in meta.find_referenced_templates(trees[name]) if ref)
    return env.get_template(filename), list(trees.values())


def _undeclared(trees: builtins.list[nodes.Template]) -> frozenset[str]:
    """Variables the templates read from the context.

    A macro imported at the top of a child template looks undeclared to Jinja's
    ``meta`` when used inside a block, so imported names are taken out.
    """
    found: set[str] = set()
    imported: set[str] = set()
    for tree in trees:
        found |= meta.find_undeclared_variables(tree)
        for whole in tree.find_all(nodes.Import):
            imported.add(whole.target)
        for some in tree.find_all(nodes.FromImport):
            imported.update(name if isinstance(name, str) else name[1] for name in some.names)
    return frozenset(found - imported)


def _location(exc: BaseException) -> str:
    """``welcome.html.j2 line 4``, from the template frames Jinja puts in tracebacks."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return f"{Path(frame.filename).name} line {frame.lineno}"
        if frame.filename == "<template>":
            return f"the subject, line {frame.lineno}"
    return "unknown line"


def _html_to_text(html: str) -> str:
    """A readable plain-text part for templates that have no ``.txt.j2`` of their own."""
    converter = html2text.HTML2Text()
    converter.body_width = 0  # no hard wrapping: it would break long URLs across lines
    converter.ignore_tables = True  # the layout tables carry no data
    converter.ignore_images = True
    converter.ignore_links = False
    converter.wrap_links = False
    converter.unicode_snob = True  # keep é and ’ instead of ASCII look-alikes
    # With tables ignored, html2text glues neighbouring cells together ("WhenFriday").
    html = _CELL_END.sub(" \\g<0>", _PREHEADER.sub("", html))
    text = converter.handle(html)
    # Its markdown hard breaks ("  " before a newline) mean nothing in a text part.
    text = _BLANK_RUN.sub("\n\n", _TRAILING_SPACE.sub("\n", text))
    return text.strip() + "\n"


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
