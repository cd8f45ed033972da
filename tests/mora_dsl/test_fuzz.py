"""Property tests: whatever the input, the compiler answers with diagnostics, never a traceback.

The acceptance programs are mutated token-wise (delete, duplicate, swap), with random
characters or bytes inserted, or cut short, and compiled. Any exception fails the test;
hypothesis' deadline and pytest-timeout catch a hang. Runs are derandomized, so CI
sees the same ~200 programs every time.
"""

from __future__ import annotations

import re
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from dsl_helpers import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mora_dsl.api import CompileResult, compile_project
from mora_dsl.parser import _lark

SETTINGS = settings(
    derandomize=True,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# Tokens as a person would see them: strings, names, numbers, `${`, punctuation, spaces.
_TOKEN = re.compile(r'"""|"(?:[^"\\\n]|\\.)*"|\$\{|[A-Za-z_][A-Za-z0-9_-]*|[0-9]+|\s+|.', re.S)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _read(example: str) -> dict[str, bytes]:
    folder = EXAMPLES / example
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()
            and p.suffix in (".mora", ".yml")}


FILES = {"media-server": _read("media-server"), "minimal": _read("minimal")}


def compile_files(files: dict[str, bytes]) -> CompileResult:
    """Compile a project made of ``files``; every way of using the result must work too."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        result = compile_project(tmp)
        result.render_diagnostics()
        result.render_diagnostics(color=True)
        if result.ok:
            assert result.manifest is not None
            result.validated()
        else:
            assert result.manifest is None
            assert result.diagnostics
        for d in result.diagnostics:
            assert re.fullmatch(r"E\d{3}", d.code)
        return result


@st.composite
def mutation(draw: st.DrawFn, example: str) -> dict[str, bytes]:
    files = dict(FILES[example])
    name = draw(st.sampled_from(sorted(files)))
    toks = tokens(files[name].decode("utf-8"))
    n = len(toks)
    kind = draw(st.sampled_from(["delete", "duplicate", "swap", "insert_text", "insert_bytes",
                                 "truncate", "delete_many"]))
    i = draw(st.integers(0, n - 1))
    if kind == "delete":
        del toks[i]
    elif kind == "delete_many":
        j = draw(st.integers(i, min(n, i + 8)))
        del toks[i:j]
    elif kind == "duplicate":
        toks.insert(i, toks[i])
    elif kind == "swap":
        j = draw(st.integers(0, n - 1))
        toks[i], toks[j] = toks[j], toks[i]
    elif kind == "insert_text":
        toks.insert(i, draw(st.text(
            alphabet=st.sampled_from(list('{}[]()"=:,.$#\\-_@;\n\t aZ09\u00e9\u2192\x00')) | st.characters(),
            min_size=1, max_size=6)))
    data = "".join(toks).encode("utf-8", "surrogatepass")
    if kind == "insert_bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=6)) + data[at:]
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    files[name] = data
    return files


@pytest.fixture(scope="module", autouse=True)
def _warm_parser() -> None:
    _lark()  # build the parser once, outside the deadline


def test_the_examples_compile_unmutated() -> None:
    for files in FILES.values():
        assert compile_files(files).ok


@pytest.mark.timeout(120)
@settings(SETTINGS, max_examples=100)
@given(mutation("media-server"))
def test_mutated_media_server_never_raises(files: dict[str, bytes]) -> None:
    compile_files(files)


@pytest.mark.timeout(60)
@settings(SETTINGS, max_examples=40)
@given(mutation("minimal"))
def test_mutated_minimal_never_raises(files: dict[str, bytes]) -> None:
    compile_files(files)


@pytest.mark.timeout(60)
@settings(SETTINGS, max_examples=30)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200))
def test_random_text_never_raises(text: str) -> None:
    compile_files({"main.mora": text.encode("utf-8")})


@pytest.mark.timeout(60)
@settings(SETTINGS, max_examples=30)
@given(st.booleans(), st.binary(max_size=200), st.binary(max_size=100))
def test_random_bytes_never_raise(after_program: bool, main: bytes, template: bytes) -> None:
    if after_program:  # garbage after a valid program that reads a garbage template
        main = b'project "t" {}\nservice s {\n image = "x"\n file "/a" = template("a.yml")\n}\n' + main
    compile_files({"main.mora": main, "a.yml": template})
