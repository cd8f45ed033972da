"""Live progress of a preview/up/destroy on stderr, and the summary after it.

On a terminal: a rich progress bar (resources done / resources announced so far,
the resource being worked on, warnings printed above the bar). Otherwise (CI,
a pipe, a log file): one plain line per changed resource and per warning or
error, so logs stay readable. Results (the URL table) go to stdout; everything
here writes to stderr. ``rich`` is imported only when a bar is shown.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stacks.automation import ProgressEvent

#: How an operation reads in a sentence, by Pulumi's op names.
_PAST = {
    "create": "created", "update": "updated", "delete": "deleted", "replace": "replaced",
    "same": "unchanged", "read": "read", "refresh": "refreshed",
    "create-replacement": "created replacement", "delete-replaced": "deleted replaced",
    "import": "imported", "discard": "discarded",
}
_ING = {
    "create": "creating", "update": "updating", "delete": "deleting", "replace": "replacing",
    "same": "checking", "read": "reading", "refresh": "refreshing",
    "create-replacement": "creating replacement", "delete-replaced": "deleting replaced",
}
_QUIET_OPS = {"same", "read", "refresh"}


def short_type(resource_type: str) -> str:
    """``kubernetes:apps/v1:Deployment`` → ``Deployment``; ``mora:index:Service`` → ``Service``."""
    return resource_type.rsplit(":", 1)[-1] or resource_type


def _is_tty(stream: Any) -> bool:
    import os

    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Display:
    """Receives :class:`ProgressEvent` objects (from the engine's event thread) and shows them."""

    def __init__(self, title: str, *, live: bool | None = None) -> None:
        self.title = title
        self.live = _is_tty(sys.stderr) if live is None else live
        self.started: set[str] = set()
        self.finished: set[str] = set()
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.link: str | None = None
        self._lock = threading.Lock()
        self._progress: Any = None
        self._task: Any = None

    # ------------------------------------------------------------------ context

    def __enter__(self) -> Display:
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[current]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=None, current="starting…")
        else:
            sys.stderr.write(f"{self.title}…\n")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            with self._lock:
                total = max(len(self.started), len(self.finished))
                self._progress.update(self._task, completed=len(self.finished), total=total,
                                      current="")
            self._progress.stop()

    # ------------------------------------------------------------------ events

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            self._handle(event)

    def _handle(self, event: ProgressEvent) -> None:
        what = f"{short_type(event.resource_type)} {event.name}".strip()
        key = f"{event.resource_type}::{event.name}"
        if event.kind == "start":
            self.started.add(key)
            self._update(f"{_ING.get(event.operation, event.operation)} {what}")
        elif event.kind == "done":
            self.started.add(key)
            self.finished.add(key)
            if event.operation not in _QUIET_OPS:
                self._line(f"  {_PAST.get(event.operation, event.operation)} {what}")
            self._update(None)
        elif event.kind == "failed":
            self.failed.append(what)
            self._line(f"  failed to {event.operation} {what}", style="red")
        elif event.kind == "message":
            where = f" ({event.name})" if event.name and event.name != "unknown" else ""
            if event.operation == "error":
                self.errors.append(event.message + where)
                self._line(f"  error{where}: {_first_line(event.message)}", style="red")
            elif event.operation == "warning":
                self._line(f"  warning{where}: {_first_line(event.message)}", style="yellow")
            elif self.live:
                self._update(_first_line(event.message))
        elif event.kind == "link":
            self.link = event.message

    def _update(self, current: str | None) -> None:
        if self._progress is None:
            return
        fields: dict[str, Any] = {"completed": len(self.finished), "total": len(self.started)}
        if current is not None:
            fields["current"] = current[:80]
        self._progress.update(self._task, **fields)

    def _line(self, text: str, style: str | None = None) -> None:
        if self._progress is not None:
            self._progress.console.print(text, style=style, markup=False, highlight=False)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


def summary(changes: dict[str, int], *, preview: bool = False) -> str:
    """``3 created, 1 updated, 0 deleted, 20 unchanged`` (``would create …`` for a preview)."""
    counts = {k: int(v) for k, v in changes.items()}
    main = [("create", "created", "create"), ("update", "updated", "update"),
            ("delete", "deleted", "delete")]
    parts = []
    for key, past, verb in main:
        n = counts.pop(key, 0)
        parts.append(f"{n} to {verb}" if preview else f"{n} {past}")
    replaced = counts.pop("replace", 0)
    if replaced:
        parts.append(f"{replaced} to replace" if preview else f"{replaced} replaced")
    same = counts.pop("same", 0)
    parts.append(f"{same} unchanged")
    for key, n in sorted(counts.items()):
        if n:
            parts.append(f"{n} {_PAST.get(key, key)}")
    return ", ".join(parts)


def url_table(urls: dict[str, str]) -> list[str]:
    """The service URLs as aligned lines (stdout: easy to read and to ``grep``)."""
    if not urls:
        return []
    width = max(len("service"), *(len(n) for n in urls))
    lines = [f"{'service'.ljust(width)}  url", f"{'-' * width}  {'-' * 3}"]
    lines += [f"{name.ljust(width)}  {urls[name]}" for name in sorted(urls)]
    return lines
