"""The formatter: one canonical layout for `.mora` files, comments kept, idempotent.

Why it works from the syntax tree and not from tokens: the tree already knows what
is a block, a list or a map, so the layout rules below are stated once per
construct. The tree has no comments, so they are re-attached by position: the
printer walks the tree in source order with a cursor over ``SourceFile.comments``
and, at every place where a line may start, emits the comments that come before
that place. Every comment is emitted exactly once, in its original order.

Layout rules (mirrored in the language reference):

* 2-space indentation, one statement per line, ``keyword label(params): type = value {``
  ... ``}``; an empty block prints ``{}``.
* Line structure follows the author where it carries meaning and never otherwise:
  a block, list, map, call or parameter list written on one line stays on one
  line; written over several lines it gets one entry per line (lists, calls and
  parameter lists then end every entry with ``,``; multi-line maps have no commas).
  A one-line block must hold only statements without blocks of their own and fit
  in 100 columns, else it is expanded. Long lines are not wrapped otherwise.
* Blank lines: at most one is kept where the author had any; none after ``{`` or
  before ``}``; top-level statements with different keywords are always
  separated by one (same-keyword neighbours, such as a run of ``param`` lines,
  keep the author's choice).
* Statements on one line inside a block are separated by two spaces, inline map
  entries and list items by ``, ``.
* Alignment: in a run of consecutive one-line ``key = value`` statements of one
  block (or entries of one multi-line map), the ``=`` signs line up; the key is
  everything before ``=`` (``port http``, ``param x: int``). A blank line, a
  comment line or any other statement ends the run, and a run is split where
  its keys would differ in length by more than 6 characters, so one long key
  does not push every other value far to the right. Consecutive one-line
  ``keyword label { ... }`` statements with the same keyword and no value align
  their ``{`` by the same rule.
* Comments: a comment on its own line stays on its own line at the indentation
  of what follows it (or of the block's last entry at a block end); a comment
  after code stays after that line, separated by two spaces. A comment at a
  place where no line can start (between a statement's keyword and its ``=``)
  gets its own line just before that statement (or just after it, when the
  statement holds comments that come earlier). An empty block, list, map or
  call that holds a comment stays open around it.
* Strings are printed as written (escapes and interpolations untouched). The
  content of a ``\"\"\"`` string is re-indented two spaces deeper than the line it
  starts on, which keeps its value because ``\"\"\"`` strings drop their common
  indentation; when that cannot be proven by re-parsing the string, it is printed
  verbatim.
* The output ends with one newline and has no trailing spaces (except inside a
  ``\"\"\"`` string, where they are part of the value).

As a last safety net the output is parsed again and compared with the input's
syntax tree and comments; should they ever differ (a formatter bug), the input is
returned unchanged with a warning instead of a changed program.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from . import syntax as ast
from .diagnostics import Diagnostic
from .parser import parse_file

__all__ = ["format_source"]

_WIDTH = 100  # a one-line block longer than this is expanded
_ALIGN_SPREAD = 6  # the longest and shortest key of one alignment section differ by at most this
_INDENT = "  "
_LONG_QUOTE = '"""'
_SHORT_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')

_Pos = tuple[int, int]  # (line, column), 1-based, comparable
_T = TypeVar("_T")


def format_source(text: str, file: str = "<input>") -> tuple[str | None, list[Diagnostic]]:
    """Format one `.mora` file.

    Returns the canonical text and no diagnostics, or ``None`` and the parse
    diagnostics when the text does not parse. Never raises: should the formatter
    itself fail, the text comes back unchanged with a warning.
    """
    try:
        source, diagnostics = parse_file(file, text)
    except Exception:  # pragma: no cover - the parser reports, it does not raise
        return None, [Diagnostic("E001", "cannot parse this file", ast.Span(file, 1, 1, 1, 2))]
    if diagnostics:
        return None, diagnostics
    try:
        out = _Printer(source).program()
    except (Exception, RecursionError):
        return text, [_unchanged(file, "the formatter failed on this file")]
    if not _same_program(source, out, file):
        return text, [_unchanged(file, "formatting would have changed the program")]
    return out, []


def _unchanged(file: str, reason: str) -> Diagnostic:
    return Diagnostic(
        "W001",
        f"file left unformatted: {reason}",
        ast.Span(file, 1, 1, 1, 2),
        help="this is a bug in the mora formatter; please report it with the file",
        severity="warning",
    )


# --------------------------------------------------------------------------- comparison


def _shape(node: object) -> object:
    """A span-free, raw-free structural dump of a syntax tree, for "same program" checks.

    ``raw`` is left out because ``\"\"\"`` strings are re-indented; their dedented
    ``parts`` (and so their values) must stay equal.
    """
    if isinstance(node, ast.Span):
        return None
    if isinstance(node, list):
        return [_shape(n) for n in node]
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (
            type(node).__name__,
            tuple(
                (f.name, _shape(getattr(node, f.name)))
                for f in dataclasses.fields(node)
                if f.name != "raw" and f.name != "span" and not f.name.endswith("_span")
            ),
        )
    return node


def _same_program(source: ast.SourceFile, out: str, file: str) -> bool:
    again, diagnostics = parse_file(file, out)
    if diagnostics:
        return False
    if [c.text for c in again.comments] != [c.text for c in source.comments]:
        return False
    return _shape(again.statements) == _shape(source.statements)


# --------------------------------------------------------------------------- layout items


@dataclass(slots=True)
class _Item:
    """One line-starting entry of a multi-line construct: a comment, or a child.

    ``key`` + padding + ``rest`` is the child's text (continuation lines already
    carry their absolute indentation). ``align`` says which alignment rule the
    child takes part in: ``"="``, ``"{"`` or ``None``.
    """

    key: str
    rest: str = ""
    align: str | None = None
    group: str = ""  # the keyword, for `{` alignment and the top-level blank-line rule
    blank_before: bool = False
    trailing: str | None = None
    is_comment: bool = False
    is_statement: bool = False
    pad: int = 0


def _split_sections(keys: list[int]) -> list[int]:
    """Greedy alignment sections: returns, per key, the width its section aligns to."""
    widths: list[int] = []
    start = 0
    lo = hi = -1
    for i, k in enumerate(keys):
        if i == start or max(hi, k) - min(lo, k) > _ALIGN_SPREAD:
            if i != start:
                widths.extend([hi] * (i - start))
                start = i
            lo = hi = k
        else:
            lo, hi = min(lo, k), max(hi, k)
    widths.extend([hi] * (len(keys) - start))
    return widths


def _align(items: list[_Item]) -> None:
    """Set ``pad`` on runs of alignable items (see the module docstring)."""
    i = 0
    while i < len(items):
        it = items[i]
        if it.align is None:
            i += 1
            continue
        j = i + 1
        while (
            j < len(items)
            and items[j].align == it.align
            and not items[j].blank_before
            and (it.align == "=" or items[j].group == it.group)
        ):
            j += 1
        run = items[i:j]
        for item, width in zip(run, _split_sections([len(r.key) for r in run]), strict=True):
            item.pad = width - len(item.key)
        i = j


def _emit(items: list[_Item], indent: int) -> list[str]:
    _align(items)
    pad = _INDENT * indent
    lines: list[str] = []
    for n, it in enumerate(items):
        if it.blank_before and n > 0:
            lines.append("")
        text = it.key + " " * it.pad + it.rest
        if it.trailing is not None:
            text += "  " + it.trailing
        lines.append(pad + text)
    return lines


# --------------------------------------------------------------------------- the printer


class _Printer:
    """Prints one parsed file. Holds the comment cursor, so use one instance per file."""

    def __init__(self, source: ast.SourceFile) -> None:
        self.text = source.text
        self.statements = source.statements
        self.file = source.path
        self.lines = source.text.split("\n")
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line) + 1)
        self.comments = sorted(source.comments, key=lambda c: (c.span.line, c.span.column))
        self.ci = 0

    # positions -------------------------------------------------------------------
    def _offset(self, pos: _Pos) -> int:
        return self.starts[pos[0] - 1] + pos[1] - 1

    def _pos(self, offset: int) -> _Pos:
        line = bisect.bisect_right(self.starts, offset)
        return (line, offset - self.starts[line - 1] + 1)

    @staticmethod
    def _start(span: ast.Span) -> _Pos:
        return (span.line, span.column)

    @staticmethod
    def _end(span: ast.Span) -> _Pos:
        return (span.end_line, span.end_column)

    def _src(self, span: ast.Span) -> str:
        return self.text[self._offset(self._start(span)) : self._offset(self._end(span))]

    def _next_char(self, pos: _Pos, skip: str = "") -> tuple[str, _Pos]:
        """The next significant character at or after ``pos``, skipping blanks, comments, ``skip``."""
        i = self._offset(pos)
        while i < len(self.text):
            ch = self.text[i]
            if ch == "#":
                j = self.text.find("\n", i)
                i = len(self.text) if j < 0 else j
            elif ch.isspace() or ch in skip:
                i += 1
            else:
                return ch, self._pos(i)
        return "", self._pos(len(self.text))

    def _blank_between(self, after_line: int, before_line: int) -> bool:
        return any(not self.lines[n - 1].strip() for n in range(after_line + 1, before_line))

    # comments --------------------------------------------------------------------
    def _take_before(self, pos: _Pos) -> list[ast.Comment]:
        taken: list[ast.Comment] = []
        while self.ci < len(self.comments) and self._start(self.comments[self.ci].span) < pos:
            taken.append(self.comments[self.ci])
            self.ci += 1
        return taken

    def _take_trailing(self, line: int, limit: _Pos | None) -> str | None:
        """The comment that ends source line ``line``, unless something at ``limit`` precedes it."""
        if self.ci >= len(self.comments):
            return None
        c = self.comments[self.ci]
        if c.span.line != line or (limit is not None and limit < self._start(c.span)):
            return None
        self.ci += 1
        return c.text

    def _items(
        self,
        children: Sequence[_T],
        span_of: Callable[[_T], ast.Span],
        render: Callable[[_T], _Item],
        open_line: int,
        close: _Pos | None,
    ) -> tuple[str | None, list[_Item]]:
        """Lay out the children of a multi-line construct, with the comments among them.

        Returns the comment that ends the opening line (after ``{``, ``[`` or ``(``)
        and the items. ``close`` is where the closing bracket is (``None``: end of file).
        """
        items: list[_Item] = []
        first = self._start(span_of(children[0])) if children else close
        opener = None
        if first is None or first[0] > open_line:
            opener = self._take_trailing(open_line, first)
        prev_line = open_line
        for n, child in enumerate(children):
            span = span_of(child)
            for c in self._take_before(self._start(span)):
                items.append(self._comment_item(c, prev_line))
                prev_line = c.span.line
            claimed = self.ci
            item = render(child)
            item.blank_before = self._blank_between(prev_line, span.line)
            stray = self._take_before(self._end(span))
            nxt = self._start(span_of(children[n + 1])) if n + 1 < len(children) else close
            if stray and claimed == self.ci - len(stray):
                # Comments at places where no line can start move before their child...
                for k, c in enumerate(stray):
                    items.append(_Item(c.text, is_comment=True, blank_before=k == 0 and item.blank_before))
                item.blank_before = False
                stray = []
            trailing = self._take_trailing(span.end_line, nxt)
            items.append(item)
            # ... or after it, when comments inside it come first; a trailing one follows them.
            items.extend(_Item(c.text, is_comment=True) for c in stray)
            if stray and trailing is not None:
                items.append(_Item(trailing, is_comment=True))
            else:
                item.trailing = trailing
            prev_line = span.end_line
        for c in self._take_before(close) if close is not None else self._take_rest():
            items.append(self._comment_item(c, prev_line))
            prev_line = c.span.line
        return opener, items

    def _comment_within(self, open_: _Pos, close: _Pos) -> bool:
        """Whether an unclaimed comment lies between two brackets (it then keeps them apart)."""
        for c in self.comments[self.ci :]:
            start = self._start(c.span)
            if start >= close:
                return False
            if start > open_:
                return True
        return False

    def _take_rest(self) -> list[ast.Comment]:
        rest = self.comments[self.ci :]
        self.ci = len(self.comments)
        return rest

    def _comment_item(self, c: ast.Comment, prev_line: int) -> _Item:
        return _Item(c.text, is_comment=True, blank_before=self._blank_between(prev_line, c.span.line))

    def _block(self, opener: str | None, items: list[_Item], indent: int, open_: str, close: str) -> str:
        """A multi-line construct: ``open_`` ... one item per line ... ``close``."""
        head = open_ + ("  " + opener if opener is not None else "")
        body = _emit(items, indent + 1)
        return "\n".join([head, *body, _INDENT * indent + close])

    # the file ----------------------------------------------------------------------
    def program(self) -> str:
        _, items = self._items(
            self.statements, lambda s: s.span, lambda s: self._statement(s, 0), 0, None
        )
        # Top level: statements of different keywords are always a blank line apart.
        prev: _Item | None = None
        since: list[_Item] = []
        for it in items:
            since.append(it)
            if it.is_statement:
                if prev is not None and prev.group != it.group and not any(x.blank_before for x in since):
                    since[0].blank_before = True
                prev, since = it, []
        lines = _emit(items, 0)
        while lines and not lines[0]:
            lines.pop(0)
        out = "\n".join(lines)
        return out + "\n" if out else ""

    # statements ----------------------------------------------------------------------
    def _header(self, st: ast.Statement, indent: int) -> str:
        """Everything before ``=`` or ``{``: keyword, label, parameters, type."""
        head = st.keyword
        after = self._end(st.keyword_span)
        if st.label is not None and st.label_span is not None:
            label = self._src(st.label_span) if st.label_is_string else st.label
            if st.label_is_string and label.startswith(_LONG_QUOTE):
                label = self._long_string(label, indent)
            head += " " + label
            after = self._end(st.label_span)
        if st.params is not None:
            head += self._params(st.params, after, indent)
        if st.type is not None:
            head += ": " + self._type(st.type)
        return head

    def _params(self, params: list[ast.TemplateParam], after: _Pos, indent: int) -> str:
        _, open_pos = self._next_char(after)
        if params:
            _, close_pos = self._next_char(self._end(params[-1].span), skip=",")
        else:
            _, close_pos = self._next_char((open_pos[0], open_pos[1] + 1))
        if not self._comment_within(open_pos, close_pos) and (not params or open_pos[0] == close_pos[0]):
            return "(" + ", ".join(self._param(p, indent) for p in params) + ")"
        opener, items = self._items(
            params,
            lambda p: p.span,
            lambda p: _Item(self._param(p, indent + 1) + ","),
            open_pos[0],
            close_pos,
        )
        return self._block(opener, items, indent, "(", ")")

    def _param(self, p: ast.TemplateParam, indent: int) -> str:
        text = f"{p.name}: {self._type(p.type)}"
        if p.default is not None:
            text += " = " + self._expr(p.default, indent)
        return text

    def _type(self, t: ast.TypeExpr) -> str:
        if t.choices is not None:
            src = self._src(t.span)
            strings = _SHORT_STRING.findall(src[src.find("(") :])
            if len(strings) != len(t.choices):  # pragma: no cover - exotic strings: keep as written
                return src
            return f"{t.name}(" + ", ".join(strings) + ")"
        if t.generic and t.item is not None:
            return f"{t.name}[{self._type(t.item)}]"
        return t.name

    def _statement(self, st: ast.Statement, indent: int) -> _Item:
        key = self._header(st, indent)
        rest = ""
        if st.value is not None:
            rest = " = " + self._expr(st.value, indent)
        if st.body is not None:
            rest += " " + self._body(st, key + rest, indent)
        align: str | None = None
        if "\n" not in key and st.value is not None and _single(st.value, rest):
            align = "="
        elif "\n" not in key + rest and st.body:
            align = "{"
        return _Item(key, rest, align=align, group=st.keyword, is_statement=True)

    def _body(self, st: ast.Statement, before: str, indent: int) -> str:
        body = st.body or []
        header_end = self._end(st.value.span) if st.value is not None else self._header_end(st)
        _, open_pos = self._next_char(header_end, skip=")")
        close_pos = (st.span.end_line, st.span.end_column - 1)
        if not body and not self._comment_within(open_pos, close_pos):
            return "{}"
        if open_pos[0] == close_pos[0] and all(s.body is None for s in body):
            parts = [self._statement(s, indent + 1) for s in body]
            inline = "{ " + "  ".join(p.key + p.rest for p in parts) + " }"
            if "\n" not in inline and len(_INDENT * indent + before) + 1 + len(inline) <= _WIDTH:
                return inline
        opener, items = self._items(
            body, lambda s: s.span, lambda s: self._statement(s, indent + 1), open_pos[0], close_pos
        )
        return self._block(opener, items, indent, "{", "}")

    def _header_end(self, st: ast.Statement) -> _Pos:
        if st.type is not None:
            return self._end(st.type.span)
        if st.params:
            _, close = self._next_char(self._end(st.params[-1].span), skip=",")
            return (close[0], close[1] + 1)
        if st.params is not None:
            after = self._end(st.label_span) if st.label_span is not None else self._end(st.keyword_span)
            _, open_ = self._next_char(after)
            _, close = self._next_char((open_[0], open_[1] + 1))
            return (close[0], close[1] + 1)
        if st.label_span is not None:
            return self._end(st.label_span)
        return self._end(st.keyword_span)

    # expressions -----------------------------------------------------------------------
    def _expr(self, e: ast.Expr, indent: int) -> str:
        """``e`` as text; continuation lines carry absolute indentation for ``indent``."""
        if isinstance(e, ast.Name):
            return e.name
        if isinstance(e, ast.Int):
            return str(e.value)
        if isinstance(e, ast.Bool):
            return "true" if e.value else "false"
        if isinstance(e, ast.Null):
            return "null"
        if isinstance(e, ast.Str):
            return self._long_string(e.raw, indent) if e.long else e.raw
        if isinstance(e, ast.Member):
            return self._expr(e.obj, indent) + "." + e.name
        if isinstance(e, ast.Call):
            return self._call(e, indent)
        if isinstance(e, ast.ListExpr):
            return self._list(e, indent)
        if isinstance(e, ast.MapExpr):
            return self._map(e, indent)
        raise TypeError(f"unknown expression {type(e).__name__}")  # pragma: no cover

    def _arg(self, a: ast.Arg, indent: int) -> str:
        value = self._expr(a.value, indent)
        return value if a.name is None else f"{a.name} = {value}"

    def _call(self, e: ast.Call, indent: int) -> str:
        func = self._expr(e.func, indent)
        _, open_pos = self._next_char(self._end(e.func.span), skip=")")
        close_pos = (e.span.end_line, e.span.end_column - 1)
        if not self._comment_within(open_pos, close_pos) and (not e.args or open_pos[0] == close_pos[0]):
            return func + "(" + ", ".join(self._arg(a, indent) for a in e.args) + ")"
        opener, items = self._items(
            e.args, lambda a: a.span, lambda a: _Item(self._arg(a, indent + 1) + ","), open_pos[0], close_pos
        )
        return func + self._block(opener, items, indent, "(", ")")

    def _list(self, e: ast.ListExpr, indent: int) -> str:
        close_pos = (e.span.end_line, e.span.end_column - 1)
        if not self._comment_within(self._start(e.span), close_pos) and (not e.items or e.span.line == e.span.end_line):
            return "[" + ", ".join(self._expr(x, indent) for x in e.items) + "]"
        opener, items = self._items(
            e.items, lambda x: x.span, lambda x: _Item(self._expr(x, indent + 1) + ","), e.span.line, close_pos
        )
        return self._block(opener, items, indent, "[", "]")

    def _map_key(self, entry: ast.MapEntry) -> str:
        return entry.key if isinstance(entry.key, str) else entry.key.raw

    def _map(self, e: ast.MapExpr, indent: int) -> str:
        close_pos = (e.span.end_line, e.span.end_column - 1)
        if not e.entries and not self._comment_within(self._start(e.span), close_pos):
            return "{}"
        if e.span.line == e.span.end_line:
            inner = ", ".join(f"{self._map_key(m)} = {self._expr(m.value, indent)}" for m in e.entries)
            return "{ " + inner + " }"

        def entry(m: ast.MapEntry) -> _Item:
            rest = " = " + self._expr(m.value, indent + 1)
            return _Item(self._map_key(m), rest, align="=" if _single(m.value, rest) else None)

        opener, items = self._items(e.entries, lambda m: m.span, entry, e.span.line, close_pos)
        return self._block(opener, items, indent, "{", "}")

    def _long_string(self, raw: str, indent: int) -> str:
        """A ``\"\"\"`` string with its content two spaces deeper than the line it starts on.

        Only when the opening and closing quotes stand alone on their lines, and only
        if re-parsing proves the value unchanged; otherwise the string is kept as written.
        """
        inner = raw[len(_LONG_QUOTE) : -len(_LONG_QUOTE)]
        lines = inner.split("\n")
        if len(lines) < 2 or lines[0].strip(" \t") or lines[-1].strip(" \t"):
            return raw
        middle = lines[1:-1]
        indents = [len(ln) - len(ln.lstrip(" \t")) for ln in middle if ln.strip(" \t")]
        cut = min(indents) if indents else 0
        pad = _INDENT * (indent + 1)
        body = [pad + ln[cut:] if ln.strip(" \t") else "" for ln in middle]
        new = "\n".join([_LONG_QUOTE, *body, pad + _LONG_QUOTE])
        if new == raw or _same_string(raw, new, self.file):
            return new
        return raw  # pragma: no cover - escapes or interpolations spanning lines


def _single(value: ast.Expr, rest: str) -> bool:
    """Whether a value lets its ``=`` take part in alignment: it is one line, or a
    long string (a scalar whose first line is just the opening quotes).
    A multi-line list, map or call opens a nested layout and ends the run instead.
    """
    return "\n" not in rest or (isinstance(value, ast.Str) and value.long)


def _same_string(raw: str, new: str, file: str) -> bool:
    old_tree, _ = parse_file(file, "x = " + raw)
    new_tree, diagnostics = parse_file(file, "x = " + new)
    if diagnostics or not new_tree.statements or not old_tree.statements:
        return False
    return _shape(old_tree.statements[0].value) == _shape(new_tree.statements[0].value)
