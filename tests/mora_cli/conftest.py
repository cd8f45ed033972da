"""Fixtures for the CLI tests: a stand-in compiler and a sample manifest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import SOURCE, sample_manifest_model

from mora_dsl import api
from mora_dsl.api import CompileResult
from mora_dsl.diagnostics import Diagnostic
from mora_dsl.project import LoadedProject, ProjectPathError


@pytest.fixture
def sample_manifest() -> dict[str, Any]:
    return sample_manifest_model().model_dump(mode="json")


FakeCompile = Callable[..., None]


@pytest.fixture
def fake_compile(monkeypatch: pytest.MonkeyPatch) -> FakeCompile:
    """Make ``compile_project`` return a chosen result (or raise) without the checker.

    Like the real one, it raises ProjectPathError for a path that does not exist.
    """

    def install(
        manifest: dict[str, Any] | None = None,
        diagnostics: list[Diagnostic] | None = None,
        raises: BaseException | None = None,
    ) -> None:
        def compile_project(path: str | Path) -> CompileResult:
            if raises is not None:
                raise raises
            if not Path(path).exists():
                raise ProjectPathError(f"{path}: no such file or folder")
            project = LoadedProject(root=Path(path), sources={"main.mora": SOURCE})
            result = CompileResult(project, list(diagnostics or []))
            result.manifest = manifest if result.ok else None
            return result

        monkeypatch.setattr(api, "compile_project", compile_project)

    return install
