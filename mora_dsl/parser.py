"""Parsing: source text to the syntax tree of :mod:`mora_dsl.syntax`.

The lark parser is built once per process (and lark caches its tables on disk),
so a cold ``mora check`` pays for grammar analysis only the first time ever.
lark's exceptions never leave this module: they become positioned diagnostics
with the expected tokens named the way a user writes them.
"""

from __future__ import annotations

import bisect
import re
from functools import cache
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from . import syntax as ast
from .diagnostics import Diagnostic, Note

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


@cache
def _lark() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        start=["start", "template_text"],
        cache=True,
    )


def _span(file: str, meta_or_token: object) -> ast.Span:
    m = meta_or_token
    return ast.Span(
        file,
        getattr(m, "line", 1) or 1,
        getattr(m, "column", 1) or 1,
        getattr(m, "end_line", None) or getattr(m, "line", 1) or 1,
        getattr(m, "end_column", None) or getattr(m, "column", 1) or 1,
    )


def _cook(raw: str) -> str:
    """Turn a string's raw text into its value: escapes, and ``$${`` for a literal ``${``."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        ch = m.group(0)[1]
        return _ESCAPES.get(ch, m.group(0))

    return re.sub(r"\\.|\$\$\{", repl, raw, flags=re.S)


def _cook_template(raw: str) -> str:
    return raw.replace("$${", "${")


def _dedent(parts: list[ast.Text | ast.Interpolation]) -> list[ast.Text | ast.Interpolation]:
    """Remove the common indentation of a ``\"\"\"`` string, plus its first and last blank lines.

    Interpolations count as non-blank text: they are kept where they stand.
    """
    marker = "\x00"
    joined = "".join(p.value if isinstance(p, ast.Text) else marker for p in parts)
    lines = joined.split("\n")
    if lines and lines[0].strip() == "":
        lines = lines[1:]
    if lines and lines[-1].strip(" \t") == "":
        lines = lines[:-1]
    indents = [len(ln) - len(ln.lstrip(" \t")) for ln in lines if ln.strip(" \t")]
    cut = min(indents) if indents else 0
    text = "\n".join(ln[cut:] if ln.strip(" \t") else "" for ln in lines)
    interps = [p for p in parts if isinstance(p, ast.Interpolation)]
    first_text = next((p for p in parts if isinstance(p, ast.Text)), None)
    out: list[ast.Text | ast.Interpolation] = []
    pieces = text.split(marker)
    for i, piece in enumerate(pieces):
        if piece:
            span = first_text.span if first_text else interps[0].span
            out.append(ast.Text(piece, piece, span))
        if i < len(interps):
            out.append(interps[i])
    return out


class _Builder(Transformer):  # type: ignore[type-arg]
    """lark tree → syntax tree. One instance per file (it knows the file name)."""

    def __init__(self, file: str, text: str) -> None:
        super().__init__(visit_tokens=False)
        self.file = file
        self.text = text
        # lark's `v_args` wrappers bind anew on every attribute lookup (once per tree
        # node); binding them once per file saves a quarter of the tree-building time.
        for name, attr in vars(type(self)).items():
            if hasattr(attr, "visit_wrapper"):
                setattr(self, name, getattr(self, name))

    def _s(self, meta: object) -> ast.Span:
        return _span(self.file, meta)

    # statements ---------------------------------------------------------------
    def start(self, items: list[ast.Statement]) -> list[ast.Statement]:
        return items

    @v_args(meta=True)
    def statement(self, meta: object, items: list[object]) -> ast.Statement:
        kw = items[0]
        assert isinstance(kw, Token)
        st = ast.Statement(str(kw), self._s(kw), self._s(meta))
        for it in items[1:]:
            if isinstance(it, tuple):
                tag, val, span = it
                if tag == "label":
                    st.label, st.label_span, st.label_is_string = val[0], span, val[1]
                elif tag == "params":
                    st.params = val
                elif tag == "type":
                    st.type = val
                elif tag == "value":
                    st.value = val
                elif tag == "body":
                    st.body = val
        return st

    @v_args(meta=True)
    def label(self, meta: object, items: list[object]) -> tuple[str, tuple[str, bool], ast.Span]:
        (it,) = items
        if isinstance(it, Token):
            return ("label", (str(it), False), self._s(meta))
        assert isinstance(it, ast.Str)
        const = it.constant()
        return ("label", (const if const is not None else it.raw, True), it.span)

    @v_args(meta=True)
    def param_list(self, meta: object, items: list[object]) -> tuple[str, object, ast.Span]:
        return ("params", [i for i in items if i is not None], self._s(meta))

    @v_args(meta=True)
    def template_param(self, meta: object, items: list[object]) -> ast.TemplateParam:
        name, type_ = items[0], items[1]
        default = items[2] if len(items) > 2 else None
        assert isinstance(type_, tuple)
        return ast.TemplateParam(str(name), type_[1], default, self._s(meta))  # type: ignore[arg-type]

    @v_args(meta=True)
    def type_ann(self, meta: object, items: list[object]) -> tuple[str, object, ast.Span]:
        return ("type", items[0], self._s(meta))

    @v_args(meta=True)
    def assignment(self, meta: object, items: list[object]) -> tuple[str, object, ast.Span]:
        return ("value", items[0], self._s(meta))

    @v_args(meta=True)
    def block(self, meta: object, items: list[object]) -> tuple[str, object, ast.Span]:
        return ("body", list(items), self._s(meta))

    # types -----------------------------------------------------------------------
    @v_args(meta=True)
    def simple_type(self, meta: object, items: list[Token]) -> ast.TypeExpr:
        return ast.TypeExpr(str(items[0]), self._s(meta))

    @v_args(meta=True)
    def generic_type(self, meta: object, items: list[object]) -> ast.TypeExpr:
        item = items[1]
        assert isinstance(item, ast.TypeExpr)
        return ast.TypeExpr(str(items[0]), self._s(meta), item=item, generic=True)

    @v_args(meta=True)
    def choice_type(self, meta: object, items: list[object]) -> ast.TypeExpr:
        choices = []
        for s in items[1:]:
            if s is None:
                continue
            assert isinstance(s, ast.Str)
            choices.append(s.constant() if s.constant() is not None else s.raw)
        return ast.TypeExpr(str(items[0]), self._s(meta), choices=choices)  # type: ignore[arg-type]

    # expressions -----------------------------------------------------------------
    @v_args(meta=True)
    def name(self, meta: object, items: list[Token]) -> ast.Name:
        return ast.Name(self._s(meta), str(items[0]))

    @v_args(meta=True)
    def member(self, meta: object, items: list[object]) -> ast.Member:
        obj, tok = items
        assert isinstance(obj, ast.Expr) and isinstance(tok, Token)
        return ast.Member(self._s(meta), obj, str(tok), self._s(tok))

    @v_args(meta=True)
    def call(self, meta: object, items: list[object]) -> ast.Call:
        func = items[0]
        assert isinstance(func, ast.Expr)
        args = [a for a in items[1:] if a is not None]
        return ast.Call(self._s(meta), func, args)  # type: ignore[arg-type]

    @v_args(meta=True)
    def positional_arg(self, meta: object, items: list[ast.Expr]) -> ast.Arg:
        return ast.Arg(None, items[0], self._s(meta))

    @v_args(meta=True)
    def keyword_arg(self, meta: object, items: list[object]) -> ast.Arg:
        return ast.Arg(str(items[0]), items[1], self._s(meta))  # type: ignore[arg-type]

    @v_args(meta=True)
    def int(self, meta: object, items: list[Token]) -> ast.Int:
        return ast.Int(self._s(meta), int(str(items[0])))

    @v_args(meta=True)
    def neg_int(self, meta: object, items: list[Token]) -> ast.Int:
        return ast.Int(self._s(meta), -int(str(items[0])))

    @v_args(meta=True)
    def true(self, meta: object, items: list[Token]) -> ast.Bool:
        return ast.Bool(self._s(meta), True)

    @v_args(meta=True)
    def false(self, meta: object, items: list[Token]) -> ast.Bool:
        return ast.Bool(self._s(meta), False)

    @v_args(meta=True)
    def null(self, meta: object, items: list[Token]) -> ast.Null:
        return ast.Null(self._s(meta))

    @v_args(meta=True)
    def list(self, meta: object, items: list[object]) -> ast.ListExpr:
        return ast.ListExpr(self._s(meta), [i for i in items if i is not None])  # type: ignore[misc]

    @v_args(meta=True)
    def map(self, meta: object, items: list[ast.MapEntry]) -> ast.MapExpr:
        return ast.MapExpr(self._s(meta), items)

    @v_args(meta=True)
    def map_entry(self, meta: object, items: list[object]) -> ast.MapEntry:
        key, value = items[0], items[1]
        if isinstance(key, Token):
            return ast.MapEntry(str(key), self._s(key), value, self._s(meta))  # type: ignore[arg-type]
        assert isinstance(key, ast.Str)
        return ast.MapEntry(key, key.span, value, self._s(meta))  # type: ignore[arg-type]

    @v_args(meta=True)
    def interpolation(self, meta: object, items: list[ast.Expr]) -> ast.Interpolation:
        return ast.Interpolation(items[0], self._s(meta))

    long_interpolation = interpolation
    template_interpolation = interpolation

    def _parts(self, items: list[object], cook) -> list[ast.Text | ast.Interpolation]:  # type: ignore[no-untyped-def]
        parts: list[ast.Text | ast.Interpolation] = []
        for it in items:
            if isinstance(it, Token):
                parts.append(ast.Text(str(it), cook(str(it)), self._s(it)))
            else:
                parts.append(it)  # type: ignore[arg-type]
        return parts

    @v_args(meta=True)
    def short_string(self, meta: object, items: list[object]) -> ast.Str:
        raw = self.text[meta.start_pos : meta.end_pos]  # type: ignore[attr-defined]
        return ast.Str(self._s(meta), self._parts(items, _cook), False, raw)

    @v_args(meta=True)
    def long_string(self, meta: object, items: list[object]) -> ast.Str:
        raw = self.text[meta.start_pos : meta.end_pos]  # type: ignore[attr-defined]
        return ast.Str(self._s(meta), _dedent(self._parts(items, _cook)), True, raw)

    def template_text(self, items: list[object]) -> list[ast.Text | ast.Interpolation]:
        return self._parts(items, _cook_template)


# --------------------------------------------------------------------------- errors

_TOKEN_NAMES = {
    "NAME": "a name",
    "INT": "a number",
    "STRING_TEXT": "string text",
    "LONG_TEXT": "string text",
    "TEMPLATE_TEXT": "text",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "EQUAL": "`=`",
    "COLON": "`:`",
    "COMMA": "`,`",
    "DOT": "`.`",
    "MINUS": "`-`",
    "DBLQUOTE": 'a string (`"`)',
    "$END": "end of file",
}


# A token of the language at a position (used to describe text the fallback lexer took).
_TOKEN_AT = re.compile(r'"""|\$\{|[A-Za-z_][A-Za-z0-9_-]*|[0-9]+|[=:,.\[\](){}"-]')


def _describe_expected(expected: set[str]) -> str:
    names: list[str] = []
    for term in sorted(expected):
        pretty = _TOKEN_NAMES.get(term)
        if pretty is None:
            try:
                pattern = _lark().get_terminal(term).pattern
                pretty = f"`{pattern.value}`" if pattern.type == "str" else term.lower()
            except (KeyError, AttributeError):
                pretty = term.lower()
        if pretty not in names:
            names.append(pretty)
    if len(names) > 6:
        names = [*names[:6], "…"]
    return ", ".join(names)


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    value = str(tok)
    if tok.type == "NAME":
        return f"name `{value}`"
    if len(value) > 20:
        value = value[:20] + "…"
    return f"`{value}`"


def _syntax_diagnostic(
    file: str, text: str, err: UnexpectedInput, template: bool = False
) -> Diagnostic:
    line = getattr(err, "line", None)
    col = getattr(err, "column", None)
    if not isinstance(line, int) or line < 1:
        lines = text.split("\n")
        line, col = len(lines), len(lines[-1]) + 1
    col = col if isinstance(col, int) and col >= 1 else 1
    span = ast.Span(file, line, col, line, col + 1)
    if isinstance(err, UnexpectedToken) and err.token.type.endswith("_TEXT"):
        # lark's fallback lexer matched text where no text may stand. Either the text
        # starts with a token of the language that is out of place here (`= =`, `1.5`),
        # a syntax error, or with a character no token starts with.
        start = err.token.start_pos
        found = _TOKEN_AT.match(text, start) if isinstance(start, int) else None
        if found is not None:
            value = found.group(0)
            shown = f"name `{value}`" if value[0].isalpha() or value[0] == "_" else f"`{value}`"
            return Diagnostic(
                "E001",
                f"unexpected {shown}",
                ast.Span(file, line, col, line, col + len(value)),
                help=f"expected {_describe_expected(set(err.accepts or err.expected))}",
            )
        ch = str(err.token)[:1]
        return Diagnostic(
            "E003",
            f"unexpected character `{ch}`" if ch.isprintable() else f"unexpected character {ch!r}",
            ast.Span(file, line, col, line, col + 1),
            help="names are letters, digits, `_` and `-`; strings go in double quotes",
        )
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type != "$END":
            span = _span(file, tok)
        expected = _describe_expected(set(err.accepts or err.expected))
        if tok.type == "$END":
            # lark places the end at the last token; point just after the last character
            rest = text.rstrip()
            end_line = rest.count("\n") + 1
            end_col = len(rest) - (rest.rfind("\n") + 1) + 1
            span = ast.Span(file, end_line, end_col, end_line, end_col + 1)
            opener = None if template else _unclosed_bracket(text)
            if opener is not None:
                ch, o_line, o_col = opener
                close = {"{": "}", "[": "]", "(": ")", "${": "}"}[ch]
                return Diagnostic(
                    "E002",
                    f"`{ch}` is not closed before the end of the file",
                    ast.Span(file, o_line, o_col, o_line, o_col + len(ch)),
                    help=f"add the `{close}` that closes it",
                    notes=[Note(span, f"the file ends here; expected {expected}")],
                )
            return Diagnostic(
                "E002",
                "unexpected end of file",
                span,
                help=f"expected {expected}; is a `}}`, `]`, `)` or closing quote missing?",
            )
        return Diagnostic(
            "E001",
            f"unexpected {_describe_token(tok)}",
            span,
            help=f"expected {expected}",
        )
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if 0 <= err.pos_in_stream < len(text) else ""
        if (ch == "\n" and '"' in (err.allowed or set())) or "DBLQUOTE" in (err.allowed or set()):
            return Diagnostic(
                "E002",
                "string is not closed before the end of the line",
                span,
                help='close it with `"`, or use `"""` for a string over several lines',
            )
        shown = repr(ch) if ch and not ch.isprintable() else f"`{ch}`"
        return Diagnostic(
            "E003",
            f"unexpected character {shown}",
            span,
            help="names are letters, digits, `_` and `-`; strings go in double quotes",
        )
    if isinstance(err, UnexpectedEOF):
        return Diagnostic("E002", "unexpected end of file", span, help="something is not closed")
    return Diagnostic("E001", "syntax error", span)


def parse_file(file: str, text: str) -> tuple[ast.SourceFile, list[Diagnostic]]:
    """Parse one `.mora` file. On a syntax error the file has no statements and one diagnostic."""
    src = ast.SourceFile(file, text)
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        return src, [
            Diagnostic(
                "E004",
                "file holds a NUL byte: not a text file",
                ast.Span(file, line, 1, line, 2),
                help="mora reads UTF-8 text; remove the file from the project folder",
            )
        ]
    # Comments are ignored tokens, so collect them with a light scan of our own.
    comments, unclosed = _scan(file, text)
    if unclosed is not None:
        return src, [unclosed]
    try:
        tree = _lark().parse(text, start="start")
        src.statements = _Builder(file, text).transform(tree)
        src.comments = comments
        return src, []
    except UnexpectedInput as err:
        return src, [_syntax_diagnostic(file, text, err)]
    except (LarkError, RecursionError) as err:  # pragma: no cover - defensive
        return src, [
            Diagnostic("E001", f"cannot parse this file ({type(err).__name__})", ast.Span(file, 1, 1, 1, 2))
        ]


def parse_template(file: str, text: str) -> tuple[ast.TemplateFile, list[Diagnostic]]:
    """Parse a file read by ``template(...)``: literal text with ``${expr}`` interpolations."""
    tpl = ast.TemplateFile(file, text)
    if not text:
        return tpl, []
    try:
        tree = _lark().parse(text, start="template_text")
        parts = _Builder(file, text).transform(tree)
        if isinstance(parts, Tree):  # pragma: no cover - empty template
            parts = []
        tpl.parts = parts
        return tpl, []
    except UnexpectedInput as err:
        return tpl, [_syntax_diagnostic(file, text, err, template=True)]
    except (LarkError, RecursionError) as err:  # pragma: no cover - defensive
        return tpl, [
            Diagnostic("E001", f"cannot parse this file ({type(err).__name__})", ast.Span(file, 1, 1, 1, 2))
        ]


_CODE_STOPS = re.compile(r'#|"""|"|[{}]')
_STRING_STOPS = re.compile(r'\\.|\$\$\{|\$\{|"""|"|\n', re.S)


def _scan(file: str, text: str) -> tuple[list[ast.Comment], Diagnostic | None]:
    """Find ``#`` comments and the first string that is not closed.

    lark ignores whitespace in every lexer state, so a short string that runs past
    the end of its line would otherwise be glued to the next line silently; this
    scan reports it where the string opens. It jumps from one significant
    character to the next with a regex and works out line and column only for
    what it reports.
    """
    newlines = [m.start() for m in re.finditer("\n", text)]

    def where(pos: int) -> tuple[int, int]:
        line = bisect.bisect_left(newlines, pos)
        start = newlines[line - 1] + 1 if line else 0
        return line + 1, pos - start + 1

    out: list[ast.Comment] = []
    i, n = 0, len(text)
    in_str: str | None = None  # '"' or '"""'
    opened = 0
    depth: list[tuple[str, int]] = []  # strings we are interpolating inside, brace depth
    braces = 0
    while i < n:
        if in_str is None:
            m = _CODE_STOPS.search(text, i)
            if m is None:
                break
            tok, i = m.group(), m.start()
            if tok == "#":
                j = text.find("\n", i)
                j = n if j < 0 else j
                line, col = where(i)
                out.append(ast.Comment(text[i:j].rstrip(), ast.Span(file, line, col, line, col + j - i)))
                i = j
                continue
            if tok in ('"""', '"'):
                in_str, opened = tok, i
            elif tok == "{":
                braces += 1
            elif depth and braces == depth[-1][1]:
                in_str = depth.pop()[0]
            else:
                braces -= 1
            i += len(tok)
            continue
        m = _STRING_STOPS.search(text, i)
        if m is None:
            break
        tok, i = m.group(), m.start()
        if tok == "${":
            depth.append((in_str, braces))
            in_str = None
        elif tok == in_str or (tok == '"""' and in_str == '"'):
            if tok != in_str:  # `""` closes a short string; the third quote opens another
                tok = '"'
            in_str = None
        elif tok == "\n" and in_str == '"':
            return out, _unclosed(file, where(opened), *where(i))
        i += len(tok)
    if in_str is not None:
        return out, _unclosed(file, where(opened), *where(n), at_eof=True)
    return out, None


def _unclosed_bracket(text: str) -> tuple[str, int, int] | None:
    """The innermost ``{``, ``[``, ``(`` or ``${`` still open at the end of ``text``.

    Strings and comments are skipped; a closer that matches nothing is ignored (that
    is another error, reported where it stands).
    """
    stack: list[tuple[str, int, int]] = []  # brackets, `${` and the quotes of open strings
    i, n, line, col = 0, len(text), 1, 1
    while i < n:
        ch = text[i]
        step = 1
        top = stack[-1][0] if stack else ""
        if top in ('"', '"""'):
            if ch == "\\":
                step = 2
            elif text.startswith("$${", i):
                step = 3
            elif text.startswith("${", i):
                stack.append(("${", line, col))
                step = 2
            elif text.startswith(top, i):
                stack.pop()
                step = len(top)
        elif ch == "#":
            j = text.find("\n", i)
            step = max((n if j < 0 else j) - i, 1)
        elif text.startswith('"""', i):
            stack.append(('"""', line, col))
            step = 3
        elif ch in '"{[(':
            stack.append((ch, line, col))
        elif ch in "}])" and stack:
            stack.pop()
        for c in text[i : i + step]:
            if c == "\n":
                line, col = line + 1, 1
            else:
                col += 1
        i += step
    open_brackets = [s for s in stack if s[0] not in ('"', '"""')]
    return open_brackets[-1] if open_brackets else None


def _unclosed(file: str, opened: tuple[int, int], line: int, col: int, at_eof: bool = False) -> Diagnostic:
    where = "the end of the file" if at_eof else "the end of the line"
    return Diagnostic(
        "E002",
        f"string is not closed before {where}",
        ast.Span(file, opened[0], opened[1], opened[0], opened[1] + 1),
        help='close it with `"`; for text over several lines use `"""`'
        if not at_eof
        else "close it with the same quotes that open it",
    )
