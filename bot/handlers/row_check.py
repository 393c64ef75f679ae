"""Row checks: prove a recipient's message passes preflight from its values alone.

This module owns ``RowChecker``, preflight's fast path. Rendering and scanning
every message costs several times validating its address, yet for most
templates a message is the same text for every recipient with the values put in
at fixed places. When the template's syntax guarantees that (``substitution_slots``),
the template is rendered once with markers in place of the per-recipient values;
the lines without a marker are checked once, and for each recipient only the
lines that hold a value (with enough of the text around them for every check to
see what it would see in the whole message) are rebuilt by string formatting and
checked: subject, link schemes, sensitive data, the marketing footer.

It is a filter, never a verdict: ``clean`` returns True only when the full
render-and-check would find nothing; on anything else (a finding, a value the
proof does not cover such as one with a line break, a missing or non-text value)
it returns False and preflight renders and checks that recipient in full, so
errors read exactly as before. tests/test_e_preflight_fast.py compares the two
on crafted templates and values, including links and secrets split over two values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from jinja2 import nodes
from markupsafe import escape

from bot.errors import MailboltError

_MARK = "\x1e{}<\x1f"
_MARK_FOUND = re.compile("\x1e([0-9]+)(<|&lt;)\x1f")
_HTML_SPECIAL = re.compile("[&<>'\"]")  # what markupsafe.escape replaces
_BREAKS = re.compile("[\x00\r\n\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029]")
# Nodes after which output no longer follows from the template text alone: calls
# (lipsum is random), a filter over a whole block, other templates brought in.
_UNPROVABLE = (
    nodes.Call,
    nodes.FilterBlock,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Macro,
    nodes.CallBlock,
)


def substitution_slots(trees: Iterable[nodes.Template], varying: frozenset[str]) -> set[str] | None:
    """Whether rendering is "template text with the values put in", and what that needs.

    True when every use of a per-recipient name is ``{{ name }}``, ``{{ name or
    'text' }}`` or ``{% if name %}``, nothing assigns such a name, and nothing
    calls a function or picks a template at run time. Returns the names whose
    value must be non-empty for that to hold (those under ``or`` and ``if``),
    or None when the template is not of that shape.
    """
    truthy: set[str] = set()
    for tree in trees:
        if any(True for _ in tree.find_all(_UNPROVABLE)):
            return None
        if any(node.name == "random" for node in tree.find_all(nodes.Filter)):
            return None
        # A layout named by a variable is not among the trees looked at.
        if any(not isinstance(n.template, nodes.Const) for n in tree.find_all(nodes.Extends)):
            return None
        if not _uses_ok(tree, varying, truthy):
            return None
    return truthy


def _uses_ok(node: nodes.Node, varying: frozenset[str], truthy: set[str]) -> bool:
    for child in node.iter_child_nodes():
        if isinstance(child, nodes.Name) and child.name in varying:
            if child.ctx != "load":
                return False
            if isinstance(node, nodes.Output):
                continue
            if isinstance(node, nodes.If) and node.test is child:
                truthy.add(child.name)
                continue
            if (
                isinstance(node, nodes.Or)
                and node.left is child
                and isinstance(node.right, nodes.Const)
            ):
                truthy.add(child.name)
                continue
            return False
        # ``(name or 'x')|upper``: the fallback is only covered directly in the output.
        if (
            isinstance(child, nodes.Or)
            and not isinstance(node, nodes.Output)
            and _mentions(child, varying)
        ):
            return False
        if not _uses_ok(child, varying, truthy):
            return False
    return True


def _mentions(node: nodes.Node, varying: frozenset[str]) -> bool:
    return any(n.name in varying for n in node.find_all(nodes.Name))


@dataclass(frozen=True)
class _Part:
    """One rendered part as format strings: the pieces that hold values, with context."""

    lines: str
    """The lines that hold a value, for the line-by-line sensitive scan."""
    links: tuple[str, ...]
    """Those lines with the text around them the link check can see."""
    whole: str


def _split(rendered: str, count: int) -> tuple[_Part, list[str], bool] | None:
    """The part as ``str.format`` templates, its constant lines, and if any value is escaped.

    Each value becomes a positional field into the row's values: ``{i}`` for the
    value as it is, ``{i + count}`` for it HTML-escaped. None if a marker came
    out changed.
    """
    escaped_any = False
    lines = rendered.split("\n")
    formats: list[str] = []
    has_value: list[bool] = []
    for line in lines:
        pieces: list[str] = []
        at = 0
        for match in _MARK_FOUND.finditer(line):
            pieces.append(_literal(line[at : match.start()]))
            escaped = match.group(2) != "<"
            escaped_any |= escaped
            pieces.append("{%d}" % (int(match.group(1)) + (count if escaped else 0)))  # noqa: UP031
            at = match.end()
        if "\x1e" in line[at:] or any("\x1e" in p or "\x1f" in p for p in pieces[::2]):
            return None
        pieces.append(_literal(line[at:]))
        formats.append("".join(pieces))
        has_value.append(at > 0)
    constant = [line for line, valued in zip(lines, has_value, strict=True) if not valued]
    valued = "\n".join(f for f, v in zip(formats, has_value, strict=True) if v)
    part = _Part(valued, tuple(_link_blocks(lines, formats, has_value)), "\n".join(formats))
    return part, constant, escaped_any


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _link_blocks(lines: list[str], formats: list[str], has_value: list[bool]) -> list[str]:
    """Runs of lines around each line with a value: all the link check could relate to it.

    Lines start outside any attribute value (``Renderer.row_checker`` requires
    it), and an attribute's name and '=' are separated by white space only, as
    are '=' and its value. So a line's matches depend on the line before only if
    it starts (after white space) with '=', a quote or a value, or the line
    before ends with '=' or a value; blank lines pass that on. Lines are taken in
    while that holds, in both directions, so each run can be checked on its own.
    """
    spans: list[list[int]] = []
    last = len(lines) - 1
    for i, valued in enumerate(has_value):
        if not valued:
            continue
        start = end = i
        while start > 0 and (_opens(lines[start]) or _open_ended(lines[start - 1])):
            start -= 1
        while end < last and (_open_ended(lines[end]) or _opens(lines[end + 1])):
            end += 1
        if spans and start <= spans[-1][1] + 1:
            spans[-1][1] = max(end, spans[-1][1])
        else:
            spans.append([start, end])
    return ["\n".join(formats[a : b + 1]) for a, b in spans]


def _opens(line: str) -> bool:
    """Blank, or starts with what may pair with the line before: '=', a quote, a value."""
    text = line.lstrip()
    return not text or text[0] in "=\"'\x1e"


def _open_ended(line: str) -> bool:
    """Blank, or ends with what may pair with the line after: '=' or a value."""
    text = line.rstrip()
    return not text or text[-1] in "=\x1f"


@dataclass
class RowChecker:
    """Preflight's fast path for one campaign; see the module docstring.

    ``constants``: the values every recipient shares (sender, postal address, the
    values given for everyone), which the markers were rendered with; a row whose
    values differ from them, or that has other names, is not covered.
    """

    names: list[str]
    keys: frozenset[str]
    constants: dict[str, Any]
    truthy: frozenset[str]
    subject: str
    html: _Part
    text: _Part | None
    checks: Checks

    def __post_init__(self) -> None:
        self._get = itemgetter(*self.names) if self.names else (lambda _: ())
        self._get_constants = itemgetter(*self.constants) if self.constants else (lambda _: ())
        self._constant_values = self._get_constants(self.constants)
        self._truthy_at = [i for i, name in enumerate(self.names) if name in self.truthy]
        # One format call per row: subject, link runs, text lines and HTML lines,
        # separated by NUL (a value holding one is left to the full check).
        links = "\n".join(self.html.links)
        self._same_lines = links == self.html.lines  # the usual case: no runs longer
        pieces = [self.subject, links, self.text.lines if self.text else ""]
        self._all = "\x00".join([*pieces, *([] if self._same_lines else [self.html.lines])])

    def clean(self, variables: Mapping[str, Any]) -> bool:
        """True only if the full render-and-check of this row would find nothing."""
        values = self._values(variables)
        if values is None:
            return False
        subject, links, text, *rest = self._all.format(*values).split("\x00")
        subject = subject.strip()
        checks = self.checks
        try:
            checks.subject(subject)
            # The runs are checked as one text: each ends on a line that closes
            # whatever it opened (see _link_blocks), so no match spans two.
            checks.links(links, variables)
            if checks.footer is not None:
                whole_text = self.text.whole.format(*values) if self.text else ""
                checks.footer(variables, self.html.whole.format(*values), whole_text)
        except MailboltError:
            return False
        text = f"{text}\n{subject}" if self.text else subject
        return not (checks.find_text(text) or checks.find_html(rest[0] if rest else links))

    def _values(self, variables: Mapping[str, Any]) -> list[str] | None:
        """The row's values, raw then HTML-escaped, or None if the proof does not cover it."""
        if variables.keys() != self.keys:
            return None
        if self._get_constants(variables) != self._constant_values:
            return None
        raw = self._get(variables)
        if len(self.names) == 1:
            raw = (raw,)
        if not all(type(value) is str for value in raw):
            return None
        joined = "".join(raw)
        if _BREAKS.search(joined):
            return None
        for i in self._truthy_at:
            if not raw[i]:
                return None
        if _HTML_SPECIAL.search(joined):
            return [*raw, *(str(escape(value)) for value in raw)]
        return [*raw, *raw]  # nothing to escape


@dataclass(frozen=True)
class Checks:
    """The renderer's checks, as the fast path calls them (errors raise ``MailboltError``)."""

    subject: Callable[[str], None]
    links: Callable[[str, Mapping[str, Any]], None]
    footer: Callable[[Mapping[str, Any], str, str], None] | None
    find_text: Callable[[str], bool]
    find_html: Callable[[str], bool]


def build(
    sample: Mapping[str, Any],
    varying: frozenset[str],
    truthy: set[str],
    render: Callable[[str, Mapping[str, Any]], str | None],
    checks: Checks,
    *,
    has_text: bool,
) -> RowChecker | None:
    """Render each part once with markers in place of the per-recipient values.

    ``sample``: one recipient's variables, for the values everyone shares.
    ``render(part, variables)`` renders "subject", "html" or "text" and returns
    None if that fails. The lines without a value are checked here, once; None
    if they fail a check (the full path then reports it) or a marker came out
    changed, which the shape check should make impossible.
    """
    # A name tested for truth (``if``, ``or``) that is empty here, such as the
    # unsubscribe link of a transactional mail, is covered only while it stays empty.
    names = sorted(n for n in varying if n in sample and (n not in truthy or sample[n]))
    marked = dict(sample)
    marked.update({name: _MARK.format(i) for i, name in enumerate(names)})
    parts: dict[str, _Part] = {}
    for part in ("subject", "html", "text") if has_text else ("subject", "html"):
        rendered = render(part, marked)
        if rendered is None or (part == "subject" and "\n" in rendered):
            return None
        split = _split(rendered, len(names))
        if split is None:
            return None
        parts[part], constant, _ = split
        if part == "html" and "<\x1f" in rendered:
            return None  # a value put into the HTML without escaping: not covered
        try:
            if part == "html":
                checks.links("\n".join(constant), sample)
        except MailboltError:
            return None
        found = checks.find_html if part == "html" else checks.find_text
        if found("\n".join(constant)):
            return None
    constants = {k: v for k, v in sample.items() if k not in names}
    return RowChecker(
        names=names,
        keys=frozenset(sample),
        constants=constants,
        truthy=frozenset(truthy) & frozenset(names),
        subject=parts["subject"].whole,
        html=parts["html"],
        text=parts.get("text"),
        checks=checks,
    )
