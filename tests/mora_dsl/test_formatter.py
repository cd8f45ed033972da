"""Tests for :mod:`mora_dsl.formatter`: canonical layout, comments kept, idempotence.

Every formatted text is checked against the program it came from: same syntax
tree (without spans), same comments in the same order. The property tests shake
the whitespace of the example files and generate random programs with comments
in every possible gap.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mora_dsl import formatter
from mora_dsl import syntax as ast
from mora_dsl.formatter import format_source
from mora_dsl.parser import parse_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("**/*.mora"))
EXAMPLE_IDS = [str(p.relative_to(ROOT / "examples")) for p in EXAMPLES]


# --------------------------------------------------------------------------- helpers


def _dump(node: object) -> object:
    """Span-free dump written independently of the formatter's own safety-net check.

    ``raw`` is left out: long strings are re-indented, so only their values must match.
    """
    if isinstance(node, list):
        return [_dump(n) for n in node]
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return {
            f.name: _dump(getattr(node, f.name))
            for f in dataclasses.fields(node)
            if not isinstance(getattr(node, f.name), ast.Span) and f.name != "raw"
        }
    return node


def _parse(text: str) -> ast.SourceFile:
    tree, diagnostics = parse_file("t.mora", text)
    assert diagnostics == [], diagnostics
    return tree


def fmt(text: str) -> str:
    """Format, and check everything every formatting must satisfy."""
    out, diagnostics = format_source(text, "t.mora")
    assert diagnostics == [], diagnostics
    assert out is not None
    before, after = _parse(text), _parse(out)
    assert _dump(after.statements) == _dump(before.statements)
    assert [c.text for c in after.comments] == [c.text for c in before.comments]
    again, _ = format_source(out, "t.mora")
    assert again == out, "not idempotent"
    assert out == "" or (out.endswith("\n") and not out.endswith("\n\n"))
    assert not out.startswith("\n")
    return out


def _no_trailing_spaces(text: str) -> bool:
    return all(line == line.rstrip() for line in text.split("\n"))


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_examples_are_formatted_idempotently(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    out = fmt(text)
    assert _no_trailing_spaces(out)
    # The formatter only moves whitespace in the acceptance programs (no commas or parentheses to normalise).
    assert "".join(out.split()) == "".join(text.split())


def test_examples_are_found() -> None:
    assert {"minimal/main.mora", "media-server/main.mora"} <= set(EXAMPLE_IDS)


def test_minimal_example_is_already_canonical() -> None:
    text = (ROOT / "examples/minimal/main.mora").read_text(encoding="utf-8")
    assert fmt(text) == text


def test_media_server_differs_only_where_the_example_is_inconsistent() -> None:
    """The acceptance program aligns some runs and not others; these are the lines that change."""
    text = (ROOT / "examples/media-server/main.mora").read_text(encoding="utf-8")
    out = fmt(text)
    changed = [(a, b) for a, b in zip(text.split("\n"), out.split("\n"), strict=True) if a != b]
    assert changed == [
        ("    TZ                   = timezone", "    TZ = timezone"),
        ('  image = "lscr.io/linuxserver/${kind}:latest"', '  image     = "lscr.io/linuxserver/${kind}:latest"'),
        ('  image = "lscr.io/linuxserver/qbittorrent:5.0.4"', '  image     = "lscr.io/linuxserver/qbittorrent:5.0.4"'),
        ('service sonarr   = arr(kind = "sonarr",   port = 8989) {', 'service sonarr = arr(kind = "sonarr", port = 8989) {'),
        ('service radarr   = arr(kind = "radarr",   port = 7878) {', 'service radarr = arr(kind = "radarr", port = 7878) {'),
    ]


# --------------------------------------------------------------------------- the canonical layout

MESSY = """\
# header comment


project   "demo"{description="x"   # trailing on description
}
param a:int=1
param bb : string = "s"


param c: list[ string ]
secret k=password( length=24 ) # gen
template t( kind : string,
   port: int = 80, ) {
  image="img/${kind}"
      # about env
  environment={A=1,BB=[x,y]}
  env2 = {
    LONG_NAME = "v" , # first
    # lead of X
    X = f(a,
      b)


    "q-${kind}" = 2
    # end of map
  }
}
service s = t(kind="a"){subdomain="s"}
service   w {
  image = "w"   port http=80{public=false}
  volume v {path="/v"  size="1Gi"}
  volume vv{ path="/vv" }
  input key: secret {
  help = \"\"\"
        line one ${w.url}
          indented
        \"\"\"
  }
  # end of block
}
# end of file
"""

MESSY_FORMATTED = """\
# header comment

project "demo" {
  description = "x"  # trailing on description
}

param a: int     = 1
param bb: string = "s"

param c: list[string]

secret k = password(length = 24)  # gen

template t(
  kind: string,
  port: int = 80,
) {
  image = "img/${kind}"
  # about env
  environment = { A = 1, BB = [x, y] }
  env2 = {
    LONG_NAME = "v"  # first
    # lead of X
    X = f(
      a,
      b,
    )

    "q-${kind}" = 2
    # end of map
  }
}

service s = t(kind = "a") { subdomain = "s" }
service w {
  image     = "w"
  port http = 80 { public = false }
  volume v  { path = "/v"  size = "1Gi" }
  volume vv { path = "/vv" }
  input key: secret {
    help = \"\"\"
      line one ${w.url}
        indented
      \"\"\"
  }
  # end of block
}
# end of file
"""


def test_messy_input_gets_the_canonical_layout() -> None:
    assert fmt(MESSY) == MESSY_FORMATTED


def test_comments_are_kept_in_order() -> None:
    text = (
        "# leading 1\n"
        "# leading 2\n"
        "service web { # after brace\n"
        "  # leading inner\n"
        '  image = "nginx"  # trailing inner\n'
        "  environment = {\n"
        "    A = 1 # entry\n"
        "    # map end\n"
        "  }\n"
        "  # block end\n"
        "} # after close\n"
        "# file end 1\n"
        "\n"
        "# file end 2\n"
    )
    out = fmt(text)
    expected = [
        "# leading 1", "# leading 2", "# after brace", "# leading inner", "# trailing inner",
        "# entry", "# map end", "# block end", "# after close", "# file end 1", "# file end 2",
    ]
    positions = [out.index(c) for c in expected]
    assert positions == sorted(positions)
    assert out == (
        "# leading 1\n"
        "# leading 2\n"
        "service web {  # after brace\n"
        "  # leading inner\n"
        '  image = "nginx"  # trailing inner\n'
        "  environment = {\n"
        "    A = 1  # entry\n"
        "    # map end\n"
        "  }\n"
        "  # block end\n"
        "}  # after close\n"
        "# file end 1\n"
        "\n"
        "# file end 2\n"
    )


def test_comment_where_no_line_can_start_moves_before_its_statement() -> None:
    out = fmt("service web {\n  image # odd place\n    = \"nginx\"  # after\n}\n")
    assert out == 'service web {\n  # odd place\n  image = "nginx"  # after\n}\n'


def test_empty_constructs_holding_comments_stay_open() -> None:
    out = fmt("service a { # why empty\n}\nservice b {\n  x = [ # none yet\n  ]\n}\n")
    assert out == "service a {  # why empty\n}\nservice b {\n  x = [  # none yet\n  ]\n}\n"


def test_crlf_input_gives_lf_output() -> None:
    text = (ROOT / "examples/minimal/main.mora").read_text(encoding="utf-8")
    assert fmt(text.replace("\n", "\r\n")) == text


def test_trailing_comment_stays_with_the_last_entry_on_its_line() -> None:
    out = fmt("x = [a, b, # about b\n  c]\n")
    assert out == "x = [\n  a,\n  b,  # about b\n  c,\n]\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("\n\n  \n", ""),
        ("# only a comment", "# only a comment\n"),
        ("volume x {\n}\n", "volume x {}\n"),
        ("volume x { }", "volume x {}\n"),
        ("x = [ ]\nx = { }\nx = f( )", "x = []\nx = {}\nx = f()\n"),
        # blank lines: at most one, none after `{` or before `}`
        ("service a {\n\n\n  x = 1\n\n\n\n  y = 2\n\n}\n", "service a {\n  x = 1\n\n  y = 2\n}\n"),
        # top level: different keywords get a blank line, same keywords keep the author's choice
        ("param a: int\nparam b: int\n\n\nparam c: int\nsecret s = token()",
         "param a: int\nparam b: int\n\nparam c: int\n\nsecret s = token()\n"),
        ("param a: int\n# about s\nsecret s = token()", "param a: int\n\n# about s\nsecret s = token()\n"),
        # a multi-line list or call gets one entry per line with a trailing comma
        ("x = [a,\n b]", "x = [\n  a,\n  b,\n]\n"),
        ("x = f(\n  a = 1, b)", "x = f(\n  a = 1,\n  b,\n)\n"),
        # a multi-line map: one entry per line, no commas, aligned
        ("x = { a = 1,\n bbb = 2, }", "x = {\n  a   = 1\n  bbb = 2\n}\n"),
        # optional commas and grouping parentheses are normalised
        ("x = { a = 1, b = 2, }\nx = [1, 2,]\nx = (f)(1,)", "x = { a = 1, b = 2 }\nx = [1, 2]\nx = f(1)\n"),
        ("x = - 5", "x = -5\n"),
        ('param p: one_of( "a" ,"b\\"" )', 'param p: one_of("a", "b\\"")\n'),
        ("param p: map[ list[int] ]", "param p: map[list[int]]\n"),
        ('file "/etc/x.conf" = "a\\tb ${ x }"', 'file "/etc/x.conf" = "a\\tb ${ x }"\n'),
        # a one-line block holding a block is expanded
        ("service a { port http = 80 { public = false } }",
         "service a {\n  port http = 80 { public = false }\n}\n"),
    ],
)
def test_layout_rules(text: str, expected: str) -> None:
    assert fmt(text) == expected


def test_alignment_sections_split_on_long_keys() -> None:
    text = (
        "service a {\n"
        "  image = 1\n"
        "  subdomain = 2\n"
        "  secret jwt_secret = token()\n"
        "  secret tls = token()\n"
        "  nodes = 3\n"
        "}\n"
    )
    assert fmt(text) == (
        "service a {\n"
        "  image     = 1\n"
        "  subdomain = 2\n"
        "  secret jwt_secret = token()\n"
        "  secret tls = token()\n"
        "  nodes      = 3\n"
        "}\n"
    )


def test_alignment_runs_end_at_blank_lines_comments_and_blocks() -> None:
    text = (
        "service a {\n  image = 1\n  subdomain = 2\n\n  x = 3\n  # c\n  yy = 4\n"
        "  volume v { path = 1 }\n  zzz = 5\n  environment = {\n    A = 1\n  }\n  w = 6\n}\n"
    )
    assert fmt(text) == (
        "service a {\n  image     = 1\n  subdomain = 2\n\n  x = 3\n  # c\n  yy = 4\n"
        "  volume v { path = 1 }\n  zzz = 5\n  environment = {\n    A = 1\n  }\n  w = 6\n}\n"
    )


def test_long_one_line_block_is_expanded() -> None:
    value = "v" * 80
    out = fmt(f'volume data {{ path = "{value}"  size = "1Gi" }}\n')
    assert out == f'volume data {{\n  path = "{value}"\n  size = "1Gi"\n}}\n'


def test_long_string_is_reindented_with_its_block() -> None:
    text = 'service a {\ninput k: secret {\nhelp = """\n  one\n    two\n\n  three\n"""\n}\n}\n'
    out = fmt(text)
    assert out == (
        'service a {\n  input k: secret {\n    help = """\n      one\n        two\n\n      three\n'
        '      """\n  }\n}\n'
    )


def test_long_string_with_text_on_the_quote_lines_is_kept_verbatim() -> None:
    text = 'x = """first\n   second"""\ny = """\n  a \\\n  b\n  """\n'
    out = fmt(text)
    assert 'x = """first\n   second"""\n' in out


# --------------------------------------------------------------------------- errors and the safety net


def test_syntax_error_returns_none_and_the_diagnostic() -> None:
    out, diagnostics = format_source('service web {\n  image = "nginx"\n', "web.mora")
    assert out is None
    assert [d.code for d in diagnostics] == ["E002"]
    assert diagnostics[0].span is not None and diagnostics[0].span.file == "web.mora"


@pytest.mark.parametrize("text", ["service web @ {}", 'x = "open', "\x00", "}", "x = [1,,]"])
def test_bad_input_never_raises(text: str) -> None:
    out, diagnostics = format_source(text)
    assert out is None and diagnostics and all(d.severity == "error" for d in diagnostics)


def test_a_formatter_bug_leaves_the_text_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "service web {\n  x = 1\n}\n"
    monkeypatch.setattr(formatter._Printer, "program", lambda self: "service web {}\n")
    out, diagnostics = format_source(text)
    assert out == text and [(d.code, d.severity) for d in diagnostics] == [("W001", "warning")]

    def boom(self: object) -> str:
        raise RecursionError

    monkeypatch.setattr(formatter._Printer, "program", boom)
    out, diagnostics = format_source(text)
    assert out == text and [d.code for d in diagnostics] == ["W001"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab =",{}[]()#\n:.-1$"x'))) | st.text(max_size=40))
def test_any_text_never_raises(text: str) -> None:
    out, diagnostics = format_source(text)
    if out is not None:  # it parsed: then the formatter must have succeeded
        assert diagnostics == []
        assert format_source(out)[0] == out


# --------------------------------------------------------------------------- property: whitespace does not matter

_PUNCT = set("()[]{},=:.")


def _gaps(text: str) -> list[tuple[int, int]]:
    """Whitespace runs between tokens, plus empty gaps beside punctuation, outside strings and comments."""
    gaps: list[tuple[int, int]] = []
    i, n = 0, len(text)
    state: list[str] = []  # stack: '"' / '"""' for strings, '${' for interpolations
    while i < n:
        ch = text[i]
        top = state[-1] if state else None
        if top in ('"', '"""'):
            if ch == "\\":
                i += 2
            elif text.startswith("$${", i):
                i += 3
            elif text.startswith("${", i):
                state.append("${")
                i += 2
            elif text.startswith(top, i):
                state.pop()
                i += len(top)
            else:
                i += 1
            continue
        if ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith('"""', i):
            state.append('"""')
            i += 3
        elif ch == '"':
            state.append('"')
            i += 1
        elif ch == "}" and top == "${":
            state.pop()
            i += 1
        elif ch.isspace():
            j = i
            while j < n and text[j].isspace():
                j += 1
            if not state:
                gaps.append((i, j))
            i = j
        else:
            if not state and ch in _PUNCT:
                if i > 0 and not text[i - 1].isspace():
                    gaps.append((i, i))
                if i + 1 < n and not text[i + 1].isspace() and text[i + 1] != "#":
                    gaps.append((i + 1, i + 1))
            i += 1
    return sorted(set(gaps))


_HSPACE = st.sampled_from([" ", "  ", "\t", "   ", " \t "])


@st.composite
def _shaken(draw: st.DrawFn, text: str) -> str:
    """``text`` with every whitespace gap replaced by other whitespace of the same line structure."""
    out: list[str] = []
    last = 0
    for start, end in _gaps(text):
        run = text[start:end]
        newlines = run.count("\n")
        if start == end:
            new = draw(st.sampled_from(["", " ", "\t"]))
        elif newlines == 0:
            new = draw(_HSPACE)
        else:
            count = 1 if newlines == 1 else draw(st.integers(2, 4))
            lines = [draw(st.sampled_from(["", " ", "\t"])) for _ in range(count)]
            new = "\n".join(lines) + "\n" + draw(st.sampled_from(["", "  ", "\t", "      "]))
        out.append(text[last:start])
        out.append(new)
        last = end
    out.append(text[last:])
    return "".join(out)


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_whitespace_changes_give_the_same_canonical_text(path: Path, data: st.DataObject) -> None:
    text = path.read_text(encoding="utf-8")
    shaken = data.draw(_shaken(text))
    assert fmt(shaken) == fmt(text)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_whitespace_changes_of_a_commented_program(data: st.DataObject) -> None:
    shaken = data.draw(_shaken(MESSY_FORMATTED))
    assert fmt(shaken) == MESSY_FORMATTED


# --------------------------------------------------------------------------- property: random programs

_NAMES = st.sampled_from(["a", "port", "image", "x-y", "service", "env_2", "Bb"])
_GAP = st.sampled_from(["", " ", "  ", "\n", "\n\n", "\n\n\n", " #C\n", "\n  #C\n\n", "\t"])
_SEP = st.sampled_from([" ", "\n", "\n\n", " #C\n", "\n#C\n#C\n  "])


@st.composite
def _short_string(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.sampled_from(["ab", " ", "\\\"", "\\n", "$${", "${a}", "${b.c}", "#"]), max_size=4))
    return '"' + "".join(parts) + '"'


@st.composite
def _long_string(draw: st.DrawFn) -> str:
    indent = draw(st.sampled_from(["", "  ", "    "]))
    lines = draw(st.lists(st.sampled_from(["one", "  two", "", '"q"', "${a} x", "   "]), max_size=4))
    return '"""\n' + "".join(indent + ln + "\n" for ln in lines) + draw(st.sampled_from(["", "  "])) + '"""'


@st.composite
def _expr(draw: st.DrawFn, depth: int = 0) -> str:
    simple = ["name", "int", "neg", "bool", "null", "str", "long"]
    kind = draw(st.sampled_from(simple + (["list", "map", "call", "member"] if depth < 3 else [])))
    g = lambda: draw(_GAP)  # noqa: E731
    if kind == "name":
        return draw(_NAMES)
    if kind == "int":
        return str(draw(st.integers(0, 10**6)))
    if kind == "neg":
        return "-" + g() + str(draw(st.integers(0, 99)))
    if kind == "bool":
        return draw(st.sampled_from(["true", "false"]))
    if kind == "null":
        return "null"
    if kind == "str":
        return draw(_short_string())
    if kind == "long":
        return draw(_long_string())
    if kind == "member":
        return draw(_expr(depth + 1)) + g() + "." + g() + draw(_NAMES)
    items = draw(st.lists(_expr(depth + 1), max_size=3))
    trailing = draw(st.sampled_from(["", ","])) if items else ""
    if kind == "list":
        return "[" + g() + ("," + g()).join(items) + trailing + g() + "]"
    if kind == "call":
        args = [draw(st.sampled_from(["", draw(_NAMES) + g() + "=" + g()])) + x for x in items]
        return draw(_NAMES) + g() + "(" + g() + ("," + g()).join(args) + trailing + g() + ")"
    entries = [
        draw(st.one_of(_NAMES, _short_string())) + g() + "=" + g() + x + draw(st.sampled_from(["", ","]))
        for x in items
    ]
    return "{" + g() + "".join(e + draw(_SEP) for e in entries) + "}"


@st.composite
def _type(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.sampled_from(["simple", "generic", "choice"] if depth < 2 else ["simple"]))
    name = draw(_NAMES)
    if kind == "generic":
        return name + draw(_GAP) + "[" + draw(_GAP) + draw(_type(depth + 1)) + draw(_GAP) + "]"
    if kind == "choice":
        strings = draw(st.lists(st.sampled_from(['"a"', '"b c"', '"\\""']), min_size=1, max_size=3))
        return name + "(" + draw(_GAP) + ("," + draw(_GAP)).join(strings) + draw(_GAP) + ")"
    return name


@st.composite
def _statement(draw: st.DrawFn, depth: int = 0) -> str:
    g = lambda: draw(_GAP)  # noqa: E731
    text = draw(_NAMES)
    if draw(st.booleans()):
        text += draw(_SEP) + draw(st.one_of(_NAMES, _short_string()))
    if draw(st.integers(0, 4)) == 0:
        params = [
            draw(_NAMES) + g() + ":" + g() + draw(_type()) + draw(st.sampled_from(["", " = " + draw(_expr(2))]))
            for _ in range(draw(st.integers(0, 3)))
        ]
        text += g() + "(" + g() + ("," + g()).join(params) + g() + ")"
    if draw(st.integers(0, 3)) == 0:
        text += g() + ":" + g() + draw(_type())
    if draw(st.booleans()):
        text += g() + "=" + g() + draw(_expr())
    if depth < 2 and draw(st.integers(0, 2)) == 0:
        body = draw(st.lists(_statement(depth + 1), max_size=4))
        text += g() + "{" + g() + "".join(s + draw(_SEP) for s in body) + "}"
    return text


@st.composite
def _program(draw: st.DrawFn) -> str:
    statements = draw(st.lists(_statement(), max_size=5))
    text = draw(_GAP) + "".join(s + draw(_SEP) for s in statements)
    counter = iter(range(1, 10**6))
    return re.sub("#C", lambda _: f"# c{next(counter)}", text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_program())
def test_random_programs_keep_meaning_and_comments(text: str) -> None:
    _, diagnostics = parse_file("t.mora", text)
    assume(not diagnostics)
    out = fmt(text)
    if '"""' not in out:  # inside long strings, trailing spaces are part of the value
        assert _no_trailing_spaces(out)
