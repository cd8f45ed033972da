"""The renderer pauses Python's cycle collector while a program runs, then restores it.

Every caller (`mora render`, the manager's offline deployer, tests) gets linear
render times this way; a caller that had the collector off keeps it off.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

from stacks.render import run_mocked


def _program(seen: list[bool]) -> Any:
    def program() -> dict[str, Any]:
        seen.append(gc.isenabled())
        return {}

    return program


@pytest.mark.parametrize("enabled_before", [True, False])
def test_collector_is_paused_during_a_run_and_restored_after(enabled_before):
    was = gc.isenabled()
    (gc.enable if enabled_before else gc.disable)()
    try:
        seen: list[bool] = []
        run_mocked("gc-test", _program(seen))
        assert seen == [False]
        assert gc.isenabled() is enabled_before
    finally:
        (gc.enable if was else gc.disable)()


def test_collector_is_restored_when_the_program_fails():
    def failing() -> dict[str, Any]:
        raise RuntimeError("boom")

    assert gc.isenabled()
    with pytest.raises(Exception, match="boom"):
        run_mocked("gc-test", failing)
    assert gc.isenabled()


def test_render_keeps_the_collector_paused_while_it_tidies_the_objects(monkeypatch):
    from stacks import render as render_module

    seen: list[bool] = []

    def tidy(recording: Any) -> list[dict[str, Any]]:
        seen.append(gc.isenabled())
        return []

    # Only the pause's scope matters here: no program, no manifest.
    monkeypatch.setattr(render_module, "safe_config", lambda manifest, config: config)
    monkeypatch.setattr(render_module, "run_program",
                        lambda manifest, config: render_module.Recording())
    monkeypatch.setattr(render_module, "kubernetes_objects", tidy)
    assert gc.isenabled()
    assert render_module.render(None, None) == []  # type: ignore[arg-type]
    assert seen == [False]
    assert gc.isenabled()


def test_overlapping_pauses_restore_the_collector_once_the_last_ends():
    from stacks.render import _no_cyclic_gc

    assert gc.isenabled()
    outer = _no_cyclic_gc()
    outer.__enter__()
    with _no_cyclic_gc():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the outer pause is still on
    outer.__exit__(None, None, None)
    assert gc.isenabled()
