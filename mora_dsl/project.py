"""Reading a project folder: every ``*.mora`` file in it forms one namespace.

Files are read in name order so that diagnostics and the manifest are the same
on every machine. A project may also be a single file (handy for tests and for
``mora fmt`` on one file); then its folder is the file's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .diagnostics import Diagnostic
from .parser import parse_file
from .syntax import SourceFile, Span


class ProjectPathError(Exception):
    """The path given is not a project (misuse of the command, not an error in a program)."""


@dataclass(slots=True)
class LoadedProject:
    root: Path  # the project folder; template()/file() paths are relative to it
    files: list[SourceFile] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # display path -> text
    diagnostics: list[Diagnostic] = field(default_factory=list)


def display_path(path: Path) -> str:
    """The path as messages show it: relative to the working directory when possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_text(path: Path, shown: str) -> tuple[str | None, Diagnostic | None]:
    """A file's text, or a diagnostic saying why it cannot be read as UTF-8 text."""
    try:
        data = path.read_bytes()
    except OSError as err:
        return None, Diagnostic(
            "E004", f"cannot read {shown}: {err.strerror or err}", Span(shown, 1, 1, 1, 1)
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        col = err.start - (before.rfind(b"\n") + 1) + 1
        return None, Diagnostic(
            "E004",
            f"not UTF-8 text: byte 0x{data[err.start]:02x} cannot be decoded",
            Span(shown, line, col, line, col + 1),
            help="mora reads UTF-8 text files; is this a binary file?",
        )
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n"), None


def mora_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.glob("*.mora") if p.is_file())


def load_project(path: str | Path) -> LoadedProject:
    """Read and parse every ``.mora`` file of a project folder (or one file)."""
    p = Path(path)
    if not p.exists():
        raise ProjectPathError(f"{path}: no such file or folder")
    if not p.is_dir() and not p.is_file():
        raise ProjectPathError(f"{path}: not a file or folder")
    root = p if p.is_dir() else p.parent
    project = LoadedProject(root=root)
    files = mora_files(p)
    if not files:
        shown = display_path(p)
        project.diagnostics.append(
            Diagnostic(
                "E005",
                f"no .mora files in {shown}",
                None,
                help="a project is a folder of `*.mora` files; create `main.mora` there",
            )
        )
        return project
    for f in files:
        shown = display_path(f)
        text, err = read_text(f, shown)
        if err is not None:
            project.diagnostics.append(err)
            continue
        assert text is not None
        project.sources[shown] = text
        src, diags = parse_file(shown, text)
        project.files.append(src)
        project.diagnostics.extend(diags)
    return project
