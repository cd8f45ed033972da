"""Diagnostics: what the compiler tells its user, and how it is printed.

A diagnostic has a stable code (see :mod:`mora_dsl.codes`), a one-line reason,
the span it concerns, and a ``help`` with the fix or the nearest name. Stages
collect diagnostics in a :class:`Diagnostics` bag instead of raising, so one run
reports every independent mistake.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .syntax import Span


@dataclass(slots=True)
class Note:
    span: Span
    message: str


@dataclass(slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None
    help: str | None = None
    notes: list[Note] = field(default_factory=list)
    severity: str = "error"  # or "warning"

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.span is None:
            return ("", 0, 0, self.code)
        return (self.span.file, self.span.line, self.span.column, self.code)


class Diagnostics:
    """An ordered, de-duplicated collection of diagnostics."""

    def __init__(self) -> None:
        self._items: list[Diagnostic] = []
        self._seen: set[tuple[str, str, Span | None]] = set()

    def add(self, d: Diagnostic) -> None:
        key = (d.code, d.message, d.span)
        if key not in self._seen:
            self._seen.add(key)
            self._items.append(d)

    def error(
        self,
        code: str,
        message: str,
        span: Span | None,
        help: str | None = None,
        notes: Iterable[Note] = (),
    ) -> None:
        self.add(Diagnostic(code, message, span, help, list(notes)))

    def warning(self, code: str, message: str, span: Span | None, help: str | None = None) -> None:
        self.add(Diagnostic(code, message, span, help, severity="warning"))

    def extend(self, other: Iterable[Diagnostic]) -> None:
        for d in other:
            self.add(d)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self._items if d.severity == "error"]

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self._items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self._items, key=Diagnostic.sort_key)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """``did you mean `x`?`` for the closest candidate, or None when nothing is close."""
    pool = sorted(set(candidates))
    matches = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        if name.lower() in lowered:
            matches = [lowered[name.lower()]]
    return f"did you mean `{matches[0]}`?" if matches else None


# --------------------------------------------------------------------------- rendering


def _source_line(sources: dict[str, str], span: Span) -> str | None:
    text = sources.get(span.file)
    if text is None:
        return None
    lines = text.split("\n")
    if 1 <= span.line <= len(lines):
        return lines[span.line - 1].rstrip("\r")
    return None


def _caret(line: str, span: Span) -> str:
    start = max(span.column - 1, 0)
    if span.end_line == span.line:
        end = max(span.end_column - 1, start + 1)
    else:
        end = max(len(line), start + 1)
    end = min(end, max(len(line), start + 1))
    # Keep tabs so the caret lines up under tab-indented source.
    pad = "".join("\t" if ch == "\t" else " " for ch in line[:start])
    return pad + "^" * (end - start)


def _printable(line: str) -> str:
    return "".join(ch if ch.isprintable() or ch == "\t" else "\ufffd" for ch in line)


def render(d: Diagnostic, sources: dict[str, str], color: bool = False) -> str:
    """Render one diagnostic: ``file:line:col: error[CODE]: reason``, the line, a caret, help."""

    def paint(text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if color else text

    kind = paint(f"{d.severity}[{d.code}]", "1;31" if d.severity == "error" else "1;33")
    where = f"{d.span}: " if d.span else ""
    out = [f"{paint(where, '1')}{kind}: {paint(d.message, '1')}"]
    out.extend(_excerpt(d.span, sources, paint))
    for note in d.notes:
        out.append(f"  note: {note.span}: {note.message}")
        out.extend(_excerpt(note.span, sources, paint))
    if d.help:
        out.append(f"  {paint('help', '1;36')}: {d.help}")
    return "\n".join(out)


def _excerpt(span: Span | None, sources: dict[str, str], paint) -> list[str]:  # type: ignore[no-untyped-def]
    if span is None:
        return []
    line = _source_line(sources, span)
    if line is None:
        return []
    line = _printable(line)
    num = str(span.line)
    gutter = " " * len(num)
    return [
        f" {num} | {line}",
        f" {gutter} | {paint(_caret(line, span), '1;31')}",
    ]


def render_all(diags: Iterable[Diagnostic], sources: dict[str, str], color: bool = False) -> str:
    items = list(diags)
    parts = [render(d, sources, color) for d in items]
    errors = sum(1 for d in items if d.severity == "error")
    warnings = len(items) - errors
    summary = []
    if errors:
        summary.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        summary.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    if summary:
        parts.append(", ".join(summary))
    return "\n\n".join(parts[:-1]) + ("\n\n" if len(parts) > 1 else "") + parts[-1] if parts else ""
