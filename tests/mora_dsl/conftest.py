"""Fixtures for the compiler's tests: write a small project into a folder and compile it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from dsl_helpers import EXAMPLES

from mora_dsl.api import CompileResult, compile_project


@pytest.fixture
def compile_src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., CompileResult]:
    """``compile_src(main_text, {"app.yml": "..."})`` compiles a project written into ``tmp_path``.

    The working directory is ``tmp_path`` so diagnostics show ``main.mora:LINE:COL``.
    ``main_text`` None writes no ``main.mora``; bytes are written as they are.
    """
    monkeypatch.chdir(tmp_path)

    def run(
        main: str | bytes | None, files: dict[str, str | bytes] | None = None
    ) -> CompileResult:
        for name, content in {"main.mora": main, **(files or {})}.items():
            if isinstance(content, bytes):
                (tmp_path / name).write_bytes(content)
            elif content is not None:
                (tmp_path / name).write_text(content, encoding="utf-8")
        return compile_project(".")

    return run


@pytest.fixture(scope="session")
def media_server() -> CompileResult:
    """The acceptance program alone (main.mora), without the example's automation.mora."""
    result = compile_project(EXAMPLES / "media-server" / "main.mora")
    assert result.ok, result.render_diagnostics()
    return result


@pytest.fixture(scope="session")
def minimal() -> CompileResult:
    result = compile_project(EXAMPLES / "minimal")
    assert result.ok, result.render_diagnostics()
    return result
