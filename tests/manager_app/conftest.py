"""Fixtures for the manager tests; the builders live in ``manager_helpers``."""

from __future__ import annotations

from pathlib import Path

import pytest
from manager_helpers import make_settings

from manager_app.settings import Settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)
