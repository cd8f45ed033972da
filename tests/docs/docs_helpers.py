"""Reading and compiling the fenced examples of a documentation page.

A module of its own (not conftest.py, not a test module), so each docs test
imports the same conventions. A block is picked up by its info string (the text
after the opening three backticks):

* ``mora`` – a complete program; it must compile with no diagnostic at all.
* ``mora fragment`` – a piece of a service body, wrapped by :func:`wrap_fragment`
  and then compiled like a complete program.
* ``mora error E123`` / ``mora fragment error E123`` – must fail with diagnostics of
  exactly that code, and no other.
* a block whose info string has ``file=NAME`` (e.g. ``yaml file=app.yml``) is a file
  beside the ``.mora`` file: it is written as NAME into the folder of the *next* mora
  block.
* ``text diagnostics`` / ``text explain E123`` – printed output (see
  ``test_language_doc.py``).
* any other block (``sh``, ``python``, ``yaml``…) is prose and is not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mora_dsl import compile_project

FENCE = re.compile(r"^```(?P<info>[^`\n]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
ERROR = re.compile(r"^error (E\d{3})$")
FRAGMENT_SETS_IMAGE = re.compile(r"^\s*image\s*=", re.M)


@dataclass
class Block:
    line: int
    info: str
    body: str
    files: dict[str, str] = field(default_factory=dict)  # files beside it (`file=NAME`)
    previous: Block | None = None  # the mora block before a `text diagnostics` block

    @property
    def id(self) -> str:
        return f"line{self.line}:{self.info}"


def fenced_blocks(text: str) -> list[Block]:
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        out.append(Block(line, m.group("info").strip(), m.group("body")))
    return out


def doc_blocks(page: Path) -> list[Block]:
    """The checked blocks of ``page``, with their side files and predecessors attached."""
    pending: dict[str, str] = {}
    last_mora: Block | None = None
    out: list[Block] = []
    for b in fenced_blocks(page.read_text(encoding="utf-8")):
        words = b.info.split()
        named = [w.split("=", 1)[1] for w in words if w.startswith("file=")]
        if named:
            pending[named[0]] = b.body
            continue
        if words[:1] == ["mora"]:
            b.files, pending = pending, {}
            last_mora = b
            out.append(b)
        elif words[:2] in (["text", "diagnostics"], ["text", "explain"]):
            b.previous = last_mora
            out.append(b)
    return out


def wrap_fragment(body: str) -> str:
    """A service-body fragment as a complete program::

        project "doc" {}

        param domain: domain

        service doc {
          image = "example/doc:1.0"    # left out when the fragment sets `image` itself
          <the fragment, indented by two spaces>
        }
    """
    inner = "".join(f"  {ln}" if ln.strip() else ln for ln in body.splitlines(keepends=True))
    image = "" if FRAGMENT_SETS_IMAGE.search(body) else '  image = "example/doc:1.0"\n'
    return f'project "doc" {{}}\n\nparam domain: domain\n\nservice doc {{\n{image}{inner}}}\n'


def compile_block(b: Block, folder: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Compile a mora block as ``main.mora`` in ``folder``; returns (result, source)."""
    words = b.info.split()[1:]
    source = wrap_fragment(b.body) if words[:1] == ["fragment"] else b.body
    (folder / "main.mora").write_text(source, encoding="utf-8")
    for name, content in b.files.items():
        (folder / name).write_text(content, encoding="utf-8")
    monkeypatch.chdir(folder)  # diagnostics show paths relative to the working directory
    return compile_project(folder), source


def check_mora_block(block: Block, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``mora``/``mora fragment`` block compiles cleanly, or fails with exactly its code."""
    words = block.info.split()[1:]
    if words[:1] == ["fragment"]:
        words = words[1:]
    result, source = compile_block(block, folder, monkeypatch)
    shown = f"{source}\n{result.render_diagnostics()}"
    if not words:
        assert result.diagnostics == [], shown
        assert result.ok and result.manifest is not None
        return
    m = ERROR.match(" ".join(words))
    assert m, f"unknown info string {block.info!r} (see tests/docs/docs_helpers.py)"
    codes = {d.code for d in result.diagnostics}
    assert codes == {m.group(1)}, shown
