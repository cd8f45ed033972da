"""The compiler's front door: a project folder in; diagnostics and a manifest out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .diagnostics import Diagnostic, render_all
from .project import LoadedProject, load_project

if TYPE_CHECKING:
    from .manifest import Manifest


@dataclass(slots=True)
class CompileResult:
    """What a compilation produced.

    ``manifest`` is the JSON-ready manifest (plain dicts, validated by
    :meth:`validated`), or None when the program has errors. Plain dicts keep
    pydantic off the start-up path of ``mora check``.
    """

    project: LoadedProject
    diagnostics: list[Diagnostic] = field(default_factory=list)
    manifest: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    @property
    def sources(self) -> dict[str, str]:
        return self.project.sources

    def render_diagnostics(self, color: bool = False) -> str:
        return render_all(self.diagnostics, self.project.sources, color)

    def validated(self) -> Manifest:
        """The manifest as its pydantic model (raises if the compiler produced a bad one)."""
        from .manifest import Manifest

        if self.manifest is None:
            raise ValueError("the program has errors; there is no manifest")
        return Manifest.model_validate(self.manifest)


def compile_project(path: str | Path) -> CompileResult:
    """Parse, check and compile a project folder (or a single ``.mora`` file).

    Raises :class:`mora_dsl.project.ProjectPathError` when ``path`` does not exist
    (a misuse of the command); every problem *in* the program is a diagnostic.
    """
    from .checker import check

    project = load_project(path)
    result = CompileResult(project, list(project.diagnostics))
    if result.diagnostics:
        # Syntax errors: stop here. Checking a half-parsed project would report
        # names as unknown that are merely defined in the broken file.
        result.diagnostics.sort(key=Diagnostic.sort_key)
        return result
    manifest, diags = check(project)
    result.diagnostics.extend(diags)
    result.diagnostics.sort(key=Diagnostic.sort_key)
    if result.ok:
        result.manifest = manifest
    return result
