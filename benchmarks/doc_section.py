"""What the benchmark scripts share: their section of docs/performance.md and its context lines.

Each script (run as ``.venv/bin/python benchmarks/NAME.py``, so this folder is on
``sys.path``) writes its table between its own markers, keeping everything else
in the file, and states the machine's load and OS the same way.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path


def write_section(path: Path, section: str, begin: str, end: str, intro: str) -> None:
    """Replace the text from ``begin`` to ``end`` with ``section``, or append it.

    A missing file starts as ``intro``; every other section stays as it is.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else intro
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (``unknown`` where the OS has none)."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def os_name() -> str:
    """``Debian GNU/Linux 12 (bookworm)``: the OS's own name, else the platform's."""
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME") or platform.platform(terse=True)
    except OSError:
        return platform.platform(terse=True)
