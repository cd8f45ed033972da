"""Where and how the CLI writes: stdout for results, stderr for everything else.

Streams are looked up on :mod:`sys` at call time (never cached) so that tests
capturing output and pipes set up after import both see every line.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TextIO

COLOR_CHOICES = ("auto", "always", "never")


def use_color(mode: str, stream: TextIO | None = None) -> bool:
    """Whether to paint text written to ``stream`` (default: stderr).

    ``auto`` paints only a terminal, and honours the ``NO_COLOR`` convention
    (https://no-color.org: set and non-empty disables colour) and ``TERM=dumb``.
    """
    if mode == "always":
        return True
    if mode == "never":
        return False
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or file-like without a tty
        return False


def stdin_is_tty() -> bool:
    """Whether a person can be asked on stdin (closed or replaced stdin: no)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def out(text: str = "") -> None:
    """Write a result line to stdout."""
    sys.stdout.write(text + "\n")


def info(text: str) -> None:
    """Write a status line (``wrote FILE``) to stderr, so stdout stays machine-readable."""
    sys.stderr.write(text + "\n")


def error(message: str) -> None:
    """Write ``mora: error: MESSAGE`` to stderr, the shape argparse uses too."""
    sys.stderr.write(f"mora: error: {message}\n")


def diagnostics(text: str) -> None:
    """Write rendered compiler diagnostics to stderr (nothing when there are none)."""
    if text:
        sys.stderr.write(text.rstrip("\n") + "\n")


def make_streams_safe() -> None:
    """Never crash on a character the terminal cannot encode (``←``, ``—``).

    A C-locale or Windows console may not encode what mora prints; replacing the
    character is better than an internal error for a cosmetic glyph.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # exotic streams keep theirs
                reconfigure(errors="replace")


def error_internal(summary: str) -> None:
    """Report a bug in mora as one line; the traceback is for ``MORA_DEBUG=1``."""
    sys.stderr.write(
        f"mora: internal error: {summary}; please report it (run with MORA_DEBUG=1 for details)\n"
    )
