"""The mora language: parse `.mora` projects, check them, and compile them to a manifest.

This package never touches a network and never imports Pulumi or FastAPI, so
`mora check` starts fast. The public surface:

* :func:`load_project` / :func:`compile_project` – folder in, diagnostics and manifest out;
* :mod:`mora_dsl.manifest` – the pydantic models of the manifest (the seam to `stacks`
  and `manager_app`);
* :mod:`mora_dsl.values` – evaluation of the manifest's symbolic values at deploy time;
* :func:`format_source` – the canonical layout.
"""

from .api import CompileResult, compile_project
from .diagnostics import Diagnostic, render, render_all
from .formatter import format_source
from .project import LoadedProject, ProjectPathError, load_project

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
