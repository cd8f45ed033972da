"""The language reference (docs/language.md) is kept true by compiling its examples.

Every fenced code block of the page is picked up by its info string (the text after the
opening three backticks; the code that reads them, shared with the other docs tests, is
``docs_helpers.py``):

* ``mora`` – a complete program; it must compile with no diagnostic at all.
* ``mora fragment`` – a piece of a service body. It is wrapped as::

      project "doc" {}

      param domain: domain

      service doc {
        image = "example/doc:1.0"    # left out when the fragment sets `image` itself
        <the fragment, indented by two spaces>
      }

  and the result must compile with no diagnostic.
* ``mora error E123`` / ``mora fragment error E123`` – a complete program (or a wrapped
  fragment) that must fail with diagnostics of exactly that code, and no other.
* a block whose info string has ``file=NAME`` (e.g. ``yaml file=app.yml``) is a file beside
  the ``.mora`` file: it is written as NAME into the folder of the *next* mora block.
* ``text diagnostics`` – must equal what the compiler prints for the mora block just before
  it (compiled as ``main.mora`` in its own folder, paths shown relative to that folder).
* ``text explain E123`` – must equal ``mora explain E123``.
* any other block (``sh``, ``text``, ``yaml``…) is prose and is not checked.

Each mora block is compiled in a fresh folder as ``main.mora``. Besides the examples, the
page must name every built-in function with its parameters and defaults, every diagnostic
code with its title and every service attribute; the acceptance programs of the design page
(``../shared/design/LANGUAGE.md``, skipped when absent) must be the files under ``examples/``
byte for byte, and each example's README must show the deployment order ``mora graph``
really prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from docs_helpers import Block, check_mora_block, compile_block, doc_blocks, fenced_blocks

from mora_dsl import compile_project
from mora_dsl.codes import CODES, explain
from mora_dsl.expressions import SERVICE_MEMBERS
from mora_dsl.services import HEALTH_KEYS, RESOURCE_KEYS, SERVICE_ATTRS
from mora_dsl.signatures import SECRET_MEMBERS, SIGNATURES, Signature
from mora_dsl.types import TYPE_NAMES

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "language.md"
DESIGN = REPO.parent / "shared" / "design" / "LANGUAGE.md"


BLOCKS = doc_blocks(DOC)


def test_the_page_has_examples() -> None:
    kinds = {" ".join(b.info.split()[:2]) for b in BLOCKS}
    assert {"mora", "mora fragment", "mora error", "text diagnostics"} <= kinds


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.info.startswith("mora")],
                         ids=lambda b: b.id)
def test_mora_example(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_mora_block(block, tmp_path, monkeypatch)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.info.startswith("text")],
                         ids=lambda b: b.id)
def test_printed_output(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    words = block.info.split()
    if words[1] == "explain":
        assert block.body == explain(words[2]) + "\n"
        return
    assert block.previous is not None, "a `text diagnostics` block follows a mora block"
    result, _ = compile_block(block.previous, tmp_path, monkeypatch)
    assert block.body == result.render_diagnostics() + "\n"


# --------------------------------------------------------------------------- completeness


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def signature_text(sig: Signature) -> str:
    """How the page writes a function: `name(param: type = default, ...)`, as help texts do."""
    return f"`{sig}`"


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_every_function_with_its_signature(name: str) -> None:
    sig = SIGNATURES[name]
    text = doc_text()
    assert signature_text(sig) in text, f"the page should show {signature_text(sig)}"
    for p in sig.params:
        if p.minimum is not None or p.maximum is not None:
            assert f"`{p.name}` {p.minimum}–{p.maximum}" in text, (name, p.name)


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_with_its_title(code: str) -> None:
    assert f"| {code} | {CODES[code].title} |" in doc_text()


@pytest.mark.parametrize("attr", sorted(SERVICE_ATTRS))
def test_every_service_attribute(attr: str) -> None:
    assert f"| `{attr}` |" in doc_text()


def test_every_key_member_and_type() -> None:
    text = doc_text()
    missing = [f"`{k}`" for k in (*RESOURCE_KEYS, *HEALTH_KEYS) if f"`{k}`" not in text]
    missing += [f"`svc.{m}`" for m in SERVICE_MEMBERS if f"`svc.{m}" not in text]
    missing += [f"`.{m}`" for ms in SECRET_MEMBERS.values() for m in ms if f"`.{m}`" not in text]
    missing += [f"`{t}`" for t in TYPE_NAMES if f"`{t}" not in text]
    assert not missing, f"the page does not mention {missing}"


# --------------------------------------------------------------------------- acceptance programs


def design_block(text: str, heading: str) -> str:
    start = text.index(f"\n### {heading}\n")
    block = fenced_blocks(text[start:])[0]
    return block.body


@pytest.mark.parametrize(
    ("heading", "example"),
    [
        ("minimal", "examples/minimal/main.mora"),
        ("media-server (main.mora)", "examples/media-server/main.mora"),
        ("media-server (janitorr.yml, read by `template`)", "examples/media-server/janitorr.yml"),
    ],
)
def test_examples_are_the_acceptance_programs(heading: str, example: str) -> None:
    if not DESIGN.is_file():
        pytest.skip(f"the design page is not beside the repository ({DESIGN} is missing)")
    expected = design_block(DESIGN.read_text(encoding="utf-8"), heading)
    assert (REPO / example).read_bytes() == expected.encode("utf-8")


@pytest.mark.parametrize("example", ["minimal", "media-server"])
def test_examples_compile(example: str) -> None:
    result = compile_project(REPO / "examples" / example)
    assert result.ok, result.render_diagnostics()


# --------------------------------------------------------------------------- example READMEs


@pytest.mark.parametrize("example", ["minimal", "media-server"])
def test_example_readme_shows_the_real_graph(example: str) -> None:
    """A README's ``text graph`` block is what ``mora graph`` prints for its example."""
    readme = (REPO / "examples" / example / "README.md").read_text(encoding="utf-8")
    shown = [b.body for b in fenced_blocks(readme) if b.info == "text graph"]
    assert len(shown) == 1, "the README shows the deployment order once"
    env = {**os.environ, "NO_COLOR": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "mora_cli", "graph", f"examples/{example}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert shown[0] == run.stdout
