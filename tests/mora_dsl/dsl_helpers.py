"""Constants shared by the compiler's tests (a uniquely named module: every test folder has
its own ``conftest``, so tests cannot import from ``conftest``)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

# A valid project block, for programs that are about something else.
PROJECT = 'project "t" {}\n'
