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
