"""The language commands: check, build, fmt, explain, schema, graph.

Thin wrappers over :mod:`mora_dsl`: they compile, print the compiler's
diagnostics to stderr, and write results to stdout or a file. ``mora_dsl`` is
imported inside each handler so that ``mora --help`` never loads the parser,
and pydantic only where a command needs the validated model (``build``,
``schema``), so ``mora check`` stays fast. For the same reason ``json`` and
``tempfile`` are imported by the handlers that write files or JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import output
from .errors import EXIT_FAILED, EXIT_OK, UsageError
from .registry import CommandRegistry

if TYPE_CHECKING:
    from mora_dsl.api import CompileResult
    from mora_dsl.diagnostics import Diagnostic


def register(registry: CommandRegistry) -> None:
    """Add the language commands to the ``mora`` parser."""
    p = registry.add("check", run_check, help="check a project and report every error")
    _project_argument(p)

    p = registry.add(
        "build",
        run_build,
        help="compile a project to its manifest (JSON)",
        description="Compile a project to its manifest: generic JSON, safe to share "
        "(no param, input or secret value).",
    )
    _project_argument(p)
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default="-",
        help="where to write the manifest; `-` (the default) is stdout",
    )

    p = registry.add(
        "fmt",
        run_fmt,
        help="rewrite .mora files in the canonical layout",
        description="Rewrite .mora files in the canonical layout (comments are kept). "
        "A folder means the .mora files in it.",
    )
    p.add_argument("paths", nargs="*", default=["."], metavar="PATH", help="files or folders")
    p.add_argument(
        "--check",
        action="store_true",
        help="change nothing; list files that would change and exit 1 if any",
    )

    p = registry.add("explain", run_explain, help="explain a diagnostic code, e.g. E101")
    p.add_argument("code", nargs="?", metavar="CODE")
    p.add_argument("--list", action="store_true", help="list every code with its title")

    registry.add("schema", run_schema, help="print the manifest's JSON Schema")

    p = registry.add(
        "graph",
        run_graph,
        help="print a project's deployment order (waves and dependencies)",
    )
    _project_argument(p)
    p.add_argument(
        "--format",
        choices=("text", "mermaid", "json"),
        default="text",
        help="text (default), a Mermaid flowchart, or the manifest's graph as JSON",
    )


def _project_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        nargs="?",
        default=".",
        metavar="PATH",
        help="project folder or .mora file (default: the current folder)",
    )


# --------------------------------------------------------------------------- compiling


def _compile(args: argparse.Namespace) -> CompileResult:
    """Compile ``args.path`` and print its diagnostics; a missing path is misuse."""
    from mora_dsl.api import compile_project
    from mora_dsl.project import ProjectPathError

    try:
        with _no_cyclic_gc():
            result = compile_project(args.path)
    except ProjectPathError as err:
        raise UsageError(str(err)) from None
    output.diagnostics(result.render_diagnostics(output.use_color(args.color)))
    if result.ok and result.manifest is None:
        raise RuntimeError("the compiler reported no error but produced no manifest")
    return result


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause Python's cycle collector while compiling.

    Parsing allocates hundreds of thousands of small objects (lark tokens and
    trees, syntax nodes) and almost none of them form cycles, so each collection
    scans a growing heap for nothing: on a 1000-service project that is about a
    third of the wall time. Reference counting still frees memory as usual; the
    collector is restored afterwards, so long-running callers keep it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(manifest: dict[str, Any]) -> str:
    """``media-server — 9 services, 2 inputs, 4 waves``: what a successful check found."""
    counts = ", ".join(
        [
            _plural(len(manifest.get("services", [])), "service"),
            _plural(len(manifest.get("inputs", [])), "input"),
            _plural(len(manifest.get("graph", {}).get("waves", [])), "wave"),
        ]
    )
    return f"{manifest['project']['name']} — {counts}"


def run_check(args: argparse.Namespace) -> int:
    result = _compile(args)
    if not result.ok:
        return EXIT_FAILED
    assert result.manifest is not None
    output.out(f"ok: {summary(result.manifest)}")
    return EXIT_OK


def run_build(args: argparse.Namespace) -> int:
    import json

    result = _compile(args)
    if not result.ok:
        return EXIT_FAILED
    # Validating through the pydantic model catches a compiler bug here, before
    # a consumer (stacks, the manager) half-understands a bad manifest.
    model = result.validated()
    text = json.dumps(
        model.model_dump(mode="json", exclude_none=False), indent=2, ensure_ascii=False
    )
    if args.output == "-":
        output.out(text)
    else:
        _write_atomically(Path(args.output), text + "\n")
        output.info(f"wrote {args.output}")
    return EXIT_OK


def _write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a failure never leaves half a manifest."""
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None


def run_graph(args: argparse.Namespace) -> int:
    from .graph_view import RENDERERS

    result = _compile(args)
    if not result.ok:
        return EXIT_FAILED
    assert result.manifest is not None
    output.out(RENDERERS[args.format](result.manifest))
    return EXIT_OK


# --------------------------------------------------------------------------- fmt


def _fmt_targets(paths: list[str]) -> list[Path]:
    """The files ``mora fmt`` works on: files as given, folders' ``*.mora`` files, no repeats."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(sorted(f for f in p.glob("*.mora") if f.is_file()))
        elif p.is_file():
            files.append(p)
        elif p.exists():
            raise UsageError(f"{raw}: not a file or folder")
        else:
            raise UsageError(f"{raw}: no such file or folder")
    unique: dict[Path, Path] = {}
    for f in files:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def _load_formatter() -> Callable[[str, str], tuple[str | None, list[Diagnostic]]]:
    """``mora_dsl.formatter.format_source``, imported only when formatting (tests swap it)."""
    from mora_dsl.formatter import format_source

    return format_source


def run_fmt(args: argparse.Namespace) -> int:
    from mora_dsl.diagnostics import render_all
    from mora_dsl.project import display_path, read_text

    format_source = _load_formatter()
    failed = False
    diags: list[Diagnostic] = []
    sources: dict[str, str] = {}
    for path in _fmt_targets(args.paths):
        shown = display_path(path)
        text, err = read_text(path, shown)
        if err is not None or text is None:
            diags.extend([err] if err is not None else [])
            failed = True
            continue
        sources[shown] = text
        formatted, file_diags = format_source(text, shown)
        diags.extend(file_diags)
        if formatted is None or any(d.severity == "error" for d in file_diags):
            failed = True  # a file that does not parse is left as it is
            continue
        # Compare with the bytes on disk: CRLF endings or a BOM are layout too.
        if formatted.encode("utf-8") == path.read_bytes():
            continue
        if args.check:
            output.out(f"would reformat {shown}")
            failed = True
        else:
            _write_in_place(path, formatted)
            output.out(f"formatted {shown}")
    if diags:
        output.diagnostics(render_all(diags, sources, output.use_color(args.color)))
    return EXIT_FAILED if failed else EXIT_OK


def _write_in_place(path: Path, text: str) -> None:
    """Rewrite a source file atomically, keeping its permission bits."""
    mode = path.stat().st_mode & 0o7777
    _write_atomically(path, text)
    path.chmod(mode)


# --------------------------------------------------------------------------- reference


def run_explain(args: argparse.Namespace) -> int:
    from mora_dsl.codes import CODES, explain

    if args.list:
        width = max(len(c) for c in CODES)
        for code in sorted(CODES):
            output.out(f"{code.ljust(width)}  {CODES[code].title}")
        return EXIT_OK
    if not args.code:
        raise UsageError("which code? e.g. `mora explain E101`, or `mora explain --list`")
    text = explain(args.code.strip())
    if text is None:
        raise UsageError(f"unknown code `{args.code}`{_nearest_codes(args.code, sorted(CODES))}")
    output.out(text)
    return EXIT_OK


def _nearest_codes(code: str, known: list[str]) -> str:
    """A hint naming the code the user probably meant, and where the full list is.

    Look-alike characters (``O`` for ``0``, ``l`` for ``1``) and a missing ``E``
    are the usual slips, so they are tried before plain string similarity.
    """
    import difflib

    guess = code.strip().upper().translate(str.maketrans("OIL", "011"))
    if guess.isdigit():
        guess = "E" + guess.zfill(3)
    close = [guess] if guess in known else difflib.get_close_matches(guess, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"{hint} (`mora explain --list` shows all {len(known)} codes)"


def run_schema(args: argparse.Namespace) -> int:
    import json

    from mora_dsl.manifest import json_schema

    output.out(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK


__all__ = ["register", "summary"]
