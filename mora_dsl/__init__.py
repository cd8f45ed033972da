"""The mora language: parse `.mora` projects, check them, and compile them to a manifest.

This package never touches a network and never imports Pulumi or FastAPI, so
`mora check` starts fast. The public surface:

* :func:`load_project` / :func:`compile_project` – folder in, diagnostics and manifest out;
* :mod:`mora_dsl.manifest` – the pydantic models of the manifest (the seam to `stacks`
  and `manager_app`);
* :mod:`mora_dsl.values` – evaluation of the manifest's symbolic values at deploy time;
* :func:`format_source` – the canonical layout.

The names below are imported on first use (PEP 562), so a consumer of
:mod:`mora_dsl.values` or :mod:`mora_dsl.manifest` does not load the parser (lark)
and the formatter, and ``mora check`` does not load the formatter.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import CompileResult, compile_project
    from .diagnostics import Diagnostic, render, render_all
    from .formatter import format_source
    from .project import LoadedProject, ProjectPathError, load_project

_HOME = {
    "CompileResult": "api",
    "compile_project": "api",
    "Diagnostic": "diagnostics",
    "render": "diagnostics",
    "render_all": "diagnostics",
    "format_source": "formatter",
    "LoadedProject": "project",
    "ProjectPathError": "project",
    "load_project": "project",
}

__all__ = [
    "CompileResult",
    "Diagnostic",
    "LoadedProject",
    "ProjectPathError",
    "compile_project",
    "format_source",
    "load_project",
    "render",
    "render_all",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
