"""Rendering: one compiled template personalized for each recipient.

This module owns ``Renderer``: rendering subject, HTML and text per recipient
(with a fast path over Jinja internals, pinned by tests/test_trust_jinja_fast_path.py),
the checks on what came out (one-line subject, allowed link schemes, the
marketing footer), CSS inlining and the plain-text fallback. Templates run in
Jinja's sandbox with HTML autoescaping; everything that can be checked before
the first message is checked when a renderer is created, so a broken template
stops a campaign before anything is sent instead of failing on recipient 4,711.
"""

from __future__ import annotations

import html as html_lib
import re
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import css_inline
import jinja2
from jinja2 import nodes
from jinja2.sandbox import SecurityError
from markupsafe import escape

from bot.errors import TemplateError
from bot.handlers import row_check, sensitive
from bot.handlers.template_compile import (
    LINK_ATTRIBUTES,
    NOT_ONE_LINE,
    bare_environment,
    environment,
    has_multiline_links,
    link_variables_in,
    load_file,
    parse_subject,
    undeclared,
)
from bot.handlers.values import (
    SYSTEM_VARIABLES,
    URL_SCHEMES,
    describe_invisible,
    invisible_character,
    url_scheme,
)
from bot.models import RenderedMessage, TemplateInfo

MARKETING_FOOTER = ("postal_address", "unsubscribe_url")
"""Variables a marketing email must visibly show in both parts (anti-spam law)."""
_UNDEFINED = re.compile(r"'([^']+)' is undefined")
# An RFC 2047 encoded word: on unpatched Pythons (CVE-2024-6923) one can smuggle a newline.
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bq]\?", re.IGNORECASE)
# The base layout marks its hidden inbox-preview line so the text fallback can drop it.
_PREHEADER = re.compile(r"<!-- preheader:start -->.*?<!-- preheader:end -->", re.DOTALL)
_CELL_END = re.compile(r"</t[dh]>", re.IGNORECASE)
# An attribute's value (the closing quote is not required: only its start matters),
# and the name of a link attribute right before the '='.
_ATTRIBUTE_VALUE = re.compile(r"""=[ \t\r\n\f]*(?:"([^"]*)|'([^']*)|([^\s"'=<>`]+))""")
_PLAIN_LINK = re.compile(r"(?:https?://|mailto:)[^&]*\Z", re.IGNORECASE)
_LINK_NAME_BEFORE = re.compile(rf"(?<![\w:-]){LINK_ATTRIBUTES}\s*\Z", re.IGNORECASE)
# A line break between an attribute's name and '=' or between '=' and its value.
_SPLIT_ATTRIBUTE = re.compile(r"\n[ \t\r\f]*=|=[ \t\r\f]*\n")
MAX_CLEAN_LINES = 50_000
"""Bound on one renderer's memory of HTML lines found free of bad links."""
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUN = re.compile(r"\n{3,}")


class Renderer:
    """One template compiled for one campaign: ``render`` is called once per recipient.

    It owns its own Jinja environment, so the campaign is rendered from one
    consistent snapshot of the files even if someone edits them mid-send.
    """

    def __init__(
        self,
        info: TemplateInfo,
        folders: Path | Sequence[Path],
        inliner: css_inline.CSSInliner,
        *,
        user_subject: bool = False,
    ):
        self.info = info
        self._inliner = inliner
        env = environment(folders)
        # A subject typed by a person gets an environment of its own without Jinja's
        # globals (range, dict, lipsum, cycler, joiner, namespace): only the values.
        subject_env = bare_environment() if user_subject else env
        subject_tree = parse_subject(subject_env, info, user_subject=user_subject)
        self._global_snapshots: dict[int, dict[str, Any]] = {}
        self._subject = subject_env.from_string(subject_tree)
        self._html, html_trees = load_file(env, info, info.html)
        self._text: jinja2.Template | None
        self._text, text_trees = load_file(env, info, info.text) if info.text else (None, [])
        self._html_variables = undeclared(html_trees)
        self._text_variables = undeclared(text_trees)
        self._variables = self._html_variables | self._text_variables | undeclared([subject_tree])
        self._link_variables = link_variables_in(html_trees)
        self._trees = [subject_tree, *html_trees, *text_trees]
        # Lines of HTML already found free of bad links: most of a message is the
        # layout, the same for every recipient, and is checked once per campaign.
        # Only sound while a link's value starts on its attribute's line.
        self._multiline_links = has_multiline_links(html_trees)
        # And while an attribute's name, '=' and value start are on one line, as the
        # lines are checked apart (a value naming the attribute must not escape).
        split = any(_SPLIT_ATTRIBUTE.search(text) for text in _template_text(html_trees))
        self._clean_lines: set[str] | None = None if self._multiline_links or split else set()
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

    def row_checker(
        self, sample: Mapping[str, Any], varying: frozenset[str]
    ) -> row_check.RowChecker | None:
        """Preflight's fast path for this template, or None where it cannot be proven.

        ``sample`` is one recipient's variables; ``varying`` the names whose values
        differ between recipients. See ``bot.handlers.row_check``.
        """
        if self._multiline_links:  # row_check's runs of lines must start outside a value
            return None
        truthy = row_check.substitution_slots(self._trees, varying)
        if truthy is None:
            return None
        parts = {"subject": self._subject, "html": self._html, "text": self._text}

        def render(part: str, variables: Mapping[str, Any]) -> str | None:
            template = parts[part]
            assert template is not None
            try:
                return fast_render(template, self._globals(template), variables)
            except Exception:
                return None

        footer = None
        if self.info.category == "marketing":

            def footer(variables: Mapping[str, Any], html: str, text: str) -> None:
                self._check_footer_rendered(variables, html, text or html, "")

        checks = row_check.Checks(
            subject=lambda subject: self._check_subject(subject, ""),
            links=lambda html, variables: self._check_link_text(html, variables, ""),
            footer=footer,
            find_text=sensitive.text_has_findings,
            find_html=sensitive.html_has_findings,
        )
        return row_check.build(
            sample, varying, truthy, render, checks, has_text=self._text is not None
        )

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
            return fast_render(template, self._globals(template), variables)
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
        bad = NOT_ONE_LINE.search(subject)
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


def fast_render(
    template: jinja2.Template, globals_: Mapping[str, Any], variables: Mapping[str, Any]
) -> str:
    """What ``template.render(variables)`` returns, given a snapshot of its globals.

    It calls Jinja internals (``Template.new_context(vars, shared=True)``,
    ``Template.root_render_func(context)``, ``Environment.concat``), which Jinja
    does not promise to keep: tests/test_trust_jinja_fast_path.py pins that they
    exist and that this equals ``Template.render`` for every bundled template, so
    a Jinja upgrade that breaks them fails a test, not a campaign. Errors are not
    rewritten to name the template line; the caller renders again to explain them.
    """
    context = template.new_context({**globals_, **variables}, shared=True)
    render_func = template.root_render_func
    return str(template.environment.concat(render_func(context)))


def _template_text(trees: list[nodes.Template]) -> list[str]:
    """The literal text of the templates, each piece as written."""
    return [node.data for tree in trees for node in tree.find_all(nodes.TemplateData)]


def _source_of(target: str, variables: Mapping[str, Any]) -> str:
    """Which value a link came from, for an error message that names it."""
    for name, value in variables.items():
        text = str(value).strip()
        if text and (text in target or target.strip() in text):
            return f"the value {name!r}"
    return "the template itself"


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
    # Imported here: every bundled template has a text part, so most runs never
    # need it, and each ``python -m bot send`` starts faster without it.
    import html2text

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
