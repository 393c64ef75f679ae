"""Compiling templates: Jinja environments, a template's files, what it reads.

This module owns how a template becomes compiled Jinja: the sandboxed
environments (one for admin-written files, a bare one for a subject a person
typed), loading a template with every file it extends or includes (so syntax
errors surface before the first message), checking a typed subject, and the
static facts a renderer needs: the variables a template reads and those that
begin a link. Template files are written by an admin; a subject typed into
Slack is not, so it may use only variables, fallbacks and a few filters.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import jinja2
import jinja2.bccache
from jinja2 import meta, nodes
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment

from bot.errors import TemplateError
from bot.handlers.team_ids import TEAM_ID
from bot.handlers.values import describe_invisible, invisible_character
from bot.models import TemplateInfo

MAX_SUBJECT_OVERRIDE = 250
"""Longest subject a person may type (the Slack form has the same limit)."""

# C0/C1 control characters (CR, LF, tab, ...) and the Unicode line/paragraph separators.
NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A blank line: where the ``paragraphs`` filter splits a multi-line value.
_BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")
# Attributes whose value a mail program follows or loads as a URL.
LINK_ATTRIBUTES = r"(?:href|src|action|formaction|background|poster|cite|longdesc|xlink:href)"
_MULTILINE_LINK = re.compile(rf"""{LINK_ATTRIBUTES}\s*=\s*(?:"[^"]*\n|'[^']*\n)""", re.I)
# Template text that ends where such an attribute's value begins: href=" or src='.
_LINK_VALUE_STARTS = re.compile(rf"""(?<![\w:-]){LINK_ATTRIBUTES}\s*=\s*["']?\s*\Z""", re.I)

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


def link_variables_in(trees: builtins.list[nodes.Template]) -> frozenset[str]:
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


def has_multiline_links(trees: builtins.list[nodes.Template]) -> bool:
    """Whether a template writes a link attribute whose value goes on past a line end."""
    for tree in trees:
        text = "\x00".join(node.data for node in tree.find_all(nodes.TemplateData))
        if _MULTILINE_LINK.search(text):
            return True
    return False


def bare_environment() -> SandboxedEnvironment:
    """A sandbox for text a person typed: no loader, no globals, no autoescaping."""
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.globals.clear()
    return env


class _SharedBytecode(jinja2.BytecodeCache):
    """Compiled template code, shared by every environment of ``environment()`` in
    this process and keyed by file and source checksum (Jinja checks both).

    Each campaign's renderer has its own environment, so without this every
    renderer (preflight's, the send loop's, each Slack preview's) compiled the
    same files again. Safe to share because those environments are configured
    identically, and an edited file has a new checksum, so it is compiled anew.
    """

    def __init__(self, limit: int = 256) -> None:
        self._code: dict[str, bytes] = {}
        self._limit = limit

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if len(self._code) >= self._limit:
            self._code.clear()
        self._code[bucket.key] = bucket.bytecode_to_string()


_BYTECODE = _SharedBytecode()
_TREES: dict[tuple[str, str], nodes.Template] = {}
"""Parsed files by (name, source): read-only after parsing, so shared like the code."""


def _parse(env: SandboxedEnvironment, source: str, name: str) -> nodes.Template:
    key = (name, source)
    tree = _TREES.get(key)
    if tree is None:
        if len(_TREES) >= 256:
            _TREES.clear()
        tree = _TREES[key] = env.parse(source, name=name)
    return tree


class _WorkspaceLoader(jinja2.FileSystemLoader):
    """Files from the folders in order (a workspace's own, then the shared one),
    never from a workspace's folder by its path: ``{% include "T0BBB/x.html.j2" %}``
    is not a file, whichever workspace's template asks."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        # Split as the loader splits it ("./T0BBB/x" is "T0BBB/x"; ".." is refused).
        pieces = split_template_path(template)
        if pieces and TEAM_ID.match(pieces[0]):
            raise jinja2.TemplateNotFound(template)
        return super().get_source(environment, template)

    def list_templates(self) -> builtins.list[str]:
        return [
            name for name in super().list_templates() if not TEAM_ID.match(name.split("/", 1)[0])
        ]


def environment(folders: Path | Sequence[Path]) -> SandboxedEnvironment:
    """A sandboxed environment where only ``*.html.j2``-style files are HTML-escaped.

    ``folders``: where files are looked up, in order (a workspace's folder first,
    then the shared one). ``default_for_string=False`` keeps the subject (compiled
    from a string) unescaped: a subject is a header, not HTML. ``auto_reload=False``:
    the renderer compiles each file once and never looks at the disk again. The
    shared compiled code is keyed by each file's full path and source, so two
    workspaces' files of the same name never mix.
    """
    env = SandboxedEnvironment(
        loader=_WorkspaceLoader(folders),
        autoescape=jinja2.select_autoescape(
            ["html", "htm", "xml", "html.j2"], default_for_string=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        bytecode_cache=_BYTECODE,
    )
    env.filters["paragraphs"] = paragraphs
    return env


def paragraphs(text: str) -> builtins.list[str]:
    """The ``paragraphs`` filter: split a multi-line variable on blank lines.

    A filter rather than ``body.split(...)`` in the template: every method call
    goes through the sandbox's checks, which made rendering twice as slow.
    """
    return [part.strip() for part in _BLANK_LINE.split(str(text)) if part.strip()]


def parse_subject(
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
                if NOT_ONE_LINE.search(info.subject)
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


def load_file(
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
            trees[name] = _parse(env, source, name)
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


def undeclared(trees: builtins.list[nodes.Template]) -> frozenset[str]:
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
