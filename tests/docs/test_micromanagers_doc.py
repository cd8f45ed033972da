"""docs/micromanagers.md: its ``.mora`` examples compile.

The same conventions as the language reference (``docs_helpers.py``): a ``mora``
block is a complete program that compiles with no diagnostic, a ``mora fragment``
block a service body, ``mora error E123`` a program failing with exactly that
code. ``python`` and ``sh`` blocks are prose.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from docs_helpers import Block, check_mora_block, doc_blocks

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "micromanagers.md"

BLOCKS = [b for b in doc_blocks(DOC) if b.info.startswith("mora")]


def test_the_page_has_mora_examples() -> None:
    assert BLOCKS, "docs/micromanagers.md shows how a service opts in, in a `mora` block"
    assert any("micromanager" in b.body for b in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_mora_example(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_mora_block(block, tmp_path, monkeypatch)
